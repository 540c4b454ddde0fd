package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Signature Version 2 query-string authentication: the presigned URLs the
// aws CLI v1 makes by default (aws s3 presign) and S3 still accepts. Only
// this form of V2 is verified; a V2 Authorization header remains
// ErrNotImplemented.
//
// The signature is base64(HMAC-SHA1(secret, StringToSign)) over
//
//	METHOD \n Content-MD5 \n Content-Type \n Expires \n
//	CanonicalizedAmzHeaders CanonicalizedResource
//
// V2 has no credential scope and never signs the payload.

const (
	paramV2AccessKey = "AWSAccessKeyId"
	paramV2Expires   = "Expires"
	paramV2Signature = "Signature"
)

// v2SubResources are the query parameters that enter the V2 canonical
// resource: those S3 lists, and those botocore signs besides, so that every
// one of them a signer may have covered is covered here. A parameter left
// out would let anyone holding the URL add it without breaking the
// signature.
var v2SubResources = []string{
	"accelerate", "acl", "analytics", "cors", "defaultObjectAcl", "delete",
	"inventory", "lifecycle", "location", "logging", "metrics", "notification",
	"object-lock", "partNumber", "policy", "replication", "requestPayment",
	"restore", "select", "select-type", "storageClass", "tagging", "torrent",
	"uploadId", "uploads", "versionId", "versioning", "versions", "website",
	"response-cache-control", "response-content-disposition",
	"response-content-encoding", "response-content-language",
	"response-content-type", "response-expires",
}

// v2Unsigned are query parameters that select another S3 operation but
// that signature version 2 does not sign. A V2 URL carrying one is refused:
// otherwise whoever holds a URL signed for one read could turn it into
// another.
var v2Unsigned = []string{
	"attributes", "encryption", "intelligent-tiering", "legal-hold", "list-type",
	"metadataConfiguration", "ownershipControls", "policyStatus", "publicAccessBlock",
	"renameObject", "retention", "session",
}

// isPresignedV2 reports whether the query claims V2 query-string
// authentication. Either parameter is enough: a URL that carries one and
// not the other is a broken presigned URL, not an anonymous request.
func isPresignedV2(q queryParams) bool {
	return q.has(paramV2AccessKey) || q.has(paramV2Signature)
}

// presignedV2 is what a V2 presigned URL claims about itself.
type presignedV2 struct {
	accessKey  string
	expiresRaw string // as sent: it enters the string to sign verbatim
	expires    time.Time
	signature  []byte
}

func parsePresignedV2(q queryParams) (*presignedV2, error) {
	vals := map[string]string{}
	for _, name := range []string{paramV2AccessKey, paramV2Expires, paramV2Signature} {
		got := q.get(name)
		if len(got) != 1 {
			return nil, fmt.Errorf("%w: Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters", ErrAccessDenied)
		}
		vals[name] = got[0]
	}
	p := &presignedV2{accessKey: vals[paramV2AccessKey], expiresRaw: vals[paramV2Expires]}
	exp, err := strconv.ParseInt(p.expiresRaw, 10, 64)
	if err != nil || strings.TrimLeft(p.expiresRaw, "0123456789") != "" {
		return nil, fmt.Errorf("%w: Invalid date (should be seconds since epoch): %s", ErrAccessDenied, p.expiresRaw)
	}
	p.expires = time.Unix(exp, 0).UTC()
	// A '+' of the base64 signature left unescaped in the URL arrives as a
	// space; putting it back only recovers what the signer computed.
	sig, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(vals[paramV2Signature], " ", "+"))
	if err != nil || len(sig) != sha1.Size {
		// Not a signature anyone could have computed.
		sig = nil
	}
	p.signature = sig
	return p, nil
}

// verifyPresignedV2 checks a V2 presigned URL: expiry, key, signature.
func (v *Verifier) verifyPresignedV2(ctx context.Context, r *http.Request, t target, q queryParams) (*Result, error) {
	p, err := parsePresignedV2(q)
	if err != nil {
		return nil, err
	}
	for _, name := range v2Unsigned {
		if q.has(name) {
			return nil, fmt.Errorf("%w: %q is not covered by a signature version 2 presigned URL", ErrAccessDenied, name)
		}
	}
	now := v.now()
	if now.After(p.expires) {
		return nil, fmt.Errorf("%w: expired at %s, server time %s", ErrRequestExpired, p.expires.Format(timeFormat), now.UTC().Format(timeFormat))
	}
	res := &Result{Presigned: true, Expires: p.expires, PayloadHash: UnsignedPayload}
	mode := payloadMode{kind: payloadUnsigned}
	// A client may still pin the payload: the header is an x-amz-* header,
	// so it is signed like any other, and the body is checked against it.
	if h := r.Header.Get(headerContentSHA256); h != "" {
		if mode, err = parsePayloadMode(h); err != nil {
			return nil, err
		}
		if mode.signedChunks() {
			return nil, fmt.Errorf("%w: %s is not allowed with signature version 2", ErrInvalidRequest, h)
		}
		res.PayloadHash = h
	}
	if v.Lookup == nil {
		return nil, errors.New("verify signature: no credential lookup configured")
	}
	cred, err := v.Lookup(ctx, p.accessKey)
	if err != nil {
		return nil, fmt.Errorf("look up access key: %w", err)
	}
	sts := stringToSignV2(r, t, q, p.expiresRaw)
	if p.signature == nil || !hmac.Equal(hmacSHA1(cred.Secret, sts), p.signature) {
		return nil, &SignatureError{StringToSign: sts}
	}
	res.Credential = cred
	res.SessionToken = r.Header.Get(headerSecurityToken)
	if tok := q.get("x-amz-security-token"); len(tok) > 0 {
		res.SessionToken = tok[0]
	}
	if err := v.attachBody(res, r, mode, nil); err != nil {
		return nil, err
	}
	return res, nil
}

func hmacSHA1(secret, data string) []byte {
	m := hmac.New(sha1.New, []byte(secret))
	m.Write([]byte(data))
	return m.Sum(nil)
}

// stringToSignV2 builds the V2 string to sign of a presigned request.
// Signers move Content-MD5, Content-Type and x-amz-* headers into the
// query of a presigned URL, where they are signed as if they were headers;
// a header sent with the request takes precedence.
func stringToSignV2(r *http.Request, t target, q queryParams, expires string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	for _, name := range []string{"Content-Md5", "Content-Type"} {
		val := r.Header.Get(name)
		if val == "" {
			if got := q.get(strings.ToLower(name)); len(got) > 0 {
				val = got[0]
			}
		}
		b.WriteString(strings.TrimSpace(val))
		b.WriteByte('\n')
	}
	b.WriteString(expires)
	b.WriteByte('\n')
	b.WriteString(canonicalAmzHeadersV2(r, q))
	b.WriteString(canonicalResourceV2(t))
	return b.String()
}

// canonicalAmzHeadersV2 lists every x-amz-* header, and every x-amz-*
// query parameter, as "name:v1,v2\n" sorted by lower-case name. Nothing
// x-amz-* can reach the request unsigned.
func canonicalAmzHeadersV2(r *http.Request, q queryParams) string {
	vals := map[string][]string{}
	for name, vs := range r.Header {
		lower := strings.ToLower(name)
		if !strings.HasPrefix(lower, "x-amz-") {
			continue
		}
		for _, v := range vs {
			vals[lower] = append(vals[lower], strings.TrimSpace(v))
		}
	}
	for _, p := range q {
		lower := strings.ToLower(p.key)
		if strings.HasPrefix(lower, "x-amz-") {
			vals[lower] = append(vals[lower], strings.TrimSpace(p.value))
		}
	}
	names := make([]string, 0, len(vals))
	for n := range vals {
		names = append(names, n)
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strings.Join(vals[n], ","))
		b.WriteByte('\n')
	}
	return b.String()
}

// canonicalResourceV2 is the path as sent (path-style: "/bucket/key"), then
// the signed sub-resources in name order with their decoded values; a name
// sent without '=' is signed without one.
func canonicalResourceV2(t target) string {
	path := t.rawPath
	if path == "" {
		path = "/"
	}
	type subResource struct {
		name, value string
		bare        bool
	}
	var subs []subResource
	for part := range strings.SplitSeq(t.rawQuery, "&") {
		k, val, hasValue := strings.Cut(part, "=")
		if !slices.Contains(v2SubResources, k) {
			continue
		}
		if dec, err := url.PathUnescape(val); err == nil {
			val = dec
		}
		subs = append(subs, subResource{k, val, !hasValue})
	}
	// Stable, by name only: repeated names keep the order they were sent in.
	sort.SliceStable(subs, func(i, j int) bool { return subs[i].name < subs[j].name })
	var b strings.Builder
	b.WriteString(path)
	for i, s := range subs {
		if i == 0 {
			b.WriteByte('?')
		} else {
			b.WriteByte('&')
		}
		b.WriteString(s.name)
		if !s.bare {
			b.WriteByte('=')
			b.WriteString(s.value)
		}
	}
	return b.String()
}
