package servertest

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CLI runs the aws command line against a region, as the first account's
// root user, with a configuration of its own (nothing read from the
// user's ~/.aws).
type CLI struct {
	t        testing.TB
	bin      string
	endpoint string
	env      []string
}

// AWSCLI returns the aws CLI aimed at r; the test skips (fails under
// CI=true) when aws is not installed.
func AWSCLI(t testing.TB, r *Region) *CLI {
	t.Helper()
	home := t.TempDir()
	env := append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+AccessKey,
		"AWS_SECRET_ACCESS_KEY="+SecretKey,
		"AWS_SESSION_TOKEN=",
		"AWS_DEFAULT_REGION="+r.Store.Region(),
		"AWS_CONFIG_FILE="+filepath.Join(home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(home, "credentials"),
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
	)
	if r.CAFile != "" {
		env = append(env, "AWS_CA_BUNDLE="+r.CAFile)
	}
	return &CLI{t: t, bin: RequireTool(t, "aws"), endpoint: r.URL(), env: env}
}

// Exec runs an aws command and returns its decoded JSON output (empty for
// none), its stderr and whether it succeeded.
func (a *CLI) Exec(args ...string) (map[string]any, string, bool) {
	a.t.Helper()
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.endpoint, "--output", "json"}, args...)...)
	cmd.Env = a.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), false
	}
	res := map[string]any{}
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &res); err != nil {
			a.t.Fatalf("aws %s: output %q: %v", strings.Join(args, " "), out, err)
		}
	}
	return res, "", true
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
