package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestShutdownFinishesInFlightRequests starts an upload, begins shutting
// down while its body is still arriving, and checks that the upload
// completes and is durable after a restart.
func TestShutdownFinishesInFlightRequests(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cfg := server.Config{Region: "us-west-2", DataDir: dir, Listen: "127.0.0.1:0", Keys: []iam.Key{iam.RootKey(servertest.AccountID, servertest.AccessKey, servertest.SecretKey)}}
	r, err := server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	c := servertest.NewClient(r.URL(), "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("inflight"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}}); err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	putDone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPut, r.URL()+"/inflight/slow", pr)
		req.ContentLength = 10
		req.Header.Set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")
		creds := aws.Credentials{AccessKeyID: servertest.AccessKey, SecretAccessKey: servertest.SecretKey}
		if err := v4.NewSigner().SignHTTP(ctx, creds, req, "UNSIGNED-PAYLOAD", "s3", "us-west-2", time.Now()); err != nil {
			putDone <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode != 200 {
				err = fmt.Errorf("status %s", resp.Status)
			}
		}
		putDone <- err
	}()
	if _, err := pw.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the request is now in flight
	closed := make(chan error, 1)
	go func() { closed <- r.Close(ctx) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-closed:
		t.Fatalf("close returned (%v) while a request was in flight", err)
	default:
	}
	if _, err := pw.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	if err := <-putDone; err != nil {
		t.Fatalf("in-flight PUT failed during shutdown: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	// Reopen: the upload is there.
	r, err = server.Open(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(ctx)
	v, body, err := r.Store.GetObject(ctx, "inflight", "slow", "")
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	b, _ := io.ReadAll(body)
	if string(b) != "helloworld" || v.Size != 10 {
		t.Fatalf("after restart: %q", b)
	}
}
