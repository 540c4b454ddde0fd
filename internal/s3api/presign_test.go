package s3api_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestAWSCLIPresignV2 fetches objects through the Signature Version 2
// presigned URLs that aws s3 presign (aws CLI v1) makes by default.
func TestAWSCLIPresignV2(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	cli := servertest.AWSCLI(t, r)
	c := r.Client(t)
	createBucket(t, c, "presign")
	const key = "dir/a b+c~!'()*.txt"
	for k, body := range map[string]string{key: "via a V2 URL", "other": "not this one"} {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("presign"), Key: aws.String(k), Body: strings.NewReader(body)}))
	}
	presign := func(args ...string) string {
		t.Helper()
		return cli.Text(append([]string{"s3", "presign"}, args...)...)
	}
	get := func(u string) (int, string) {
		t.Helper()
		resp, err := r.HTTPClient(t).Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	u := presign("s3://presign/" + key)
	if !strings.Contains(u, "AWSAccessKeyId=") || !strings.Contains(u, "Signature=") || strings.Contains(u, "X-Amz-Signature") {
		t.Fatalf("not a V2 presigned URL: %s", u)
	}
	if st, body := get(u); st != 200 || body != "via a V2 URL" {
		t.Fatalf("presigned GET: %d %s", st, body)
	}

	// The signature covers the key: the same query on another key fails.
	_, query, _ := strings.Cut(u, "?")
	st, body := get(r.URL() + "/presign/other?" + query)
	wantXMLError(t, st, body, 403, "SignatureDoesNotMatch")

	short := presign("s3://presign/"+key, "--expires-in", "1")
	time.Sleep(2 * time.Second)
	st, body = get(short)
	wantXMLError(t, st, body, 403, "AccessDenied")
	if !strings.Contains(body, "Request has expired") {
		t.Fatalf("expired URL: %s", body)
	}

	// A V2 Authorization header is still refused.
	req, _ := http.NewRequest("GET", r.URL()+"/presign/other", nil)
	req.Header.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	req.Header.Set("Authorization", "AWS "+servertest.AccessKey+":AAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	st, body, _ = do(t, r, req)
	wantXMLError(t, st, body, 501, "NotImplemented")
}
