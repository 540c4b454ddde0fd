package cli

import (
	"bytes"
	"context"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestServeBlobsFlag keeps a region's object data in the directory -blobs
// names, outside its data directory; a location it cannot use stops it.
func TestServeBlobsFlag(t *testing.T) {
	ctx := context.Background()
	data, blobs := t.TempDir(), t.TempDir()
	env := map[string]string{"BULWARK_ACCESS_KEY": "AKIAENVKEY0000000000", "BULWARK_SECRET_KEY": "env-secret"}
	urls, _, stop := startMain(t, env, "serve", "--region", "eu-west-1", "--data", data, "--blobs", blobs, "--listen", "127.0.0.1:0")
	defer stop()
	c := servertest.NewClient(urls["eu-west-1"], "eu-west-1", "AKIAENVKEY0000000000", "env-secret", nil)
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("elsewhere"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "eu-west-1"}})
	if err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 200<<10) // above the inline limit
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("elsewhere"), Key: aws.String("k"), Body: bytes.NewReader(body)}); err != nil {
		t.Fatal(err)
	}
	count := func(dir string) int {
		n := 0
		_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && d.Name() != ".tmp" {
				n++
			}
			return nil
		})
		return n
	}
	if n := count(blobs); n != 1 {
		t.Fatalf("%d files under -blobs, want the object's blob", n)
	}
	if n := count(filepath.Join(data, "blobs")); n != 0 {
		t.Fatalf("%d files under the data directory's blobs", n)
	}

	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(k string) string { return env[k] }}
	if code := m.Run(ctx, []string{"serve", "--data", t.TempDir(), "--listen", "127.0.0.1:0", "--blobs", "ftp://host/blobs"}); code != 1 {
		t.Fatalf("serve with an unusable -blobs: exit %d", code)
	}
}
