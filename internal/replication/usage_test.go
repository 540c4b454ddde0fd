package replication_test

import (
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// TestUsageCounts checks that every replicated request is counted once,
// with its bytes, by rule and destination, and that the counts survive in
// the metadata store (they are read back from it, not from memory).
func TestUsageCounts(t *testing.T) {
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	putReplication(t, c, "src", v1Rule("dst"))
	var last *s3.PutObjectOutput
	for i, n := range []int{1000, 2000, 3000} {
		last = put(t, c, "src", string(rune('a'+i)), random(n))
	}
	waitStatus(t, c, "src", "c", *last.VersionId, types.ReplicationStatusCompleted)
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("src"), Key: aws.String("a")}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "usage", func() error {
		us, err := r.Replication.Usage(ctx, "src")
		if err != nil {
			return err
		}
		if len(us) != 1 {
			return fmt.Errorf("usage %+v, want one series", us)
		}
		u := us[0]
		if u.Bucket != "src" || u.Destination != "dst" || u.Requests != 4 || u.Bytes != 6000 || u.Since.IsZero() {
			return fmt.Errorf("usage %+v, want 4 requests of 6000 bytes from src to dst", u)
		}
		return nil
	})
	if us, err := r.Replication.Usage(ctx, "sr"); err != nil || len(us) != 0 {
		t.Fatalf("usage of another bucket's prefix: %+v %v", us, err)
	}
}
