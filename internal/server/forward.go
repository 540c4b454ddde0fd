package server

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/s3api"
	"github.com/bulwark/bulwark/internal/sigv4"
	"github.com/bulwark/bulwark/internal/topology"
)

// forwardedHeader marks a request a region passes to another on a client's
// behalf; its value names the region that passed it. A region answers such
// a request itself and never passes it on again, so two regions that
// disagree about a bucket's home cannot bounce a request between them. It
// is not signed, and need not be: a client that sets it only gets this
// region's own answer.
const forwardedHeader = "X-Bulwark-Forwarded"

// maxCreateBody caps the CreateBucket body read to find its
// LocationConstraint; a real one is a few hundred bytes. A larger body is
// left to the local handler, which refuses it.
const maxCreateBody = 64 << 10

// listTimeout bounds the wait for peers' bucket lists; a region that is
// slower is left out of the answer rather than holding it up.
const listTimeout = 30 * time.Second

// maxListBody caps a peer's ListBuckets answer (10,000 buckets of S3's
// longest names fit well within it).
const maxListBody = 32 << 20

// router sends requests for buckets homed in other regions there, so that
// any region's endpoint serves every bucket. It runs before
// authentication: the home region authenticates and authorizes the
// forwarded request itself, on the client's own signature, which stays
// valid because the request goes on unchanged (Host header, path, query and
// body as sent) and every region accepts a credential scope naming any
// region of the topology.
type router struct {
	region *Region
	peers  *peerState
	verify *sigv4.Verifier
	// local is this region's S3 API without a router: ListBuckets is
	// answered by it and by every peer, and the lists merged. It uses the
	// same store, keys and (default) authorizer as the region's handler.
	local http.Handler
	// proxyLog takes what ReverseProxy logs (a response cut short).
	proxyLog *log.Logger
}

// router returns the s3api.Router that sends requests for buckets homed in
// other regions there. With a topology of one region it never handles a
// request.
func (r *Region) router() s3api.Router {
	return &router{
		region: r,
		peers:  r.peers(),
		verify: r.verifier(),
		local: s3api.New(s3api.Config{
			Store: r.Store, Verifier: r.verifier(), Keys: r.keys, Authorizer: r.authz, Logger: r.log, Domains: r.cfg.Domains,
		}),
		proxyLog: slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
}

// Route implements s3api.Router.
func (rt *router) Route(w http.ResponseWriter, req *http.Request, bucket string) (bool, error) {
	if req.Header.Get(forwardedHeader) != "" || len(rt.peers.others()) == 0 {
		return false, nil
	}
	if bucket == "" {
		if req.Method == http.MethodGet && onlyQuery(req.URL.Query(), "prefix", "bucket-region", "continuation-token", "max-buckets") {
			return rt.listAllBuckets(w, req)
		}
		return false, nil
	}
	if objectstore.ValidateBucketName(bucket) != nil {
		return false, nil // no region has it; the local handler says why
	}
	if req.Method == http.MethodPut && rt.key(req, bucket) == "" && onlyQuery(req.URL.Query()) {
		return rt.createBucket(w, req, bucket)
	}
	home, err := rt.region.LocateBucket(req.Context(), bucket)
	switch {
	case errors.Is(err, objectstore.ErrNoSuchBucket):
		return false, nil
	case err != nil:
		return true, err
	case home == rt.peers.self:
		return false, nil
	}
	return rt.forward(w, req, bucket, home)
}

// createBucket places a bucket in the region its LocationConstraint names
// (none: the endpoint's own region). Names are global, so a name taken in
// another region is refused here; one taken in the target region is left
// to that region's store, which knows whether the caller already owns it.
// A name is checked against the regions that answer: when one is down, a
// bucket may still be created elsewhere (logged), so that one region's
// outage does not stop every other region from creating buckets.
func (rt *router) createBucket(w http.ResponseWriter, req *http.Request, bucket string) (bool, error) {
	body, ok := readSmallBody(req, maxCreateBody)
	if !ok {
		return false, nil
	}
	target, ok := locationConstraint(body)
	if !ok {
		return false, nil // the local handler answers MalformedXML
	}
	if target == "" {
		target = rt.peers.self
	}
	if !slices.Contains(rt.peers.topo.Names(), target) {
		return false, nil // the local handler answers IllegalLocationConstraintException
	}
	// A remembered home may be stale (the bucket deleted since): ask.
	home, err := rt.region.locate(req.Context(), bucket, false)
	switch {
	case err == nil && home != target:
		// Say so only to a caller with a valid signature, as S3 does.
		if !rt.authentic(req, body) {
			return false, nil // the local handler answers the signature error
		}
		rt.peers.log.Debug("create bucket: name taken in another region", "bucket", bucket, "target", target, "home", home)
		return true, fmt.Errorf("create bucket %q in %s: taken in region %s: %w", bucket, target, home, objectstore.ErrBucketExists)
	case err == nil, errors.Is(err, objectstore.ErrNoSuchBucket):
	case errors.Is(err, topology.ErrRegionUnreachable):
		rt.peers.log.Warn("create bucket: the name is checked only against the regions that answered", "bucket", bucket, "target", target, "err", err)
	default:
		return true, err
	}
	if target == rt.peers.self {
		return false, nil
	}
	return rt.forward(w, req, bucket, target)
}

// authentic reports whether req carries a valid signature and payload.
// body is the request's whole body; req.Body is left ready to read again.
func (rt *router) authentic(req *http.Request, body []byte) bool {
	defer replayBody(req, body)
	replayBody(req, body)
	res, err := rt.verify.Verify(req.Context(), req)
	if err != nil || res.Anonymous {
		return false
	}
	_, err = io.Copy(io.Discard, res.Body)
	return err == nil
}

// forward reverse-proxies req to the home region, streaming both ways, and
// answers the client with the home region's response as it comes. When
// the home region does not answer, the error (503 ServiceUnavailable)
// names it.
func (rt *router) forward(w http.ResponseWriter, req *http.Request, bucket, home string) (bool, error) {
	endpoint, ok := rt.peers.topo.Endpoint(home)
	if !ok {
		return true, rt.unreachable(w, bucket, home, errors.New("no endpoint is known for it"))
	}
	target, err := url.Parse(endpoint)
	if err != nil {
		return true, fmt.Errorf("region %s: endpoint %q: %w", home, endpoint, err)
	}
	// The response is the home region's, its request IDs included.
	ids := map[string][]string{}
	for _, h := range []string{"X-Amz-Request-Id", "X-Amz-Id-2", "Server"} {
		ids[h] = w.Header()[h]
		delete(w.Header(), h)
	}
	body := &recordingBody{ReadCloser: req.Body}
	if req.Body != nil {
		req.Body = body
	}
	var failure error
	proxy := &httputil.ReverseProxy{
		Rewrite:        func(pr *httputil.ProxyRequest) { rt.rewrite(pr, target) },
		Transport:      rt.peers.forward,
		FlushInterval:  -1,
		ErrorLog:       rt.proxyLog,
		ModifyResponse: func(resp *http.Response) error { rt.learn(req, bucket, home, resp); return nil },
		// Called only before anything is written to w: the request did
		// not get an answer at all.
		ErrorHandler: func(_ http.ResponseWriter, _ *http.Request, err error) { failure = err },
	}
	proxy.ServeHTTP(w, req)
	if failure == nil {
		return true, nil
	}
	for h, v := range ids {
		w.Header()[h] = v
	}
	switch {
	case errors.Is(body.readErr(), httplimit.ErrReadTimeout):
		return true, body.readErr() // the client stalled (and its context ended with it)
	case req.Context().Err() != nil:
		return true, req.Context().Err() // the client is gone
	case body.readErr() != nil:
		return true, fmt.Errorf("forward to region %s: read request body: %w", home, body.readErr())
	}
	return true, rt.unreachable(w, bucket, home, failure)
}

// forwardAnswerTimeout bounds the wait for the home region's answer once a
// forwarded request is sent whole: a region whose process hangs accepts
// connections and takes requests (its kernel does), and would hold the
// client until it gave up. Generous: the home region answers a PUT once
// it is durable, a copy once it is made (5 GiB at 50 MB/s is 100 s).
var forwardAnswerTimeout = 3 * time.Minute

// unreachable logs why the home region did not answer and returns what the
// client sees: the region's name, not the internal address or cause.
func (rt *router) unreachable(w http.ResponseWriter, bucket, home string, cause error) error {
	rt.peers.log.Warn("forward: home region did not answer", "bucket", bucket, "home", home, "err", cause)
	w.Header().Set("x-amz-bucket-region", home)
	return fmt.Errorf("%w: bucket %q is served by region %s, which did not answer; try again later",
		topology.ErrRegionUnreachable, bucket, home)
}

// rewrite addresses the outgoing request to the home region and keeps
// everything the client signed as it was sent.
func (rt *router) rewrite(pr *httputil.ProxyRequest, target *url.URL) {
	out := pr.Out
	out.URL.Scheme, out.URL.Host = target.Scheme, target.Host
	if p := rawPath(pr.In); p != "" {
		out.URL.Opaque = p
	}
	out.Host = pr.In.Host
	// ReverseProxy drops these before Rewrite; a client may have signed
	// them, and the home region has no use for the proxy's own.
	for _, h := range []string{"Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto"} {
		if v, ok := pr.In.Header[h]; ok {
			out.Header[h] = v
		}
	}
	// This region has already answered the client's 100-continue (or will,
	// as the body is read); a second one from the home region would be
	// relayed as a response of its own.
	if !signsHeader(pr.In, "expect") {
		out.Header.Del("Expect")
	}
	out.Header.Set(forwardedHeader, rt.peers.self)
}

// learn keeps the remembered homes right: a bucket created in home lives
// there; a home region that answers NoSuchBucket (or 404 to a HEAD, which
// has no body to say which) or deletes the bucket is no longer its home.
func (rt *router) learn(req *http.Request, bucket, home string, resp *http.Response) {
	bucketLevel := rt.key(req, bucket) == "" && onlyQuery(req.URL.Query())
	switch {
	case resp.StatusCode == http.StatusOK && req.Method == http.MethodPut && bucketLevel:
		rt.peers.remember(bucket, home)
	case resp.StatusCode == http.StatusNotFound && (req.Method == http.MethodHead || saysNoSuchBucket(resp)):
		rt.peers.forget(bucket)
	case resp.StatusCode == http.StatusNoContent && req.Method == http.MethodDelete && bucketLevel:
		rt.peers.forget(bucket)
	}
}

// saysNoSuchBucket peeks at an error body and puts it back.
func saysNoSuchBucket(resp *http.Response) bool {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body = readCloser{io.MultiReader(bytes.NewReader(data), resp.Body), resp.Body}
	return bytes.Contains(data, []byte("<Code>NoSuchBucket</Code>"))
}

// key returns the object key of req, as s3api finds it: virtual-hosted
// style when the host is "<bucket>.<domain>", path style otherwise.
func (rt *router) key(req *http.Request, bucket string) string {
	host := req.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.ToLower(host)
	for _, d := range rt.region.cfg.Domains {
		if host == bucket+"."+d {
			return strings.TrimPrefix(req.URL.Path, "/")
		}
	}
	_, key, _ := strings.Cut(strings.TrimPrefix(req.URL.Path, "/"), "/")
	return key
}

// listAllBuckets answers ListBuckets with the buckets of every region that
// answers: this region's list, and the same request (same signature)
// answered by each peer, merged by name. A peer that does not answer is
// left out and logged; the caller sees the regions that are up.
func (rt *router) listAllBuckets(w http.ResponseWriter, req *http.Request) (bool, error) {
	rec := &recorder{header: http.Header{}}
	rt.local.ServeHTTP(rec, req)
	if rec.status != http.StatusOK {
		rec.copyTo(w)
		return true, nil
	}
	var merged bucketList
	if err := xml.Unmarshal(rec.body.Bytes(), &merged); err != nil {
		return true, fmt.Errorf("list buckets: read this region's list: %w", err)
	}
	for _, l := range rt.peerLists(req) {
		merged.Buckets = append(merged.Buckets, l.Buckets...)
		if l.ContinuationToken != "" && merged.ContinuationToken == "" {
			merged.ContinuationToken = l.ContinuationToken
		}
	}
	sort.SliceStable(merged.Buckets, func(i, j int) bool { return merged.Buckets[i].Name < merged.Buckets[j].Name })
	merged.Buckets = slices.CompactFunc(merged.Buckets, func(a, b listedBucket) bool { return a.Name == b.Name })
	// Each region stopped at max-buckets; so does the merged list. When
	// any list was cut short, the merged one continues after its own last
	// name, which sorts no later than where that region stopped.
	limit := 10000
	if n, err := strconv.Atoi(req.URL.Query().Get("max-buckets")); err == nil && n > 0 {
		limit = n
	}
	if len(merged.Buckets) > limit {
		merged.Buckets = merged.Buckets[:limit]
		merged.ContinuationToken = "cut"
	}
	if merged.ContinuationToken != "" && len(merged.Buckets) > 0 {
		merged.ContinuationToken = merged.Buckets[len(merged.Buckets)-1].Name
	}
	merged.XMLName, merged.NS = xml.Name{}, s3NS
	out, err := xml.Marshal(merged)
	if err != nil {
		return true, fmt.Errorf("list buckets: %w", err)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, xml.Header)
	_, _ = w.Write(out)
	return true, nil
}

// peerLists sends req to every peer at once and returns the lists of those
// that answered 200.
func (rt *router) peerLists(req *http.Request) []*bucketList {
	ctx, cancel := context.WithTimeout(req.Context(), listTimeout)
	defer cancel()
	peers := rt.peers.others()
	lists := make([]*bucketList, len(peers))
	var wg sync.WaitGroup
	for i, peer := range peers {
		wg.Go(func() {
			l, err := rt.peerList(ctx, req, peer)
			if err != nil {
				rt.peers.log.Warn("list buckets: region left out of the answer", "peer", peer, "err", err)
				return
			}
			lists[i] = l
		})
	}
	wg.Wait()
	return slices.DeleteFunc(lists, func(l *bucketList) bool { return l == nil })
}

func (rt *router) peerList(ctx context.Context, req *http.Request, peer string) (*bucketList, error) {
	endpoint, ok := rt.peers.topo.Endpoint(peer)
	if !ok {
		return nil, errors.New("no endpoint is known for it")
	}
	out, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, err
	}
	out.URL.Opaque, out.URL.RawQuery = "/", req.URL.RawQuery
	if p := rawPath(req); p != "" {
		out.URL.Opaque = p
	}
	out.Header = req.Header.Clone()
	for _, h := range []string{"Connection", "Keep-Alive", "Te", "Trailer", "Transfer-Encoding", "Upgrade", "Expect"} {
		out.Header.Del(h)
	}
	out.Header.Set(forwardedHeader, rt.peers.self)
	out.Host = req.Host
	resp, err := rt.peers.forward.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxListBody))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s: %.200s", resp.Status, data)
	}
	var l bucketList
	if err := xml.Unmarshal(data, &l); err != nil {
		return nil, fmt.Errorf("malformed answer: %w", err)
	}
	return &l, nil
}

// s3NS is the namespace of S3's XML documents.
const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

// bucketList is S3's ListAllMyBucketsResult, as s3api writes it.
type bucketList struct {
	XMLName xml.Name `xml:"ListAllMyBucketsResult"`
	NS      string   `xml:"xmlns,attr"`
	Owner   struct {
		ID          string `xml:"ID"`
		DisplayName string `xml:"DisplayName,omitempty"`
	} `xml:"Owner"`
	Buckets           []listedBucket `xml:"Buckets>Bucket"`
	ContinuationToken string         `xml:"ContinuationToken,omitempty"`
	Prefix            string         `xml:"Prefix,omitempty"`
}

type listedBucket struct {
	Name         string `xml:"Name"`
	CreationDate string `xml:"CreationDate"`
	BucketRegion string `xml:"BucketRegion"`
}

// recorder keeps a response in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

func (r *recorder) copyTo(w http.ResponseWriter) {
	for k, v := range r.header {
		w.Header()[k] = v
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	w.WriteHeader(r.status)
	_, _ = w.Write(r.body.Bytes())
}

// rawPath is the path of req exactly as the client sent it, which is what
// its signature covers; "" when it cannot be sent on as it is.
func rawPath(req *http.Request) string {
	p, _, _ := strings.Cut(req.RequestURI, "?")
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return "" // absolute-form, or a path a URL would read as a host
	}
	return p
}

// onlyQuery reports whether every query parameter is one of allowed, or
// one S3 ignores for routing: x-id (the SDKs' operation hint) and the
// X-Amz-* parameters of a presigned URL.
func onlyQuery(q url.Values, allowed ...string) bool {
	for k := range q {
		if k != "x-id" && !strings.HasPrefix(strings.ToLower(k), "x-amz-") && !slices.Contains(allowed, k) {
			return false
		}
	}
	return true
}

// signsHeader reports whether the request's SigV4 signature covers the
// header name (lower case).
func signsHeader(req *http.Request, name string) bool {
	list := req.URL.Query().Get("X-Amz-SignedHeaders")
	if _, rest, ok := strings.Cut(req.Header.Get("Authorization"), "SignedHeaders="); ok {
		list, _, _ = strings.Cut(rest, ",")
	}
	for _, h := range strings.Split(list, ";") {
		if strings.EqualFold(strings.TrimSpace(h), name) {
			return true
		}
	}
	return false
}

// locationConstraint reads a CreateBucket body; ok is false when it is
// not S3's CreateBucketConfiguration. "EU" is S3's old name of eu-west-1.
func locationConstraint(body []byte) (region string, ok bool) {
	if len(bytes.TrimSpace(body)) == 0 {
		return "", true
	}
	var c struct {
		XMLName            xml.Name `xml:"CreateBucketConfiguration"`
		LocationConstraint string   `xml:"LocationConstraint"`
	}
	if err := xml.Unmarshal(body, &c); err != nil {
		return "", false
	}
	if c.LocationConstraint == "EU" {
		return "eu-west-1", true
	}
	return c.LocationConstraint, true
}

// readSmallBody reads a body of at most limit bytes; ok is false when it
// is larger or cannot be read. Either way req.Body is left to read again
// from the start.
func readSmallBody(req *http.Request, limit int64) (body []byte, ok bool) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, true
	}
	data, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	req.Body = readCloser{io.MultiReader(bytes.NewReader(data), req.Body), req.Body}
	if err != nil || int64(len(data)) > limit {
		return nil, false
	}
	return data, true
}

// replayBody sets req.Body to body from the start, keeping the original
// body's Close.
func replayBody(req *http.Request, body []byte) {
	var c io.Closer = io.NopCloser(nil)
	if req.Body != nil {
		c = req.Body
	}
	req.Body = readCloser{bytes.NewReader(body), c}
}

type readCloser struct {
	io.Reader
	io.Closer
}

// recordingBody remembers the error reading the client's body, to tell a
// client that stopped sending from a home region that stopped answering.
// The transport reads the body on a goroutine of its own.
type recordingBody struct {
	io.ReadCloser
	mu  sync.Mutex
	err error
}

func (b *recordingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.mu.Lock()
		if b.err == nil {
			b.err = err
		}
		b.mu.Unlock()
	}
	return n, err
}

func (b *recordingBody) readErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
