package replication_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"log/slog"
	"os"
)

var ctx = context.Background()

const role = "arn:aws:iam::111122223333:role/s3-replication-role"

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// bucket creates a versioned bucket in the client's region.
func bucket(t testing.TB, c *s3.Client, name string) {
	t.Helper()
	in := &s3.CreateBucketInput{Bucket: aws.String(name)}
	if r := c.Options().Region; r != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(r)}
	}
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, in))
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
		Bucket:                  aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled},
	}))
}

// v1Rule is the design article's rule: everything, V1 schema.
func v1Rule(dest string) *types.ReplicationConfiguration {
	return &types.ReplicationConfiguration{Role: aws.String(role), Rules: []types.ReplicationRule{{
		ID: aws.String("replicate-all-objects"), Status: types.ReplicationRuleStatusEnabled,
		Prefix:      aws.String(""),
		Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::" + dest), StorageClass: types.StorageClassStandard},
	}}}
}

func putReplication(t testing.TB, c *s3.Client, src string, cfg *types.ReplicationConfiguration) {
	t.Helper()
	must[*s3.PutBucketReplicationOutput](t)(c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String(src), ReplicationConfiguration: cfg}))
}

func put(t testing.TB, c *s3.Client, b, k string, data []byte) *s3.PutObjectOutput {
	t.Helper()
	return must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(b), Key: aws.String(k), Body: bytes.NewReader(data)}))
}

// eventually retries f until it returns nil or 20 s pass.
func eventually(t testing.TB, what string, f func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func errCode(err error) string {
	c, _ := servertest.APICode(err)
	return c
}

// waitReplica waits for a version to be readable in the destination and
// returns its data and head.
func waitReplica(t testing.TB, c *s3.Client, b, k, vid string) ([]byte, *s3.GetObjectOutput) {
	t.Helper()
	var data []byte
	var out *s3.GetObjectOutput
	eventually(t, "replica of "+k+" "+vid, func() error {
		o, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: aws.String(k), VersionId: aws.String(vid)})
		if err != nil {
			return err
		}
		defer o.Body.Close()
		data, err = io.ReadAll(o.Body)
		out = o
		return err
	})
	return data, out
}

func waitStatus(t testing.TB, c *s3.Client, b, k, vid string, want types.ReplicationStatus) {
	t.Helper()
	eventually(t, "status of "+k, func() error {
		h, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(b), Key: aws.String(k), VersionId: aws.String(vid)})
		if err != nil {
			return err
		}
		if h.ReplicationStatus != want {
			return errors.New("status " + string(h.ReplicationStatus) + ", want " + string(want))
		}
		return nil
	})
}

func random(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// start runs one region whose failed replications are retried quickly.
func start(t testing.TB) (*servertest.Region, *s3.Client) {
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.Replication.FailedRetry = 200 * time.Millisecond
		if os.Getenv("BULWARK_TEST_LOG") != "" {
			c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}})
	return r, r.Client(t)
}

func TestReplicateSameRegion(t *testing.T) {
	_, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	putReplication(t, c, "src", v1Rule("dst"))
	data := random(100 << 10)
	out := put(t, c, "src", "a/b c.txt", data)
	got, o := waitReplica(t, c, "dst", "a/b c.txt", *out.VersionId)
	if !bytes.Equal(got, data) {
		t.Fatal("replica data differs")
	}
	if o.ReplicationStatus != types.ReplicationStatusReplica || *o.ETag != *out.ETag {
		t.Fatalf("replica: status %q etag %s, want REPLICA %s", o.ReplicationStatus, *o.ETag, *out.ETag)
	}
	waitStatus(t, c, "src", "a/b c.txt", *out.VersionId, types.ReplicationStatusCompleted)
}
