package server_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestRegionOnPostgres serves a region whose metadata is in PostgreSQL:
// PUT, GET and LIST through the S3 API, then a restart that finds every
// object, with no bbolt file in the data directory.
func TestRegionOnPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	dir := t.TempDir()
	ctx := context.Background()
	opts := servertest.Options{Dir: dir, Configure: func(c *server.Config) { c.MetaDSN = dsn }}
	keys := []string{"a.txt", "dir/b.txt", "dir/c.txt"}
	t.Run("first start", func(t *testing.T) {
		c := servertest.Start(t, opts).Client(t)
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("pgbucket"),
			CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("pgbucket"),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			for _, body := range []string{"old " + k, "body of " + k} {
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("pgbucket"), Key: aws.String(k), Body: strings.NewReader(body)}); err != nil {
					t.Fatal(err)
				}
			}
		}
		checkPGBucket(t, c, keys)
	})
	if _, err := os.Stat(filepath.Join(dir, "meta.db")); !os.IsNotExist(err) {
		t.Fatalf("a region on PostgreSQL made a bbolt file: %v", err)
	}
	t.Run("after restart", func(t *testing.T) {
		c := servertest.Start(t, opts).Client(t)
		checkPGBucket(t, c, keys)
		vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("pgbucket")})
		if err != nil || len(vs.Versions) != 2*len(keys) {
			t.Fatalf("ListObjectVersions after restart: %d versions, %v; want %d", len(vs.Versions), err, 2*len(keys))
		}
	})
}

func checkPGBucket(t *testing.T, c *s3.Client, keys []string) {
	t.Helper()
	ctx := context.Background()
	out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("pgbucket"), Prefix: aws.String("dir/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 2 || aws.ToString(out.Contents[0].Key) != "dir/b.txt" || aws.ToString(out.Contents[1].Key) != "dir/c.txt" {
		t.Fatalf("LIST dir/: %d keys", len(out.Contents))
	}
	for _, k := range keys {
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("pgbucket"), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		body, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil || string(body) != "body of "+k {
			t.Fatalf("GET %s = %q, %v", k, body, err)
		}
	}
}
