package servertest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CLI runs the aws command line against an endpoint with a configuration
// of its own (nothing read from the user's ~/.aws).
type CLI struct {
	t        testing.TB
	bin      string
	endpoint string
	region   string
	home     string
	caFile   string
	// The credentials it signs with.
	access, secret, token string
}

// AWSCLI returns the aws CLI aimed at r, as the first account's root user;
// the test skips (fails under CI=true) when aws is not installed.
func AWSCLI(t testing.TB, r *Region) *CLI {
	t.Helper()
	a := NewCLI(t, r.URL(), r.Store.Region(), AccessKey, SecretKey)
	a.caFile = r.CAFile
	return a
}

// NewCLI returns the aws CLI aimed at endpoint, signing for region with the
// given key.
func NewCLI(t testing.TB, endpoint, region, accessKey, secretKey string) *CLI {
	t.Helper()
	return &CLI{t: t, bin: RequireTool(t, "aws"), endpoint: endpoint, region: region, home: t.TempDir(), access: accessKey, secret: secretKey}
}

// As returns the CLI signing with another key (and session token, or "").
func (a *CLI) As(accessKey, secretKey, token string) *CLI {
	b := *a
	b.access, b.secret, b.token = accessKey, secretKey, token
	return &b
}

// Text runs an aws command that must succeed and returns what it printed,
// trimmed (for commands that print text, as `aws s3 presign`).
func (a *CLI) Text(args ...string) string {
	a.t.Helper()
	out, stderr, ok := a.exec(args)
	if !ok {
		a.t.Fatalf("aws %s: %s", strings.Join(args, " "), stderr)
	}
	return strings.TrimSpace(out)
}

// Exec runs an aws command and returns its decoded JSON output (empty for
// none, or for output that is not a JSON object, as `aws s3` prints), its
// stderr and whether it succeeded.
func (a *CLI) Exec(args ...string) (map[string]any, string, bool) {
	a.t.Helper()
	out, stderr, ok := a.exec(args)
	if !ok {
		return nil, stderr, false
	}
	res := map[string]any{}
	if s := strings.TrimSpace(out); strings.HasPrefix(s, "{") {
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			a.t.Fatalf("aws %s: output %q: %v", strings.Join(args, " "), out, err)
		}
	}
	return res, "", true
}

// exec runs aws with args and returns its stdout, its stderr and whether
// it succeeded.
func (a *CLI) exec(args []string) (string, string, bool) {
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.endpoint, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+a.access,
		"AWS_SECRET_ACCESS_KEY="+a.secret,
		"AWS_SESSION_TOKEN="+a.token,
		"AWS_DEFAULT_REGION="+a.region,
		"AWS_CONFIG_FILE="+filepath.Join(a.home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(a.home, "credentials"),
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
	)
	if a.caFile != "" {
		cmd.Env = append(cmd.Env, "AWS_CA_BUNDLE="+a.caFile)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	return string(out), stderr.String(), err == nil
}

// Run runs an aws command that must succeed.
func (a *CLI) Run(args ...string) map[string]any {
	a.t.Helper()
	res, stderr, ok := a.Exec(args...)
	if !ok {
		a.t.Fatalf("aws %s: %s", strings.Join(args, " "), stderr)
	}
	return res
}

// Try runs an aws command and returns its output, or nil when it fails.
func (a *CLI) Try(args ...string) map[string]any {
	a.t.Helper()
	res, _, ok := a.Exec(args...)
	if !ok {
		return nil
	}
	return res
}

// Fail runs an aws command that must fail with the AWS error code, and
// returns its stderr.
func (a *CLI) Fail(code string, args ...string) string {
	a.t.Helper()
	_, stderr, ok := a.Exec(args...)
	if ok || !strings.Contains(stderr, "("+code+")") {
		a.t.Fatalf("aws %s: want %s, got ok=%v %s", strings.Join(args, " "), code, ok, stderr)
	}
	return stderr
}
