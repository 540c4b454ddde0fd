package s3api_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

const corsNotAllowed = "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."

// testCORS is the configuration the preflight tests run against.
var testCORS = &types.CORSConfiguration{CORSRules: []types.CORSRule{
	{
		ID:             aws.String("app"),
		AllowedOrigins: []string{"https://app.example.com", "http://*.example.org"},
		AllowedMethods: []string{"GET", "PUT"},
		AllowedHeaders: []string{"Content-Type", "x-amz-*"},
		ExposeHeaders:  []string{"ETag", "x-amz-version-id"},
		MaxAgeSeconds:  aws.Int32(3000),
	},
	{
		AllowedOrigins: []string{"*"},
		AllowedMethods: []string{"GET", "HEAD"},
	},
}}

func TestBucketCORS(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "cors")
	b := aws.String("cors")

	_, err := c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b})
	wantMessage(t, err, "NoSuchCORSConfiguration", 404, "The CORS configuration does not exist")
	// Deleting what is not there succeeds, as in S3.
	must[*s3.DeleteBucketCorsOutput](t)(c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: b}))

	must[*s3.PutBucketCorsOutput](t)(c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: testCORS}))
	got := must[*s3.GetBucketCorsOutput](t)(c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b}))
	if len(got.CORSRules) != 2 {
		t.Fatalf("rules %+v", got.CORSRules)
	}
	r0, r1 := got.CORSRules[0], got.CORSRules[1]
	if aws.ToString(r0.ID) != "app" || !slices.Equal(r0.AllowedOrigins, testCORS.CORSRules[0].AllowedOrigins) ||
		!slices.Equal(r0.AllowedMethods, []string{"GET", "PUT"}) || !slices.Equal(r0.AllowedHeaders, []string{"Content-Type", "x-amz-*"}) ||
		!slices.Equal(r0.ExposeHeaders, []string{"ETag", "x-amz-version-id"}) || aws.ToInt32(r0.MaxAgeSeconds) != 3000 {
		t.Errorf("rule 0 = %+v", r0)
	}
	if r1.ID != nil || r1.MaxAgeSeconds != nil || len(r1.AllowedHeaders) != 0 || !slices.Equal(r1.AllowedOrigins, []string{"*"}) {
		t.Errorf("rule 1 = %+v", r1)
	}

	// A new configuration replaces the old one.
	one := &types.CORSConfiguration{CORSRules: []types.CORSRule{{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"DELETE"}}}}
	must[*s3.PutBucketCorsOutput](t)(c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: one}))
	got = must[*s3.GetBucketCorsOutput](t)(c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b}))
	if len(got.CORSRules) != 1 || !slices.Equal(got.CORSRules[0].AllowedMethods, []string{"DELETE"}) {
		t.Fatalf("after replace: %+v", got.CORSRules)
	}

	must[*s3.DeleteBucketCorsOutput](t)(c.DeleteBucketCors(ctx, &s3.DeleteBucketCorsInput{Bucket: b}))
	_, err = c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b})
	wantCode(t, err, "NoSuchCORSConfiguration", 404)

	_, err = c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("nosuchbucket"), CORSConfiguration: one})
	wantCode(t, err, "NoSuchBucket", 404)
	_, err = c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: aws.String("nosuchbucket")})
	wantCode(t, err, "NoSuchBucket", 404)

	// The raw answer: namespace, and BucketName in the 404.
	st, body, _ := do(t, r, signed(t, "GET", r.URL()+"/cors?cors", nil, "", nil))
	wantXMLError(t, st, body, 404, "NoSuchCORSConfiguration")
	if !strings.Contains(body, "<BucketName>cors</BucketName>") {
		t.Errorf("404 without BucketName: %s", body)
	}
	must[*s3.PutBucketCorsOutput](t)(c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: one}))
	st, body, _ = do(t, r, signed(t, "GET", r.URL()+"/cors?cors", nil, "", nil))
	if st != 200 || !strings.Contains(body, `<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><CORSRule><AllowedMethod>DELETE</AllowedMethod><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>`) {
		t.Errorf("GetBucketCors: %d %s", st, body)
	}
}

func TestBucketCORSValidation(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "corsval")
	b := aws.String("corsval")

	rule := func(origins, methods []string) *types.CORSConfiguration {
		return &types.CORSConfiguration{CORSRules: []types.CORSRule{{AllowedOrigins: origins, AllowedMethods: methods}}}
	}
	_, err := c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: rule([]string{"*"}, []string{"GET", "PATCH"})})
	wantMessage(t, err, "InvalidRequest", 400, "Found unsupported HTTP method in CORS config. Unsupported method is PATCH")
	_, err = c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: rule([]string{"*"}, []string{"OPTIONS"})})
	wantMessage(t, err, "InvalidRequest", 400, "Found unsupported HTTP method in CORS config. Unsupported method is OPTIONS")
	_, err = c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: rule([]string{"https://*.example.*"}, []string{"GET"})})
	wantMessage(t, err, "InvalidRequest", 400, `AllowedOrigin "https://*.example.*" can not have more than one wildcard.`)
	_, err = c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{
		{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"GET"}, AllowedHeaders: []string{"*-*"}},
	}}})
	wantCode(t, err, "InvalidRequest", 400)
	many := &types.CORSConfiguration{}
	for i := range 101 {
		many.CORSRules = append(many.CORSRules, types.CORSRule{AllowedOrigins: []string{fmt.Sprintf("https://%d.example.com", i)}, AllowedMethods: []string{"GET"}})
	}
	_, err = c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: many})
	wantCode(t, err, "MalformedXML", 400)
	many.CORSRules = many.CORSRules[:100]
	must[*s3.PutBucketCorsOutput](t)(c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: b, CORSConfiguration: many}))
	// A refused configuration leaves the stored one alone.
	if got := must[*s3.GetBucketCorsOutput](t)(c.GetBucketCors(ctx, &s3.GetBucketCorsInput{Bucket: b})); len(got.CORSRules) != 100 {
		t.Fatalf("%d rules stored", len(got.CORSRules))
	}

	// Raw bodies: the integrity check S3 requires, and broken XML.
	u := r.URL() + "/corsval?cors"
	doc := []byte(`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`)
	st, body, _ := do(t, r, signed(t, "PUT", u, doc, "", nil))
	wantXMLError(t, st, body, 400, "InvalidRequest")
	if !strings.Contains(body, "Missing required header for this request: Content-MD5") {
		t.Fatalf("missing Content-MD5: %s", body)
	}
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"Content-MD5": md5Header([]byte("other"))}))
	wantXMLError(t, st, body, 400, "BadDigest")
	for _, bad := range []string{
		`<CORSConfiguration><CORSRule>`,
		`<Other><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></Other>`,
		`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>soon</MaxAgeSeconds></CORSRule></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><MaxAgeSeconds>-1</MaxAgeSeconds></CORSRule></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule/></CORSConfiguration>`,
		`<CORSConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"/>`,
		`<CORSConfiguration><CORSRule><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`,
		`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin></CORSRule></CORSConfiguration>`,
	} {
		st, body, _ = do(t, r, signed(t, "PUT", u, []byte(bad), "", map[string]string{"Content-MD5": md5Header([]byte(bad))}))
		wantXMLError(t, st, body, 400, "MalformedXML")
	}
	empty := []byte(`<CORSConfiguration><CORSRule><AllowedOrigin>*</AllowedOrigin><AllowedMethod></AllowedMethod></CORSRule></CORSConfiguration>`)
	st, body, _ = do(t, r, signed(t, "PUT", u, empty, "", map[string]string{"Content-MD5": md5Header(empty)}))
	wantXMLError(t, st, body, 400, "InvalidRequest")
	long := []byte(`<CORSConfiguration><CORSRule><ID>` + strings.Repeat("i", 256) + `</ID><AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod></CORSRule></CORSConfiguration>`)
	st, body, _ = do(t, r, signed(t, "PUT", u, long, "", map[string]string{"Content-MD5": md5Header(long)}))
	wantXMLError(t, st, body, 400, "InvalidArgument")
	// Content-MD5 alone is enough.
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"Content-MD5": md5Header(doc)}))
	if st != 200 {
		t.Fatalf("put with Content-MD5: %d %s", st, body)
	}
}

// preflight sends an unsigned OPTIONS request; empty values are left out.
func preflight(t *testing.T, r *servertest.Region, path, origin, method, headers string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodOptions, r.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers} {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := r.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func wantHeaders(t *testing.T, hdr http.Header, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := hdr.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
}

const corsVary = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method"

func TestPreflight(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "pre")
	createBucket(t, c, "nocors")
	must[*s3.PutBucketCorsOutput](t)(c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("pre"), CORSConfiguration: testCORS}))

	// Allowed: the first rule, for an object that need not exist.
	st, body, hdr := preflight(t, r, "/pre/some/key", "https://app.example.com", "PUT", "content-type, X-Amz-Meta-Color,x-amz-checksum-crc32")
	if st != 200 || body != "" {
		t.Fatalf("allowed preflight: %d %s", st, body)
	}
	wantHeaders(t, hdr, map[string]string{
		"Access-Control-Allow-Origin":      "https://app.example.com",
		"Access-Control-Allow-Methods":     "GET, PUT",
		"Access-Control-Allow-Headers":     "content-type, x-amz-meta-color, x-amz-checksum-crc32",
		"Access-Control-Expose-Headers":    "ETag, x-amz-version-id",
		"Access-Control-Max-Age":           "3000",
		"Access-Control-Allow-Credentials": "true",
		"Vary":                             corsVary,
	})
	// A wildcard origin, on the bucket itself.
	st, _, hdr = preflight(t, r, "/pre", "http://cdn.example.org", "GET", "")
	if st != 200 {
		t.Fatalf("wildcard origin: %d", st)
	}
	wantHeaders(t, hdr, map[string]string{"Access-Control-Allow-Origin": "http://cdn.example.org", "Access-Control-Allow-Headers": ""})
	// The catch-all rule answers "*", without credentials or headers.
	st, _, hdr = preflight(t, r, "/pre/k", "https://elsewhere.test", "HEAD", "")
	if st != 200 {
		t.Fatalf("catch-all: %d", st)
	}
	wantHeaders(t, hdr, map[string]string{
		"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, HEAD",
		"Access-Control-Allow-Credentials": "", "Access-Control-Max-Age": "", "Vary": corsVary,
	})

	refused := []struct{ name, path, origin, method, headers string }{
		{"origin", "/pre/k", "https://elsewhere.test", "PUT", ""},
		{"origin scheme", "/pre/k", "http://app.example.com", "PUT", ""},
		{"origin trailing slash", "/pre/k", "https://app.example.com/", "PUT", ""},
		{"method", "/pre/k", "https://app.example.com", "DELETE", ""},
		{"header", "/pre/k", "https://app.example.com", "PUT", "content-type, authorization"},
		{"header on catch-all", "/pre/k", "https://elsewhere.test", "GET", "range"},
	}
	for _, tt := range refused {
		st, body, hdr := preflight(t, r, tt.path, tt.origin, tt.method, tt.headers)
		wantXMLError(t, st, body, 403, "AccessForbidden")
		if !strings.Contains(body, "<Message>"+strings.ReplaceAll(corsNotAllowed, "'", "&#39;")+"</Message>") ||
			!strings.Contains(body, "<Method>"+tt.method+"</Method>") || !strings.Contains(body, "<ResourceType>OBJECT</ResourceType>") {
			t.Errorf("%s: %s", tt.name, body)
		}
		if hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("%s: refused preflight with CORS headers %v", tt.name, hdr)
		}
	}

	st, body, _ = preflight(t, r, "/nocors/k", "https://app.example.com", "GET", "")
	wantXMLError(t, st, body, 403, "AccessForbidden")
	if !strings.Contains(body, "CORSResponse: CORS is not enabled for this bucket.") {
		t.Errorf("no configuration: %s", body)
	}
	st, body, _ = preflight(t, r, "/nosuchbucket/k", "https://app.example.com", "GET", "")
	wantXMLError(t, st, body, 403, "AccessForbidden")
	st, body, _ = preflight(t, r, "/pre/k", "", "GET", "")
	wantXMLError(t, st, body, 400, "BadRequest")
	st, body, _ = preflight(t, r, "/pre/k", "https://app.example.com", "", "")
	wantXMLError(t, st, body, 400, "BadRequest")
}

// TestCORSActualRequests checks the headers on the normal, signed
// responses to a browser's requests.
func TestCORSActualRequests(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "act")
	must[*s3.PutBucketCorsOutput](t)(c.PutBucketCors(ctx, &s3.PutBucketCorsInput{Bucket: aws.String("act"), CORSConfiguration: testCORS}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("act"), Key: aws.String("k"), Body: strings.NewReader("hello")}))
	u := r.URL() + "/act/k"

	st, body, hdr := do(t, r, signed(t, "GET", u, nil, "", map[string]string{"Origin": "https://app.example.com"}))
	if st != 200 || body != "hello" {
		t.Fatalf("GET: %d %s", st, body)
	}
	wantHeaders(t, hdr, map[string]string{
		"Access-Control-Allow-Origin":   "https://app.example.com",
		"Access-Control-Allow-Methods":  "GET, PUT",
		"Access-Control-Expose-Headers": "ETag, x-amz-version-id",
		"Access-Control-Max-Age":        "3000",
		"Vary":                          corsVary,
		"Access-Control-Allow-Headers":  "",
	})
	// A method the first rule does not allow falls to the catch-all.
	_, _, hdr = do(t, r, signed(t, "HEAD", u, nil, "", map[string]string{"Origin": "https://app.example.com"}))
	wantHeaders(t, hdr, map[string]string{"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Methods": "GET, HEAD"})
	// No rule allows DELETE: the request is served, without CORS headers.
	st, _, hdr = do(t, r, signed(t, "DELETE", r.URL()+"/act/gone", nil, "", map[string]string{"Origin": "https://app.example.com"}))
	if st != 204 || hdr.Get("Access-Control-Allow-Origin") != "" || hdr.Get("Vary") != "" {
		t.Fatalf("DELETE: %d %v", st, hdr)
	}
	// Without Origin, no CORS headers.
	_, _, hdr = do(t, r, signed(t, "GET", u, nil, "", nil))
	if hdr.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("GET without Origin: %v", hdr)
	}
	// Errors carry them too: a missing key, and an unsigned request.
	st, body, hdr = do(t, r, signed(t, "GET", r.URL()+"/act/missing", nil, "", map[string]string{"Origin": "https://app.example.com"}))
	wantXMLError(t, st, body, 404, "NoSuchKey")
	wantHeaders(t, hdr, map[string]string{"Access-Control-Allow-Origin": "https://app.example.com", "Vary": corsVary})
	req, _ := http.NewRequest("GET", u, nil)
	req.Header.Set("Origin", "http://x.example.org")
	st, body, hdr = do(t, r, req)
	wantXMLError(t, st, body, 403, "AccessDenied")
	wantHeaders(t, hdr, map[string]string{"Access-Control-Allow-Origin": "http://x.example.org"})
}
