package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// awsV2Example is the query-string example of S3's Signature Version 2
// documentation, path-style. The documentation's request is virtual-hosted
// (Host: johnsmith.s3.amazonaws.com); its string to sign names the bucket.
const (
	awsV2ExampleURL     = "http://s3.amazonaws.com/johnsmith/photos/puppy.jpg?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620"
	awsV2ExampleSTS     = "GET\n\n\n1175139620\n/johnsmith/photos/puppy.jpg"
	awsV2ExampleExpires = 1175139620
)

func TestPresignedV2AWSExample(t *testing.T) {
	req := httptest.NewRequest("GET", awsV2ExampleURL, nil)
	q, err := parseQuery(requestTarget(req).rawQuery)
	if err != nil {
		t.Fatal(err)
	}
	if sts := stringToSignV2(req, requestTarget(req), q, "1175139620"); sts != awsV2ExampleSTS {
		t.Fatalf("string to sign %q, want %q", sts, awsV2ExampleSTS)
	}
	res, err := newVerifier(time.Unix(awsV2ExampleExpires-60, 0)).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Presigned || res.Anonymous || res.Credential != testCred || res.PayloadHash != UnsignedPayload {
		t.Errorf("result = %+v", res)
	}
	if !res.Expires.Equal(time.Unix(awsV2ExampleExpires, 0)) || !res.SigningTime.IsZero() || res.Region != "" {
		t.Errorf("Expires %v SigningTime %v Region %q", res.Expires, res.SigningTime, res.Region)
	}
	if res.DecodedLength != req.ContentLength || res.Body == nil || res.Trailer() != nil {
		t.Errorf("DecodedLength %d, Body %v", res.DecodedLength, res.Body)
	}

	// Valid through the second it names, expired after it.
	if _, err := newVerifier(time.Unix(awsV2ExampleExpires, 0)).Verify(context.Background(), httptest.NewRequest("GET", awsV2ExampleURL, nil)); err != nil {
		t.Errorf("at expiry: %v", err)
	}
	_, err = newVerifier(time.Unix(awsV2ExampleExpires+1, 0)).Verify(context.Background(), httptest.NewRequest("GET", awsV2ExampleURL, nil))
	if !errors.Is(err, ErrRequestExpired) {
		t.Errorf("after expiry: err = %v", err)
	}
}

// botocoreV2 are presigned URLs made by botocore's HmacV1QueryAuth (the
// signer behind aws s3 presign) at signTime with a one-hour expiry, each
// checked against a string to sign computed by hand.
var botocoreV2 = []struct {
	name, method, url string
	header            map[string]string
	sts               string
}{
	{
		name: "plain", method: "GET",
		url: "http://example.com/bucket/k%20ey?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=%2BdXW7totgqtI5daKNgaYsbZb%2F3Y%3D&Expires=1709298000",
		sts: "GET\n\n\n1709298000\n/bucket/k%20ey",
	},
	{
		name: "escaped key and overrides", method: "GET",
		url: "http://example.com/bucket/a%20b%2Bc/%C3%BC~%21%27%28%29%2A?response-content-disposition=attachment%3B%20filename%3D%22a%20b.txt%22&versionId=v1&x-id=GetObject&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=nA%2BhhRHGKpS4sc4cNKHEihs5mHM%3D&Expires=1709298000",
		sts: "GET\n\n\n1709298000\n/bucket/a%20b%2Bc/%C3%BC~%21%27%28%29%2A?response-content-disposition=attachment; filename=\"a b.txt\"&versionId=v1",
	},
	{
		// The signer moves the headers into the query; the uploader may
		// send them again as headers, or not.
		name: "put with headers", method: "PUT",
		url:    "http://example.com/bucket/up?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=7%2F7iXPdwJXQ%2FKD8MCnQ5nnaISfs%3D&content-type=text%2Fplain&content-md5=XrY7u%2BAe7tCTyyK7j1rNww%3D%3D&x-amz-meta-color=blue&x-amz-acl=private&Expires=1709298000",
		header: map[string]string{"Content-Type": "text/plain", "Content-MD5": "XrY7u+Ae7tCTyyK7j1rNww=="},
		sts:    "PUT\nXrY7u+Ae7tCTyyK7j1rNww==\ntext/plain\n1709298000\nx-amz-acl:private\nx-amz-meta-color:blue\n/bucket/up",
	},
	{
		name: "session token", method: "GET",
		url: "http://example.com/bucket/k?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=lFcyDterHV72M8HCB9JZ8NOMe9A%3D&x-amz-security-token=tok%2Fen%2B%3D&Expires=1709298000",
		sts: "GET\n\n\n1709298000\nx-amz-security-token:tok/en+=\n/bucket/k",
	},
	{
		name: "bucket sub-resources", method: "GET",
		url: "http://example.com/bucket?uploads&prefix=a&acl&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=uZvkTQx5fcbpDfSCEcePLbiNCHc%3D&Expires=1709298000",
		sts: "GET\n\n\n1709298000\n/bucket?acl&uploads",
	},
}

func TestPresignedV2Botocore(t *testing.T) {
	for _, c := range botocoreV2 {
		t.Run(c.name, func(t *testing.T) {
			for _, withHeaders := range []bool{false, true} {
				req := httptest.NewRequest(c.method, c.url, strings.NewReader("payload"))
				if withHeaders {
					for k, v := range c.header {
						req.Header.Set(k, v)
					}
				}
				q, _ := parseQuery(requestTarget(req).rawQuery)
				if sts := stringToSignV2(req, requestTarget(req), q, "1709298000"); sts != c.sts {
					t.Fatalf("string to sign\n%q\nwant\n%q", sts, c.sts)
				}
				res, err := newVerifier(signTime).Verify(context.Background(), req)
				if err != nil {
					t.Fatalf("headers %v: %v", withHeaders, err)
				}
				if !res.Presigned || res.Credential != testCred || !res.Expires.Equal(signTime.Add(time.Hour)) {
					t.Errorf("result = %+v", res)
				}
				body, err := readAllBody(res)
				if err != nil || string(body) != "payload" || res.DecodedLength != 7 {
					t.Errorf("body %q (%v), DecodedLength %d", body, err, res.DecodedLength)
				}
				if c.name == "session token" && res.SessionToken != "tok/en+=" {
					t.Errorf("SessionToken %q", res.SessionToken)
				}
			}
		})
	}
}

// signV2 presigns from the documented recipe, independently of the code
// under test: amz is the CanonicalizedAmzHeaders block, resource the
// CanonicalizedResource.
func signV2(method, contentMD5, contentType string, expires int64, amz, resource string) string {
	sts := method + "\n" + contentMD5 + "\n" + contentType + "\n" + strconv.FormatInt(expires, 10) + "\n" + amz + resource
	m := hmac.New(sha1.New, []byte(testCred.Secret))
	m.Write([]byte(sts))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func v2Query(ak string, expires int64, sig string) string {
	return "AWSAccessKeyId=" + url.QueryEscape(ak) + "&Expires=" + strconv.FormatInt(expires, 10) + "&Signature=" + url.QueryEscape(sig)
}

func TestPresignedV2Refusals(t *testing.T) {
	exp := signTime.Add(time.Hour).Unix()
	good := v2Query(testCred.AccessKey, exp, signV2("GET", "", "", exp, "", "/bucket/key?versionId=v1"))
	tests := []struct {
		name   string
		method string
		target string
		header map[string]string
		want   error
	}{
		{"valid", "GET", "/bucket/key?versionId=v1&" + good, nil, nil},
		{"unsigned parameter added", "GET", "/bucket/key?versionId=v1&prefix=x&" + good, nil, nil},
		{"other key", "GET", "/bucket/other?versionId=v1&" + good, nil, ErrSignatureDoesNotMatch},
		{"path encoded differently", "GET", "/bucket/k%65y?versionId=v1&" + good, nil, ErrSignatureDoesNotMatch},
		{"other version", "GET", "/bucket/key?versionId=v2&" + good, nil, ErrSignatureDoesNotMatch},
		{"sub-resource added", "GET", "/bucket/key?versionId=v1&acl&" + good, nil, ErrSignatureDoesNotMatch},
		{"override added", "GET", "/bucket/key?versionId=v1&response-content-type=text/html&" + good, nil, ErrSignatureDoesNotMatch},
		{"other method", "DELETE", "/bucket/key?versionId=v1&" + good, nil, ErrSignatureDoesNotMatch},
		{"x-amz header added", "GET", "/bucket/key?versionId=v1&" + good, map[string]string{"X-Amz-Acl": "public-read"}, ErrSignatureDoesNotMatch},
		{"x-amz parameter added", "GET", "/bucket/key?versionId=v1&x-amz-acl=public-read&" + good, nil, ErrSignatureDoesNotMatch},
		{"content type added", "GET", "/bucket/key?versionId=v1&" + good, map[string]string{"Content-Type": "text/html"}, ErrSignatureDoesNotMatch},
		{"garbage signature", "GET", "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=" + strconv.FormatInt(exp, 10) + "&Signature=%21%21", nil, ErrSignatureDoesNotMatch},
		{"unknown key", "GET", "/bucket/key?" + v2Query("AKIAUNKNOWN", exp, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="), nil, ErrInvalidAccessKeyID},
		{"expired", "GET", "/bucket/key?" + v2Query(testCred.AccessKey, signTime.Unix()-1, signV2("GET", "", "", signTime.Unix()-1, "", "/bucket/key")), nil, ErrRequestExpired},
		{"no Expires", "GET", "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Signature=AAAA", nil, ErrAccessDenied},
		{"only a signature", "GET", "/bucket/key?Signature=AAAA", nil, ErrAccessDenied},
		{"repeated key", "GET", "/bucket/key?AWSAccessKeyId=x&" + good, nil, ErrAccessDenied},
		{"Expires not a number", "GET", "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=tomorrow&Signature=AAAA", nil, ErrAccessDenied},
		{"negative Expires", "GET", "/bucket/key?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=-5&Signature=AAAA", nil, ErrAccessDenied},
		{"with Authorization", "GET", "/bucket/key?versionId=v1&" + good, map[string]string{"Authorization": "AWS AKIAIOSFODNN7EXAMPLE:x"}, ErrInvalidArgument},
		{"signed chunks", "PUT", "/bucket/key?" + v2Query(testCred.AccessKey, exp, signV2("PUT", "", "", exp, "x-amz-content-sha256:"+StreamingPayload+"\n", "/bucket/key")), map[string]string{"X-Amz-Content-Sha256": StreamingPayload}, ErrInvalidRequest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "http://example.com"+tt.target, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			res, err := newVerifier(signTime).Verify(context.Background(), req)
			if tt.want == nil {
				if err != nil || !res.Presigned {
					t.Fatalf("err = %v, result %+v", err, res)
				}
				return
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

// The V2 Authorization header is still refused as not implemented.
func TestSigV2HeaderNotImplemented(t *testing.T) {
	req := httptest.NewRequest("GET", "http://example.com/johnsmith/photos/puppy.jpg", nil)
	req.Header.Set("Date", "Tue, 27 Mar 2007 19:36:42 +0000")
	req.Header.Set("Authorization", "AWS AKIAIOSFODNN7EXAMPLE:bWq2s1WEIj+Ydj0vQ697zp+IXMU=")
	if _, err := newVerifier(signTime).Verify(context.Background(), req); !errors.Is(err, ErrNotImplemented) {
		t.Fatalf("err = %v", err)
	}
}

// A pinned x-amz-content-sha256 is signed as an x-amz header and holds the
// body to it.
func TestPresignedV2PinnedPayload(t *testing.T) {
	exp := signTime.Add(time.Minute).Unix()
	sum := hexSHA256([]byte("pinned"))
	target := "http://example.com/bucket/key?" + v2Query(testCred.AccessKey, exp, signV2("PUT", "", "", exp, "x-amz-content-sha256:"+sum+"\n", "/bucket/key"))
	for _, body := range []string{"pinned", "pinneD"} {
		req := httptest.NewRequest("PUT", target, strings.NewReader(body))
		req.Header.Set("X-Amz-Content-Sha256", sum)
		res, err := newVerifier(signTime).Verify(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		if res.PayloadHash != sum {
			t.Errorf("PayloadHash %q", res.PayloadHash)
		}
		_, err = readAllBody(res)
		if want := body != "pinned"; errors.Is(err, ErrContentSHA256Mismatch) != want {
			t.Errorf("body %q: err = %v", body, err)
		}
	}
}

// A V2 presigned URL through a real server, as a browser or curl sends it.
func TestPresignedV2OverHTTP(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	exp := signTime.Add(time.Hour).Unix()
	path := "/bucket/a%20b%2Bc/%C3%BC~%21%27%28%29%2A"
	u := ts.URL + path + "?response-content-type=text%2Fplain&" + v2Query(testCred.AccessKey, exp, signV2("GET", "", "", exp, "", path+"?response-content-type=text/plain"))
	req, _ := http.NewRequest("GET", u, nil)
	s := ts.do(t, req)
	if s.err != nil {
		t.Fatalf("Verify(%s): %v", s.uri, s.err)
	}
	if !s.res.Presigned || s.res.Credential != testCred {
		t.Errorf("result = %+v", s.res)
	}
}

// FuzzPresignedV2 mutates the path and query of V2 presigned URLs. A
// request may verify only if its string to sign is one a seed signed.
func FuzzPresignedV2(f *testing.F) {
	signed := map[string]bool{}
	exp := signTime.Add(time.Hour).Unix()
	addSeed := func(rawURL string) {
		u, err := url.Parse(rawURL)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(u.EscapedPath(), u.RawQuery)
		req := httptest.NewRequest("GET", rawURL, nil)
		q, _ := parseQuery(u.RawQuery)
		if got := q.get(paramV2Expires); len(got) == 1 {
			signed[stringToSignV2(req, requestTarget(req), q, got[0])] = true
		}
	}
	for _, c := range botocoreV2 {
		if c.method == "GET" {
			addSeed(c.url)
		}
	}
	addSeed(awsV2ExampleURL)
	addSeed("http://example.com/b/k?uploadId=1&partNumber=2&" + v2Query(testCred.AccessKey, exp, signV2("GET", "", "", exp, "", "/b/k?partNumber=2&uploadId=1")))
	f.Add("/b/k", "AWSAccessKeyId=&Expires=&Signature=")
	f.Add("/b/k", "Signature=%20%2B&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=99999999999999999999")
	f.Add("", "acl=%zz&AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1709298000&Signature=AAAA")
	f.Fuzz(func(t *testing.T, path, rawQuery string) {
		req := httptest.NewRequest("GET", "http://example.com/", nil)
		req.RequestURI = path + "?" + rawQuery
		req.URL.RawQuery = rawQuery
		res, err := newVerifier(signTime).Verify(context.Background(), req)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if res.Anonymous || !res.SigningTime.IsZero() {
			return // not a V2 request
		}
		if !res.Presigned || res.Credential != testCred {
			t.Fatalf("V2 result %+v", res)
		}
		tgt := requestTarget(req)
		q, _ := parseQuery(tgt.rawQuery)
		sts := stringToSignV2(req, tgt, q, q.get(paramV2Expires)[0])
		if !signed[sts] {
			t.Fatalf("verified a string to sign no seed signed: %q", sts)
		}
	})
}

// TestPresignedV2RefusesUnsignedOperationSwitch: a V2 URL cannot be turned
// into another operation by adding a parameter V2 does not sign.
func TestPresignedV2RefusesUnsignedOperationSwitch(t *testing.T) {
	q, err := parseQuery("AWSAccessKeyId=AK&Expires=1&Signature=x&attributes")
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{}
	r, _ := http.NewRequest(http.MethodGet, "http://h/b/k?AWSAccessKeyId=AK&Expires=1&Signature=x&attributes", nil)
	if _, err := v.verifyPresignedV2(context.Background(), r, requestTarget(r), q); !errors.Is(err, ErrAccessDenied) {
		t.Fatalf("got %v, want ErrAccessDenied", err)
	}
}
