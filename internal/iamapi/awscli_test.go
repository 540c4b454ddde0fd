package iamapi_test

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
	home     string
}

func (e *env) cli() *awsCLI {
	return &awsCLI{t: e.t, bin: servertest.RequireTool(e.t, "aws"), endpoint: e.url, home: e.t.TempDir()}
}

// exec runs an aws command signed with c and returns its output, its
// stderr and whether it succeeded.
func (a *awsCLI) exec(c creds, args ...string) (map[string]any, string, bool) {
	a.t.Helper()
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.endpoint, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+c.access,
		"AWS_SECRET_ACCESS_KEY="+c.secret,
		"AWS_SESSION_TOKEN="+c.token,
		"AWS_DEFAULT_REGION="+region,
		"AWS_CONFIG_FILE="+filepath.Join(a.home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(a.home, "credentials"),
		"AWS_PAGER=",
	)
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

func (a *awsCLI) run(c creds, args ...string) map[string]any {
	a.t.Helper()
	res, stderr, ok := a.exec(c, args...)
	if !ok {
		a.t.Fatalf("aws %s: %s", strings.Join(args, " "), stderr)
	}
	return res
}

// fail runs an aws command that must fail with code.
func (a *awsCLI) fail(c creds, code string, args ...string) {
	a.t.Helper()
	_, stderr, ok := a.exec(c, args...)
	if ok || !strings.Contains(stderr, "("+code+")") {
		a.t.Fatalf("aws %s: want %s, got ok=%v %s", strings.Join(args, " "), code, ok, stderr)
	}
}

func field(m map[string]any, path ...string) any {
	var v any = m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func TestAWSCLI(t *testing.T) {
	e := newEnv(t)
	a := e.cli()
	u := a.run(root, "iam", "create-user", "--user-name", "alice")
	userARN := field(u, "User", "Arn")
	if userARN != "arn:aws:iam::"+account+":user/alice" {
		t.Fatalf("create-user: %v", u)
	}
	a.fail(root, "EntityAlreadyExists", "iam", "create-user", "--user-name", "alice")

	roleARN := "arn:aws:iam::" + account + ":role/deployer"
	a.run(root, "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "assume",
		"--policy-document", allow(roleARN, "sts:AssumeRole"))
	// The CLI decodes the document IAM sends URL-encoded.
	p := a.run(root, "iam", "get-user-policy", "--user-name", "alice", "--policy-name", "assume")
	if field(p, "PolicyDocument", "Version") != "2012-10-17" {
		t.Fatalf("get-user-policy: %v", p)
	}
	k := a.run(root, "iam", "create-access-key", "--user-name", "alice")
	alice := creds{access: field(k, "AccessKey", "AccessKeyId").(string), secret: field(k, "AccessKey", "SecretAccessKey").(string)}
	id := a.run(alice, "sts", "get-caller-identity")
	if id["Arn"] != userARN || id["Account"] != account {
		t.Fatalf("get-caller-identity as alice: %v", id)
	}
	a.fail(alice, "AccessDenied", "iam", "create-user", "--user-name", "carol")

	r := a.run(root, "iam", "create-role", "--role-name", "deployer", "--assume-role-policy-document", trustAccount)
	if field(r, "Role", "Arn") != roleARN || field(r, "Role", "AssumeRolePolicyDocument", "Version") != "2012-10-17" {
		t.Fatalf("create-role: %v", r)
	}
	s := a.run(alice, "sts", "assume-role", "--role-arn", roleARN, "--role-session-name", "cli")
	session := creds{
		access: field(s, "Credentials", "AccessKeyId").(string),
		secret: field(s, "Credentials", "SecretAccessKey").(string),
		token:  field(s, "Credentials", "SessionToken").(string),
	}
	sid := a.run(session, "sts", "get-caller-identity")
	if sid["Arn"] != "arn:aws:sts::"+account+":assumed-role/deployer/cli" {
		t.Fatalf("get-caller-identity as the session: %v", sid)
	}

	users := a.run(root, "iam", "list-users")
	if list, _ := users["Users"].([]any); len(list) != 1 {
		t.Fatalf("list-users: %v", users)
	}
	a.run(root, "iam", "update-access-key", "--user-name", "alice", "--access-key-id", alice.access, "--status", "Inactive")
	a.fail(alice, "InvalidClientTokenId", "sts", "get-caller-identity")
	a.fail(root, "DeleteConflict", "iam", "delete-user", "--user-name", "alice")
}
