package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/topology"
)

// The deployment's admin is the root user of one account: that of the
// first root key the configuration gives (Config.Keys), else of the first
// bootstrap key (bulwark up's own). The admin creates the other accounts,
// each with a root key of its own, through the admin API under
// accountsPath; `bulwark admin account` is its client. Accounts are IAM's,
// so a region that copies IAM passes these calls to the IAM home region.

// accountsPath is where accounts are created and listed.
const accountsPath = adminPrefix + "v1/accounts"

// maxAccountRequest caps the body of a create call; a real one is a few
// dozen bytes.
const maxAccountRequest = 4 << 10

// accountNameRE is what an account name may be: what AWS allows, in
// printable ASCII.
var accountNameRE = regexp.MustCompile(`^[\w +=,.@-]{1,50}$`)

// accountView is an account as the admin API lists it.
type accountView struct {
	AccountID string    `json:"accountId"`
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Admin     bool      `json:"admin,omitempty"`
}

type accountsResponse struct {
	Accounts []accountView `json:"accounts"`
}

// createdAccount answers a create call: the account and its root user's
// key, whose secret is shown this once.
type createdAccount struct {
	AccountID       string `json:"accountId"`
	Name            string `json:"name"`
	AccessKeyID     string `json:"accessKeyId"`
	SecretAccessKey string `json:"secretAccessKey"`
}

type accountsAPI struct {
	r   *Region
	fwd *router
}

// Accounts are the deployment's: their actions, which AWS has no
// counterpart of (AWS Organizations' are the nearest), are Bulwark's own,
// and only principals of the admin account can be granted them. The
// admin account's root user has them; its IAM users and roles have them
// when a policy allows.
const (
	actionCreateAccount = "bulwark:CreateAccount"
	actionListAccounts  = "bulwark:ListAccounts"
)

// accountsRoutes are the calls that create and list accounts.
func (r *Region) accountsRoutes() []adminRoute {
	a := &accountsAPI{r: r, fwd: r.router().(*router)}
	return []adminRoute{
		{"POST " + accountsPath, checked, []string{actionCreateAccount}, a.create},
		{"GET " + accountsPath, checked, []string{actionListAccounts}, a.list},
	}
}

// atHome reports whether req is to be answered here: by the IAM home
// region, for a principal of the admin account allowed action. Otherwise
// it has answered req: passed it on to the IAM home region (signature and
// body unchanged, to be checked again there), or refused it.
func (a *accountsAPI) atHome(w http.ResponseWriter, req *http.Request, action string) bool {
	if a.r.iamCopy != nil {
		decided(req.Context()) // the IAM home region authorizes it
		home := a.r.iamHome()
		if req.Header.Get(forwardedHeader) != "" {
			writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable",
				fmt.Sprintf("region %s keeps only a copy of IAM; accounts are held by region %s", a.r.cfg.Region, home))
			return false
		}
		_, err := a.fwd.forward(w, req, "", home)
		switch {
		case errors.Is(err, topology.ErrRegionUnreachable):
			writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable",
				fmt.Sprintf("accounts are held by region %s, which did not answer; try again later", home))
		case err != nil && req.Context().Err() == nil:
			a.r.log.Error("accounts API: forward to the IAM home region", "home", home, "err", err)
			writeJSONError(w, http.StatusInternalServerError, "InternalError", "accounts: internal error (logged)")
		}
		return false
	}
	return a.r.adminOnly(w, req, action, "managing accounts")
}

// create creates an account and its root user's first access key.
func (a *accountsAPI) create(w http.ResponseWriter, req *http.Request) {
	body, ok := readBody(w, req, maxAccountRequest, "account request")
	if !ok {
		return
	}
	replayBody(req, body) // for the IAM home region, should the call go there
	if !a.atHome(w, req, actionCreateAccount) {
		return
	}
	var in struct {
		Name string `json:"name"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest", fmt.Sprintf("malformed account request: %v", err))
		return
	}
	if !accountNameRE.MatchString(in.Name) {
		writeJSONError(w, http.StatusBadRequest, "InvalidRequest",
			fmt.Sprintf("account name %q: 1 to 50 letters, digits, spaces or +=,.@_-", in.Name))
		return
	}
	ctx := req.Context()
	var acct *iam.Account
	var key *iam.AccessKey
	var err error
	for range 3 { // a random ID taken already: draw another
		acct, key, err = a.r.IAM.CreateAccount(ctx, "", in.Name)
		if !errors.Is(err, iam.ErrEntityExists) {
			break
		}
	}
	if err != nil {
		a.r.log.Error("accounts API: create account", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "InternalError", "create account: internal error (logged)")
		return
	}
	// As for the configured accounts: replication works as the design
	// article configures it from the start.
	if err := a.r.IAM.EnsureReplicationRole(ctx, acct.ID); err != nil {
		a.r.log.Warn("accounts API: create the replication role of a new account", "account", acct.ID, "err", err)
	}
	a.r.log.Info("created account", "account", acct.ID, "name", acct.Name, "accessKeyId", key.ID, "by", callerOf(ctx).ARN)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, createdAccount{AccountID: acct.ID, Name: acct.Name, AccessKeyID: key.ID, SecretAccessKey: key.Secret})
}

// list lists the accounts, oldest first; no secret is shown.
func (a *accountsAPI) list(w http.ResponseWriter, req *http.Request) {
	if !a.atHome(w, req, actionListAccounts) {
		return
	}
	accts, err := a.r.IAM.Accounts(req.Context())
	if err != nil {
		a.r.log.Error("accounts API: list accounts", "err", err)
		writeJSONError(w, http.StatusInternalServerError, "InternalError", "list accounts: internal error (logged)")
		return
	}
	slices.SortFunc(accts, func(x, y *iam.Account) int {
		return cmp.Or(x.Created.Compare(y.Created), cmp.Compare(x.ID, y.ID))
	})
	out := accountsResponse{Accounts: make([]accountView, 0, len(accts))}
	for _, ac := range accts {
		out.Accounts = append(out.Accounts, accountView{AccountID: ac.ID, Name: ac.Name, Created: ac.Created, Admin: ac.ID == a.r.admin})
	}
	writeJSON(w, http.StatusOK, out)
}

// isAdmin reports whether p is the deployment's admin: the root user of
// the admin account.
func (r *Region) isAdmin(p *iam.Principal) bool {
	return p != nil && r.admin != "" && p.AccountID == r.admin && p.Root()
}

// bootstrap stores the bootstrap keys that carry their secret, sealed, and
// records which account is the deployment's admin.
func (r *Region) bootstrap(ctx context.Context) error {
	for _, k := range r.cfg.BootstrapKeys {
		switch {
		case !k.Principal.Root():
			return fmt.Errorf("bootstrap key %s: not an account's root key", k.AccessKey)
		case k.Secret == "":
			// Stored at an earlier start; without it, nobody is the admin.
			if _, err := r.IAM.Lookup(ctx, k.AccessKey); r.iamCopy == nil && err != nil {
				r.log.Warn("the admin's root key is not in IAM (deleted, or IAM's data lost); bulwark up makes a new admin account once its credentials.json is removed",
					"accessKeyId", k.AccessKey, "account", k.Principal.AccountID, "err", err)
			}
			continue
		case r.iamCopy != nil:
			// The copy would lose it at the next refresh from the home.
			return fmt.Errorf("bootstrap key %s: region %s copies IAM from region %s, which alone stores keys",
				k.AccessKey, r.cfg.Region, r.iamHome())
		}
		if err := r.IAM.PutRootKey(ctx, k.Principal.AccountID, k.AccessKey, k.Secret); err != nil {
			return fmt.Errorf("store bootstrap key %s: %w", k.AccessKey, err)
		}
	}
	for _, k := range slices.Concat(r.cfg.Keys, r.cfg.BootstrapKeys) {
		if k.Principal.Root() {
			r.admin = k.Principal.AccountID
			break
		}
	}
	return nil
}

// rootKeyOf returns a key of an account's root user, for work Bulwark does
// on the account's behalf: one the configuration gives, else an active one
// IAM stores (unsealed).
func (r *Region) rootKeyOf(ctx context.Context, account string) (iam.Key, bool) {
	if k, ok := r.roots.ForAccount(account); ok {
		return k, true
	}
	keys, err := r.IAM.AccessKeys(ctx, account, "")
	if err != nil {
		return iam.Key{}, false
	}
	for _, ak := range keys {
		if k, err := r.IAM.Lookup(ctx, ak.ID); err == nil && !k.Inactive {
			return k, true
		}
	}
	return iam.Key{}, false
}

// signingKey is the key the region signs its calls to the other regions
// with: the first the configuration gives, else a root key of the admin
// account that IAM stores.
func (r *Region) signingKey() (iam.Key, bool) {
	if len(r.cfg.Keys) > 0 {
		return r.cfg.Keys[0], true
	}
	if r.admin == "" {
		return iam.Key{}, false
	}
	return r.rootKeyOf(context.Background(), r.admin)
}
