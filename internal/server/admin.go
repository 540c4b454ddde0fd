package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/bulwark/bulwark/internal/auth"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/iam"
)

// adminPrefix is where Bulwark's own API lives, beside S3's: the peer API
// regions use among themselves and the admin API the CLI uses. Every call
// is signed with SigV4 by a key of the deployment.
const adminPrefix = "/_bulwark/"

type principalKey struct{}

// callerOf returns the authenticated caller of an admin request.
func callerOf(ctx context.Context) *iam.Principal {
	p, _ := ctx.Value(principalKey{}).(*iam.Principal)
	return p
}

// adminHandler authenticates and routes /_bulwark/ requests.
func (r *Region) adminHandler() http.Handler {
	mux := http.NewServeMux()
	r.registerPeerAPI(mux)
	r.registerReplicationAPI(mux)
	r.registerIAMSync(mux)
	r.registerAccountsAPI(mux)
	r.registerCopyAPI(mux)
	v := r.verifier()
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p, res, err := auth.Caller(req.Context(), v, r.keys, req, time.Now())
		switch {
		case errors.Is(err, iam.ErrUnknownKey):
			writeJSONError(w, http.StatusForbidden, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
			return
		case err != nil:
			writeJSONError(w, http.StatusForbidden, "AccessDenied", err.Error())
			return
		}
		req.Body = res.Body
		mux.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), principalKey{}, p)))
	})
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
