// Package s3api is the S3 wire protocol: routing, authentication, XML, and
// the one table that maps Bulwark's errors to S3 error codes. Handlers
// translate requests into calls on the object store and render results;
// they hold no object semantics of their own.
package s3api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/auth"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/sigv4"
)

// Config configures a Handler.
type Config struct {
	Store      *objectstore.Store
	Verifier   *sigv4.Verifier
	Keys       iam.KeyLookup
	Authorizer iam.Authorizer
	Metrics    *Metrics
	Logger     *slog.Logger
	// Domains are the host names under which virtual-hosted-style requests
	// arrive: a request to "bucket.<domain>" addresses bucket.
	Domains []string
	// LookupBucket, when set, finds a bucket in any region of the
	// deployment (replication destinations); nil looks in Store only.
	LookupBucket func(ctx context.Context, name string) (*objectstore.Bucket, error)
	// Router, when set, sees every request first and may answer it from
	// another region (a bucket homed elsewhere, a listing of all regions).
	Router Router
}

// Router sends requests that belong to another region there.
type Router interface {
	// Route is called with the request's bucket ("" for service-level
	// requests) before authentication. It reports whether it answered the
	// request; an error it returns is rendered as the S3 error it maps to.
	Route(w http.ResponseWriter, r *http.Request, bucket string) (handled bool, err error)
}

// Handler serves the S3 API of one region.
type Handler struct {
	store   *objectstore.Store
	verify  *sigv4.Verifier
	keys    iam.KeyLookup
	authz   iam.Authorizer
	metrics *Metrics
	log     *slog.Logger
	domains []string
	router  Router
	lookup  func(ctx context.Context, name string) (*objectstore.Bucket, error)
	hostID  string
}

// New returns a Handler.
func New(cfg Config) *Handler {
	h := &Handler{
		store: cfg.Store, verify: cfg.Verifier, keys: cfg.Keys, authz: cfg.Authorizer,
		metrics: cfg.Metrics, log: cfg.Logger, domains: cfg.Domains, router: cfg.Router,
		lookup: cfg.LookupBucket,
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.authz == nil {
		h.authz = iam.OwnerOnly{}
	}
	if h.lookup == nil {
		h.lookup = h.store.Bucket
	}
	h.hostID = newRequestID() + newRequestID()
	return h
}

// request is the per-request state the handlers share.
type request struct {
	id, hostID  string
	op          string
	bucket, key string
	query       url.Values
	principal   *iam.Principal
	authzReq    *iam.Request        // the authorization question the request passed
	cond        map[string][]string // the request's condition keys
	auth        *sigv4.Result
	status      int
	errCode     string
	start       time.Time
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, rq *request) error

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rq := &request{id: newRequestID(), hostID: h.hostID, start: time.Now(), status: http.StatusOK}
	w.Header().Set("x-amz-request-id", rq.id)
	w.Header().Set("x-amz-id-2", rq.hostID)
	w.Header().Set("Server", "Bulwark")
	cw := &countingWriter{ResponseWriter: w}
	defer func() {
		if cw.status != 0 {
			rq.status = cw.status
		}
		h.metrics.observe(rq, r, cw.n)
	}()

	if r.Method == http.MethodPut && headerSize(r.Header) > maxPutHeaderBytes {
		rq.op = "Unknown"
		h.writeError(cw, r, rq, errHeaderTooLarge)
		return
	}
	bucket, key, err := h.splitTarget(r)
	rq.bucket, rq.key, rq.query = bucket, key, r.URL.Query()
	if err != nil {
		rq.op = "Unknown"
		h.writeError(cw, r, rq, err)
		return
	}
	if h.router != nil {
		if handled, err := h.router.Route(cw, r, bucket); handled {
			if err != nil {
				rq.op = "Unknown"
				h.writeError(cw, r, rq, err)
			}
			return
		}
	}
	if bucket != "" && r.Method == http.MethodOptions {
		// A CORS preflight: browsers send it without credentials.
		rq.op = "PreflightRequest"
		if err := h.preflight(cw, r, rq); err != nil {
			h.writeError(cw, r, rq, err)
		}
		return
	}
	if bucket != "" && r.Header.Get("Origin") != "" {
		h.addCORSHeaders(cw, r, rq)
	}
	op, fn := h.route(r, rq)
	rq.op = op
	if fn == nil {
		h.writeError(cw, r, rq, errNotImplemented)
		return
	}
	if err := h.authenticate(r, rq); err != nil {
		h.writeError(cw, r, rq, err)
		return
	}
	if err := h.authorize(r, rq); err != nil {
		h.writeError(cw, r, rq, err)
		return
	}
	if err := refuseUnsupported(r, op); err != nil {
		h.writeError(cw, r, rq, err)
		return
	}
	if err := h.checkExpectedOwners(r, rq); err != nil {
		h.writeError(cw, r, rq, err)
		return
	}
	if err := fn(cw, r, rq); err != nil {
		h.writeError(cw, r, rq, err)
	}
}

// maxPutHeaderBytes is S3's documented limit on the header section of a
// PUT; the HTTP server refuses any request past 64 KiB before it gets here.
const maxPutHeaderBytes = 8 << 10

var errHeaderTooLarge = apiErr("RequestHeaderSectionTooLarge", 400, "Your request header section exceeds the maximum allowed size.")

func headerSize(h http.Header) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // ": " and CRLF
		}
	}
	return n
}

// splitTarget finds bucket and key, virtual-hosted style when the host is
// "<bucket>.<domain>", path style otherwise.
func (h *Handler) splitTarget(r *http.Request) (bucket, key string, err error) {
	host := r.Host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		host = hh
	}
	host = strings.ToLower(host)
	path := r.URL.Path
	for _, d := range h.domains {
		if strings.HasSuffix(host, "."+d) {
			bucket = strings.TrimSuffix(host, "."+d)
			return bucket, strings.TrimPrefix(path, "/"), nil
		}
	}
	path = strings.TrimPrefix(path, "/")
	bucket, key, _ = strings.Cut(path, "/")
	return bucket, key, nil
}

func (h *Handler) authenticate(r *http.Request, rq *request) error {
	p, res, err := auth.Caller(r.Context(), h.verify, h.keys, r, time.Now())
	switch {
	case errors.Is(err, auth.ErrAnonymous):
		return nil // the bucket's policy decides
	case errors.Is(err, iam.ErrUnknownKey):
		return errInvalidAccessKey
	case err != nil:
		return err
	}
	rq.principal, rq.auth = p, res
	r.Body = res.Body
	return nil
}

func resourceARN(bucket, key string) string {
	switch {
	case bucket == "":
		return "*"
	case key == "":
		return "arn:aws:s3:::" + bucket
	default:
		return "arn:aws:s3:::" + bucket + "/" + key
	}
}

// versionActions are the IAM actions S3 checks instead when a request
// names a version.
var versionActions = map[string]string{
	"GetObject":           "GetObjectVersion",
	"DeleteObject":        "DeleteObjectVersion",
	"GetObjectTagging":    "GetObjectVersionTagging",
	"PutObjectTagging":    "PutObjectVersionTagging",
	"DeleteObjectTagging": "DeleteObjectVersionTagging",
	"GetObjectAcl":        "GetObjectVersionAcl",
	"PutObjectAcl":        "PutObjectVersionAcl",
	"GetObjectAttributes": "GetObjectVersionAttributes",
}

// actionFor maps an operation to its IAM action where the names differ;
// versioned says the request names a version.
func actionFor(op string, versioned bool) string {
	if op == "HeadObject" {
		op = "GetObject"
	}
	if a, ok := versionActions[op]; ok && versioned {
		return a
	}
	switch op {
	case "ListObjects", "ListObjectsV2":
		return "ListBucket"
	case "ListObjectVersions":
		return "ListBucketVersions"
	case "ListBuckets":
		return "ListAllMyBuckets"
	case "HeadBucket":
		return "ListBucket"
	case "CopyObject", "UploadPart", "UploadPartCopy", "CreateMultipartUpload", "CompleteMultipartUpload":
		return "PutObject"
	case "DeleteObjects":
		return "DeleteObject"
	case "ListParts":
		return "ListMultipartUploadParts"
	case "ListMultipartUploads":
		return "ListBucketMultipartUploads"
	case "PutBucketTagging", "DeleteBucketTagging":
		return "PutBucketTagging"
	case "GetBucketCors":
		return "GetBucketCORS"
	case "GetBucketReplication":
		return "GetReplicationConfiguration"
	case "PutBucketReplication", "DeleteBucketReplication":
		return "PutReplicationConfiguration"
	case "PutBucketCors", "DeleteBucketCors":
		return "PutBucketCORS"
	}
	return op
}

// subresources S3 recognises in a query string. Any of them on a route not
// listed in route is an operation Bulwark does not implement yet, refused
// with NotImplemented rather than mistaken for a plain GET or PUT.
var subresources = []string{
	"accelerate", "acl", "analytics", "attributes", "cors", "delete", "encryption",
	"intelligent-tiering", "inventory", "legal-hold", "lifecycle", "location", "logging",
	"metadataConfiguration", "metrics", "notification", "object-lock", "ownershipControls",
	"partNumber", "policy", "policyStatus", "publicAccessBlock", "replication", "requestPayment",
	"restore", "retention", "select", "session", "tagging", "torrent", "uploadId", "uploads",
	"versioning", "versions", "website", "renameObject",
}

func hasSubresource(q url.Values) bool {
	for _, s := range subresources {
		if _, ok := q[s]; ok {
			return true
		}
	}
	return false
}

// route picks the operation. It returns a nil handler for operations that
// are not implemented.
func (h *Handler) route(r *http.Request, rq *request) (string, handlerFunc) {
	switch {
	case rq.bucket == "":
		if r.Method == http.MethodGet && !hasSubresource(rq.query) {
			return "ListBuckets", h.listBuckets
		}
		return "Unknown", nil
	case rq.key == "":
		return h.bucketRoute(r, rq.query)
	default:
		return h.objectRoute(r, rq.query)
	}
}

func (h *Handler) bucketRoute(r *http.Request, q url.Values) (string, handlerFunc) {
	has := func(k string) bool { _, ok := q[k]; return ok }
	plain := !hasSubresource(q)
	switch r.Method {
	case http.MethodPut:
		switch {
		case has("versioning"):
			return "PutBucketVersioning", h.putBucketVersioning
		case has("tagging"):
			return "PutBucketTagging", h.putBucketTagging
		case has("acl"):
			return "PutBucketAcl", h.putBucketACL
		case has("cors"):
			return "PutBucketCors", h.putBucketCORS
		case has("replication"):
			return "PutBucketReplication", h.putBucketReplication
		case has("policy"):
			return "PutBucketPolicy", h.putBucketPolicy
		case plain:
			return "CreateBucket", h.createBucket
		}
	case http.MethodHead:
		return "HeadBucket", h.headBucket
	case http.MethodDelete:
		switch {
		case has("tagging"):
			return "DeleteBucketTagging", h.deleteBucketTagging
		case has("cors"):
			return "DeleteBucketCors", h.deleteBucketCORS
		case has("replication"):
			return "DeleteBucketReplication", h.deleteBucketReplication
		case has("policy"):
			return "DeleteBucketPolicy", h.deleteBucketPolicy
		case plain:
			return "DeleteBucket", h.deleteBucket
		}
	case http.MethodPost:
		if has("delete") {
			return "DeleteObjects", h.deleteObjects
		}
	case http.MethodGet:
		switch {
		case has("location"):
			return "GetBucketLocation", h.getBucketLocation
		case has("versioning"):
			return "GetBucketVersioning", h.getBucketVersioning
		case has("tagging"):
			return "GetBucketTagging", h.getBucketTagging
		case has("acl"):
			return "GetBucketAcl", h.getBucketACL
		case has("cors"):
			return "GetBucketCors", h.getBucketCORS
		case has("replication"):
			return "GetBucketReplication", h.getBucketReplication
		case has("policy"):
			return "GetBucketPolicy", h.getBucketPolicy
		case has("versions"):
			return "ListObjectVersions", h.listObjectVersions
		case has("uploads"):
			return "ListMultipartUploads", h.listMultipartUploads
		case q.Get("list-type") == "2" && plain:
			return "ListObjectsV2", h.listObjectsV2
		case plain:
			return "ListObjects", h.listObjects
		}
	}
	return "Unknown", nil
}

func (h *Handler) objectRoute(r *http.Request, q url.Values) (string, handlerFunc) {
	has := func(k string) bool { _, ok := q[k]; return ok }
	copySource := r.Header.Get("x-amz-copy-source") != ""
	switch r.Method {
	case http.MethodPut:
		if op, ok := replicationOp(r); ok {
			if op == "Unknown" || hasSubresource(q) {
				return "Unknown", nil
			}
			return op, h.replicate
		}
		switch {
		case has("tagging"):
			return "PutObjectTagging", h.putObjectTagging
		case has("acl"):
			return "PutObjectAcl", h.putObjectACL
		case has("uploadId") && has("partNumber") && copySource:
			return "UploadPartCopy", h.uploadPartCopy
		case has("uploadId") && has("partNumber"):
			return "UploadPart", h.uploadPart
		case hasSubresource(q):
		case copySource:
			return "CopyObject", h.copyObject
		default:
			return "PutObject", h.putObject
		}
	case http.MethodPost:
		switch {
		case has("uploads"):
			return "CreateMultipartUpload", h.createMultipartUpload
		case has("uploadId"):
			return "CompleteMultipartUpload", h.completeMultipartUpload
		}
	case http.MethodGet, http.MethodHead:
		op, fn := "GetObject", h.getObject
		if r.Method == http.MethodHead {
			op, fn = "HeadObject", h.headObject
		}
		switch {
		case has("tagging") && r.Method == http.MethodGet:
			return "GetObjectTagging", h.getObjectTagging
		case has("acl") && r.Method == http.MethodGet:
			return "GetObjectAcl", h.getObjectACL
		case has("attributes") && r.Method == http.MethodGet:
			return "GetObjectAttributes", h.getObjectAttributes
		case has("uploadId") && r.Method == http.MethodGet:
			return "ListParts", h.listParts
		case !hasSubresource(q), len(q) > 0 && onlyPartNumber(q):
			return op, fn
		}
	case http.MethodDelete:
		switch {
		case has("tagging"):
			return "DeleteObjectTagging", h.deleteObjectTagging
		case has("uploadId"):
			return "AbortMultipartUpload", h.abortMultipartUpload
		case !hasSubresource(q):
			return "DeleteObject", h.deleteObject
		}
	}
	return "Unknown", nil
}

// onlyPartNumber reports whether partNumber is the only subresource, as in
// a GetObject or HeadObject of one part.
func onlyPartNumber(q url.Values) bool {
	for _, s := range subresources {
		if _, ok := q[s]; ok && s != "partNumber" {
			return false
		}
	}
	return true
}

const xmlNS = "http://s3.amazonaws.com/doc/2006-03-01/"

func writeXML(w http.ResponseWriter, status int, v any) {
	out, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(out)
}

// countingWriter records the status and the bytes sent, for metrics.
type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

// ReadFrom keeps the kernel's sendfile path for file-backed bodies.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	n, err := io.Copy(c.ResponseWriter, r)
	c.n += n
	return n, err
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }
