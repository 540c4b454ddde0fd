package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/textproto"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// SignatureError reports a signature mismatch together with what Bulwark
// signed, which S3 returns to help clients find the difference. Neither
// string holds a secret.
type SignatureError struct {
	CanonicalRequest string
	StringToSign     string
}

func (e *SignatureError) Error() string { return ErrSignatureDoesNotMatch.Error() }

// Unwrap makes errors.Is(err, ErrSignatureDoesNotMatch) hold.
func (e *SignatureError) Unwrap() error { return ErrSignatureDoesNotMatch }

// target is the request-target as the client sent it.
type target struct {
	rawPath  string
	rawQuery string
}

// requestTarget prefers r.RequestURI, the bytes the client actually sent
// and signed; r.URL may have been rewritten by routing (virtual-host
// buckets) and its re-escaping follows Go's rules, not AWS's.
func requestTarget(r *http.Request) target {
	uri := r.RequestURI
	if uri == "" || uri == "*" {
		return target{rawPath: r.URL.EscapedPath(), rawQuery: r.URL.RawQuery}
	}
	if !strings.HasPrefix(uri, "/") {
		// absolute-form, as sent to proxies: drop scheme and authority.
		if _, rest, ok := strings.Cut(uri, "://"); ok {
			if i := strings.IndexAny(rest, "/?"); i >= 0 {
				uri = rest[i:]
			} else {
				uri = "/"
			}
		}
	}
	path, query, _ := strings.Cut(uri, "?")
	return target{rawPath: path, rawQuery: query}
}

// canonicalURIs returns the URI paths the client may have signed. S3
// signers do not double-encode, so the path is the one sent; clients encode
// it with AWS's rules, but one that leaves, say, '!' bare or writes
// lower-case hex still signs the AWS form. Both name the same key, so
// accepting either cannot change what is authorized.
func canonicalURIs(rawPath string) []string {
	if rawPath == "" {
		rawPath = "/"
	}
	norm, ok := normalizePath(rawPath)
	if !ok || norm == rawPath {
		return []string{rawPath}
	}
	return []string{norm, rawPath}
}

// canonicalURIsFor is canonicalURIs for a scope's service. Every service
// but S3 signs the path encoded once more: its signers escape the path as
// sent (an ARN sent as arn%3Aaws is signed as arn%253Aaws).
func canonicalURIsFor(service, rawPath string) []string {
	uris := canonicalURIs(rawPath)
	if service == DefaultService {
		return uris
	}
	for i, u := range uris {
		segs := strings.Split(u, "/")
		for j, s := range segs {
			segs[j] = awsEscape(s)
		}
		uris[i] = strings.Join(segs, "/")
	}
	return uris
}

// normalizePath re-encodes each segment with AWS's rules. Working per
// segment keeps an encoded "%2F" inside a key distinct from a separator.
func normalizePath(rawPath string) (string, bool) {
	segs := strings.Split(rawPath, "/")
	for i, s := range segs {
		dec, err := url.PathUnescape(s)
		if err != nil {
			return "", false
		}
		segs[i] = awsEscape(dec)
	}
	return strings.Join(segs, "/"), true
}

// awsEscape percent-encodes every byte but A-Z a-z 0-9 - _ . ~, with
// upper-case hex, as SigV4 prescribes.
func awsEscape(s string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '_' || c == '.' || c == '~'
}

// canonicalQuery sorts after encoding, as SigV4 requires: "a/b" and "a-b"
// order differently before and after.
func canonicalQuery(q queryParams, presigned bool) string {
	enc := make([]queryParam, 0, len(q))
	for _, p := range q {
		if presigned && p.key == paramSignature {
			continue
		}
		enc = append(enc, queryParam{awsEscape(p.key), awsEscape(p.value)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].key != enc[j].key {
			return enc[i].key < enc[j].key
		}
		return enc[i].value < enc[j].value
	})
	var b strings.Builder
	for i, p := range enc {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.key)
		b.WriteByte('=')
		b.WriteString(p.value)
	}
	return b.String()
}

func canonicalHeaders(r *http.Request, names []string) string {
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range headerValues(r, name) {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.TrimSpace(collapseSpaces(v)))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// headerValues finds a signed header's values, including those net/http
// moves out of r.Header (Host, and on some paths Content-Length and
// Transfer-Encoding).
func headerValues(r *http.Request, name string) []string {
	if name == "host" {
		if r.Host != "" {
			return []string{r.Host}
		}
		return []string{r.URL.Host}
	}
	if vals, ok := r.Header[textproto.CanonicalMIMEHeaderKey(name)]; ok {
		return vals
	}
	for k, vals := range r.Header {
		if strings.EqualFold(k, name) {
			return vals
		}
	}
	switch name {
	case "content-length":
		if r.ContentLength >= 0 {
			return []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	case "transfer-encoding":
		return r.TransferEncoding
	}
	return nil
}

// collapseSpaces turns runs of spaces into one, as the SigV4 canonical
// header form requires.
func collapseSpaces(s string) string {
	if !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prevSpace := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && prevSpace {
			continue
		}
		prevSpace = c == ' '
		b.WriteByte(c)
	}
	return b.String()
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func sha256Hex(data string) string {
	sum := sha256.Sum256([]byte(data))
	return hex.EncodeToString(sum[:])
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, scopeTerminal)
}

// verifySignature checks the request signature and returns it in hex: it
// seeds the chain of aws-chunked chunk signatures.
func verifySignature(r *http.Request, t target, q queryParams, sr *signedRequest, key []byte) (string, error) {
	rest := "\n" + canonicalQuery(q, sr.presigned) + "\n" +
		canonicalHeaders(r, sr.signedHeaders) + "\n" +
		strings.Join(sr.signedHeaders, ";") + "\n" +
		sr.payloadHash
	var first *SignatureError
	for _, uri := range canonicalURIsFor(sr.service, t.rawPath) {
		creq := r.Method + "\n" + uri + rest
		sts := algorithmHMAC + "\n" + sr.amzDate + "\n" + sr.scope() + "\n" + sha256Hex(creq)
		sig := hmacSHA256(key, sts)
		if hmac.Equal(sig, sr.signature) {
			return hex.EncodeToString(sig), nil
		}
		if first == nil {
			first = &SignatureError{CanonicalRequest: creq, StringToSign: sts}
		}
	}
	return "", first
}
