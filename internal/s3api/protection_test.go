package s3api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/awsmodel"
	"github.com/bulwark/bulwark/internal/s3api"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// walkState is what a refused request must leave as it was: every
// version and delete marker, every upload, the object's bytes.
func walkState(t *testing.T, c *s3.Client, version string) string {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("walk-bucket")})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs.Versions {
		fmt.Fprintf(&b, "v %s %s %s\n", aws.ToString(v.Key), aws.ToString(v.VersionId), aws.ToString(v.ETag))
	}
	for _, d := range vs.DeleteMarkers {
		fmt.Fprintf(&b, "d %s %s\n", aws.ToString(d.Key), aws.ToString(d.VersionId))
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("walk-bucket")})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range ups.Uploads {
		fmt.Fprintf(&b, "u %s %s\n", aws.ToString(u.Key), aws.ToString(u.UploadId))
	}
	tags, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("walk-bucket"), Key: aws.String("walk/key"), VersionId: aws.String(version)})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "tags %d\n", len(tags.TagSet))
	return b.String()
}

// send signs req as the first account's root user and returns the
// status and the error code of the answer.
func send(t *testing.T, hc *http.Client, req *http.Request) (int, string) {
	t.Helper()
	sum := sha256.Sum256(nil)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	creds := aws.Credentials{AccessKeyID: servertest.AccessKey, SecretAccessKey: servertest.SecretKey}
	if err := signer.SignHTTP(context.Background(), creds, req, hash, "s3", "us-west-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	code := ""
	if m := regexp.MustCompile(`<Code>([^<]*)</Code>`).FindSubmatch(body); m != nil {
		code = string(m[1])
	}
	if req.Method == http.MethodHead {
		// An answer to HEAD has no body: its status stands for the code.
		code = map[int]string{400: "InvalidRequest", 403: "AccessDenied", 501: "NotImplemented"}[resp.StatusCode]
	}
	return resp.StatusCode, code
}

// TestProtectionRequestsAreHonouredOrRefused sends every operation of
// AWS's model that Bulwark implements, once with each field it refuses
// (encryption, retention, legal hold, checksums it cannot verify,
// conditions it cannot keep) and once with an expected owner that is not
// the bucket's: each answer is the refusal, and nothing changed.
func TestProtectionRequestsAreHonouredOrRefused(t *testing.T) {
	m := awsmodel.Require(t, "s3")
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	hc := r.HTTPClient(t)
	ctx := context.Background()
	createBucket(t, c, "walk-bucket")
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("walk-bucket"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	put, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("walk-bucket"), Key: aws.String("walk/key"), Body: strings.NewReader("kept")})
	if err != nil {
		t.Fatal(err)
	}
	version := aws.ToString(put.VersionId)
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("walk-bucket"), Key: aws.String("walk/key")})
	if err != nil {
		t.Fatal(err)
	}
	base := map[string]string{"uploadId": aws.ToString(up.UploadId)}
	before := walkState(t, c, version)

	refusals, owners := 0, 0
	for _, op := range s3api.ImplementedOperations(t, m) {
		for _, f := range m.Fields(op) {
			value, code := s3api.RefusedSample(op, f.Name)
			if code == "" {
				continue
			}
			t.Run(op+"/"+f.Name, func(t *testing.T) {
				set := map[string]string{f.Name: value}
				for k, v := range base {
					set[k] = v
				}
				req, err := m.Request(op, r.URL(), "walk-bucket", "walk/key", set)
				if err != nil {
					t.Fatal(err)
				}
				if status, got := send(t, hc, req); got != code || status < 400 {
					t.Errorf("%s: %s: %q: answer %d %q, want %q", op, f.Name, value, status, got, code)
				}
				if after := walkState(t, c, version); after != before {
					t.Fatalf("state changed:\n%s\nwas\n%s", after, before)
				}
			})
			refusals++
		}
		for _, f := range m.Fields(op) {
			if f.Name != "x-amz-expected-bucket-owner" && f.Name != "x-amz-source-expected-bucket-owner" {
				continue
			}
			t.Run(op+"/"+f.Name, func(t *testing.T) {
				set := map[string]string{f.Name: servertest.OtherAccountID}
				for k, v := range base {
					set[k] = v
				}
				req, err := m.Request(op, r.URL(), "walk-bucket", "walk/key", set)
				if err != nil {
					t.Fatal(err)
				}
				if status, got := send(t, hc, req); status != http.StatusForbidden || got != "AccessDenied" {
					t.Errorf("%s with another account as %s: %d %q, want 403 AccessDenied", op, f.Name, status, got)
				}
				if after := walkState(t, c, version); after != before {
					t.Fatalf("state changed:\n%s\nwas\n%s", after, before)
				}
				set[f.Name] = servertest.AccountID
				req, _ = m.Request(op, r.URL(), "walk-bucket", "walk/key", set)
				if status, got := send(t, hc, req); status == http.StatusForbidden {
					t.Errorf("%s with the owner as %s: %d %q", op, f.Name, status, got)
				}
				before = walkState(t, c, version) // the owner's request may change things
			})
			owners++
		}
	}
	// The walk must have walked: every operation that writes data takes
	// SSE, Object Lock and SSE-C fields, and 41 take an expected owner.
	if refusals < 30 || owners < 40 {
		t.Fatalf("walked %d refusals and %d expected owners", refusals, owners)
	}
}

// TestProtectionRequestsWithTheCLI sends the requests for protection that
// once answered 200 and did nothing, as the aws CLI sends them.
func TestProtectionRequestsWithTheCLI(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	cli := servertest.AWSCLI(t, r)
	file := filepath.Join(t.TempDir(), "f.txt")
	if err := os.WriteFile(file, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	cli.Run("s3api", "create-bucket", "--bucket", "plain", "--create-bucket-configuration", "LocationConstraint=us-west-2")
	cli.Run("s3api", "put-object", "--bucket", "plain", "--key", "k", "--body", file)

	cli.Fail("NotImplemented", "s3api", "create-bucket", "--bucket", "locked", "--object-lock-enabled-for-bucket",
		"--create-bucket-configuration", "LocationConstraint=us-west-2")
	cli.Fail("404", "s3api", "head-bucket", "--bucket", "locked")

	key := strings.Repeat("k", 32)
	for _, args := range [][]string{
		{"--object-lock-mode", "COMPLIANCE", "--object-lock-retain-until-date", "2030-01-01T00:00:00Z"},
		{"--object-lock-legal-hold-status", "ON"},
		{"--sse-customer-algorithm", "AES256", "--sse-customer-key", key},
		{"--server-side-encryption", "aws:kms"},
		{"--server-side-encryption", "AES256"},
	} {
		code := "NotImplemented"
		if strings.HasPrefix(args[0], "--object-lock") {
			code = "InvalidRequest"
		}
		cli.Fail(code, append([]string{"s3api", "put-object", "--bucket", "plain", "--key", "protected", "--body", file}, args...)...)
		cli.Fail("404", "s3api", "head-object", "--bucket", "plain", "--key", "protected")
	}
	// A read naming a customer key: the object was not written with one.
	cli.Fail("InvalidRequest", "s3api", "get-object", "--bucket", "plain", "--key", "k",
		"--sse-customer-algorithm", "AES256", "--sse-customer-key", key, filepath.Join(t.TempDir(), "out"))

	// The expected owner guards a bucket that changed hands.
	cli.Fail("AccessDenied", "s3api", "put-object", "--bucket", "plain", "--key", "k", "--body", file,
		"--expected-bucket-owner", servertest.OtherAccountID)
	cli.Fail("AccessDenied", "s3api", "get-object", "--bucket", "plain", "--key", "k",
		"--expected-bucket-owner", servertest.OtherAccountID, filepath.Join(t.TempDir(), "out"))
	cli.Run("s3api", "get-object", "--bucket", "plain", "--key", "k",
		"--expected-bucket-owner", servertest.AccountID, filepath.Join(t.TempDir(), "out"))
	if got := bytes.Count([]byte(cli.Text("s3api", "list-object-versions", "--bucket", "plain", "--query", "Versions[].Key", "--output", "text")), []byte("k")); got != 1 {
		t.Fatalf("versions of k after the refused requests: %d", got)
	}
}

// TestRootIsNeverLockedOutOfItsPolicy puts a bucket policy that denies
// everyone everything: the owner's root user can still read, replace and
// delete it, as in S3, while the policy holds for every other call.
func TestRootIsNeverLockedOutOfItsPolicy(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	ctx := context.Background()
	createBucket(t, c, "sealed")
	deny := `{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::sealed","arn:aws:s3:::sealed/*"]}]}`
	if _, err := c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("sealed"), Policy: aws.String(deny)}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sealed"), Key: aws.String("k"), Body: strings.NewReader("x")}); err == nil {
		t.Fatal("a PUT under a deny-all policy succeeded")
	}
	if _, err := c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String("sealed")}); err != nil {
		t.Fatalf("root reads its bucket's policy: %v", err)
	}
	if _, err := c.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: aws.String("sealed")}); err != nil {
		t.Fatalf("root deletes its bucket's policy: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sealed"), Key: aws.String("k"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("PUT once the policy is gone: %v", err)
	}
}
