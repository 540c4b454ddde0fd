package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/encoding/httpbinding"
)

var testCred = Credential{
	AccessKey: "AKIAIOSFODNN7EXAMPLE",
	Secret:    "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	Principal: "user:example",
}

func testLookup(_ context.Context, accessKey string) (Credential, error) {
	if accessKey == testCred.AccessKey {
		return testCred, nil
	}
	return Credential{}, fmt.Errorf("look up %q: %w", accessKey, ErrInvalidAccessKeyID)
}

var signTime = time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)

func newVerifier(now time.Time) *Verifier {
	return &Verifier{Lookup: testLookup, Now: func() time.Time { return now }}
}

func sdkCreds(token string) aws.Credentials {
	return aws.Credentials{AccessKeyID: testCred.AccessKey, SecretAccessKey: testCred.Secret, SessionToken: token}
}

// s3Signer signs as the SDK's S3 client does: the path is already escaped,
// so the signer must not escape it again.
var s3Signer = v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })

// sdkSign signs req with the SDK signer, setting x-amz-content-sha256 first
// as the S3 client does.
func sdkSign(t testing.TB, req *http.Request, payloadHash string, at time.Time) {
	t.Helper()
	req.Header.Set("X-Amz-Content-Sha256", payloadHash)
	if err := s3Signer.SignHTTP(context.Background(), sdkCreds(""), req, payloadHash, "s3", "us-east-1", at); err != nil {
		t.Fatal(err)
	}
}

// objectURL builds a path-style URL for key, escaped as the SDK's S3
// client escapes it.
func objectURL(base, bucket, key string) *url.URL {
	u, err := url.Parse(base)
	if err != nil {
		panic(err)
	}
	u.Path = "/" + bucket + "/" + key
	u.RawPath = "/" + bucket + "/" + httpbinding.EscapePath(key, false)
	return u
}

func newRequest(t testing.TB, method string, u *url.URL, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, u.String(), rd)
	if err != nil {
		t.Fatal(err)
	}
	req.URL = u
	return req
}

func hexSHA256(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// served is what the test server saw for one request.
type served struct {
	res     *Result
	err     error
	body    []byte
	bodyErr error
	trailer http.Header
	uri     string
}

// testServer runs Verify inside a real net/http server, so requests reach
// it exactly as a client's would.
type testServer struct {
	*httptest.Server
	seen  chan served
	reply func(w http.ResponseWriter, r *http.Request)
}

func newTestServer(t testing.TB, v *Verifier, tls bool) *testServer {
	ts := &testServer{seen: make(chan served, 16)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := served{uri: r.RequestURI}
		s.res, s.err = v.Verify(r.Context(), r)
		if s.err == nil {
			s.body, s.bodyErr = io.ReadAll(s.res.Body)
			s.trailer = s.res.Trailer()
			s.res.Body.Close()
		}
		ts.seen <- s
		if s.err != nil || s.bodyErr != nil {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		if ts.reply != nil {
			ts.reply(w, r)
		}
	})
	if tls {
		ts.Server = httptest.NewTLSServer(h)
	} else {
		ts.Server = httptest.NewServer(h)
	}
	t.Cleanup(ts.Close)
	return ts
}

func (ts *testServer) do(t testing.TB, req *http.Request) served {
	t.Helper()
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	select {
	case s := <-ts.seen:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("server saw no request")
	}
	return served{}
}

func TestSDKSignedRequests(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	body := []byte("hello, bulwark")
	tests := []struct {
		name   string
		method string
		key    string
		query  string
		body   []byte
		hash   string
		header map[string]string
	}{
		{name: "get empty hash", method: "GET", key: "plain.txt", hash: EmptySHA256},
		{name: "get unsigned", method: "GET", key: "plain.txt", hash: UnsignedPayload},
		{name: "put hex hash", method: "PUT", key: "dir/obj", body: body, hash: hexSHA256(body)},
		{name: "put unsigned", method: "PUT", key: "dir/obj", body: body, hash: UnsignedPayload},
		{name: "special key", method: "PUT", key: "a b+c/ü%2F~*'()!", body: body, hash: hexSHA256(body)},
		{name: "unicode key", method: "GET", key: "日本語/ファイル name.txt", hash: EmptySHA256},
		{name: "reserved chars", method: "GET", key: "semi;colon=eq&amp$dollar,comma:colon@at[b]#hash?q", hash: EmptySHA256},
		{name: "double slash", method: "GET", key: "dir//double/", hash: EmptySHA256},
		{name: "percent literal", method: "GET", key: "100%/%41%2f", hash: EmptySHA256},
		{name: "query", method: "GET", key: "", query: "list-type=2&prefix=a%20b%2Bc%2F%C3%BC&delimiter=%2F&start-after=x~y", hash: EmptySHA256},
		{name: "query plus as space", method: "GET", key: "", query: "prefix=a+b&marker=", hash: EmptySHA256},
		{name: "query without values", method: "GET", key: "obj", query: "acl&tagging", hash: EmptySHA256},
		{name: "query repeated key", method: "GET", key: "obj", query: "x=b&x=a&x=a%2Fb&x=a-b", hash: EmptySHA256},
		{name: "headers", method: "PUT", key: "meta", body: body, hash: hexSHA256(body), header: map[string]string{
			"X-Amz-Meta-Spaces": "  lots   of    spaces  ",
			"Content-Type":      "text/plain; charset=utf-8",
			"X-Amz-Acl":         "private",
			"Cache-Control":     "no-cache",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := objectURL(ts.URL, "bucket", tt.key)
			u.RawQuery = tt.query
			req := newRequest(t, tt.method, u, tt.body)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			sdkSign(t, req, tt.hash, signTime)
			s := ts.do(t, req)
			if s.err != nil {
				var se *SignatureError
				if errors.As(s.err, &se) {
					t.Logf("canonical request:\n%s", se.CanonicalRequest)
				}
				t.Fatalf("Verify(%s): %v", s.uri, s.err)
			}
			if s.bodyErr != nil {
				t.Fatalf("body: %v", s.bodyErr)
			}
			if !bytes.Equal(s.body, tt.body) {
				t.Errorf("body = %q, want %q", s.body, tt.body)
			}
			r := s.res
			if r.Anonymous || r.Presigned || r.Credential != testCred || r.Region != "us-east-1" || r.Service != "s3" {
				t.Errorf("result = %+v", r)
			}
			if r.PayloadHash != tt.hash || !r.SigningTime.Equal(signTime) {
				t.Errorf("PayloadHash %q SigningTime %v", r.PayloadHash, r.SigningTime)
			}
			if r.DecodedLength != int64(len(tt.body)) {
				t.Errorf("DecodedLength = %d", r.DecodedLength)
			}
		})
	}
}

// Keys whose wire form differs from the AWS canonical form still verify:
// the canonical form is tried, then the path as sent.
func TestNonCanonicalPathEncodings(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	tests := []struct{ wire, signed string }{
		{"/bucket/a!b", "/bucket/a%21b"},       // signed canonical, sent bare
		{"/bucket/a%7eb", "/bucket/a%7eb"},     // signed and sent as-is
		{"/bucket/a%7eb", "/bucket/a~b"},       // lower-case escape of an unreserved byte
		{"/bucket/x%2fy", "/bucket/x%2Fy"},     // lower-case hex for an encoded slash
		{"/bucket/(paren)", "/bucket/(paren)"}, // signed as sent
		{"/bucket/a%2Fb/c", "/bucket/a%2Fb/c"}, // encoded slash stays a key byte
		{"/bucket/%E2%82%AC", "/bucket/%E2%82%AC"},
	}
	for _, tt := range tests {
		// Opaque makes the client send the path byte for byte, in origin
		// form or, with a leading "//host", in absolute form; the signer
		// reads it from there too, so sign with the signed form first and
		// then swap in the wire form.
		for _, prefix := range []string{"", "//HOST"} {
			t.Run(prefix+tt.wire, func(t *testing.T) {
				u, _ := url.Parse(ts.URL)
				req := newRequest(t, "GET", u, nil)
				p := strings.Replace(prefix, "HOST", u.Host, 1)
				req.URL.Opaque = p + tt.signed
				sdkSign(t, req, EmptySHA256, signTime)
				req.URL.Opaque = p + tt.wire
				s := ts.do(t, req)
				if !strings.HasSuffix(s.uri, tt.wire) || (prefix == "") != (s.uri == tt.wire) {
					t.Fatalf("server saw %q", s.uri)
				}
				if s.err != nil {
					t.Fatalf("Verify: %v", s.err)
				}
			})
		}
	}
}

func TestSDKSessionToken(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	req := newRequest(t, "GET", objectURL(ts.URL, "b", "k"), nil)
	req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
	if err := s3Signer.SignHTTP(context.Background(), sdkCreds("session-token/+="), req, EmptySHA256, "s3", "us-east-1", signTime); err != nil {
		t.Fatal(err)
	}
	s := ts.do(t, req)
	if s.err != nil {
		t.Fatal(s.err)
	}
	if s.res.SessionToken != "session-token/+=" {
		t.Errorf("SessionToken = %q", s.res.SessionToken)
	}
}

func TestTampering(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	body := []byte("original body")
	tests := []struct {
		name    string
		tamper  func(req *http.Request)
		wantErr error // from Verify
		bodyErr error // from reading Result.Body
	}{
		{name: "none"},
		{name: "signed header", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Meta-Owner", "mallory") }, wantErr: ErrSignatureDoesNotMatch},
		{name: "unsigned amz header", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Acl", "public-read") }, wantErr: ErrAccessDenied},
		{name: "path", tamper: func(r *http.Request) { r.URL.Path += "x"; r.URL.RawPath += "x" }, wantErr: ErrSignatureDoesNotMatch},
		{name: "query added", tamper: func(r *http.Request) { r.URL.RawQuery = "versionId=1" }, wantErr: ErrSignatureDoesNotMatch},
		{name: "query changed", tamper: func(r *http.Request) { r.URL.RawQuery = "tagging=1" }, wantErr: ErrSignatureDoesNotMatch},
		{name: "method", tamper: func(r *http.Request) { r.Method = "POST" }, wantErr: ErrSignatureDoesNotMatch},
		{name: "payload hash swapped", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Content-Sha256", UnsignedPayload) }, wantErr: ErrSignatureDoesNotMatch},
		{name: "date", tamper: func(r *http.Request) { r.Header.Set("X-Amz-Date", "20240301T120001Z") }, wantErr: ErrSignatureDoesNotMatch},
		{name: "host", tamper: func(r *http.Request) { r.Host = "other.example" }, wantErr: ErrSignatureDoesNotMatch},
		{name: "body byte", tamper: func(r *http.Request) {
			b := bytes.Clone(body)
			b[3] ^= 1
			r.Body = io.NopCloser(bytes.NewReader(b))
		}, bodyErr: ErrContentSHA256Mismatch},
		{name: "signature", tamper: func(r *http.Request) {
			a := r.Header.Get("Authorization")
			r.Header.Set("Authorization", a[:len(a)-1]+string("0123456789abcdef"[(strings.IndexByte("0123456789abcdef", a[len(a)-1])+1)%16]))
		}, wantErr: ErrSignatureDoesNotMatch},
		{name: "unknown key", tamper: func(r *http.Request) {
			r.Header.Set("Authorization", strings.Replace(r.Header.Get("Authorization"), testCred.AccessKey, "AKIAUNKNOWN", 1))
		}, wantErr: ErrInvalidAccessKeyID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := objectURL(ts.URL, "bucket", "key")
			u.RawQuery = "tagging"
			req := newRequest(t, "PUT", u, body)
			req.Header.Set("X-Amz-Meta-Owner", "alice")
			sdkSign(t, req, hexSHA256(body), signTime)
			if tt.tamper != nil {
				tt.tamper(req)
			}
			s := ts.do(t, req)
			if tt.wantErr == nil && s.err != nil {
				t.Fatalf("Verify: %v", s.err)
			}
			if !errors.Is(s.err, tt.wantErr) {
				t.Fatalf("Verify err = %v, want %v", s.err, tt.wantErr)
			}
			if s.err == nil && !errors.Is(s.bodyErr, tt.bodyErr) || tt.bodyErr == nil && s.bodyErr != nil {
				t.Fatalf("body err = %v, want %v", s.bodyErr, tt.bodyErr)
			}
		})
	}
}

func TestWrongSecret(t *testing.T) {
	req := httptest.NewRequest("GET", "http://example.com/b/k", nil)
	req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
	creds := sdkCreds("")
	creds.SecretAccessKey = "not-the-secret"
	// A fresh signer: the SDK caches derived keys without regard to the
	// secret.
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, EmptySHA256, "s3", "us-east-1", signTime); err != nil {
		t.Fatal(err)
	}
	_, err := newVerifier(signTime).Verify(context.Background(), req)
	var se *SignatureError
	if !errors.Is(err, ErrSignatureDoesNotMatch) || !errors.As(err, &se) {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(se.CanonicalRequest, "GET\n/b/k\n\nhost:example.com\n") || !strings.HasPrefix(se.StringToSign, "AWS4-HMAC-SHA256\n20240301T120000Z\n20240301/us-east-1/s3/aws4_request\n") {
		t.Errorf("SignatureError = %+v", se)
	}
}

// signedAt builds a server-side request signed by the SDK at the given
// time, for region and service.
func signedAt(t *testing.T, at time.Time, region, service string) *http.Request {
	t.Helper()
	req := httptest.NewRequest("GET", "http://example.com/b/k", nil)
	req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
	if err := s3Signer.SignHTTP(context.Background(), sdkCreds(""), req, EmptySHA256, service, region, at); err != nil {
		t.Fatal(err)
	}
	return req
}

func TestClockSkew(t *testing.T) {
	tests := []struct {
		offset time.Duration
		ok     bool
	}{
		{0, true},
		{15 * time.Minute, true},
		{15*time.Minute + time.Second, false},
		{-15 * time.Minute, true},
		{-15*time.Minute - time.Second, false},
		{24 * time.Hour, false},
	}
	for _, tt := range tests {
		t.Run(tt.offset.String(), func(t *testing.T) {
			_, err := newVerifier(signTime.Add(tt.offset)).Verify(context.Background(), signedAt(t, signTime, "us-east-1", "s3"))
			if tt.ok && err != nil {
				t.Fatal(err)
			}
			if !tt.ok && !errors.Is(err, ErrRequestTimeTooSkewed) {
				t.Fatalf("err = %v, want ErrRequestTimeTooSkewed", err)
			}
		})
	}
	v := newVerifier(signTime.Add(time.Hour))
	v.MaxSkew = 2 * time.Hour
	if _, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "s3")); err != nil {
		t.Errorf("custom MaxSkew: %v", err)
	}
}

func TestScopeChecks(t *testing.T) {
	v := newVerifier(signTime)
	v.Regions = []string{"eu-west-1", "us-east-1"}
	if _, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "s3")); err != nil {
		t.Fatalf("listed region: %v", err)
	}
	_, err := v.Verify(context.Background(), signedAt(t, signTime, "ap-south-1", "s3"))
	if !errors.Is(err, ErrAuthorizationHeaderMalformed) || !strings.Contains(err.Error(), "the region 'ap-south-1' is wrong; expecting 'eu-west-1'") {
		t.Fatalf("wrong region: %v", err)
	}
	if _, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "iam")); !errors.Is(err, ErrAuthorizationHeaderMalformed) {
		t.Fatalf("wrong service: %v", err)
	}
	v.Services = []string{"s3", "s3-object-lambda"}
	if _, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "s3-object-lambda")); err != nil {
		t.Fatalf("listed service: %v", err)
	}
	v = newVerifier(signTime)
	v.Service = "bulwark"
	if _, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "bulwark")); err != nil {
		t.Fatalf("custom service: %v", err)
	}
	if _, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "s3")); !errors.Is(err, ErrAuthorizationHeaderMalformed) {
		t.Fatalf("default service with custom Service: %v", err)
	}
}

func TestLookupFailure(t *testing.T) {
	boom := errors.New("database unavailable")
	v := &Verifier{Lookup: func(context.Context, string) (Credential, error) { return Credential{}, boom }, Now: func() time.Time { return signTime }}
	_, err := v.Verify(context.Background(), signedAt(t, signTime, "us-east-1", "s3"))
	if !errors.Is(err, boom) || errors.Is(err, ErrInvalidAccessKeyID) {
		t.Fatalf("err = %v", err)
	}
}

func TestAnonymous(t *testing.T) {
	req := httptest.NewRequest("PUT", "http://example.com/b/k?acl", strings.NewReader("data"))
	res, err := newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Anonymous || res.Credential != (Credential{}) || res.DecodedLength != 4 || res.Trailer() != nil {
		t.Errorf("result = %+v", res)
	}
	if b, err := io.ReadAll(res.Body); err != nil || string(b) != "data" {
		t.Errorf("body = %q, %v", b, err)
	}
	// An anonymous body with a hex hash is still checked.
	req = httptest.NewRequest("PUT", "http://example.com/b/k", strings.NewReader("data"))
	req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
	res, err = newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(res.Body); !errors.Is(err, ErrContentSHA256Mismatch) {
		t.Errorf("body err = %v", err)
	}
	req.Header.Set("X-Amz-Content-Sha256", StreamingPayload)
	if _, err := newVerifier(signTime).Verify(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("anonymous signed streaming: %v", err)
	}
	req.Header.Set("X-Amz-Content-Sha256", "bogus")
	if _, err := newVerifier(signTime).Verify(context.Background(), req); !errors.Is(err, ErrInvalidContentSHA256) {
		t.Errorf("anonymous bad hash: %v", err)
	}
}

func TestMalformedAuthorization(t *testing.T) {
	const cred = "Credential=AKIAIOSFODNN7EXAMPLE/20240301/us-east-1/s3/aws4_request"
	const sh = "SignedHeaders=host;x-amz-content-sha256;x-amz-date"
	sig := "Signature=" + strings.Repeat("ab", 32)
	tests := []struct {
		auth string
		want error
	}{
		{"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig, ErrSignatureDoesNotMatch},
		{"AWS4-HMAC-SHA256 " + cred + "," + sh + "," + sig, ErrSignatureDoesNotMatch},
		{"AWS4-HMAC-SHA256 " + cred + ",  " + sh + " ,  " + sig, ErrSignatureDoesNotMatch},
		{"AWS4-HMAC-SHA256 " + cred + ", " + sh, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ", " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", " + sig + ", Extra=1", ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + " " + sh + " " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256", ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240301/us-east-1/s3, " + sh + ", " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 Credential=/20240301/us-east-1/s3/aws4_request, " + sh + ", " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 Credential=AK/2024031/us-east-1/s3/aws4_request, " + sh + ", " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 Credential=AK/20240301/us-east-1/s3/aws5_request, " + sh + ", " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 Credential=AK/20240302/us-east-1/s3/aws4_request, " + sh + ", " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=x-amz-date, " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=Host;x-amz-date, " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;;x-amz-date, " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", SignedHeaders=host;host, " + sig, ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=abc", ErrAuthorizationHeaderMalformed},
		{"AWS4-HMAC-SHA256 " + cred + ", " + sh + ", Signature=" + strings.Repeat("zz", 32), ErrAuthorizationHeaderMalformed},
		{"AWS4-ECDSA-P256-SHA256 " + cred + ", " + sh + ", " + sig, ErrNotImplemented},
		{"AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=", ErrNotImplemented},
		{"Bearer token", ErrInvalidArgument},
		{"", ErrInvalidArgument},
	}
	for _, tt := range tests {
		req := httptest.NewRequest("GET", "http://example.com/b/k", nil)
		req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
		req.Header.Set("X-Amz-Date", "20240301T120000Z")
		req.Header.Set("Authorization", tt.auth)
		if _, err := newVerifier(signTime).Verify(context.Background(), req); !errors.Is(err, tt.want) {
			t.Errorf("%q: err = %v, want %v", tt.auth, err, tt.want)
		}
	}
}

func TestHeaderRequirements(t *testing.T) {
	v := newVerifier(signTime)
	base := func() *http.Request { return signedAt(t, signTime, "us-east-1", "s3") }

	req := base()
	req.Header.Del("X-Amz-Content-Sha256")
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("missing content sha256: %v", err)
	}
	req = base()
	req.Header.Set("X-Amz-Content-Sha256", "not-a-hash")
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrInvalidContentSHA256) {
		t.Errorf("bad content sha256: %v", err)
	}
	req = base()
	req.Header.Set("X-Amz-Content-Sha256", StreamingECDSAPayload)
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrNotImplemented) {
		t.Errorf("sigv4a streaming: %v", err)
	}
	req = base()
	req.Header.Del("X-Amz-Date")
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("missing date: %v", err)
	}
	req = base()
	req.Header.Set("X-Amz-Date", "2024-03-01T12:00:00Z")
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrAccessDenied) {
		t.Errorf("bad date: %v", err)
	}
	req = base()
	req.Header.Add("Authorization", "AWS4-HMAC-SHA256 again")
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrAuthorizationHeaderMalformed) {
		t.Errorf("two Authorization headers: %v", err)
	}
	req = base()
	req.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256"
	req.RequestURI += "?" + req.URL.RawQuery
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("header and query auth: %v", err)
	}
	req = base()
	req.RequestURI += "?prefix=%zz"
	if _, err := v.Verify(context.Background(), req); !errors.Is(err, ErrInvalidArgument) {
		t.Errorf("bad query escape: %v", err)
	}
}

// A client may date its request with the Date header alone; the string to
// sign then carries the same instant in ISO 8601 basic form.
func TestDateHeaderFallback(t *testing.T) {
	req := httptest.NewRequest("GET", "http://example.com/b/k", nil)
	req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
	req.Header.Set("Date", signTime.Format(http.TimeFormat))
	sr := &signedRequest{date: "20240301", region: "us-east-1", service: "s3", signedHeaders: []string{"date", "host", "x-amz-content-sha256"}}
	creq := "GET\n/b/k\n\ndate:" + signTime.Format(http.TimeFormat) + "\nhost:example.com\nx-amz-content-sha256:" + EmptySHA256 + "\n\ndate;host;x-amz-content-sha256\n" + EmptySHA256
	sts := "AWS4-HMAC-SHA256\n20240301T120000Z\n" + sr.scope() + "\n" + sha256Hex(creq)
	sig := hex.EncodeToString(hmacSHA256(signingKey(testCred.Secret, "20240301", "us-east-1", "s3"), sts))
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testCred.AccessKey+"/"+sr.scope()+", SignedHeaders=date;host;x-amz-content-sha256, Signature="+sig)
	res, err := newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SigningTime.Equal(signTime) {
		t.Errorf("SigningTime = %v", res.SigningTime)
	}
}

// The worked GET example from the S3 SigV4 documentation.
func TestAWSDocumentedGetExample(t *testing.T) {
	req := httptest.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/test.txt", nil)
	req.Header.Set("Range", "bytes=0-9")
	req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
	req.Header.Set("X-Amz-Date", "20130524T000000Z")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
	if _, err := newVerifier(time.Date(2013, 5, 24, 0, 5, 0, 0, time.UTC)).Verify(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

// The worked presigned-URL example from the S3 SigV4 documentation.
func TestAWSDocumentedPresignExample(t *testing.T) {
	req := httptest.NewRequest("GET", "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404", nil)
	res, err := newVerifier(time.Date(2013, 5, 24, 12, 0, 0, 0, time.UTC)).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Presigned || !res.Expires.Equal(time.Date(2013, 5, 25, 0, 0, 0, 0, time.UTC)) || res.PayloadHash != UnsignedPayload {
		t.Errorf("result = %+v", res)
	}
}

func readAllBody(res *Result) ([]byte, error) {
	defer res.Body.Close()
	return io.ReadAll(res.Body)
}

// A request that never went through a server has no RequestURI; r.URL is
// used instead.
func TestRequestWithoutRequestURI(t *testing.T) {
	u := objectURL("http://example.com", "bucket", "a b+c/ü%2F~*'()!")
	u.RawQuery = "uploads"
	req := newRequest(t, "POST", u, nil)
	sdkSign(t, req, EmptySHA256, signTime)
	if req.RequestURI != "" {
		t.Fatal("client request has a RequestURI")
	}
	if _, err := newVerifier(signTime).Verify(context.Background(), req); err != nil {
		t.Fatal(err)
	}
}

func TestHashedBodyCutShort(t *testing.T) {
	body := []byte("complete body")
	req := httptest.NewRequest("PUT", "http://example.com/b/k", nil)
	sdkSign(t, req, hexSHA256(body), signTime)
	req.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body[:5]), iotest.ErrReader(io.ErrUnexpectedEOF)))
	res, err := newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAllBody(res); !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("err = %v", err)
	}
}
