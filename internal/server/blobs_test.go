package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestBlobsInAnotherRegionsBucket runs a region whose object data lives in
// a bucket of another Bulwark region, over S3: objects written through its
// S3 API, whole, ranged and in parts, read back before and after a
// restart, and none of their data in its own data directory.
func TestBlobsInAnotherRegionsBucket(t *testing.T) {
	ctx := context.Background()
	host := servertest.Start(t, servertest.Options{Region: "us-east-1"})
	hc := host.Client(t)
	if _, err := hc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("gateway-blobs")}); err != nil {
		t.Fatal(err)
	}
	t.Setenv("AWS_ACCESS_KEY_ID", servertest.AccessKey)
	t.Setenv("AWS_SECRET_ACCESS_KEY", servertest.SecretKey)
	dir := t.TempDir()
	opts := servertest.Options{Region: "us-west-2", Dir: dir, Configure: func(c *server.Config) {
		c.BlobURL = "s3://gateway-blobs/us-west-2?endpoint=" + host.URL() + "&region=us-east-1"
	}}
	whole := make([]byte, 3<<20+5)
	parts := [2][]byte{make([]byte, 5<<20), make([]byte, 1<<20+3)}
	for _, b := range [][]byte{whole, parts[0], parts[1]} {
		rand.Read(b)
	}
	joined := append(bytes.Clone(parts[0]), parts[1]...)
	hosted := func(t *testing.T) int {
		t.Helper()
		out, err := hc.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("gateway-blobs"), Prefix: aws.String("us-west-2/")})
		mustDo(t, err)
		return len(out.Contents)
	}
	check := func(t *testing.T, c *s3.Client) {
		t.Helper()
		for key, want := range map[string][]byte{"whole": whole, "parts": joined} {
			if got := getRange(t, c, key, ""); !bytes.Equal(got, want) {
				t.Fatalf("%s: %d bytes, want %d", key, len(got), len(want))
			}
		}
		if got := getRange(t, c, "whole", "bytes=1000000-1000999"); !bytes.Equal(got, whole[1000000:1001000]) {
			t.Fatal("ranged GET of whole differs")
		}
		// Across the boundary between the two parts' blobs.
		if got := getRange(t, c, "parts", "bytes=5242000-5243999"); !bytes.Equal(got, joined[5242000:5244000]) {
			t.Fatal("ranged GET across parts differs")
		}
	}
	var blobs int
	t.Run("write", func(t *testing.T) {
		r := servertest.Start(t, opts)
		c := r.Client(t)
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("photos"),
			CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
		mustDo(t, err)
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("photos"), Key: aws.String("whole"), Body: bytes.NewReader(whole)})
		mustDo(t, err)
		up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("photos"), Key: aws.String("parts")})
		mustDo(t, err)
		var done []types.CompletedPart
		for i, p := range parts {
			out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("photos"), Key: aws.String("parts"),
				UploadId: up.UploadId, PartNumber: aws.Int32(int32(i + 1)), Body: bytes.NewReader(p)})
			mustDo(t, err)
			done = append(done, types.CompletedPart{PartNumber: aws.Int32(int32(i + 1)), ETag: out.ETag})
		}
		_, err = c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("photos"), Key: aws.String("parts"),
			UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
		mustDo(t, err)
		check(t, c)
		if blobs = hosted(t); blobs != 3 {
			t.Fatalf("%d blobs in the other region's bucket, want 3", blobs)
		}
	})
	// A blob another gateway over the same store is writing: no
	// metadata names it yet.
	_, err := hc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("gateway-blobs"), Key: aws.String("us-west-2/INFLIGHT"), Body: strings.NewReader("young")})
	mustDo(t, err)
	blobs++
	t.Run("after restart", func(t *testing.T) {
		r := servertest.Start(t, opts)
		check(t, r.Client(t))
		// The start-up sweep, over a store others may share, keeps
		// young blobs.
		if n := hosted(t); n != blobs {
			t.Fatalf("%d blobs after the restart, want %d", n, blobs)
		}
	})
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.Contains(p, string(filepath.Separator)+"blobs") {
			t.Errorf("blob store in the region's own data directory: %s", p)
		}
		return err
	})
	mustDo(t, err)
}

func getRange(t *testing.T, c *s3.Client, key, rng string) []byte {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String("photos"), Key: aws.String(key)}
	if rng != "" {
		in.Range = aws.String(rng)
	}
	out, err := c.GetObject(context.Background(), in)
	mustDo(t, err)
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	mustDo(t, err)
	return b
}
