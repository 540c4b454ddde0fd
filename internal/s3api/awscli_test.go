package s3api_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

type awsCLI struct {
	t        *testing.T
	bin      string
	endpoint string
	env      []string
}

func newAWSCLI(t *testing.T, r *servertest.Region) *awsCLI {
	bin := servertest.RequireTool(t, "aws")
	home := t.TempDir()
	env := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+servertest.AccessKey,
		"AWS_SECRET_ACCESS_KEY="+servertest.SecretKey,
		"AWS_DEFAULT_REGION=us-west-2",
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_PAGER=",
	)
	if r.CAFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+r.CAFile)
	}
	return &awsCLI{t: t, bin: bin, endpoint: r.URL(), env: env}
}

// try runs an aws command and returns its decoded JSON output, or nil when
// the command fails.
func (a *awsCLI) try(args ...string) map[string]any {
	a.t.Helper()
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.endpoint, "--output", "json"}, args...)...)
	cmd.Env = a.env
	out, err := cmd.Output()
	if err != nil {
		return nil
	}
	res := map[string]any{}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil
	}
	return res
}

// run runs an aws command and decodes its JSON output, if any.
func (a *awsCLI) run(args ...string) map[string]any {
	a.t.Helper()
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.endpoint, "--output", "json"}, args...)...)
	cmd.Env = a.env
	out, err := cmd.Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		a.t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	res := map[string]any{}
	if len(strings.TrimSpace(string(out))) > 0 && strings.HasPrefix(strings.TrimSpace(string(out)), "{") {
		if err := json.Unmarshal(out, &res); err != nil {
			a.t.Fatalf("aws %s: output %q: %v", strings.Join(args, " "), out, err)
		}
	}
	return res
}

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
			aws := newAWSCLI(t, r)
			dir := t.TempDir()
			file := filepath.Join(dir, "note.txt")
			if err := os.WriteFile(file, []byte("first version\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			aws.run("s3api", "create-bucket", "--bucket", "cli-bucket", "--create-bucket-configuration", "LocationConstraint=us-west-2")
			aws.run("s3api", "put-bucket-versioning", "--bucket", "cli-bucket", "--versioning-configuration", "Status=Enabled")
			if st := aws.run("s3api", "get-bucket-versioning", "--bucket", "cli-bucket")["Status"]; st != "Enabled" {
				t.Fatalf("versioning status %v", st)
			}
			v1 := aws.run("s3api", "put-object", "--bucket", "cli-bucket", "--key", "docs/note.txt", "--body", file)["VersionId"].(string)
			if err := os.WriteFile(file, []byte("second version\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			aws.run("s3api", "put-object", "--bucket", "cli-bucket", "--key", "docs/note.txt", "--body", file)
			versions := aws.run("s3api", "list-object-versions", "--bucket", "cli-bucket")["Versions"].([]any)
			if len(versions) != 2 {
				t.Fatalf("list-object-versions: %d versions", len(versions))
			}
			del := aws.run("s3api", "delete-object", "--bucket", "cli-bucket", "--key", "docs/note.txt")
			if del["DeleteMarker"] != true {
				t.Fatalf("delete-object: %v", del)
			}
			out := filepath.Join(dir, "out.txt")
			got := aws.run("s3api", "get-object", "--bucket", "cli-bucket", "--key", "docs/note.txt", "--version-id", v1, out)
			if got["VersionId"] != v1 {
				t.Fatalf("get-object version %v", got["VersionId"])
			}
			if b, _ := os.ReadFile(out); string(b) != "first version\n" {
				t.Fatalf("get-object --version-id content %q", b)
			}
			aws.run("s3", "cp", file, "s3://cli-bucket/copied/note.txt")
			aws.run("s3", "cp", "s3://cli-bucket/copied/note.txt", filepath.Join(dir, "back.txt"))
			if b, _ := os.ReadFile(filepath.Join(dir, "back.txt")); string(b) != "second version\n" {
				t.Fatalf("s3 cp round trip %q", b)
			}
		})
	}
}
