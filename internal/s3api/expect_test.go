package s3api_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestExpectContinue: with Expect: 100-continue the body is only sent once
// the server agrees; a refused request never reads it.
func TestExpectContinue(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "expect")
	hc := r.HTTPClient(t)
	hc.Transport.(*http.Transport).ExpectContinueTimeout = 5 * time.Second
	for _, tc := range []struct {
		bucket string
		status int
	}{{"expect", 200}, {"no-such-bucket", 404}} {
		body := bytes.Repeat([]byte("e"), 1<<20)
		req := signed(t, "PUT", r.URL()+"/"+tc.bucket+"/k", body, "", map[string]string{"Expect": "100-continue"})
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.bucket, resp.StatusCode, tc.status)
		}
	}
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("expect"), Key: aws.String("k")}); len(got) != 1<<20 {
		t.Fatalf("stored %d bytes", len(got))
	}
}

// TestContentHeadersRoundTrip: the headers that describe an object come
// back as they were sent, from GET and HEAD.
func TestContentHeadersRoundTrip(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "headers")
	exp := time.Date(2031, 1, 2, 3, 4, 5, 0, time.UTC)
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("headers"), Key: aws.String("page.html.gz"), Body: strings.NewReader("gz"),
		ContentEncoding: aws.String("gzip"), CacheControl: aws.String("public, max-age=3600"),
		Expires: aws.Time(exp), ContentDisposition: aws.String(`attachment; filename="page.html"`),
		ContentType: aws.String("text/html"), ContentLanguage: aws.String("de"),
	}))
	_, out := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("headers"), Key: aws.String("page.html.gz")})
	h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("headers"), Key: aws.String("page.html.gz")}))
	for _, got := range []struct{ enc, cache, disp, ct, lang string }{
		{aws.ToString(out.ContentEncoding), aws.ToString(out.CacheControl), aws.ToString(out.ContentDisposition), aws.ToString(out.ContentType), aws.ToString(out.ContentLanguage)},
		{aws.ToString(h.ContentEncoding), aws.ToString(h.CacheControl), aws.ToString(h.ContentDisposition), aws.ToString(h.ContentType), aws.ToString(h.ContentLanguage)},
	} {
		if got.enc != "gzip" || got.cache != "public, max-age=3600" || got.disp != `attachment; filename="page.html"` || got.ct != "text/html" || got.lang != "de" {
			t.Fatalf("headers came back as %+v", got)
		}
	}
	if aws.ToString(h.ExpiresString) != exp.Format(http.TimeFormat) {
		t.Fatalf("Expires %q", aws.ToString(h.ExpiresString))
	}
}
