// Package backupapi is the AWS Backup wire: the REST-JSON protocol of
// botocore's "backup" model (2018-11-15) in front of the backup catalog.
// It authenticates each request, authorizes the backup:Operation action
// on the vault or plan it names, decodes JSON bodies and URI parameters,
// calls the catalog and renders its answers; errors.go holds the one
// table that maps the catalog's error kinds to AWS Backup's exceptions.
// Every operation acts within the caller's own account.
package backupapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/auth"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/sigv4"
)

// service is the credential scope's service of AWS Backup.
const service = "backup"

// maxBody bounds a request body: the signature verifier's bound on a body
// it reads whole to hash.
const maxBody = sigv4.MaxHashedBody

// Log attribute keys.
const (
	logRequestID = "request_id"
	logOperation = "operation"
	logCode      = "code"
	logErr       = "err"
)

// Config configures a Handler.
type Config struct {
	Catalog *backup.Catalog
	Jobs    *backup.Service // nil serves no job or recovery point operation
	// Providers are the resource types the region backs up
	// (GetSupportedResourceTypes, ResourceName); Jobs' when nil.
	Providers *backup.Registry
	// Audit serves Backup Audit Manager; when nil, one over Jobs that
	// delivers no reports (none when Jobs is nil too).
	Audit *backup.Audit
	// Verifier checks signatures; nil means one over Keys for the
	// "backup" scope.
	Verifier   *sigv4.Verifier
	Keys       iam.KeyLookup
	Authorizer iam.Authorizer
	Region     string
	Logger     *slog.Logger
	// Now is the clock sessions are judged by; nil means time.Now.
	Now func() time.Time
}

// Handler serves the AWS Backup API.
type Handler struct {
	cat  *backup.Catalog
	jobs *backup.Service
	// providers name resources and their types.
	providers *backup.Registry
	audit     *backup.Audit
	verify    *sigv4.Verifier
	keys      iam.KeyLookup
	authz     iam.Authorizer
	region    string
	log       *slog.Logger
	now       func() time.Time
	mux       *http.ServeMux
}

// New returns a Handler.
func New(cfg Config) *Handler {
	h := &Handler{cat: cfg.Catalog, jobs: cfg.Jobs, verify: cfg.Verifier, keys: cfg.Keys, authz: cfg.Authorizer, region: cfg.Region, log: cfg.Logger, now: cfg.Now}
	h.providers = cfg.Providers
	h.audit = cfg.Audit
	if h.audit == nil && cfg.Jobs != nil {
		h.audit = backup.NewAudit(backup.AuditConfig{Jobs: cfg.Jobs, Logger: cfg.Logger})
	}
	if h.providers == nil && cfg.Jobs != nil {
		h.providers = cfg.Jobs.Providers()
	}
	if h.providers == nil {
		h.providers, _ = backup.NewRegistry()
	}
	if h.verify == nil {
		h.verify = &sigv4.Verifier{Lookup: auth.Lookup(h.keys), Services: []string{service}}
	}
	if h.authz == nil {
		h.authz = iam.OwnerOnly{}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	if h.region == "" && h.cat != nil {
		h.region = h.cat.Region()
	}
	h.mux = http.NewServeMux()
	h.routes()
	h.jobRoutes()
	h.restoreTestingRoutes()
	h.auditRoutes()
	return h
}

// operation runs one API operation for an authenticated call and returns
// the value to render as the JSON body (nil for none).
type operation func(ctx context.Context, c *call) (any, error)

// routes registers each operation at its model URI and, because the SDKs
// drop the trailing slash the model's URIs end with and the CLI keeps it,
// at the URI without it too.
func (h *Handler) routes() {
	for _, r := range []struct {
		pattern string
		op      string
		fn      operation
	}{
		{"PUT /backup-vaults/{name}", "CreateBackupVault", createVault},
		{"GET /backup-vaults/{name}", "DescribeBackupVault", describeVault},
		{"DELETE /backup-vaults/{name}", "DeleteBackupVault", deleteVault},
		{"GET /backup-vaults/{$}", "ListBackupVaults", listVaults},
		{"GET /backup-vaults", "ListBackupVaults", listVaults},
		{"PUT /backup-vaults/{name}/vault-lock", "PutBackupVaultLockConfiguration", putVaultLock},
		{"DELETE /backup-vaults/{name}/vault-lock", "DeleteBackupVaultLockConfiguration", deleteVaultLock},
		{"PUT /backup/plans/{$}", "CreateBackupPlan", createPlan},
		{"GET /backup/plans/{$}", "ListBackupPlans", listPlans},
		{"PUT /backup/plans", "CreateBackupPlan", createPlan},
		{"GET /backup/plans", "ListBackupPlans", listPlans},
		{"GET /backup/plans/{id}/{$}", "GetBackupPlan", getPlan},
		{"GET /backup/plans/{id}", "GetBackupPlan", getPlan},
		{"POST /backup/plans/{id}", "UpdateBackupPlan", updatePlan},
		{"DELETE /backup/plans/{id}", "DeleteBackupPlan", deletePlan},
		{"GET /backup/plans/{id}/versions/{$}", "ListBackupPlanVersions", listPlanVersions},
		{"GET /backup/plans/{id}/versions", "ListBackupPlanVersions", listPlanVersions},
		{"POST /backup/template/json/toPlan", "GetBackupPlanFromJSON", planFromJSON},
		{"PUT /backup/plans/{id}/selections/{$}", "CreateBackupSelection", createSelection},
		{"GET /backup/plans/{id}/selections/{$}", "ListBackupSelections", listSelections},
		{"PUT /backup/plans/{id}/selections", "CreateBackupSelection", createSelection},
		{"GET /backup/plans/{id}/selections", "ListBackupSelections", listSelections},
		{"GET /backup/plans/{id}/selections/{sid}", "GetBackupSelection", getSelection},
		{"DELETE /backup/plans/{id}/selections/{sid}", "DeleteBackupSelection", deleteSelection},
		{"POST /tags/{arn}", "TagResource", tagResource},
		{"GET /tags/{arn}/{$}", "ListTags", listTags},
		{"GET /tags/{arn}", "ListTags", listTags},
		{"POST /untag/{arn}", "UntagResource", untagResource},
		{"GET /supported-resource-types", "GetSupportedResourceTypes", supportedResourceTypes},
	} {
		h.mux.HandleFunc(r.pattern, func(w http.ResponseWriter, req *http.Request) { h.serve(w, req, r.op, r.fn) })
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := h.mux.Handler(r); pattern == "" {
		h.unmatched(w, r)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// unmatched answers a request no route takes: an operation of the model
// Bulwark does not serve is named, anything else is unknown. Both are
// answered only to authenticated callers.
func (h *Handler) unmatched(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	op := ""
	for _, u := range unimplemented {
		if u.method == r.Method && matchTemplate(u.uri, r.URL.EscapedPath()) {
			op = u.op
			break
		}
	}
	if _, err := h.authenticate(r, op); err != nil {
		h.writeError(r.Context(), w, op, rid, err)
		return
	}
	if op != "" {
		h.writeError(r.Context(), w, op, rid, errf("NotImplementedException", http.StatusNotImplemented, "Bulwark does not implement the AWS Backup operation %s yet.", op))
		return
	}
	h.writeError(r.Context(), w, "", rid, errUnknownOp)
}

// matchTemplate reports whether an escaped path matches a model URI
// template, whose {label} matches one segment and {label+} the rest.
func matchTemplate(tmpl, path string) bool {
	ts := strings.Split(strings.Trim(tmpl, "/"), "/")
	ps := strings.Split(strings.Trim(path, "/"), "/")
	for i, t := range ts {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "+}") {
			return i < len(ps)
		}
		if i >= len(ps) {
			return false
		}
		if strings.HasPrefix(t, "{") {
			if ps[i] == "" {
				return false
			}
			continue
		}
		if t != ps[i] {
			return false
		}
	}
	return len(ts) == len(ps)
}

// call is one authenticated request on its way to an operation.
type call struct {
	h          *Handler
	r          *http.Request
	op         string
	body       []byte
	caller     *iam.Principal
	account    string
	authorized bool
	// status is the HTTP status of a success when the model gives one
	// other than 200; 204 sends no body.
	status int
}

// serve authenticates a request, runs its operation and renders the answer.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, op string, fn operation) {
	rid := newRequestID()
	ctx := r.Context()
	c, err := h.authenticate(r, op)
	if err != nil {
		h.writeError(ctx, w, op, rid, err)
		return
	}
	c.op = op
	res, err := fn(ctx, c)
	if err == nil && !c.authorized {
		err = fmt.Errorf("operation %s ran without authorization", op)
	}
	if err != nil {
		h.writeError(ctx, w, op, rid, err)
		return
	}
	body := []byte("{}")
	if res != nil {
		if body, err = json.Marshal(res); err != nil {
			h.writeError(ctx, w, op, rid, err)
			return
		}
	}
	w.Header().Set("x-amzn-RequestId", rid)
	if c.status == http.StatusNoContent {
		w.WriteHeader(c.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if c.status != 0 {
		w.WriteHeader(c.status)
	}
	_, _ = w.Write(body)
}

// authenticate verifies the signature, refuses unknown, inactive and
// expired credentials, and reads the body the signature covers.
func (h *Handler) authenticate(r *http.Request, op string) (*call, error) {
	ctx := r.Context()
	p, res, err := auth.Caller(ctx, h.verify, h.keys, r, h.now())
	switch {
	case errors.Is(err, sigv4.ErrBodyTooLarge):
		return nil, bodyTooLarge(op)
	case errors.Is(err, auth.ErrAnonymous):
		return nil, errMissingAuth
	case errors.Is(err, iam.ErrExpiredToken):
		return nil, errExpiredToken
	case errors.Is(err, iam.ErrUnknownKey), errors.Is(err, iam.ErrInvalidClientToken):
		return nil, errInvalidKey
	case err != nil:
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, bodyTooLarge(op)
	}
	return &call{h: h, r: r, body: body, caller: p, account: p.AccountID}, nil
}

// authorize asks whether the caller may do the call's backup action on
// resource, in its own account.
func (c *call) authorize(ctx context.Context, resource string) error {
	return c.authorizeAction(ctx, "backup:"+c.op, resource)
}

func (c *call) authorizeAction(ctx context.Context, action, resource string) error {
	err := c.h.authz.Authorize(ctx, &iam.Request{Principal: c.caller, Action: action, Resource: resource, ResourceOwner: c.account})
	if errors.Is(err, iam.ErrAccessDenied) {
		msg := fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s", c.caller.ARN, action, resource)
		if _, why, ok := strings.Cut(err.Error(), " because "); ok {
			msg += " because " + why
		}
		return &apiError{Code: "AccessDeniedException", Status: http.StatusForbidden, Message: msg, err: err}
	}
	if err != nil {
		return err
	}
	c.authorized = true
	return nil
}

// decode reads the JSON body into v; an empty body is an empty object.
func (c *call) decode(v any) error {
	if len(bytes.TrimSpace(c.body)) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		return &apiError{Code: "SerializationException", Status: http.StatusBadRequest, Message: "The request body is not valid JSON: " + err.Error(), err: err}
	}
	return nil
}

// query reads a boolean query parameter.
func (c *call) boolQuery(name string) (bool, error) {
	s := c.r.URL.Query().Get(name)
	if s == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(s)
	if err != nil {
		return false, errf("InvalidParameterValueException", 400, "Invalid value %q of %s.", s, name)
	}
	return b, nil
}

// page cuts one page out of items by the maxResults and nextToken query
// parameters; a token is the opaque key of the last item of the previous
// page.
func page[T any](c *call, items []T, keyOf func(T) string) ([]T, string, error) {
	return pageBy(c, "maxResults", "nextToken", items, keyOf)
}

// pageBy is page with the query parameters named otherwise, as the
// restore testing operations name them (MaxResults, NextToken).
func pageBy[T any](c *call, maxName, tokenName string, items []T, keyOf func(T) string) ([]T, string, error) {
	q := c.r.URL.Query()
	max := 1000
	if s := q.Get(maxName); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 1000 {
			return nil, "", errInvalidResult
		}
		max = n
	}
	start := 0
	if tok := q.Get(tokenName); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, "", errInvalidToken
		}
		start = -1
		for i, it := range items {
			if keyOf(it) == string(b) {
				start = i + 1
				break
			}
		}
		if start < 0 {
			return nil, "", errInvalidToken
		}
	}
	end := min(start+max, len(items))
	next := ""
	if end < len(items) {
		next = base64.RawURLEncoding.EncodeToString([]byte(keyOf(items[end-1])))
	}
	return items[start:end], next, nil
}

// errorBody is AWS Backup's error document: Code as the services of this
// model send it (botocore reads Code, the SDKs x-amzn-ErrorType).
type errorBody struct {
	Code             string
	Message          string
	Arn              string `json:",omitempty"`
	CreatorRequestId string `json:",omitempty"`
}

func (h *Handler) writeError(ctx context.Context, w http.ResponseWriter, op, rid string, err error) {
	ae := toAPIError(err)
	level := slog.LevelDebug
	if ae.Status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(ctx, level, "backup request failed", logRequestID, rid, logOperation, op, logCode, ae.Code, logErr, err)
	body, _ := json.Marshal(errorBody{Code: ae.Code, Message: ae.Message, Arn: ae.ARN})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-RequestId", rid)
	w.Header().Set("x-amzn-ErrorType", ae.Code)
	w.WriteHeader(ae.Status)
	_, _ = w.Write(body)
}

// newRequestID makes a request ID in the UUID form AWS uses.
func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// epoch is a timestamp as REST-JSON renders it: seconds since the epoch.
type epoch time.Time

func (t epoch) MarshalJSON() ([]byte, error) {
	ms := time.Time(t).UnixMilli()
	return []byte(strconv.FormatFloat(float64(ms)/1000, 'f', -1, 64)), nil
}

func ts(t time.Time) *epoch {
	if t.IsZero() {
		return nil
	}
	e := epoch(t)
	return &e
}

func tsp(t *time.Time) *epoch {
	if t == nil {
		return nil
	}
	return ts(*t)
}
