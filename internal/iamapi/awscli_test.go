package iamapi_test

import (
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// awsCLI is the aws CLI aimed at the env's handler; as picks who signs.
type awsCLI struct{ *servertest.CLI }

func (e *env) cli() awsCLI {
	return awsCLI{servertest.NewCLI(e.t, e.url, region, rootAccess, rootSecret)}
}

func (a awsCLI) as(c creds) *servertest.CLI { return a.As(c.access, c.secret, c.token) }

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
	u := a.as(root).Run("iam", "create-user", "--user-name", "alice")
	userARN := field(u, "User", "Arn")
	if userARN != "arn:aws:iam::"+account+":user/alice" {
		t.Fatalf("create-user: %v", u)
	}
	a.as(root).Fail("EntityAlreadyExists", "iam", "create-user", "--user-name", "alice")

	roleARN := "arn:aws:iam::" + account + ":role/deployer"
	a.as(root).Run("iam", "put-user-policy", "--user-name", "alice", "--policy-name", "assume",
		"--policy-document", allow(roleARN, "sts:AssumeRole"))
	// The CLI decodes the document IAM sends URL-encoded.
	p := a.as(root).Run("iam", "get-user-policy", "--user-name", "alice", "--policy-name", "assume")
	if field(p, "PolicyDocument", "Version") != "2012-10-17" {
		t.Fatalf("get-user-policy: %v", p)
	}
	k := a.as(root).Run("iam", "create-access-key", "--user-name", "alice")
	alice := creds{access: field(k, "AccessKey", "AccessKeyId").(string), secret: field(k, "AccessKey", "SecretAccessKey").(string)}
	id := a.as(alice).Run("sts", "get-caller-identity")
	if id["Arn"] != userARN || id["Account"] != account {
		t.Fatalf("get-caller-identity as alice: %v", id)
	}
	a.as(alice).Fail("AccessDenied", "iam", "create-user", "--user-name", "carol")

	r := a.as(root).Run("iam", "create-role", "--role-name", "deployer", "--assume-role-policy-document", trustAccount)
	if field(r, "Role", "Arn") != roleARN || field(r, "Role", "AssumeRolePolicyDocument", "Version") != "2012-10-17" {
		t.Fatalf("create-role: %v", r)
	}
	s := a.as(alice).Run("sts", "assume-role", "--role-arn", roleARN, "--role-session-name", "cli")
	session := creds{
		access: field(s, "Credentials", "AccessKeyId").(string),
		secret: field(s, "Credentials", "SecretAccessKey").(string),
		token:  field(s, "Credentials", "SessionToken").(string),
	}
	sid := a.as(session).Run("sts", "get-caller-identity")
	if sid["Arn"] != "arn:aws:sts::"+account+":assumed-role/deployer/cli" {
		t.Fatalf("get-caller-identity as the session: %v", sid)
	}

	users := a.as(root).Run("iam", "list-users")
	if list, _ := users["Users"].([]any); len(list) != 1 {
		t.Fatalf("list-users: %v", users)
	}
	a.as(root).Run("iam", "update-access-key", "--user-name", "alice", "--access-key-id", alice.access, "--status", "Inactive")
	a.as(alice).Fail("InvalidClientTokenId", "sts", "get-caller-identity")
	a.as(root).Fail("DeleteConflict", "iam", "delete-user", "--user-name", "alice")
}
