package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

var bg = context.Background()

// creds are what a principal signs with.
type creds struct{ ak, sk, token string }

func clientFor(r *servertest.Region, c *creds) *s3.Client {
	return servertest.NewClient(r.URL(), "us-west-2", "", "", nil, func(o *s3.Options) {
		if c == nil {
			o.Credentials = aws.AnonymousCredentials{}
			return
		}
		o.Credentials = credentials.NewStaticCredentialsProvider(c.ak, c.sk, c.token)
	})
}

// iamClientFor returns an IAM client signing as c (anonymous when nil).
func iamClientFor(r *servertest.Region, c *creds) *awsiam.Client {
	return awsiam.New(awsiam.Options{BaseEndpoint: aws.String(r.URL()), Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: func() aws.CredentialsProvider {
			if c == nil {
				return aws.AnonymousCredentials{}
			}
			return credentials.NewStaticCredentialsProvider(c.ak, c.sk, c.token)
		}()})
}

func mustDo(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// userWithKey creates a user with an inline policy (none when doc is "")
// and an access key.
func userWithKey(t *testing.T, st *iam.Store, account, name, doc string) *creds {
	t.Helper()
	_, err := st.CreateUser(bg, account, name, "")
	mustDo(t, err)
	if doc != "" {
		mustDo(t, st.PutInlinePolicy(bg, iam.EntityUser, account, name, "p", doc))
	}
	k, err := st.CreateAccessKey(bg, account, name)
	mustDo(t, err)
	return &creds{ak: k.ID, sk: k.Secret}
}

func roleSession(t *testing.T, st *iam.Store, account, name, doc string) *creds {
	t.Helper()
	_, err := st.CreateRole(bg, &iam.Role{Account: account, Name: name,
		Trust: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + account + `:root"},"Action":"sts:AssumeRole"}]}`})
	mustDo(t, err)
	mustDo(t, st.PutInlinePolicy(bg, iam.EntityRole, account, name, "p", doc))
	root := &iam.Principal{AccountID: account, ARN: iam.RootARN(account)}
	ss, err := st.AssumeRole(bg, root, "arn:aws:iam::"+account+":role/"+name, "matrix", 0)
	mustDo(t, err)
	return &creds{ak: ss.ID, sk: ss.Secret, token: ss.Token}
}

const allowS3 = `{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Action":"s3:*","Resource":"*"},
  {"Effect":"Deny","Action":"s3:DeleteObjectVersion","Resource":"*"}]}`

const readOnly = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}`

// sharedPolicy lets account A read, list and write b-shared.
var sharedPolicy = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::` + servertest.AccountID + `:root"},
  "Action":["s3:GetObject","s3:ListBucket","s3:PutObject"],"Resource":["arn:aws:s3:::b-shared","arn:aws:s3:::b-shared/*"]}]}`

func errorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	if err != nil {
		return err.Error()
	}
	return ""
}

// denied tells a refusal from an answer: a request that passed
// authorization may still fail on its content (a malformed body on
// purpose, so nothing changes).
func denied(err error) bool {
	switch errorCode(err) {
	case "AccessDenied", "ExpiredToken", "InvalidToken", "InvalidAccessKeyId", "InvalidClientTokenId", "MissingAuthenticationToken":
		return true
	}
	return false
}

// TestAuthorizationMatrix sends every operation as every principal to
// every kind of bucket through real signed requests, and checks each
// answer against what AWS's evaluation logic decides.
func TestAuthorizationMatrix(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	st := r.IAM
	a, b := servertest.AccountID, servertest.OtherAccountID
	rootA := &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}
	rootB := &creds{ak: servertest.OtherAccessKey, sk: servertest.OtherSecretKey}
	principals := map[string]*creds{
		"root":      rootA,
		"alice":     userWithKey(t, st, a, "alice", allowS3), // s3:* with a Deny on version deletes
		"bob":       userWithKey(t, st, a, "bob", ""),        // no policy
		"reader":    roleSession(t, st, a, "reader", readOnly),
		"carol":     userWithKey(t, st, b, "carol", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`),
		"anonymous": nil,
	}
	// A session that expired an hour ago.
	past := st.WithClock(func() time.Time { return time.Now().Add(-2 * time.Hour) })
	_, err := past.CreateRole(bg, &iam.Role{Account: a, Name: "old", Trust: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"` + a + `"},"Action":"sts:AssumeRole"}]}`})
	mustDo(t, err)
	mustDo(t, st.PutInlinePolicy(bg, iam.EntityRole, a, "old", "p", readOnly))
	ss, err := past.AssumeRole(bg, &iam.Principal{AccountID: a, ARN: iam.RootARN(a)}, "arn:aws:iam::"+a+":role/old", "gone", 0)
	mustDo(t, err)
	principals["expired"] = &creds{ak: ss.ID, sk: ss.Secret, token: ss.Token}

	// The buckets, each with an object, made by their owners.
	for _, bk := range []struct {
		name string
		c    *creds
	}{{"a-bucket", rootA}, {"b-bucket", rootB}, {"b-shared", rootB}} {
		c := clientFor(r, bk.c)
		_, err := c.CreateBucket(bg, &s3.CreateBucketInput{Bucket: aws.String(bk.name),
			CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}})
		mustDo(t, err)
		_, err = c.PutBucketVersioning(bg, &s3.PutBucketVersioningInput{Bucket: aws.String(bk.name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		mustDo(t, err)
		_, err = c.PutObject(bg, &s3.PutObjectInput{Bucket: aws.String(bk.name), Key: aws.String("k"), Body: strings.NewReader("data")})
		mustDo(t, err)
	}
	_, err = clientFor(r, rootB).PutBucketPolicy(bg, &s3.PutBucketPolicyInput{Bucket: aws.String("b-shared"), Policy: aws.String(sharedPolicy)})
	mustDo(t, err)

	ops := map[string]func(c *s3.Client, bucket string) error{
		"get": func(c *s3.Client, bk string) error {
			_, err := c.GetObject(bg, &s3.GetObjectInput{Bucket: aws.String(bk), Key: aws.String("k")})
			return err
		},
		"put": func(c *s3.Client, bk string) error {
			_, err := c.PutObject(bg, &s3.PutObjectInput{Bucket: aws.String(bk), Key: aws.String("new"), Body: bytes.NewReader([]byte("x"))})
			return err
		},
		"list": func(c *s3.Client, bk string) error {
			_, err := c.ListObjectsV2(bg, &s3.ListObjectsV2Input{Bucket: aws.String(bk)})
			return err
		},
		"delete-version": func(c *s3.Client, bk string) error {
			_, err := c.DeleteObject(bg, &s3.DeleteObjectInput{Bucket: aws.String(bk), Key: aws.String("k"), VersionId: aws.String("0036275KBQAC29R00002L8MDVC")})
			return err
		},
		"put-replication": func(c *s3.Client, bk string) error {
			// An invalid configuration: only the answer's kind matters.
			_, err := c.PutBucketReplication(bg, &s3.PutBucketReplicationInput{Bucket: aws.String(bk), ReplicationConfiguration: &types.ReplicationConfiguration{
				Role: aws.String("not-a-role"), Rules: []types.ReplicationRule{{Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
					Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::nowhere")}}}}})
			return err
		},
		"put-policy": func(c *s3.Client, bk string) error {
			_, err := c.PutBucketPolicy(bg, &s3.PutBucketPolicyInput{Bucket: aws.String(bk), Policy: aws.String(`{"Statement":[]}`)})
			return err
		},
	}
	ops["iam"] = nil // an IAM call: CreateUser, below
	all := []string{"get", "put", "list", "delete-version", "put-replication", "put-policy"}
	allow := map[string]map[string][]string{ // principal -> bucket -> allowed operations
		"root":      {"a-bucket": append(all, "iam"), "b-bucket": {"iam"}, "b-shared": {"get", "put", "list", "iam"}},
		"alice":     {"a-bucket": {"get", "put", "list", "put-replication", "put-policy"}, "b-shared": {"get", "put", "list"}},
		"bob":       {},
		"reader":    {"a-bucket": {"get", "list"}, "b-shared": {"get", "list"}},
		"carol":     {"b-bucket": all, "b-shared": all},
		"anonymous": {},
		"expired":   {},
	}
	for who, c := range principals {
		client := clientFor(r, c)
		ic := iamClientFor(r, c)
		for _, bk := range []string{"a-bucket", "b-bucket", "b-shared"} {
			for _, op := range append(all, "iam") {
				t.Run(fmt.Sprintf("%s/%s/%s", who, bk, op), func(t *testing.T) {
					var err error
					if op == "iam" {
						// The bucket plays no part: the caller's account is the resource.
						_, err = ic.CreateUser(bg, &awsiam.CreateUserInput{UserName: aws.String("u-" + who + "-" + bk)})
						if err != nil && !denied(err) && errorCode(err) != "InvalidClientTokenId" && errorCode(err) != "MissingAuthenticationToken" {
							t.Logf("refused with %q", errorCode(err))
						}
					} else {
						err = ops[op](client, bk)
					}
					want := false
					for _, o := range allow[who][bk] {
						want = want || o == op
					}
					if got := !denied(err); got != want {
						t.Errorf("allowed %v, want %v (answer %q: %v)", got, want, errorCode(err), err)
					}
				})
			}
		}
	}
}

// TestWaysInThatMustFail tries credentials that must not work.
func TestWaysInThatMustFail(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	st := r.IAM
	a := servertest.AccountID
	root := clientFor(r, &creds{ak: servertest.AccessKey, sk: servertest.SecretKey})
	_, err := root.CreateBucket(bg, &s3.CreateBucketInput{Bucket: aws.String("vault"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}})
	mustDo(t, err)
	list := func(c *creds) error {
		_, err := clientFor(r, c).ListObjectsV2(bg, &s3.ListObjectsV2Input{Bucket: aws.String("vault")})
		return err
	}
	want := func(name string, err error, code string) {
		t.Helper()
		if errorCode(err) != code {
			t.Errorf("%s: answer %q (%v), want %s", name, errorCode(err), err, code)
		}
	}

	dave := userWithKey(t, st, a, "dave", readOnly)
	mustDo(t, list(dave))
	keys, err := st.AccessKeys(bg, a, "dave")
	mustDo(t, err)
	mustDo(t, st.UpdateAccessKey(bg, a, "dave", keys[0].ID, iam.KeyInactive))
	want("deactivated key", list(dave), "InvalidAccessKeyId")
	mustDo(t, st.UpdateAccessKey(bg, a, "dave", keys[0].ID, iam.KeyActive))
	mustDo(t, list(dave))
	mustDo(t, st.DeleteAccessKey(bg, a, "dave", keys[0].ID))
	want("deleted key", list(dave), "InvalidAccessKeyId")

	erin := userWithKey(t, st, a, "erin", readOnly)
	ks, _ := st.AccessKeys(bg, a, "erin")
	mustDo(t, st.DeleteAccessKey(bg, a, "erin", ks[0].ID))
	mustDo(t, st.DeleteInlinePolicy(bg, iam.EntityUser, a, "erin", "p"))
	mustDo(t, st.DeleteUser(bg, a, "erin"))
	want("deleted user", list(erin), "InvalidAccessKeyId")

	sess := roleSession(t, st, a, "reader", readOnly)
	mustDo(t, list(sess))
	altered := *sess
	altered.token = sess.token[:len(sess.token)-4] + "AAAA"
	want("altered session token", list(&altered), "InvalidToken")
	noToken := *sess
	noToken.token = ""
	want("session key without its token", list(&noToken), "InvalidToken")
	wrong := *sess
	wrong.sk = strings.Repeat("x", 40)
	want("wrong secret", list(&wrong), "SignatureDoesNotMatch")

	// A replica write forged by someone who may write objects but not
	// replicate: the replication headers do not make a PutObject.
	writer := userWithKey(t, st, a, "writer", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:PutObject","Resource":"*"}]}`)
	_, err = clientFor(r, writer).PutObject(bg, &s3.PutObjectInput{Bucket: aws.String("vault"), Key: aws.String("forged"), Body: strings.NewReader("{}")},
		func(o *s3.Options) {
			o.APIOptions = append(o.APIOptions, smithyHeader("X-Bulwark-Replication", "ReplicateObject"), smithyHeader("X-Bulwark-Replica-Meta-Length", "2"))
		})
	want("forged replica without s3:ReplicateObject", err, "AccessDenied")
	if _, err := root.HeadObject(bg, &s3.HeadObjectInput{Bucket: aws.String("vault"), Key: aws.String("forged")}); errorCode(err) != "NotFound" {
		t.Errorf("forged replica stored: %v", err)
	}

	// Keys with ../ are names, never paths.
	_, err = root.PutObject(bg, &s3.PutObjectInput{Bucket: aws.String("vault"), Key: aws.String("../../etc/passwd"), Body: strings.NewReader("not a file")})
	mustDo(t, err)
	out, err := root.ListObjectsV2(bg, &s3.ListObjectsV2Input{Bucket: aws.String("vault")})
	mustDo(t, err)
	if len(out.Contents) != 1 || aws.ToString(out.Contents[0].Key) != "../../etc/passwd" {
		t.Errorf("listing after a ../ key: %v", out.Contents)
	}
	resp, err := http.Get(r.URL() + "/vault/../../etc/passwd")
	mustDo(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("anonymous GET of a ../ path: %d", resp.StatusCode)
	}
}

// smithyHeader sets a header on a request before it is signed.
func smithyHeader(k, v string) func(*middleware.Stack) error {
	return func(s *middleware.Stack) error {
		return s.Build.Add(middleware.BuildMiddlewareFunc("header-"+k, func(ctx context.Context, in middleware.BuildInput, next middleware.BuildHandler) (middleware.BuildOutput, middleware.Metadata, error) {
			if req, ok := in.Request.(*smithyhttp.Request); ok {
				req.Header.Set(k, v)
			}
			return next.HandleBuild(ctx, in)
		}), middleware.After)
	}
}

// Operations that touch several resources are decided on each: the keys
// of a DeleteObjects call one by one, and the source of a copy with its
// bucket's policy.
func TestAuthorizationPerResource(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	a := servertest.AccountID
	root := clientFor(r, &creds{ak: servertest.AccessKey, sk: servertest.SecretKey})
	other := clientFor(r, &creds{ak: servertest.OtherAccessKey, sk: servertest.OtherSecretKey})
	for _, bk := range []struct {
		c    *s3.Client
		name string
	}{{root, "docs"}, {other, "theirs"}} {
		_, err := bk.c.CreateBucket(bg, &s3.CreateBucketInput{Bucket: aws.String(bk.name),
			CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}})
		mustDo(t, err)
	}
	for _, k := range []string{"tmp/a", "tmp/b", "keep/c"} {
		_, err := root.PutObject(bg, &s3.PutObjectInput{Bucket: aws.String("docs"), Key: aws.String(k), Body: strings.NewReader(k)})
		mustDo(t, err)
	}
	// A user who may delete objects of the bucket but not under keep/.
	cleaner := clientFor(r, userWithKey(t, r.IAM, a, "cleaner", `{"Version":"2012-10-17","Statement":[
		{"Effect":"Allow","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::docs/*"},
		{"Effect":"Deny","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::docs/keep/*"}]}`))
	out, err := cleaner.DeleteObjects(bg, &s3.DeleteObjectsInput{Bucket: aws.String("docs"), Delete: &types.Delete{Objects: []types.ObjectIdentifier{
		{Key: aws.String("tmp/a")}, {Key: aws.String("tmp/b")}, {Key: aws.String("keep/c")}}}})
	mustDo(t, err)
	if len(out.Deleted) != 2 || len(out.Errors) != 1 || aws.ToString(out.Errors[0].Key) != "keep/c" || aws.ToString(out.Errors[0].Code) != "AccessDenied" {
		t.Fatalf("DeleteObjects: deleted %d, errors %+v", len(out.Deleted), out.Errors)
	}
	if _, err := root.HeadObject(bg, &s3.HeadObjectInput{Bucket: aws.String("docs"), Key: aws.String("keep/c")}); err != nil {
		t.Fatalf("keep/c: %v", err)
	}

	// The other account copies keep/c into its own bucket: refused until
	// the source bucket's policy lets it read.
	cp := func() error {
		_, err := other.CopyObject(bg, &s3.CopyObjectInput{Bucket: aws.String("theirs"), Key: aws.String("copy"), CopySource: aws.String("docs/keep/c")})
		return err
	}
	if !denied(cp()) {
		t.Fatal("copy from another account's bucket without its policy was allowed")
	}
	_, err = root.PutBucketPolicy(bg, &s3.PutBucketPolicyInput{Bucket: aws.String("docs"), Policy: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Principal":{"AWS":"` + servertest.OtherAccountID + `"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::docs/keep/*"}]}`)})
	mustDo(t, err)
	mustDo(t, cp())
}
