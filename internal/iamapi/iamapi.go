// Package iamapi is the IAM and STS wire: AWS's Query protocol (a
// form-encoded Action=…&Version=… request, an XML answer) in front of the
// iam package. It authenticates each request, authorizes IAM actions,
// translates parameters into calls on the IAM store and renders results;
// errors.go holds the one table that maps Bulwark's errors to IAM's and
// STS's codes. Every operation acts within the caller's own account.
package iamapi

import (
	"context"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/auth"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/sigv4"
)

// The two services, as the credential scope names them.
const (
	serviceIAM = "iam"
	serviceSTS = "sts"
)

// API versions the services answer.
const (
	versionIAM = "2010-05-08"
	versionSTS = "2011-06-15"
)

// Log attribute keys.
const (
	logRequestID = "request_id"
	logAction    = "action"
	logCode      = "code"
	logErr       = "err"
)

// Config configures a Handler.
type Config struct {
	Store *iam.Store
	// Verifier checks signatures; its scope services must include "iam"
	// and "sts". Nil means one over Keys accepting both.
	Verifier *sigv4.Verifier
	// Keys finds the key a request was signed with; nil means Store.
	Keys iam.KeyLookup
	// Authorizer decides IAM actions; nil means policy evaluation over
	// Store.
	Authorizer iam.Authorizer
	Logger     *slog.Logger
	// Now is the clock session expiry is judged by; nil means time.Now.
	Now func() time.Time
}

// Handler serves the IAM and STS Query APIs.
type Handler struct {
	store  *iam.Store
	verify *sigv4.Verifier
	keys   iam.KeyLookup
	authz  iam.Authorizer
	log    *slog.Logger
	now    func() time.Time
}

// New returns a Handler.
func New(cfg Config) *Handler {
	h := &Handler{store: cfg.Store, verify: cfg.Verifier, keys: cfg.Keys, authz: cfg.Authorizer, log: cfg.Logger, now: cfg.Now}
	if h.keys == nil {
		h.keys = cfg.Store
	}
	if h.verify == nil {
		h.verify = &sigv4.Verifier{Lookup: auth.Lookup(h.keys), Services: []string{serviceIAM, serviceSTS}}
	}
	if h.authz == nil {
		h.authz = &iam.Evaluator{Store: cfg.Store}
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	if h.now == nil {
		h.now = time.Now
	}
	return h
}

// call is one authenticated request on its way to an operation.
type call struct {
	h       *Handler
	service string
	op      string
	form    form
	caller  *iam.Principal
	account string
}

// operation is one Query action. resource names the ARN the IAM action is
// authorized against before run; nil means the action needs no
// authorization here (GetCallerIdentity answers anyone; AssumeRole is
// decided by the store against the role's trust policy).
type operation struct {
	required []string
	resource func(ctx context.Context, c *call) (string, error)
	run      func(ctx context.Context, c *call) (any, error)
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rid := newRequestID()
	service, op, res, err := h.serve(r)
	if err != nil {
		h.writeError(r.Context(), w, service, op, rid, err)
		return
	}
	ns := nsIAM
	if service == serviceSTS {
		ns = nsSTS
	}
	body, err := renderResult(ns, op, rid, res)
	if err != nil {
		h.writeError(r.Context(), w, service, op, rid, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", rid)
	_, _ = w.Write(body)
}

// serve authenticates r, finds its operation and runs it. The service is
// the credential scope's, reported even when the request is refused so
// that the error is answered in its namespace.
func (h *Handler) serve(r *http.Request) (service, op string, result any, err error) {
	service = scopeService(r)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return service, "", nil, errMethodNotAllowed
	}
	c, err := h.authenticate(r)
	if err != nil {
		return service, "", nil, err
	}
	op = c.form.get("Action")
	if op == "" {
		return service, "", nil, errMissingAction
	}
	if c.service == "" {
		c.service = serviceOf(op)
	}
	service, c.op = c.service, op
	o, ok := lookup(service, op, c.form.get("Version"))
	if !ok {
		return service, op, nil, errf("InvalidAction", 400, "Could not find operation %s for version %s", op, versionOf(service, c.form))
	}
	if err := c.form.require(o.required...); err != nil {
		return service, op, nil, err
	}
	ctx := r.Context()
	if o.resource != nil {
		resource, err := o.resource(ctx, c)
		if err != nil {
			return service, op, nil, err
		}
		if err := c.authorize(ctx, resource); err != nil {
			return service, op, nil, err
		}
	}
	result, err = o.run(ctx, c)
	return service, op, result, err
}

// authenticate verifies the signature, refuses unknown, inactive and
// expired credentials, and reads the request's parameters from the body
// the signature covers.
func (h *Handler) authenticate(r *http.Request) (*call, error) {
	ctx := r.Context()
	p, res, err := auth.Caller(ctx, h.verify, h.keys, r, h.now())
	switch {
	case errors.Is(err, auth.ErrAnonymous):
		return nil, errMissingAuth
	case errors.Is(err, iam.ErrExpiredToken):
		return nil, errExpiredToken
	case errors.Is(err, iam.ErrUnknownKey), errors.Is(err, iam.ErrInvalidClientToken):
		return nil, errInvalidToken
	case err != nil:
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(res.Body, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxBody {
		return nil, errBodyTooLarge
	}
	f, err := parseForm(body, r.URL.RawQuery)
	if err != nil {
		return nil, err
	}
	return &call{h: h, service: res.Service, form: f, caller: p, account: p.AccountID}, nil
}

// lookup finds an operation of a service at an API version; a request
// that names no version gets the current one.
func lookup(service, op, version string) (operation, bool) {
	ops, want := iamOps, versionIAM
	if service == serviceSTS {
		ops, want = stsOps, versionSTS
	}
	if version != "" && version != want {
		return operation{}, false
	}
	o, ok := ops[op]
	return o, ok
}

func versionOf(service string, f form) string {
	if v := f.get("Version"); v != "" {
		return v
	}
	if service == serviceSTS {
		return versionSTS
	}
	return versionIAM
}

// serviceOf guesses the service of a request whose signature names none
// (Signature Version 2) from its action.
func serviceOf(op string) string {
	if _, ok := stsOps[op]; ok {
		return serviceSTS
	}
	return serviceIAM
}

// scopeService reads the service from a request's credential scope before
// it is verified, so that even a refused request is answered in its
// service's namespace.
func scopeService(r *http.Request) string {
	cred := r.URL.Query().Get("X-Amz-Credential")
	if a := r.Header.Get("Authorization"); a != "" {
		if _, rest, ok := strings.Cut(a, "Credential="); ok {
			cred, _, _ = strings.Cut(rest, ",")
		}
	}
	// access-key/date/region/service/aws4_request
	if parts := strings.Split(cred, "/"); len(parts) == 5 && parts[3] == serviceSTS {
		return serviceSTS
	}
	return serviceIAM
}

// authorize asks whether the caller may do the call's IAM action on
// resource, in its own account.
func (c *call) authorize(ctx context.Context, resource string) error {
	action := "iam:" + c.op
	err := c.h.authz.Authorize(ctx, &iam.Request{Principal: c.caller, Action: action, Resource: resource, ResourceOwner: c.account})
	if errors.Is(err, iam.ErrAccessDenied) {
		return denied(c.caller, action, resource, err)
	}
	return err
}

// denied words a refusal as AWS does, keeping the evaluator's reason.
func denied(caller *iam.Principal, action, resource string, cause error) error {
	msg := fmt.Sprintf("User: %s is not authorized to perform: %s on resource: %s", caller.ARN, action, resource)
	if _, why, ok := strings.Cut(cause.Error(), " because "); ok {
		msg += " because " + why
	}
	return &apiError{Code: "AccessDenied", Status: http.StatusForbidden, Message: msg, err: cause}
}

func (h *Handler) writeError(ctx context.Context, w http.ResponseWriter, service, op, rid string, err error) {
	ae := toAPIError(err, service)
	level := slog.LevelDebug
	if ae.Status >= 500 {
		level = slog.LevelError
	}
	h.log.Log(ctx, level, "iam request failed", logRequestID, rid, logAction, op, logCode, ae.Code, logErr, err)
	ns, typ := nsIAM, "Sender"
	if service == serviceSTS {
		ns = nsSTS
	}
	if ae.Status >= 500 {
		typ = "Receiver"
	}
	body, _ := xml.Marshal(errorBody{Xmlns: ns, Error: errorDetail{Type: typ, Code: ae.Code, Message: ae.Message}, RequestID: rid})
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("x-amzn-RequestId", rid)
	w.WriteHeader(ae.Status)
	_, _ = w.Write(body)
}

// newRequestID makes a request ID in the UUID form IAM uses.
func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
