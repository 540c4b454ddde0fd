package iamapi_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// wireError is IAM's and STS's error body.
type wireError struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

// post sends a form signed by c for service, as a client without an SDK
// would; body, when set, replaces the signed body afterwards.
func (e *env) post(c creds, service string, form url.Values, body string) (*http.Response, []byte) {
	e.t.Helper()
	signed := form.Encode()
	req, err := http.NewRequest(http.MethodPost, e.url+"/", strings.NewReader(signed))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
	sum := sha256.Sum256([]byte(signed))
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if c.access != "" {
		err = v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: c.access, SecretAccessKey: c.secret, SessionToken: c.token}, req, hash, service, region, time.Now())
		if err != nil {
			e.t.Fatal(err)
		}
	}
	if body != "" {
		req.Body = io.NopCloser(strings.NewReader(body))
		req.ContentLength = int64(len(body))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, b
}

func (e *env) wantError(resp *http.Response, body []byte, status int, code, message string) wireError {
	e.t.Helper()
	var we wireError
	if err := xml.Unmarshal(body, &we); err != nil {
		e.t.Fatalf("error body %q: %v", body, err)
	}
	if resp.StatusCode != status || we.Error.Code != code || !strings.Contains(we.Error.Message, message) {
		e.t.Fatalf("got %d %s %q, want %d %s %q", resp.StatusCode, we.Error.Code, we.Error.Message, status, code, message)
	}
	if we.RequestID == "" || resp.Header.Get("x-amzn-RequestId") != we.RequestID || we.Error.Type != "Sender" {
		e.t.Fatalf("error envelope %+v, header %q", we, resp.Header.Get("x-amzn-RequestId"))
	}
	return we
}

func iamForm(action string, kv ...string) url.Values {
	v := url.Values{"Action": {action}, "Version": {"2010-05-08"}}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

func TestWireValidation(t *testing.T) {
	e := newEnv(t)
	resp, body := e.post(root, "iam", iamForm("CreateUser"), "")
	e.wantError(resp, body, 400, "ValidationError", "1 validation error detected: Value null at 'userName' failed to satisfy constraint: Member must not be null")
	resp, body = e.post(root, "iam", iamForm("PutUserPolicy", "UserName", "alice"), "")
	e.wantError(resp, body, 400, "ValidationError", "2 validation errors detected: Value null at 'policyName' failed to satisfy constraint: Member must not be null; Value null at 'policyDocument'")
	resp, body = e.post(root, "iam", iamForm("ListUsers", "MaxItems", "0"), "")
	e.wantError(resp, body, 400, "ValidationError", "Value '0' at 'maxItems' failed to satisfy constraint: Member must have value greater than or equal to 1")
	resp, body = e.post(root, "iam", iamForm("ListUsers", "Marker", "%%%"), "")
	e.wantError(resp, body, 400, "InvalidInput", "marker")
	resp, body = e.post(root, "iam", iamForm("CreateGroup", "GroupName", "g"), "")
	e.wantError(resp, body, 400, "InvalidAction", "Could not find operation CreateGroup for version 2010-05-08")
	resp, body = e.post(root, "iam", iamForm("ListUsers", "Version", "2009-01-01"), "")
	e.wantError(resp, body, 400, "InvalidAction", "for version 2009-01-01")
	resp, body = e.post(root, "iam", url.Values{"Version": {"2010-05-08"}}, "")
	e.wantError(resp, body, 400, "MissingAction", "Action")
	// STS actions are not IAM's, and the other way round.
	resp, body = e.post(root, "iam", iamForm("GetCallerIdentity"), "")
	e.wantError(resp, body, 400, "InvalidAction", "GetCallerIdentity")
	resp, body = e.post(root, "sts", url.Values{"Action": {"AssumeRole"}, "Version": {"2011-06-15"}}, "")
	we := e.wantError(resp, body, 400, "ValidationError", "Value null at 'roleArn'")
	if !strings.Contains(string(body), `xmlns="https://sts.amazonaws.com/doc/2011-06-15/"`) {
		t.Fatalf("STS error not in STS's namespace: %s (%+v)", body, we)
	}
}

func TestWireAuthentication(t *testing.T) {
	e := newEnv(t)
	resp, body := e.post(creds{}, "iam", iamForm("ListUsers"), "")
	e.wantError(resp, body, 403, "MissingAuthenticationToken", "Request is missing Authentication Token")
	if !strings.Contains(string(body), `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>MissingAuthenticationToken</Code>`) {
		t.Fatalf("error body %s", body)
	}
	// A body other than the one signed.
	resp, body = e.post(root, "iam", iamForm("CreateUser", "UserName", "alice"), iamForm("CreateUser", "UserName", "mallory").Encode())
	e.wantError(resp, body, 403, "SignatureDoesNotMatch", "signature")
	resp, body = e.post(root, "iam", iamForm("GetUser", "UserName", "mallory"), "")
	e.wantError(resp, body, 404, "NoSuchEntity", "mallory")
	// A scope for another service.
	resp, body = e.post(root, "s3", iamForm("ListUsers"), "")
	e.wantError(resp, body, 400, "IncompleteSignature", "service")
}

func TestWireResponses(t *testing.T) {
	e := newEnv(t)
	// Tags are accepted (and not kept), so that tagging tools work.
	resp, body := e.post(root, "iam", iamForm("CreateUser", "UserName", "alice", "Tags.member.1.Key", "team", "Tags.member.1.Value", "eng"), "")
	if resp.StatusCode != 200 {
		t.Fatalf("CreateUser with tags: %d %s", resp.StatusCode, body)
	}
	s := string(body)
	for _, want := range []string{
		`<CreateUserResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><CreateUserResult><User>`,
		`<UserName>alice</UserName>`, `<Arn>arn:aws:iam::` + account + `:user/alice</Arn>`,
		`</CreateUserResult><ResponseMetadata><RequestId>` + resp.Header.Get("x-amzn-RequestId") + `</RequestId></ResponseMetadata></CreateUserResponse>`,
	} {
		if !strings.Contains(s, want) {
			t.Fatalf("response %s lacks %s", s, want)
		}
	}
	resp, body = e.post(root, "iam", iamForm("CreateUser", "UserName", "bob", "Tags.member.1.Key", "team"), "")
	e.wantError(resp, body, 400, "ValidationError", "tags.1.member.value")
	resp, body = e.post(root, "iam", iamForm("CreateUser", "UserName", "bob", "PermissionsBoundary", "arn:aws:iam::"+account+":policy/b"), "")
	e.wantError(resp, body, 400, "InvalidInput", "Permissions boundaries")

	doc := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}`
	resp, body = e.post(root, "iam", iamForm("PutUserPolicy", "UserName", "alice", "PolicyName", "p", "PolicyDocument", doc), "")
	if resp.StatusCode != 200 || strings.Contains(string(body), "Result") {
		t.Fatalf("PutUserPolicy: %d %s", resp.StatusCode, body)
	}
	_, body = e.post(root, "iam", iamForm("GetUserPolicy", "UserName", "alice", "PolicyName", "p"), "")
	var got struct {
		Doc string `xml:"GetUserPolicyResult>PolicyDocument"`
	}
	if err := xml.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	// Spaces are %20: clients decode with a plain percent-decoder.
	if strings.ContainsAny(got.Doc, " +{") {
		t.Fatalf("document not percent-encoded: %q", got.Doc)
	}
	if dec, err := url.PathUnescape(got.Doc); err != nil || dec != doc {
		t.Fatalf("document decodes to %q (%v)", dec, err)
	}
	// An empty list is still a list.
	_, body = e.post(root, "iam", iamForm("ListRoles"), "")
	if !strings.Contains(string(body), "<Roles></Roles><IsTruncated>false</IsTruncated>") {
		t.Fatalf("empty ListRoles: %s", body)
	}
}

func TestWireGetQuery(t *testing.T) {
	e := newEnv(t)
	req, err := http.NewRequest(http.MethodGet, e.url+"/?Action=GetCallerIdentity&Version=2011-06-15", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Amz-Content-Sha256", hex.EncodeToString(sha256.New().Sum(nil)))
	err = v4.NewSigner().SignHTTP(ctx, aws.Credentials{AccessKeyID: rootAccess, SecretAccessKey: rootSecret}, req, hex.EncodeToString(sha256.New().Sum(nil)), "sts", region, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><GetCallerIdentityResult><UserId>`+account+`</UserId>`) {
		t.Fatalf("GET GetCallerIdentity: %d %s", resp.StatusCode, body)
	}
}
