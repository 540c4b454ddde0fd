package sigv4

import (
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	algorithmHMAC  = "AWS4-HMAC-SHA256"
	algorithmECDSA = "AWS4-ECDSA-P256-SHA256"
	scopeTerminal  = "aws4_request"
	timeFormat     = "20060102T150405Z"
	dateFormat     = "20060102"
	// maxExpires is S3's limit on X-Amz-Expires: seven days.
	maxExpires = 604800

	paramAlgorithm     = "X-Amz-Algorithm"
	paramCredential    = "X-Amz-Credential"
	paramDate          = "X-Amz-Date"
	paramExpires       = "X-Amz-Expires"
	paramSignedHeaders = "X-Amz-SignedHeaders"
	paramSignature     = "X-Amz-Signature"
	paramSecurityToken = "X-Amz-Security-Token"
	paramContentSHA256 = "X-Amz-Content-Sha256"

	headerContentSHA256 = "X-Amz-Content-Sha256"
	headerDate          = "X-Amz-Date"
	headerSecurityToken = "X-Amz-Security-Token"
	headerDecodedLength = "X-Amz-Decoded-Content-Length"
	headerTrailer       = "X-Amz-Trailer"
)

// Payload hash values S3 accepts in x-amz-content-sha256 besides a hex
// sha256.
const (
	UnsignedPayload                 = "UNSIGNED-PAYLOAD"
	StreamingPayload                = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	StreamingPayloadTrailer         = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	StreamingUnsignedPayloadTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	StreamingECDSAPayload           = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD"
	StreamingECDSAPayloadTrailer    = "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER"
	// EmptySHA256 is the hex sha256 of an empty payload.
	EmptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// signedRequest is what a request claims about its own signature, from
// either the Authorization header or the presigned query.
type signedRequest struct {
	presigned     bool
	accessKey     string
	date          string // scope date, yyyymmdd
	region        string
	service       string
	terminal      string
	signedHeaders []string
	signature     []byte
	amzDate       string // timestamp exactly as it enters the string to sign
	time          time.Time
	expires       time.Duration
	payloadHash   string
	sessionToken  string
}

func (sr *signedRequest) scope() string {
	return sr.date + "/" + sr.region + "/" + sr.service + "/" + scopeTerminal
}

// malformed is the sentinel S3 uses for a bad request of this form.
func (sr *signedRequest) malformed() error {
	if sr.presigned {
		return ErrAuthorizationQueryParametersError
	}
	return ErrAuthorizationHeaderMalformed
}

// authFields are the parts of an AWS4-HMAC-SHA256 Authorization header.
type authFields struct {
	credential    string
	signedHeaders string
	signature     string
}

// parseAuthorization splits an Authorization header. It tolerates the
// spacing variations clients produce around the commas but not unknown or
// repeated parts.
func parseAuthorization(h string) (authFields, error) {
	var f authFields
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	switch scheme {
	case algorithmHMAC:
	case algorithmECDSA:
		return f, fmt.Errorf("%w: signature version 4a (%s)", ErrNotImplemented, scheme)
	case "AWS":
		return f, fmt.Errorf("%w: signature version 2", ErrNotImplemented)
	default:
		return f, fmt.Errorf("%w: unsupported Authorization type", ErrInvalidArgument)
	}
	seen := map[string]bool{}
	for part := range strings.SplitSeq(rest, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || seen[k] {
			return f, fmt.Errorf("%w: the authorization header requires exactly one each of Credential, SignedHeaders and Signature", ErrAuthorizationHeaderMalformed)
		}
		seen[k] = true
		switch k {
		case "Credential":
			f.credential = val
		case "SignedHeaders":
			f.signedHeaders = val
		case "Signature":
			f.signature = val
		default:
			return f, fmt.Errorf("%w: unexpected part %q", ErrAuthorizationHeaderMalformed, k)
		}
	}
	if !seen["Credential"] || !seen["SignedHeaders"] || !seen["Signature"] {
		return f, fmt.Errorf("%w: the authorization header requires Credential, SignedHeaders and Signature", ErrAuthorizationHeaderMalformed)
	}
	return f, nil
}

// setCredential parses "AKID/yyyymmdd/region/service/aws4_request".
func (sr *signedRequest) setCredential(s string) error {
	parts := strings.Split(s, "/")
	if len(parts) != 5 || parts[0] == "" || parts[2] == "" || parts[3] == "" {
		return fmt.Errorf("%w: the Credential is mal-formed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"", sr.malformed())
	}
	if _, err := time.Parse(dateFormat, parts[1]); err != nil || len(parts[1]) != len(dateFormat) {
		return fmt.Errorf("%w: invalid credential date %q", sr.malformed(), parts[1])
	}
	sr.accessKey, sr.date, sr.region, sr.service, sr.terminal = parts[0], parts[1], parts[2], parts[3], parts[4]
	return nil
}

// setSignedHeaders keeps the list in the order sent: it is part of the
// canonical request verbatim, so reordering would only break signatures.
func (sr *signedRequest) setSignedHeaders(s string) error {
	names := strings.Split(s, ";")
	seen := make(map[string]bool, len(names))
	for _, n := range names {
		if n == "" || n != strings.ToLower(n) || seen[n] || strings.ContainsAny(n, " \t:") {
			return fmt.Errorf("%w: invalid SignedHeaders %q", sr.malformed(), s)
		}
		seen[n] = true
	}
	if !seen["host"] {
		return fmt.Errorf("%w: SignedHeaders must include host", sr.malformed())
	}
	sr.signedHeaders = names
	return nil
}

func (sr *signedRequest) setSignature(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 32 {
		return fmt.Errorf("%w: the signature must be 64 hex digits", sr.malformed())
	}
	sr.signature = b
	return nil
}

func parseHeaderAuth(r *http.Request, h string) (*signedRequest, error) {
	f, err := parseAuthorization(h)
	if err != nil {
		return nil, err
	}
	sr := &signedRequest{}
	if err := sr.setCredential(f.credential); err != nil {
		return nil, err
	}
	if err := sr.setSignedHeaders(f.signedHeaders); err != nil {
		return nil, err
	}
	if err := sr.setSignature(f.signature); err != nil {
		return nil, err
	}
	if err := sr.setHeaderDate(r); err != nil {
		return nil, err
	}
	// Only S3 requires x-amz-content-sha256; for other services the
	// payload hash is computed from the body (see hashBody).
	sr.payloadHash = r.Header.Get(headerContentSHA256)
	sr.sessionToken = r.Header.Get(headerSecurityToken)
	return sr, nil
}

// setHeaderDate takes x-amz-date, falling back to Date as AWS allows; the
// string to sign always carries the ISO 8601 basic form.
func (sr *signedRequest) setHeaderDate(r *http.Request) error {
	if d := r.Header.Get(headerDate); d != "" {
		t, err := parseAmzDate(d)
		if err != nil {
			return fmt.Errorf("%w: x-amz-date %q is not in ISO 8601 basic format", ErrAccessDenied, d)
		}
		sr.time, sr.amzDate = t, d
		return nil
	}
	d := r.Header.Get("Date")
	if d == "" {
		return fmt.Errorf("%w: AWS authentication requires a valid Date or x-amz-date header", ErrAccessDenied)
	}
	t, err := parseAmzDate(d)
	if err != nil {
		if t, err = http.ParseTime(d); err != nil {
			return fmt.Errorf("%w: AWS authentication requires a valid Date or x-amz-date header", ErrAccessDenied)
		}
	}
	sr.time, sr.amzDate = t.UTC(), t.UTC().Format(timeFormat)
	return nil
}

func parseAmzDate(s string) (time.Time, error) {
	t, err := time.Parse(timeFormat, s)
	if err != nil {
		return time.Time{}, err
	}
	if t.Format(timeFormat) != s {
		return time.Time{}, fmt.Errorf("parse date: %q is not canonical", s)
	}
	return t, nil
}

func parsePresigned(r *http.Request, q queryParams) (*signedRequest, error) {
	sr := &signedRequest{presigned: true}
	const required = "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters"
	vals := map[string]string{}
	for _, name := range []string{paramAlgorithm, paramCredential, paramDate, paramExpires, paramSignedHeaders, paramSignature} {
		got := q.get(name)
		if len(got) != 1 {
			return nil, fmt.Errorf("%w: %s", ErrAuthorizationQueryParametersError, required)
		}
		vals[name] = got[0]
	}
	switch vals[paramAlgorithm] {
	case algorithmHMAC:
	case algorithmECDSA:
		return nil, fmt.Errorf("%w: signature version 4a (%s)", ErrNotImplemented, algorithmECDSA)
	default:
		return nil, fmt.Errorf("%w: X-Amz-Algorithm only supports \"%s\"", ErrAuthorizationQueryParametersError, algorithmHMAC)
	}
	if err := sr.setCredential(vals[paramCredential]); err != nil {
		return nil, err
	}
	if err := sr.setSignedHeaders(vals[paramSignedHeaders]); err != nil {
		return nil, err
	}
	if err := sr.setSignature(vals[paramSignature]); err != nil {
		return nil, err
	}
	t, err := parseAmzDate(vals[paramDate])
	if err != nil {
		return nil, fmt.Errorf("%w: X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"", ErrAuthorizationQueryParametersError)
	}
	sr.time, sr.amzDate = t, vals[paramDate]
	exp, err := strconv.ParseInt(vals[paramExpires], 10, 64)
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: X-Amz-Expires should be a number", ErrAuthorizationQueryParametersError)
	case exp < 1:
		return nil, fmt.Errorf("%w: X-Amz-Expires must be positive", ErrAuthorizationQueryParametersError)
	case exp > maxExpires:
		return nil, fmt.Errorf("%w: X-Amz-Expires must be less than a week (in seconds) that's 604800", ErrAuthorizationQueryParametersError)
	}
	sr.expires = time.Duration(exp) * time.Second
	sr.payloadHash = presignedPayloadHash(r, q)
	sr.sessionToken = r.Header.Get(headerSecurityToken)
	if tok := q.get(paramSecurityToken); len(tok) > 0 {
		sr.sessionToken = tok[0]
	}
	return sr, nil
}

// presignedPayloadHash: a presigned URL is signed over UNSIGNED-PAYLOAD
// unless the signer pinned a hash, which then travels as a header or in the
// query. Either way the value is part of the signature, so honouring it
// cannot weaken verification.
func presignedPayloadHash(r *http.Request, q queryParams) string {
	if h := r.Header.Get(headerContentSHA256); h != "" {
		return h
	}
	if h := q.get(paramContentSHA256); len(h) == 1 {
		return h[0]
	}
	return UnsignedPayload
}

// checkScope rejects scopes for another service or region with the
// messages S3 sends.
func (v *Verifier) checkScope(sr *signedRequest) error {
	if sr.terminal != scopeTerminal {
		return fmt.Errorf("%w: incorrect terminal %q; this endpoint uses %q", sr.malformed(), sr.terminal, scopeTerminal)
	}
	if svcs := v.services(); !slices.Contains(svcs, sr.service) {
		return fmt.Errorf("%w: incorrect service %q; this endpoint belongs to %q", sr.malformed(), sr.service, svcs[0])
	}
	if len(v.Regions) > 0 && !slices.Contains(v.Regions, sr.region) {
		return fmt.Errorf("%w: the region '%s' is wrong; expecting '%s'", sr.malformed(), sr.region, v.Regions[0])
	}
	return nil
}

// checkTime applies S3's clock rules: a bounded skew for header signatures,
// the expiry window for presigned URLs.
func (v *Verifier) checkTime(sr *signedRequest) error {
	if d := sr.time.Format(dateFormat); d != sr.date {
		return fmt.Errorf("%w: invalid credential date %q; this date is not the same as X-Amz-Date: %q", sr.malformed(), sr.date, d)
	}
	now := v.now()
	skew := v.maxSkew()
	if !sr.presigned {
		if diff := now.Sub(sr.time); diff > skew || diff < -skew {
			return fmt.Errorf("%w: request time %s, server time %s", ErrRequestTimeTooSkewed, sr.amzDate, now.UTC().Format(timeFormat))
		}
		return nil
	}
	if sr.time.Sub(now) > skew {
		return fmt.Errorf("%w: request is not valid yet", ErrAccessDenied)
	}
	if expiry := sr.time.Add(sr.expires); now.After(expiry) {
		return fmt.Errorf("%w: expired at %s, server time %s", ErrRequestExpired, expiry.UTC().Format(timeFormat), now.UTC().Format(timeFormat))
	}
	return nil
}

// checkSignedHeaders refuses x-amz-* headers left out of the signature, as
// S3 does: they change what a request means (ACLs, copy sources, checksums)
// and must not be addable by anyone on the path.
func checkSignedHeaders(r *http.Request, sr *signedRequest) error {
	var unsigned []string
	for name := range r.Header {
		lower := strings.ToLower(name)
		if strings.HasPrefix(lower, "x-amz-") && !slices.Contains(sr.signedHeaders, lower) {
			unsigned = append(unsigned, lower)
		}
	}
	if len(unsigned) > 0 {
		slices.Sort(unsigned)
		return fmt.Errorf("%w: there were headers present in the request which were not signed: %s", ErrAccessDenied, strings.Join(unsigned, ", "))
	}
	return nil
}

type queryParam struct{ key, value string }

// queryParams keeps every pair in order: duplicates are legal and all of
// them are signed.
type queryParams []queryParam

func (q queryParams) get(key string) []string {
	var out []string
	for _, p := range q {
		if p.key == key {
			out = append(out, p.value)
		}
	}
	return out
}

func (q queryParams) has(key string) bool {
	for _, p := range q {
		if p.key == key {
			return true
		}
	}
	return false
}

// parseQuery decodes a raw query the way the SDK signers read it: '+' is a
// space, and a name without '=' has an empty value.
func parseQuery(raw string) (queryParams, error) {
	var q queryParams
	for part := range strings.SplitSeq(raw, "&") {
		if part == "" {
			continue
		}
		k, val, _ := strings.Cut(part, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(val)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: invalid escape in query string", ErrInvalidArgument)
		}
		q = append(q, queryParam{dk, dv})
	}
	return q, nil
}
