package s3api_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestAWSCLI runs the aws CLI's s3api and s3 commands against a region,
// over HTTP and over HTTPS (where botocore sends aws-chunked bodies with a
// trailing checksum).
func TestAWSCLI(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		name := "http"
		if tlsOn {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			r := servertest.Start(t, servertest.Options{TLS: tlsOn})
			aws := servertest.AWSCLI(t, r)
			dir := t.TempDir()
			file := filepath.Join(dir, "note.txt")
			if err := os.WriteFile(file, []byte("first version\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			aws.Run("s3api", "create-bucket", "--bucket", "cli-bucket", "--create-bucket-configuration", "LocationConstraint=us-west-2")
			aws.Run("s3api", "put-bucket-versioning", "--bucket", "cli-bucket", "--versioning-configuration", "Status=Enabled")
			if st := aws.Run("s3api", "get-bucket-versioning", "--bucket", "cli-bucket")["Status"]; st != "Enabled" {
				t.Fatalf("versioning status %v", st)
			}
			v1 := aws.Run("s3api", "put-object", "--bucket", "cli-bucket", "--key", "docs/note.txt", "--body", file)["VersionId"].(string)
			if err := os.WriteFile(file, []byte("second version\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			aws.Run("s3api", "put-object", "--bucket", "cli-bucket", "--key", "docs/note.txt", "--body", file)
			versions := aws.Run("s3api", "list-object-versions", "--bucket", "cli-bucket")["Versions"].([]any)
			if len(versions) != 2 {
				t.Fatalf("list-object-versions: %d versions", len(versions))
			}
			del := aws.Run("s3api", "delete-object", "--bucket", "cli-bucket", "--key", "docs/note.txt")
			if del["DeleteMarker"] != true {
				t.Fatalf("delete-object: %v", del)
			}
			out := filepath.Join(dir, "out.txt")
			got := aws.Run("s3api", "get-object", "--bucket", "cli-bucket", "--key", "docs/note.txt", "--version-id", v1, out)
			if got["VersionId"] != v1 {
				t.Fatalf("get-object version %v", got["VersionId"])
			}
			if b, _ := os.ReadFile(out); string(b) != "first version\n" {
				t.Fatalf("get-object --version-id content %q", b)
			}
			aws.Run("s3", "cp", file, "s3://cli-bucket/copied/note.txt")
			aws.Run("s3", "cp", "s3://cli-bucket/copied/note.txt", filepath.Join(dir, "back.txt"))
			if b, _ := os.ReadFile(filepath.Join(dir, "back.txt")); string(b) != "second version\n" {
				t.Fatalf("s3 cp round trip %q", b)
			}
		})
	}
}
