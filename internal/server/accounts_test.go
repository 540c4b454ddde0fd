package server_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

type createdAccount struct {
	AccountID       string `json:"accountId"`
	Name            string `json:"name"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

// accountsAdmin signs calls to the accounts API as ak.
func accountsAdmin(t *testing.T, r *servertest.Region, ak, sk string) *admin {
	a := newAdmin(t, r, ak, sk)
	a.base = "/_bulwark/v1/"
	return a
}

// TestAccountsAPI creates an account as the deployment's admin, uses its
// root key, and checks that nobody else may create or list accounts.
func TestAccountsAPI(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	adm := accountsAdmin(t, r, servertest.AccessKey, servertest.SecretKey)

	status, raw := adm.call(http.MethodPost, "accounts", []byte(`{"name": "team-a"}`))
	var a createdAccount
	if err := json.Unmarshal(raw, &a); status != http.StatusCreated || err != nil {
		t.Fatalf("create: %d %s", status, raw)
	}
	if len(a.AccountID) != 12 || strings.Trim(a.AccountID, "0123456789") != "" || a.Name != "team-a" ||
		!strings.HasPrefix(a.AccessKeyID, "AKIA") || len(a.SecretAccessKey) != 40 {
		t.Fatalf("created %+v", a)
	}
	// The new root user manages its own account's IAM.
	newRoot := &creds{ak: a.AccessKeyID, sk: a.SecretAccessKey}
	if _, err := iamClientFor(r, newRoot).CreateUser(bg, &awsiam.CreateUserInput{UserName: aws.String("alice")}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.IAM.User(bg, a.AccountID, "alice"); err != nil {
		t.Fatalf("alice is not in the new account: %v", err)
	}

	var list struct {
		Accounts []struct {
			AccountID string `json:"accountId"`
			Name      string `json:"name"`
			Admin     bool   `json:"admin"`
		} `json:"accounts"`
	}
	status, raw = adm.call(http.MethodGet, "accounts", nil)
	if err := json.Unmarshal(raw, &list); status != http.StatusOK || err != nil || strings.Contains(strings.ToLower(string(raw)), "secret") {
		t.Fatalf("list: %d %s", status, raw)
	}
	got := map[string]string{}
	for _, ac := range list.Accounts {
		got[ac.AccountID] = ac.Name
		if ac.Admin != (ac.AccountID == servertest.AccountID) {
			t.Fatalf("admin flag of %s: %v", ac.AccountID, ac.Admin)
		}
	}
	if _, ok := got[servertest.AccountID]; !ok || got[a.AccountID] != "team-a" || len(got) != 3 {
		t.Fatalf("listed %v", got)
	}

	// Only the admin account's principals allowed bulwark:CreateAccount
	// and bulwark:ListAccounts: not another account's root (configured or
	// created), not a user or role of the admin account whose policies do
	// not allow it, not an unsigned call.
	admUser := userWithKey(t, r.IAM, servertest.AccountID, "ops", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"}]}`)
	admRole := roleSession(t, r.IAM, servertest.AccountID, "admin-role", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:*","bulwark:Get*"],"Resource":"*"}]}`)
	allowed := userWithKey(t, r.IAM, servertest.AccountID, "accounts-admin", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"bulwark:*Account*","Resource":"*"}]}`)
	accountsAdmin(t, r, allowed.ak, allowed.sk).ok(http.MethodGet, "accounts", nil, &list)
	otherAllowed := userWithKey(t, r.IAM, servertest.OtherAccountID, "accounts-admin", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"bulwark:*","Resource":"*"}]}`)
	for name, c := range map[string]*creds{
		"another configured account":          {ak: servertest.OtherAccessKey, sk: servertest.OtherSecretKey},
		"the new account":                     newRoot,
		"a user of the admin account":         admUser,
		"a role session of the admin account": admRole,
		"another account's user allowed it":   otherAllowed,
		"anonymous":                           {},
	} {
		t.Run(name, func(t *testing.T) {
			o := accountsAdmin(t, r, c.ak, c.sk)
			o.token = c.token
			o.fails(http.MethodPost, "accounts", []byte(`{"name": "x"}`), http.StatusForbidden, "AccessDenied")
			o.fails(http.MethodGet, "accounts", nil, http.StatusForbidden, "AccessDenied")
		})
	}

	for _, body := range []string{`{"name": ""}`, `{"name": "a/b"}`, `{"name": "x", "id": "123456789012"}`, `nope`} {
		adm.fails(http.MethodPost, "accounts", []byte(body), http.StatusBadRequest, "InvalidRequest")
	}

	// IAM's snapshot holds every account's records: the regions copy it
	// with the admin's key; no other account reads it.
	accountsAdmin(t, r, servertest.OtherAccessKey, servertest.OtherSecretKey).
		fails(http.MethodGet, "iam/snapshot", nil, http.StatusForbidden, "AccessDenied")
	accountsAdmin(t, r, a.AccessKeyID, a.SecretAccessKey).
		fails(http.MethodGet, "iam/snapshot", nil, http.StatusForbidden, "AccessDenied")
	if status, raw := adm.call(http.MethodGet, "iam/snapshot", nil); status != http.StatusOK {
		t.Fatalf("snapshot as the admin: %d %s", status, raw)
	}
}
