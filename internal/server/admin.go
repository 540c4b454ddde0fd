package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/bulwark/bulwark/internal/auth"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// adminPrefix is where Bulwark's own API lives, beside S3's: the peer API
// regions use among themselves and the admin API the CLI uses. Every call
// is signed with SigV4 and authorized (see adminRoute).
const adminPrefix = "/_bulwark/"

type principalKey struct{}

// callerOf returns the authenticated caller of an admin request.
func callerOf(ctx context.Context) *iam.Principal {
	p, _ := ctx.Value(principalKey{}).(*iam.Principal)
	return p
}

// Who may call an admin route. Every route names one; there is no route
// that any authenticated key may call.
type access int

const (
	// peersOnly routes are the deployment's regions talking to each
	// other (bucket homes, IAM copies, recovery point copies). Regions
	// sign with the admin account's root key, and only that key passes:
	// no IAM policy can grant these.
	peersOnly access = iota + 1
	// checked routes are the admin API's: any principal may call them,
	// and the handler authorizes every resource it touches with IAM, as
	// the S3 API does, through Region.authorize. A checked route that
	// answers with success without an authorization decision is answered
	// 500 instead (see decisionGuard): forgetting a check fails closed.
	checked
)

// adminRoute is one call of Bulwark's own API.
type adminRoute struct {
	pattern string // http.ServeMux pattern: "METHOD /path"
	access  access
	// actions are the IAM actions the route is authorized with, for the
	// documentation and the authorization tests; checked routes decide
	// which applies to which resource.
	actions []string
	handler http.HandlerFunc
}

// adminRoutes lists every route of the admin and peer API.
func (r *Region) adminRoutes() []adminRoute {
	var routes []adminRoute
	routes = append(routes, r.peerRoutes()...)
	routes = append(routes, r.replicationRoutes()...)
	routes = append(routes, r.iamSyncRoutes()...)
	routes = append(routes, r.accountsRoutes()...)
	routes = append(routes, r.copyRoutes()...)
	routes = append(routes, r.metricsRoutes()...)
	routes = append(routes, r.scrubRoutes()...)
	routes = append(routes, r.resourcesRoutes()...)
	routes = append(routes, r.auditRoutes()...)
	return routes
}

// adminHandler authenticates and routes /_bulwark/ requests.
func (r *Region) adminHandler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range r.adminRoutes() {
		h := rt.handler
		switch rt.access {
		case peersOnly:
			h = r.peersOnly(h)
		case checked:
			h = decisionGuard(r, h)
		default:
			panic("admin route " + rt.pattern + " says nothing of who may call it")
		}
		mux.Handle(rt.pattern, h)
	}
	v := r.verifier()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p, res, err := auth.Caller(req.Context(), v, r.keys, req, time.Now())
		switch {
		case errors.Is(err, iam.ErrUnknownKey):
			writeJSONError(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
			return
		case errors.Is(err, iam.ErrExpiredToken):
			writeJSONError(w, http.StatusForbidden, "ExpiredToken", "The provided token has expired.")
			return
		case errors.Is(err, iam.ErrInvalidClientToken):
			writeJSONError(w, http.StatusForbidden, "InvalidToken", "The provided token is malformed or otherwise invalid.")
			return
		case err != nil:
			writeJSONError(w, http.StatusForbidden, "AccessDenied", err.Error())
			return
		}
		req.Body = res.Body
		mux.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), principalKey{}, p)))
	})
}

// peersOnly lets through only the deployment's regions.
func (r *Region) peersOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		if !r.isAdmin(callerOf(req.Context())) {
			writeJSONError(w, http.StatusForbidden, "AccessDenied",
				"this call is for the deployment's regions, which sign with the admin account's root key")
			return
		}
		h(w, req)
	}
}

// decision records whether a checked route's request was authorized
// (or passed on to the region that authorizes it).
type decision struct{ made bool }

type decisionKey struct{}

// decided marks ctx's request as authorized here or passed on to the
// region that will authorize it.
func decided(ctx context.Context) {
	if d, ok := ctx.Value(decisionKey{}).(*decision); ok {
		d.made = true
	}
}

// decisionGuard answers 500, and logs, when h answers with success without
// an authorization decision: a route that forgot its check refuses
// rather than serves.
func decisionGuard(r *Region, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		d := &decision{}
		gw := &guardWriter{ResponseWriter: w, d: d, r: r, req: req}
		h(gw, req.WithContext(context.WithValue(req.Context(), decisionKey{}, d)))
	}
}

type guardWriter struct {
	http.ResponseWriter
	d       *decision
	r       *Region
	req     *http.Request
	wrote   bool
	refused bool
}

func (g *guardWriter) WriteHeader(status int) {
	if g.wrote {
		return
	}
	g.wrote = true
	if status < 400 && !g.d.made {
		g.refused = true
		g.r.log.Error("admin API: a route answered without an authorization decision; refused", "path", g.req.URL.Path)
		writeJSONError(g.ResponseWriter, http.StatusInternalServerError, "InternalError", "the call was not authorized (logged)")
		return
	}
	g.ResponseWriter.WriteHeader(status)
}

func (g *guardWriter) Write(p []byte) (int, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	if g.refused {
		return len(p), nil
	}
	return g.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach the connection.
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// Flush passes flushes on, for forwarded streams.
func (g *guardWriter) Flush() {
	if f, ok := g.ResponseWriter.(http.Flusher); ok && !g.refused {
		f.Flush()
	}
}

// authorize asks IAM whether the caller of req may do action on resource:
// an ARN, or "*" for actions AWS defines on no resource (s3:CreateJob,
// s3:ListJobs). b, when the resource is a bucket or in one, gives its
// owner and policy; without it the resource is the caller's account's.
// The answer counts as the request's authorization decision.
func (r *Region) authorize(req *http.Request, action, resource string, b *objectstore.Bucket) error {
	if b == nil {
		return r.authorizeOwned(req, action, resource, "", nil)
	}
	return r.authorizeOwned(req, action, resource, b.Owner, b.Policy)
}

// authorizeOwned is authorize for a resource of account owner ("" for
// the caller's own) with the resource policy pol (nil for none).
func (r *Region) authorizeOwned(req *http.Request, action, resource, owner string, pol []byte) error {
	ctx := req.Context()
	areq := &iam.Request{Principal: callerOf(ctx), Action: action, Resource: resource, ResourceOwner: owner, Context: globalConditionKeys(req)}
	if len(pol) > 0 {
		areq.ResourcePolicy, areq.ResourcePolicyKind = pol, iam.ResourceKind
	}
	decided(ctx)
	return r.authz.Authorize(ctx, areq)
}

// adminOnly authorizes action, on "*", for a principal of the deployment's
// admin account: the calls whose answer or effect spans every account
// (what covers names it in the refusal). It answers the refusal itself.
func (r *Region) adminOnly(w http.ResponseWriter, req *http.Request, action, what string) bool {
	if p := callerOf(req.Context()); r.admin == "" || p.AccountID != r.admin {
		writeJSONError(w, http.StatusForbidden, "AccessDenied", what+" covers every account: only the deployment's admin account (the account bulwark up made, or that of the first configured key) may")
		return false
	}
	if err := r.authorize(req, action, "*", nil); err != nil {
		writeDenied(w, err)
		return false
	}
	return true
}

// globalConditionKeys are the aws: condition keys every request has.
func globalConditionKeys(req *http.Request) map[string][]string {
	now := time.Now().UTC()
	c := map[string][]string{
		"aws:CurrentTime":     {now.Format(time.RFC3339)},
		"aws:EpochTime":       {strconv.FormatInt(now.Unix(), 10)},
		"aws:SecureTransport": {strconv.FormatBool(req.TLS != nil)},
	}
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		c["aws:SourceIp"] = []string{host}
	}
	if ua := req.UserAgent(); ua != "" {
		c["aws:UserAgent"] = []string{ua}
	}
	return c
}

// writeDenied answers an authorization refusal.
func writeDenied(w http.ResponseWriter, err error) {
	writeJSONError(w, http.StatusForbidden, "AccessDenied", err.Error())
}

// readBody reads a request body of at most limit bytes, answering the
// request itself (and returning false) when it cannot. The body is read
// through the signature check: a body that does not match its signed hash
// ends here.
func readBody(w http.ResponseWriter, req *http.Request, limit int64, what string) ([]byte, bool) {
	body, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	switch {
	case errors.Is(err, httplimit.ErrReadTimeout):
		writeRequestTimeout(w)
		return nil, false
	case err != nil:
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("read %s: %v", what, err))
		return nil, false
	case int64(len(body)) > limit:
		writeJSONError(w, http.StatusRequestEntityTooLarge, "InvalidRequest", fmt.Sprintf("the %s is too large", what))
		return nil, false
	}
	return body, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeJSONError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "message": msg})
}

// requestTimeoutMessage is S3's wording of RequestTimeout, which the
// admin API and IAM's forwarding answer a stalled body with.
const requestTimeoutMessage = "Your socket connection to the server was not read from or written to within the timeout period. Idle connections will be closed."

// writeRequestTimeout answers a request whose body stalled, with S3's code
// for it.
func writeRequestTimeout(w http.ResponseWriter) {
	writeJSONError(w, http.StatusBadRequest, "RequestTimeout", requestTimeoutMessage)
}
