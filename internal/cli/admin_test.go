package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"github.com/aws/smithy-go"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

// runAdmin runs `bulwark admin account args...`.
func runAdmin(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCommand(t, env, append([]string{"admin", "account"}, args...)...)
}

// created is what `admin account create` printed: the account and its key.
type created struct{ account, accessKey, secret string }

// parseCreated reads create's output, and checks it ends with the export
// line that hands the key on.
func parseCreated(t *testing.T, out string) created {
	t.Helper()
	var c created
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		switch {
		case len(f) == 3 && f[0] == "account":
			c.account = f[1]
		case len(f) == 3 && f[0] == "access" && f[1] == "key":
			c.accessKey = f[2]
		case len(f) == 3 && f[0] == "secret" && f[1] == "key":
			c.secret = f[2]
		}
	}
	if c.account == "" || c.accessKey == "" || c.secret == "" ||
		!strings.Contains(out, "export AWS_ACCESS_KEY_ID="+c.accessKey+" AWS_SECRET_ACCESS_KEY="+c.secret) ||
		!strings.Contains(out, "only time the secret key is shown") {
		t.Fatalf("create printed:\n%s", out)
	}
	return c
}

func keyEnv(endpoint, ak, sk string) map[string]string {
	return map[string]string{"BULWARK_ENDPOINT": endpoint, "AWS_ACCESS_KEY_ID": ak, "AWS_SECRET_ACCESS_KEY": sk}
}

func callerAccount(t *testing.T, endpoint, ak, sk string) string {
	t.Helper()
	c := sts.New(sts.Options{BaseEndpoint: aws.String(endpoint), Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
	id, err := c.GetCallerIdentity(context.Background(), &sts.GetCallerIdentityInput{})
	if err != nil {
		t.Fatalf("GetCallerIdentity: %v", err)
	}
	if want := "arn:aws:iam::" + aws.ToString(id.Account) + ":root"; aws.ToString(id.Arn) != want {
		t.Fatalf("caller %s, want %s", aws.ToString(id.Arn), want)
	}
	return aws.ToString(id.Account)
}

func accessDenied(err error) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied"
}

// TestAdminAccountCreate has the deployment's admin create an account
// whose root key works for S3 and IAM, in an account of its own.
func TestAdminAccountCreate(t *testing.T) {
	ctx := context.Background()
	r := servertest.Start(t, servertest.Options{})
	adminEnv := ownerEnv(r.URL())

	code, out, errOut := runAdmin(t, adminEnv, "create", "team-a")
	if code != 0 || !strings.Contains(out, "(team-a)") {
		t.Fatalf("create: exit %d\n%s%s", code, out, errOut)
	}
	a := parseCreated(t, out)
	if a.account == servertest.AccountID || len(a.account) != 12 {
		t.Fatalf("new account %q", a.account)
	}

	// S3 and IAM know the new key, as its account's root user.
	if got := callerAccount(t, r.URL(), a.accessKey, a.secret); got != a.account {
		t.Fatalf("GetCallerIdentity: account %s, want %s", got, a.account)
	}
	ac := servertest.NewClient(r.URL(), "us-west-2", a.accessKey, a.secret, nil)
	if _, err := ac.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("team-a-bucket")}); err != nil {
		t.Fatal(err)
	}
	admin := r.Client(t)
	if _, err := admin.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("admin-bucket")}); err != nil {
		t.Fatal(err)
	}
	// Another account: neither sees into the other's buckets.
	if _, err := admin.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("team-a-bucket")}); !accessDenied(err) {
		t.Fatalf("the admin lists team-a's bucket: %v", err)
	}
	if _, err := ac.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("admin-bucket"), Key: aws.String("k"), Body: strings.NewReader("x")}); !accessDenied(err) {
		t.Fatalf("team-a writes into the admin's bucket: %v", err)
	}
	list, err := ac.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(list.Buckets) != 1 || aws.ToString(list.Buckets[0].Name) != "team-a-bucket" {
		t.Fatalf("team-a's buckets: %+v, %v", list, err)
	}

	// The new account's root, and another configured account, are not the
	// deployment's admin.
	for name, env := range map[string]map[string]string{
		"team-a":        keyEnv(r.URL(), a.accessKey, a.secret),
		"other account": keyEnv(r.URL(), servertest.OtherAccessKey, servertest.OtherSecretKey),
	} {
		if code, _, errOut := runAdmin(t, env, "create", "sneaky"); code != 1 || !strings.Contains(errOut, "AccessDenied") {
			t.Fatalf("create as %s: exit %d %s", name, code, errOut)
		}
		if code, _, errOut := runAdmin(t, env, "list"); code != 1 || !strings.Contains(errOut, "AccessDenied") {
			t.Fatalf("list as %s: exit %d %s", name, code, errOut)
		}
	}

	code, out, errOut = runAdmin(t, adminEnv, "list")
	if code != 0 || !strings.Contains(out, servertest.AccountID) || !strings.Contains(out, "(admin)") ||
		!strings.Contains(out, a.account+"  team-a") || strings.Contains(out, "sneaky") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runAdmin(t, adminEnv, "list", "--json")
	var accts struct {
		Accounts []struct {
			AccountID string `json:"accountId"`
			Name      string `json:"name"`
		} `json:"accounts"`
	}
	if err := json.Unmarshal([]byte(out), &accts); code != 0 || err != nil || len(accts.Accounts) != 3 || strings.Contains(out, a.secret) {
		t.Fatalf("list --json: exit %d %v\n%s", code, err, out)
	}

	code, out, _ = runAdmin(t, adminEnv, "create", "--json", "team-b")
	var b struct {
		AccountID, Name, AccessKeyID, SecretAccessKey string
	}
	if err := json.Unmarshal([]byte(out), &b); code != 0 || err != nil || b.Name != "team-b" || b.AccessKeyID == "" || b.SecretAccessKey == "" {
		t.Fatalf("create --json: exit %d %v\n%s", code, err, out)
	}
	if got := callerAccount(t, r.URL(), b.AccessKeyID, b.SecretAccessKey); got != b.AccountID || got == a.account {
		t.Fatalf("team-b's key is of account %s, created %s", got, b.AccountID)
	}

	if code, _, errOut := runAdmin(t, adminEnv, "create", "bad/name"); code != 1 || !strings.Contains(errOut, "InvalidRequest") {
		t.Fatalf("bad name: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{{}, {"create"}, {"create", "a", "b"}, {"list", "extra"}, {"frobnicate"}} {
		if code, _, _ := runAdmin(t, adminEnv, args...); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
}

// TestAdminAccountCreateThroughIAMCopy creates an account through a region
// that copies IAM: the IAM home region creates it, and the copy learns it
// within a few seconds.
func TestAdminAccountCreateThroughIAMCopy(t *testing.T) {
	topo, err := topology.New(topology.Region{Name: "us-west-2"}, topology.Region{Name: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	key := bytes.Repeat([]byte{7}, 32)
	shareKey := func(c *server.Config) { c.DeploymentKey = key }
	home := servertest.Start(t, servertest.Options{Region: "us-west-2", Topology: topo, Configure: shareKey})
	cp := servertest.Start(t, servertest.Options{Region: "us-east-1", Topology: topo, Configure: shareKey})
	env := ownerEnv(cp.URL())
	env["AWS_REGION"] = "us-east-1"

	code, out, errOut := runAdmin(t, env, "create", "team-c")
	if code != 0 {
		t.Fatalf("create through the copy: exit %d\n%s%s", code, out, errOut)
	}
	c := parseCreated(t, out)
	ctx := context.Background()
	if _, err := home.IAM.Account(ctx, c.account); err != nil {
		t.Fatalf("the home region lacks the account: %v", err)
	}
	// The copy refreshes every 2 s; a loaded machine may take longer.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := cp.IAM.Account(ctx, c.account); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the copy did not learn the account")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := callerAccount(t, cp.URL(), c.accessKey, c.secret); got != c.account {
		t.Fatalf("through the copy, the key is of account %s", got)
	}
	ec := servertest.NewClient(cp.URL(), "us-east-1", c.accessKey, c.secret, nil)
	if _, err := ec.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("team-c-east"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-east-1"}}); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := runAdmin(t, env, "list"); code != 0 || !strings.Contains(out, c.account+"  team-c") {
		t.Fatalf("list through the copy: exit %d\n%s", code, out)
	}
	// The home region decides who may: not another account.
	other := keyEnv(cp.URL(), servertest.OtherAccessKey, servertest.OtherSecretKey)
	if code, _, errOut := runAdmin(t, other, "create", "x"); code != 1 || !strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("create as another account through the copy: exit %d %s", code, errOut)
	}
}
