package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestScrubCommand runs `bulwark scrub` over a region whose only object
// lost its data: it reports the damage, exits 1, and --status shows the
// pass; another account may not scrub.
func TestScrubCommand(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	versioned(t, c, "scrub-me", "us-west-2")
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String("scrub-me"), Key: aws.String("k"),
		Body: strings.NewReader(strings.Repeat("x", 100<<10))})
	if err != nil {
		t.Fatal(err)
	}
	env := ownerEnv(r.URL())
	if code, stdout, stderr := runCommand(t, env, "scrub"); code != 0 || !strings.Contains(stdout, "damaged 0, repaired 0") {
		t.Fatalf("clean scrub: %d\n%s\n%s", code, stdout, stderr)
	}
	v, err := r.Store.VersionRecord(context.Background(), "scrub-me", "k", aws.ToString(out.VersionId))
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(r.Dir, "blobs", "*", v.BlobID))
	if len(files) != 1 {
		t.Fatalf("blob files %v", files)
	}
	if err := os.Truncate(files[0], 10); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCommand(t, env, "scrub", "-bucket", "scrub-me")
	if code != 1 || !strings.Contains(stdout, "scrub-me/k") || !strings.Contains(stdout, "NOT REPAIRED") || !strings.Contains(stderr, "unrepaired") {
		t.Fatalf("scrub of a damaged bucket: %d\n%s\n%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCommand(t, env, "scrub", "-status"); code != 0 || !strings.Contains(stdout, "missing") {
		t.Fatalf("scrub -status: %d\n%s", code, stdout)
	}
	other := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_ACCESS_KEY_ID": servertest.OtherAccessKey, "AWS_SECRET_ACCESS_KEY": servertest.OtherSecretKey}
	if code, _, stderr := runCommand(t, other, "scrub"); code != 1 || !strings.Contains(stderr, "AccessDenied") {
		t.Fatalf("another account's scrub: %d %s", code, stderr)
	}
}
