package iamapi_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/iam/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// allow is an identity policy allowing actions on resource.
func allow(resource string, actions ...string) string {
	b, _ := json.Marshal(map[string]any{
		"Version":   "2012-10-17",
		"Statement": []any{map[string]any{"Effect": "Allow", "Action": actions, "Resource": resource}},
	})
	return string(b)
}

// trustAccount is a trust policy naming every principal of the account.
const trustAccount = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":"sts:AssumeRole"}]}`

// newUser creates a user with an access key and the given inline policy
// ("" for none), as root.
func (e *env) newUser(name, policy string) creds {
	e.t.Helper()
	t := e.t
	c := e.iam(root)
	must[*awsiam.CreateUserOutput](t)(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String(name)}))
	if policy != "" {
		must[*awsiam.PutUserPolicyOutput](t)(c.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{
			UserName: aws.String(name), PolicyName: aws.String("p"), PolicyDocument: aws.String(policy)}))
	}
	k := must[*awsiam.CreateAccessKeyOutput](t)(c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String(name)}))
	return creds{access: aws.ToString(k.AccessKey.AccessKeyId), secret: aws.ToString(k.AccessKey.SecretAccessKey)}
}

func (e *env) whoami(c creds) (*sts.GetCallerIdentityOutput, error) {
	return e.sts(c).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
}

func TestRootCreatesUserKeyAndInlinePolicy(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	u := must[*awsiam.CreateUserOutput](t)(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice"), Path: aws.String("/eng/")}))
	if got, want := aws.ToString(u.User.Arn), "arn:aws:iam::"+account+":user/eng/alice"; got != want {
		t.Fatalf("user ARN %s, want %s", got, want)
	}
	if !strings.HasPrefix(aws.ToString(u.User.UserId), "AIDA") || u.User.CreateDate == nil {
		t.Fatalf("user %+v", u.User)
	}
	doc := allow("*", "iam:GetUser", "iam:ListAccessKeys")
	must[*awsiam.PutUserPolicyOutput](t)(c.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("self"), PolicyDocument: aws.String(doc)}))
	got := must[*awsiam.GetUserPolicyOutput](t)(c.GetUserPolicy(ctx, &awsiam.GetUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("self")}))
	// The SDK hands back the document as IAM sends it: URL-encoded.
	if raw := aws.ToString(got.PolicyDocument); !strings.HasPrefix(raw, "%7B%22") {
		t.Fatalf("document %q is not URL-encoded", raw)
	}
	if dec, err := url.PathUnescape(aws.ToString(got.PolicyDocument)); err != nil || dec != doc {
		t.Fatalf("document decodes to %q (%v), want %q", dec, err, doc)
	}
	names := must[*awsiam.ListUserPoliciesOutput](t)(c.ListUserPolicies(ctx, &awsiam.ListUserPoliciesInput{UserName: aws.String("alice")}))
	if fmt.Sprint(names.PolicyNames) != "[self]" {
		t.Fatalf("policy names %v", names.PolicyNames)
	}
	k := must[*awsiam.CreateAccessKeyOutput](t)(c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")}))
	if aws.ToString(k.AccessKey.SecretAccessKey) == "" || aws.ToString(k.AccessKey.UserName) != "alice" || k.AccessKey.Status != types.StatusTypeActive {
		t.Fatalf("access key %+v", k.AccessKey)
	}
	alice := creds{access: aws.ToString(k.AccessKey.AccessKeyId), secret: aws.ToString(k.AccessKey.SecretAccessKey)}

	id := must[*sts.GetCallerIdentityOutput](t)(e.whoami(alice))
	if aws.ToString(id.Arn) != aws.ToString(u.User.Arn) || aws.ToString(id.UserId) != aws.ToString(u.User.UserId) || aws.ToString(id.Account) != account {
		t.Fatalf("caller identity %s %s %s", aws.ToString(id.Arn), aws.ToString(id.UserId), aws.ToString(id.Account))
	}
	// With no UserName, GetUser and ListAccessKeys are about the caller.
	self := must[*awsiam.GetUserOutput](t)(e.iam(alice).GetUser(ctx, &awsiam.GetUserInput{}))
	if aws.ToString(self.User.UserName) != "alice" {
		t.Fatalf("GetUser as alice: %+v", self.User)
	}
	keys := must[*awsiam.ListAccessKeysOutput](t)(e.iam(alice).ListAccessKeys(ctx, &awsiam.ListAccessKeysInput{}))
	if len(keys.AccessKeyMetadata) != 1 || aws.ToString(keys.AccessKeyMetadata[0].AccessKeyId) != alice.access {
		t.Fatalf("keys %+v", keys.AccessKeyMetadata)
	}
	// Root's own identity.
	r := must[*awsiam.GetUserOutput](t)(c.GetUser(ctx, &awsiam.GetUserInput{}))
	if aws.ToString(r.User.Arn) != "arn:aws:iam::"+account+":root" || aws.ToString(r.User.UserId) != account {
		t.Fatalf("GetUser as root: %+v", r.User)
	}
	rid := must[*sts.GetCallerIdentityOutput](t)(e.whoami(root))
	if aws.ToString(rid.UserId) != account || aws.ToString(rid.Arn) != "arn:aws:iam::"+account+":root" {
		t.Fatalf("root identity %s %s", aws.ToString(rid.UserId), aws.ToString(rid.Arn))
	}
}

func TestUserWithoutPermissionIsDenied(t *testing.T) {
	e := newEnv(t)
	bob := e.newUser("bob", "")
	_, err := e.iam(bob).CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("carol")})
	wantCode(t, err, "AccessDenied", 403)
	want := "User: arn:aws:iam::" + account + ":user/bob is not authorized to perform: iam:CreateUser on resource: arn:aws:iam::" + account + ":user/carol"
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("message %q does not say %q", err, want)
	}
	// Nothing was created.
	_, err = e.iam(root).GetUser(ctx, &awsiam.GetUserInput{UserName: aws.String("carol")})
	wantCode(t, err, "NoSuchEntity", 404)
	// A user may still ask who it is.
	if _, err := e.whoami(bob); err != nil {
		t.Fatal(err)
	}
}

func TestUserWithIAMPolicyManagesUsers(t *testing.T) {
	e := newEnv(t)
	admin := e.newUser("admin", allow("arn:aws:iam::"+account+":user/*", "iam:CreateUser", "iam:DeleteUser"))
	c := e.iam(admin)
	must[*awsiam.CreateUserOutput](t)(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("dave")}))
	must[*awsiam.DeleteUserOutput](t)(c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("dave")}))
	// The policy names users only.
	_, err := c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String(trustAccount)})
	wantCode(t, err, "AccessDenied", 403)
}

func TestAssumeRole(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	role := must[*awsiam.CreateRoleOutput](t)(c.CreateRole(ctx, &awsiam.CreateRoleInput{
		RoleName: aws.String("deployer"), AssumeRolePolicyDocument: aws.String(trustAccount), Description: aws.String("deploys"),
	}))
	roleARN := aws.ToString(role.Role.Arn)
	if roleARN != "arn:aws:iam::"+account+":role/deployer" || aws.ToString(role.Role.AssumeRolePolicyDocument) == "" ||
		aws.ToInt32(role.Role.MaxSessionDuration) != 3600 {
		t.Fatalf("role %+v", role.Role)
	}
	must[*awsiam.PutRolePolicyOutput](t)(c.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{
		RoleName: aws.String("deployer"), PolicyName: aws.String("list"), PolicyDocument: aws.String(allow("*", "iam:ListUsers")),
	}))
	alice := e.newUser("alice", allow(roleARN, "sts:AssumeRole"))

	out := must[*sts.AssumeRoleOutput](t)(e.sts(alice).AssumeRole(ctx, &sts.AssumeRoleInput{
		RoleArn: aws.String(roleARN), RoleSessionName: aws.String("ci-run"), DurationSeconds: aws.Int32(900),
	}))
	cr := out.Credentials
	if !strings.HasPrefix(aws.ToString(cr.AccessKeyId), "ASIA") || aws.ToString(cr.SessionToken) == "" || cr.Expiration == nil ||
		cr.Expiration.Sub(time.Now()) > 16*time.Minute {
		t.Fatalf("credentials %+v", cr)
	}
	sessionARN := "arn:aws:sts::" + account + ":assumed-role/deployer/ci-run"
	if aws.ToString(out.AssumedRoleUser.Arn) != sessionARN || aws.ToString(out.AssumedRoleUser.AssumedRoleId) != aws.ToString(role.Role.RoleId)+":ci-run" {
		t.Fatalf("assumed role user %+v", out.AssumedRoleUser)
	}
	session := creds{aws.ToString(cr.AccessKeyId), aws.ToString(cr.SecretAccessKey), aws.ToString(cr.SessionToken)}
	id := must[*sts.GetCallerIdentityOutput](t)(e.whoami(session))
	if aws.ToString(id.Arn) != sessionARN || aws.ToString(id.UserId) != aws.ToString(role.Role.RoleId)+":ci-run" {
		t.Fatalf("session identity %s %s", aws.ToString(id.Arn), aws.ToString(id.UserId))
	}
	// The session has the role's permissions, not alice's.
	must[*awsiam.ListUsersOutput](t)(e.iam(session).ListUsers(ctx, &awsiam.ListUsersInput{}))
	_, err := e.iam(session).CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("x")})
	wantCode(t, err, "AccessDenied", 403)
	if !strings.Contains(err.Error(), "User: "+sessionARN+" is not authorized") {
		t.Fatalf("denial names %v", err)
	}
	// A role session has no user to default to.
	_, err = e.iam(session).GetUser(ctx, &awsiam.GetUserInput{})
	wantCode(t, err, "ValidationError", 400)

	// A token that is not the session's is refused.
	bad := session
	bad.token = strings.ToUpper(bad.token[:8]) + "x" + bad.token[9:]
	_, err = e.whoami(bad)
	wantCode(t, err, "InvalidClientTokenId", 403)
	noToken := session
	noToken.token = ""
	_, err = e.whoami(noToken)
	wantCode(t, err, "InvalidClientTokenId", 403)

	// Once the session expires it is refused.
	e.clock.advance(16 * time.Minute)
	_, err = e.whoami(session)
	wantCode(t, err, "ExpiredToken", 403)
	if !strings.Contains(err.Error(), "The security token included in the request is expired") {
		t.Fatalf("message: %v", err)
	}
}

func TestAssumeRoleRefusals(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	role := must[*awsiam.CreateRoleOutput](t)(c.CreateRole(ctx, &awsiam.CreateRoleInput{
		RoleName: aws.String("deployer"), AssumeRolePolicyDocument: aws.String(trustAccount),
	}))
	roleARN := aws.ToString(role.Role.Arn)
	alice := e.newUser("alice", allow(roleARN, "sts:AssumeRole"))
	s := e.sts(alice)

	// A role that does not exist is refused the same way as one the
	// caller may not assume.
	_, err := s.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("arn:aws:iam::" + account + ":role/nope"), RoleSessionName: aws.String("s1")})
	wantCode(t, err, "AccessDenied", 403)
	if !strings.Contains(err.Error(), "is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::"+account+":role/nope") {
		t.Fatalf("message: %v", err)
	}
	// Longer than the role allows.
	_, err = s.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s1"), DurationSeconds: aws.Int32(7200)})
	wantCode(t, err, "ValidationError", 400)
	// Not a role ARN.
	_, err = s.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String("deployer"), RoleSessionName: aws.String("s1")})
	wantCode(t, err, "ValidationError", 400)
	// Session policies would narrow the session; Bulwark refuses rather
	// than ignore them.
	_, err = s.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(roleARN), RoleSessionName: aws.String("s1"), Policy: aws.String(allow("*", "s3:GetObject"))})
	wantCode(t, err, "ValidationError", 400)
}

// TestAssumeRoleTrustRules pins AWS's rules for assuming a role in the
// same account: the trust policy must always allow the caller, and a trust
// policy that names only the account delegates to the caller's identity
// policies, which must allow sts:AssumeRole too.
func TestAssumeRoleTrustRules(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	role := must[*awsiam.CreateRoleOutput](t)(c.CreateRole(ctx, &awsiam.CreateRoleInput{
		RoleName: aws.String("deployer"), AssumeRolePolicyDocument: aws.String(trustAccount),
	}))
	// The trust policy names the account; bob's own policies allow nothing.
	bob := e.newUser("bob", "")
	_, err := e.sts(bob).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Role.Arn, RoleSessionName: aws.String("s1")})
	wantCode(t, err, "AccessDenied", 403)
	// Alice may assume any role, but the trust policy names someone else.
	alice := e.newUser("alice", allow("*", "sts:AssumeRole"))
	must[*awsiam.UpdateAssumeRolePolicyOutput](t)(c.UpdateAssumeRolePolicy(ctx, &awsiam.UpdateAssumeRolePolicyInput{
		RoleName: aws.String("deployer"), PolicyDocument: aws.String(strings.ReplaceAll(trustAccount, ":root", ":user/bob")),
	}))
	_, err = e.sts(alice).AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: role.Role.Arn, RoleSessionName: aws.String("s1")})
	wantCode(t, err, "AccessDenied", 403)
}

func TestKeyStates(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	alice := e.newUser("alice", "")
	if _, err := e.whoami(alice); err != nil {
		t.Fatal(err)
	}
	must[*awsiam.UpdateAccessKeyOutput](t)(c.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{
		UserName: aws.String("alice"), AccessKeyId: aws.String(alice.access), Status: types.StatusTypeInactive}))
	_, err := e.whoami(alice)
	wantCode(t, err, "InvalidClientTokenId", 403)
	keys := must[*awsiam.ListAccessKeysOutput](t)(c.ListAccessKeys(ctx, &awsiam.ListAccessKeysInput{UserName: aws.String("alice")}))
	if len(keys.AccessKeyMetadata) != 1 || keys.AccessKeyMetadata[0].Status != types.StatusTypeInactive {
		t.Fatalf("keys %+v", keys.AccessKeyMetadata)
	}
	must[*awsiam.UpdateAccessKeyOutput](t)(c.UpdateAccessKey(ctx, &awsiam.UpdateAccessKeyInput{
		UserName: aws.String("alice"), AccessKeyId: aws.String(alice.access), Status: types.StatusTypeActive}))
	if _, err := e.whoami(alice); err != nil {
		t.Fatal(err)
	}

	// A user with keys cannot be deleted.
	_, err = c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")})
	wantCode(t, err, "DeleteConflict", 409)

	must[*awsiam.DeleteAccessKeyOutput](t)(c.DeleteAccessKey(ctx, &awsiam.DeleteAccessKeyInput{
		UserName: aws.String("alice"), AccessKeyId: aws.String(alice.access)}))
	_, err = e.whoami(alice)
	wantCode(t, err, "InvalidClientTokenId", 403)
	_, err = c.DeleteAccessKey(ctx, &awsiam.DeleteAccessKeyInput{UserName: aws.String("alice"), AccessKeyId: aws.String(alice.access)})
	wantCode(t, err, "NoSuchEntity", 404)

	// Two keys at most.
	for range 2 {
		must[*awsiam.CreateAccessKeyOutput](t)(c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")}))
	}
	_, err = c.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("alice")})
	wantCode(t, err, "LimitExceeded", 409)

	// An unknown key.
	_, err = e.whoami(creds{"AKIANOSUCHKEY0000000", "secret", ""})
	wantCode(t, err, "InvalidClientTokenId", 403)
	// A known key with the wrong secret.
	_, err = e.whoami(creds{rootAccess, "not-the-secret", ""})
	wantCode(t, err, "SignatureDoesNotMatch", 403)
}

func TestEntityErrors(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	must[*awsiam.CreateUserOutput](t)(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice")}))
	_, err := c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice")})
	wantCode(t, err, "EntityAlreadyExists", 409)
	if !strings.Contains(err.Error(), "User with name alice already exists.") {
		t.Fatalf("message: %v", err)
	}
	// Names are unique regardless of case.
	_, err = c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("ALICE")})
	wantCode(t, err, "EntityAlreadyExists", 409)
	_, err = c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("bad/name")})
	wantCode(t, err, "InvalidInput", 400)

	_, err = c.GetUser(ctx, &awsiam.GetUserInput{UserName: aws.String("nobody")})
	wantCode(t, err, "NoSuchEntity", 404)
	if !strings.Contains(err.Error(), "The user with name nobody cannot be found.") {
		t.Fatalf("message: %v", err)
	}
	_, err = c.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p"), PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[`)})
	wantCode(t, err, "MalformedPolicyDocument", 400)
	_, err = c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String(`{"Statement":"nope"}`)})
	wantCode(t, err, "MalformedPolicyDocument", 400)
	// IAM's own words, without the parser's prefix or where it was.
	if strings.Contains(err.Error(), "malformed policy document") {
		t.Fatalf("message: %v", err)
	}
	_, err = c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("p"), PolicyDocument: aws.String(`not json`)})
	wantCode(t, err, "MalformedPolicyDocument", 400)
	_, err = c.GetUserPolicy(ctx, &awsiam.GetUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("none")})
	wantCode(t, err, "NoSuchEntity", 404)

	// A user with an inline policy cannot be deleted until it is removed.
	must[*awsiam.PutUserPolicyOutput](t)(c.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p"), PolicyDocument: aws.String(allow("*", "s3:*"))}))
	_, err = c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")})
	wantCode(t, err, "DeleteConflict", 409)
	must[*awsiam.DeleteUserPolicyOutput](t)(c.DeleteUserPolicy(ctx, &awsiam.DeleteUserPolicyInput{UserName: aws.String("alice"), PolicyName: aws.String("p")}))
	must[*awsiam.DeleteUserOutput](t)(c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")}))
	_, err = c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")})
	wantCode(t, err, "NoSuchEntity", 404)
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	must[*awsiam.CreateRoleOutput](t)(c.CreateRole(ctx, &awsiam.CreateRoleInput{
		RoleName: aws.String("a"), Path: aws.String("/svc/"), AssumeRolePolicyDocument: aws.String(trustAccount), MaxSessionDuration: aws.Int32(7200),
	}))
	must[*awsiam.CreateRoleOutput](t)(c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("b"), AssumeRolePolicyDocument: aws.String(trustAccount)}))
	_, err := c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("A"), AssumeRolePolicyDocument: aws.String(trustAccount)})
	wantCode(t, err, "EntityAlreadyExists", 409)

	r := must[*awsiam.GetRoleOutput](t)(c.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("a")}))
	if aws.ToString(r.Role.Arn) != "arn:aws:iam::"+account+":role/svc/a" || aws.ToInt32(r.Role.MaxSessionDuration) != 7200 {
		t.Fatalf("role %+v", r.Role)
	}
	all := must[*awsiam.ListRolesOutput](t)(c.ListRoles(ctx, &awsiam.ListRolesInput{}))
	svc := must[*awsiam.ListRolesOutput](t)(c.ListRoles(ctx, &awsiam.ListRolesInput{PathPrefix: aws.String("/svc/")}))
	if len(all.Roles) != 2 || len(svc.Roles) != 1 || aws.ToString(svc.Roles[0].RoleName) != "a" {
		t.Fatalf("roles: all %d, /svc/ %d", len(all.Roles), len(svc.Roles))
	}

	must[*awsiam.PutRolePolicyOutput](t)(c.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("a"), PolicyName: aws.String("p"), PolicyDocument: aws.String(allow("*", "s3:*"))}))
	rp := must[*awsiam.GetRolePolicyOutput](t)(c.GetRolePolicy(ctx, &awsiam.GetRolePolicyInput{RoleName: aws.String("a"), PolicyName: aws.String("p")}))
	if aws.ToString(rp.RoleName) != "a" || aws.ToString(rp.PolicyName) != "p" || aws.ToString(rp.PolicyDocument) == "" {
		t.Fatalf("role policy %+v", rp)
	}
	names := must[*awsiam.ListRolePoliciesOutput](t)(c.ListRolePolicies(ctx, &awsiam.ListRolePoliciesInput{RoleName: aws.String("a")}))
	if fmt.Sprint(names.PolicyNames) != "[p]" {
		t.Fatalf("role policies %v", names.PolicyNames)
	}
	_, err = c.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String("a")})
	wantCode(t, err, "DeleteConflict", 409)
	must[*awsiam.DeleteRolePolicyOutput](t)(c.DeleteRolePolicy(ctx, &awsiam.DeleteRolePolicyInput{RoleName: aws.String("a"), PolicyName: aws.String("p")}))
	must[*awsiam.DeleteRoleOutput](t)(c.DeleteRole(ctx, &awsiam.DeleteRoleInput{RoleName: aws.String("a")}))
	_, err = c.GetRole(ctx, &awsiam.GetRoleInput{RoleName: aws.String("a")})
	wantCode(t, err, "NoSuchEntity", 404)
}

func TestManagedPolicies(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	must[*awsiam.CreateUserOutput](t)(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("alice")}))
	must[*awsiam.CreateRoleOutput](t)(c.CreateRole(ctx, &awsiam.CreateRoleInput{RoleName: aws.String("r"), AssumeRolePolicyDocument: aws.String(trustAccount)}))
	p := must[*awsiam.CreatePolicyOutput](t)(c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{
		PolicyName: aws.String("read"), Path: aws.String("/team/"), PolicyDocument: aws.String(allow("*", "s3:GetObject")), Description: aws.String("reads"),
	}))
	arn := aws.ToString(p.Policy.Arn)
	if arn != "arn:aws:iam::"+account+":policy/team/read" || aws.ToString(p.Policy.DefaultVersionId) != "v1" || !p.Policy.IsAttachable {
		t.Fatalf("policy %+v", p.Policy)
	}
	_, err := c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("read"), PolicyDocument: aws.String(allow("*", "s3:GetObject"))})
	wantCode(t, err, "EntityAlreadyExists", 409)

	must[*awsiam.AttachUserPolicyOutput](t)(c.AttachUserPolicy(ctx, &awsiam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)}))
	must[*awsiam.AttachRolePolicyOutput](t)(c.AttachRolePolicy(ctx, &awsiam.AttachRolePolicyInput{RoleName: aws.String("r"), PolicyArn: aws.String(arn)}))
	got := must[*awsiam.GetPolicyOutput](t)(c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)}))
	if aws.ToInt32(got.Policy.AttachmentCount) != 2 {
		t.Fatalf("attachment count %d", aws.ToInt32(got.Policy.AttachmentCount))
	}
	ua := must[*awsiam.ListAttachedUserPoliciesOutput](t)(c.ListAttachedUserPolicies(ctx, &awsiam.ListAttachedUserPoliciesInput{UserName: aws.String("alice")}))
	if len(ua.AttachedPolicies) != 1 || aws.ToString(ua.AttachedPolicies[0].PolicyName) != "read" || aws.ToString(ua.AttachedPolicies[0].PolicyArn) != arn {
		t.Fatalf("attached to alice %+v", ua.AttachedPolicies)
	}
	other := must[*awsiam.ListAttachedUserPoliciesOutput](t)(c.ListAttachedUserPolicies(ctx, &awsiam.ListAttachedUserPoliciesInput{UserName: aws.String("alice"), PathPrefix: aws.String("/other/")}))
	if len(other.AttachedPolicies) != 0 {
		t.Fatalf("path prefix ignored: %+v", other.AttachedPolicies)
	}
	ra := must[*awsiam.ListAttachedRolePoliciesOutput](t)(c.ListAttachedRolePolicies(ctx, &awsiam.ListAttachedRolePoliciesInput{RoleName: aws.String("r")}))
	if len(ra.AttachedPolicies) != 1 {
		t.Fatalf("attached to role %+v", ra.AttachedPolicies)
	}
	local := must[*awsiam.ListPoliciesOutput](t)(c.ListPolicies(ctx, &awsiam.ListPoliciesInput{Scope: types.PolicyScopeTypeLocal, OnlyAttached: true}))
	if len(local.Policies) != 1 || aws.ToString(local.Policies[0].Arn) != arn {
		t.Fatalf("local policies %+v", local.Policies)
	}
	awsManaged := must[*awsiam.ListPoliciesOutput](t)(c.ListPolicies(ctx, &awsiam.ListPoliciesInput{Scope: types.PolicyScopeTypeAws}))
	if len(awsManaged.Policies) != 0 {
		t.Fatalf("AWS managed policies %+v", awsManaged.Policies)
	}

	_, err = c.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: aws.String(arn)})
	wantCode(t, err, "DeleteConflict", 409)
	_, err = c.DeleteUser(ctx, &awsiam.DeleteUserInput{UserName: aws.String("alice")})
	wantCode(t, err, "DeleteConflict", 409)
	must[*awsiam.DetachUserPolicyOutput](t)(c.DetachUserPolicy(ctx, &awsiam.DetachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String(arn)}))
	must[*awsiam.DetachRolePolicyOutput](t)(c.DetachRolePolicy(ctx, &awsiam.DetachRolePolicyInput{RoleName: aws.String("r"), PolicyArn: aws.String(arn)}))
	_, err = c.DetachRolePolicy(ctx, &awsiam.DetachRolePolicyInput{RoleName: aws.String("r"), PolicyArn: aws.String(arn)})
	wantCode(t, err, "NoSuchEntity", 404)
	must[*awsiam.DeletePolicyOutput](t)(c.DeletePolicy(ctx, &awsiam.DeletePolicyInput{PolicyArn: aws.String(arn)}))
	_, err = c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String(arn)})
	wantCode(t, err, "NoSuchEntity", 404)

	// Policies of other accounts and AWS managed ones are not to be had.
	_, err = c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String("arn:aws:iam::aws:policy/AdministratorAccess")})
	wantCode(t, err, "NoSuchEntity", 404)
	_, err = c.AttachUserPolicy(ctx, &awsiam.AttachUserPolicyInput{UserName: aws.String("alice"), PolicyArn: aws.String("arn:aws:iam::999988887777:policy/x")})
	wantCode(t, err, "NoSuchEntity", 404)
	_, err = c.GetPolicy(ctx, &awsiam.GetPolicyInput{PolicyArn: aws.String("not-an-arn")})
	wantCode(t, err, "InvalidInput", 400)
}

func TestAttachedPolicyGrants(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	bob := e.newUser("bob", "")
	_, err := e.iam(bob).ListRoles(ctx, &awsiam.ListRolesInput{})
	wantCode(t, err, "AccessDenied", 403)
	p := must[*awsiam.CreatePolicyOutput](t)(c.CreatePolicy(ctx, &awsiam.CreatePolicyInput{PolicyName: aws.String("roles"), PolicyDocument: aws.String(allow("*", "iam:ListRoles"))}))
	must[*awsiam.AttachUserPolicyOutput](t)(c.AttachUserPolicy(ctx, &awsiam.AttachUserPolicyInput{UserName: aws.String("bob"), PolicyArn: p.Policy.Arn}))
	must[*awsiam.ListRolesOutput](t)(e.iam(bob).ListRoles(ctx, &awsiam.ListRolesInput{}))
}

func TestListUsersPages(t *testing.T) {
	e := newEnv(t)
	c := e.iam(root)
	var want []string
	for i := range 5 {
		name := fmt.Sprintf("user%d", i)
		want = append(want, name)
		must[*awsiam.CreateUserOutput](t)(c.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String(name)}))
	}
	var got []string
	pages := 0
	p := awsiam.NewListUsersPaginator(c, &awsiam.ListUsersInput{MaxItems: aws.Int32(2)})
	for p.HasMorePages() {
		out := must[*awsiam.ListUsersOutput](t)(p.NextPage(ctx))
		pages++
		for _, u := range out.Users {
			got = append(got, aws.ToString(u.UserName))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || pages != 3 {
		t.Fatalf("got %v in %d pages, want %v in 3", got, pages, want)
	}
	empty := must[*awsiam.ListUsersOutput](t)(c.ListUsers(ctx, &awsiam.ListUsersInput{PathPrefix: aws.String("/none/")}))
	if empty.Users == nil || len(empty.Users) != 0 || empty.IsTruncated {
		t.Fatalf("empty list %+v", empty)
	}
}
