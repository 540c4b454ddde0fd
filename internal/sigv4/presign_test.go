package sigv4

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// sdkPresign presigns req with the SDK signer and returns the URL.
func sdkPresign(t testing.TB, req *http.Request, expires time.Duration, token string, at time.Time) (string, http.Header) {
	t.Helper()
	q := req.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	req.URL.RawQuery = q.Encode()
	u, hdr, err := s3Signer.PresignHTTP(context.Background(), sdkCreds(token), req, UnsignedPayload, "s3", "us-east-1", at)
	if err != nil {
		t.Fatal(err)
	}
	return u, hdr
}

func TestSDKPresigned(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime.Add(time.Minute)), false)
	for _, key := range []string{"plain", "a b+c/ü%2F~*'()!", "dir//x/"} {
		t.Run(key, func(t *testing.T) {
			u := objectURL(ts.URL, "bucket", key)
			u.RawQuery = "response-content-type=text%2Fplain&versionId=v+1"
			req := newRequest(t, "GET", u, nil)
			signed, hdr := sdkPresign(t, req, time.Hour, "tok/en+=", signTime)
			get, _ := http.NewRequest("GET", signed, nil)
			for k, v := range hdr {
				if k != "Host" {
					get.Header[k] = v
				}
			}
			s := ts.do(t, get)
			if s.err != nil {
				t.Fatalf("Verify(%s): %v", s.uri, s.err)
			}
			r := s.res
			if !r.Presigned || r.Credential != testCred || r.SessionToken != "tok/en+=" || r.PayloadHash != UnsignedPayload {
				t.Errorf("result = %+v", r)
			}
			if !r.Expires.Equal(signTime.Add(time.Hour)) || !r.SigningTime.Equal(signTime) {
				t.Errorf("SigningTime %v Expires %v", r.SigningTime, r.Expires)
			}
		})
	}
}

// With header hoisting, the SDK moves x-amz-* headers it may into the
// query and signs the others as headers, which must then be sent.
func TestSDKPresignedWithHeaders(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	req := newRequest(t, "PUT", objectURL(ts.URL, "bucket", "up"), nil)
	req.Header.Set("X-Amz-Meta-Color", "blue")
	req.Header.Set("X-Amz-Acl", "private")
	req.Header.Set("Content-Type", "text/plain")
	signed, hdr := sdkPresign(t, req, 10*time.Minute, "", signTime)
	put, _ := http.NewRequest("PUT", signed, strings.NewReader("payload"))
	for k, v := range hdr {
		if k != "Host" {
			put.Header[k] = v
		}
	}
	s := ts.do(t, put)
	if s.err != nil {
		t.Fatal(s.err)
	}
	if string(s.body) != "payload" {
		t.Errorf("body = %q", s.body)
	}

	// Leaving out a signed header breaks the signature.
	put, _ = http.NewRequest("PUT", signed, strings.NewReader("payload"))
	for k, v := range hdr {
		if k != "Host" && k != "X-Amz-Meta-Color" {
			put.Header[k] = v
		}
	}
	if s := ts.do(t, put); !errors.Is(s.err, ErrSignatureDoesNotMatch) {
		t.Errorf("missing signed header: %v", s.err)
	}
}

// presignedAt returns a server-side request for a URL presigned at signTime
// with the given lifetime.
func presignedAt(t *testing.T, expires time.Duration) *http.Request {
	t.Helper()
	req := httptest.NewRequest("GET", "http://example.com/b/k", nil)
	signed, _ := sdkPresign(t, req, expires, "", signTime)
	return httptest.NewRequest("GET", signed, nil)
}

func TestPresignedExpiry(t *testing.T) {
	tests := []struct {
		name    string
		expires time.Duration
		now     time.Duration // relative to signTime
		want    error
	}{
		{"at signing", time.Hour, 0, nil},
		{"last second", time.Hour, time.Hour, nil},
		{"expired", time.Hour, time.Hour + time.Second, ErrRequestExpired},
		{"week", 7 * 24 * time.Hour, 7 * 24 * time.Hour, nil},
		{"week expired", 7 * 24 * time.Hour, 7*24*time.Hour + time.Second, ErrRequestExpired},
		{"one second", time.Second, time.Second, nil},
		{"dated within skew", time.Hour, -15 * time.Minute, nil},
		{"dated beyond skew", time.Hour, -15*time.Minute - time.Second, ErrAccessDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newVerifier(signTime.Add(tt.now)).Verify(context.Background(), presignedAt(t, tt.expires))
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPresignedQueryErrors(t *testing.T) {
	good := presignedAt(t, time.Hour).URL.Query()
	tests := []struct {
		name   string
		modify func(q url.Values)
		want   error
	}{
		{"unchanged", func(url.Values) {}, nil},
		{"expires zero", func(q url.Values) { q.Set("X-Amz-Expires", "0") }, ErrAuthorizationQueryParametersError},
		{"expires negative", func(q url.Values) { q.Set("X-Amz-Expires", "-5") }, ErrAuthorizationQueryParametersError},
		{"expires over a week", func(q url.Values) { q.Set("X-Amz-Expires", "604801") }, ErrAuthorizationQueryParametersError},
		{"expires not a number", func(q url.Values) { q.Set("X-Amz-Expires", "1h") }, ErrAuthorizationQueryParametersError},
		{"expires changed", func(q url.Values) { q.Set("X-Amz-Expires", "3601") }, ErrSignatureDoesNotMatch},
		{"missing expires", func(q url.Values) { q.Del("X-Amz-Expires") }, ErrAuthorizationQueryParametersError},
		{"missing signature", func(q url.Values) { q.Del("X-Amz-Signature") }, ErrAuthorizationQueryParametersError},
		{"missing credential", func(q url.Values) { q.Del("X-Amz-Credential") }, ErrAuthorizationQueryParametersError},
		{"missing signed headers", func(q url.Values) { q.Del("X-Amz-SignedHeaders") }, ErrAuthorizationQueryParametersError},
		{"duplicate signature", func(q url.Values) { q.Add("X-Amz-Signature", q.Get("X-Amz-Signature")) }, ErrAuthorizationQueryParametersError},
		{"bad date", func(q url.Values) { q.Set("X-Amz-Date", "20240301") }, ErrAuthorizationQueryParametersError},
		{"bad algorithm", func(q url.Values) { q.Set("X-Amz-Algorithm", "HMAC") }, ErrAuthorizationQueryParametersError},
		{"sigv4a", func(q url.Values) { q.Set("X-Amz-Algorithm", "AWS4-ECDSA-P256-SHA256") }, ErrNotImplemented},
		{"bad credential", func(q url.Values) { q.Set("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20240301/us-east-1") }, ErrAuthorizationQueryParametersError},
		{"credential date", func(q url.Values) {
			q.Set("X-Amz-Credential", "AKIAIOSFODNN7EXAMPLE/20240302/us-east-1/s3/aws4_request")
		}, ErrAuthorizationQueryParametersError},
		{"unknown key", func(q url.Values) {
			q.Set("X-Amz-Credential", "AKIAOTHER/20240301/us-east-1/s3/aws4_request")
		}, ErrInvalidAccessKeyID},
		{"signed headers without host", func(q url.Values) { q.Set("X-Amz-SignedHeaders", "x-amz-date") }, ErrAuthorizationQueryParametersError},
		{"extra parameter", func(q url.Values) { q.Set("x-id", "GetObject") }, ErrSignatureDoesNotMatch},
		{"token added", func(q url.Values) { q.Set("X-Amz-Security-Token", "t") }, ErrSignatureDoesNotMatch},
		{"signature altered", func(q url.Values) {
			s := q.Get("X-Amz-Signature")
			q.Set("X-Amz-Signature", strings.Repeat("0", 64-len(s[:8]))+s[:8])
		}, ErrSignatureDoesNotMatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{}
			for k, v := range good {
				q[k] = append([]string(nil), v...)
			}
			tt.modify(q)
			req := httptest.NewRequest("GET", "http://example.com/b/k?"+q.Encode(), nil)
			_, err := newVerifier(signTime).Verify(context.Background(), req)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestPresignedRegion(t *testing.T) {
	v := newVerifier(signTime)
	v.Regions = []string{"eu-central-1"}
	_, err := v.Verify(context.Background(), presignedAt(t, time.Hour))
	if !errors.Is(err, ErrAuthorizationQueryParametersError) || !strings.Contains(err.Error(), "the region 'us-east-1' is wrong; expecting 'eu-central-1'") {
		t.Fatalf("err = %v", err)
	}
}

// A presigned URL may pin the payload with x-amz-content-sha256; the body
// is then verified against it.
func TestPresignedPinnedPayload(t *testing.T) {
	body := []byte("pinned")
	req := httptest.NewRequest("PUT", "http://example.com/b/k", nil)
	req.Header.Set("X-Amz-Content-Sha256", hexSHA256(body))
	q := req.URL.Query()
	q.Set("X-Amz-Expires", "60")
	req.URL.RawQuery = q.Encode()
	signed, hdr, err := s3Signer.PresignHTTP(context.Background(), sdkCreds(""), req, hexSHA256(body), "s3", "us-east-1", signTime)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"pinned", "pinneD"} {
		put := httptest.NewRequest("PUT", signed, strings.NewReader(b))
		put.Header.Set("X-Amz-Content-Sha256", hdr.Get("X-Amz-Content-Sha256"))
		res, err := newVerifier(signTime).Verify(context.Background(), put)
		if err != nil {
			t.Fatal(err)
		}
		_, err = readAllBody(res)
		if want := b != "pinned"; errors.Is(err, ErrContentSHA256Mismatch) != want {
			t.Errorf("body %q: err = %v", b, err)
		}
	}
}
