package iam

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Errors of IAM's entities; the IAM wire package maps them to IAM's codes.
var (
	ErrNoSuchEntity       = errors.New("no such entity")
	ErrEntityExists       = errors.New("entity already exists")
	ErrDeleteConflict     = errors.New("entity has subordinate entities")
	ErrInvalidInput       = errors.New("invalid input")
	ErrMalformedPolicy    = errors.New("malformed policy document")
	ErrLimitExceeded      = errors.New("limit exceeded")
	ErrNotAttachable      = errors.New("policy not attachable")
	ErrInvalidClientToken = errors.New("the security token included in the request is invalid")
	ErrExpiredToken       = errors.New("the security token included in the request is expired")
)

// Keyspaces of the metadata store holding IAM.
const (
	spaceAccounts = "iam-accounts" // account ID -> Account
	spaceUsers    = "iam-users"    // account \0 user name -> User
	spaceRoles    = "iam-roles"    // account \0 role name -> Role
	spacePolicies = "iam-policies" // account \0 policy name -> ManagedPolicy
	spaceKeys     = "iam-keys"     // access key ID -> AccessKey (secret sealed)
)

// Limits IAM documents.
const (
	MaxAccessKeysPerUser = 2
	MaxInlinePolicySize  = 2048 * 5
	MaxManagedPolicySize = 6144
	MaxSessionDuration   = 12 * time.Hour
	MinSessionDuration   = 15 * time.Minute
)

// Account is an AWS-style account: a 12-digit ID and its root user.
type Account struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
}

// RootARN is the ARN of an account's root user.
func RootARN(account string) string { return "arn:aws:iam::" + account + ":root" }

// User is an IAM user.
type User struct {
	Account  string            `json:"account"`
	Name     string            `json:"name"`
	Path     string            `json:"path"`
	ID       string            `json:"id"`
	Created  time.Time         `json:"created"`
	Policies map[string]string `json:"policies,omitempty"` // inline: name -> document
	Attached []string          `json:"attached,omitempty"` // managed policy ARNs
}

// ARN returns the user's ARN.
func (u *User) ARN() string { return "arn:aws:iam::" + u.Account + ":user" + u.Path + u.Name }

// Role is an IAM role.
type Role struct {
	Account     string            `json:"account"`
	Name        string            `json:"name"`
	Path        string            `json:"path"`
	ID          string            `json:"id"`
	Created     time.Time         `json:"created"`
	Trust       string            `json:"trust"` // assume-role policy document
	Description string            `json:"description,omitempty"`
	MaxSession  time.Duration     `json:"maxSession"`
	Policies    map[string]string `json:"policies,omitempty"`
	Attached    []string          `json:"attached,omitempty"`
}

// ARN returns the role's ARN.
func (r *Role) ARN() string { return "arn:aws:iam::" + r.Account + ":role" + r.Path + r.Name }

// ManagedPolicy is a customer managed policy.
type ManagedPolicy struct {
	Account     string    `json:"account"`
	Name        string    `json:"name"`
	Path        string    `json:"path"`
	ID          string    `json:"id"`
	Description string    `json:"description,omitempty"`
	Document    string    `json:"document"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	Attachments int       `json:"attachments"`
}

// ARN returns the policy's ARN.
func (p *ManagedPolicy) ARN() string {
	return "arn:aws:iam::" + p.Account + ":policy" + p.Path + p.Name
}

// Access key statuses.
const (
	KeyActive   = "Active"
	KeyInactive = "Inactive"
)

// AccessKey is a long-term access key of a user, or of an account's root
// user when User is empty.
type AccessKey struct {
	ID      string    `json:"id"`
	Account string    `json:"account"`
	User    string    `json:"user,omitempty"`
	Status  string    `json:"status"`
	Created time.Time `json:"created"`
	Sealed  []byte    `json:"sealed"`
	// Secret is filled in only when the key is created or looked up for
	// signature checking; it is never stored in the clear.
	Secret string `json:"-"`
}

// Session is a temporary credential issued by AssumeRole. It is not
// stored: its token carries it, sealed with the deployment key.
type Session struct {
	ID          string    `json:"id"` // the temporary access key ID
	Account     string    `json:"account"`
	RoleName    string    `json:"role"`
	RoleARN     string    `json:"roleArn"`
	RoleID      string    `json:"roleId"`
	SessionName string    `json:"sessionName"`
	Expires     time.Time `json:"expires"`
	Token       string    `json:"-"`
	Secret      string    `json:"-"`
}

// Principal is who the session acts as.
func (s *Session) Principal() Principal {
	return Principal{AccountID: s.Account, ARN: s.ARN(), AccessKey: s.ID, RoleARN: s.RoleARN, RoleName: s.RoleName}
}

// ARN is the assumed-role session's ARN.
func (s *Session) ARN() string {
	return "arn:aws:sts::" + s.Account + ":assumed-role/" + s.RoleName + "/" + s.SessionName
}

// Store keeps accounts, users, roles, policies, access keys and sessions
// in a metadata store, secrets sealed with the deployment key.
type Store struct {
	meta       meta.Store
	seal       *sealer
	sessionKey []byte // derives session secrets
	now        func() time.Time
	roots      *Keyring // root keys given by configuration, not stored
}

// NewStore returns an IAM store. roots holds root keys given by
// configuration (the deployment's bootstrap credentials); they need no
// record in the store.
func NewStore(m meta.Store, deploymentKey []byte, roots *Keyring, now func() time.Time) (*Store, error) {
	s, err := newSealer(deploymentKey)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	if roots == nil {
		roots = NewKeyring()
	}
	sk := hmac.New(sha256.New, deploymentKey)
	sk.Write([]byte("bulwark session key"))
	return &Store{meta: m, seal: s, sessionKey: sk.Sum(nil), now: now, roots: roots}, nil
}

var idChars = base32.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567").WithPadding(base32.NoPadding)

func newID(prefix string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return prefix + idChars.EncodeToString(b)[:n]
}

func newSecret() string {
	b := make([]byte, 30)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b) // 40 characters
}

var (
	nameRE    = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	roleRE    = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	policyRE  = regexp.MustCompile(`^[\w+=,.@-]{1,128}$`)
	sessionRE = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
)

func checkName(kind, name string, re *regexp.Regexp) error {
	if !re.MatchString(name) {
		return fmt.Errorf("%w: the specified value for %s is invalid: %q", ErrInvalidInput, kind, name)
	}
	return nil
}

func normPath(p string) (string, error) {
	if p == "" {
		return "/", nil
	}
	if !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || len(p) > 512 {
		return "", fmt.Errorf("%w: the specified value for path is invalid: it must begin and end with /", ErrInvalidInput)
	}
	return p, nil
}

func entityKey(account, name string) []byte { return []byte(account + "\x00" + name) }

func get[T any](tx meta.Tx, space string, key []byte, what string) (*T, error) {
	raw := tx.Get(space, key)
	if raw == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchEntity, what)
	}
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, fmt.Errorf("decode %s: %w", what, err)
	}
	return v, nil
}

func put(tx meta.Tx, space string, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(space, key, raw)
}

func list[T any](tx meta.Tx, space string, prefix []byte) ([]*T, error) {
	var out []*T
	it := tx.Iter(space)
	for k, raw := it.Seek(prefix); k != nil && strings.HasPrefix(string(k), string(prefix)); k, raw = it.Next() {
		v := new(T)
		if err := json.Unmarshal(raw, v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// CreateAccount creates an account; id "" draws a random 12-digit ID. It
// returns the account and its root user's first access key, whose secret
// is shown this once.
func (s *Store) CreateAccount(ctx context.Context, id, name string) (*Account, *AccessKey, error) {
	if id == "" {
		b := make([]byte, 12)
		_, _ = rand.Read(b)
		for i := range b {
			b[i] = '0' + b[i]%10
		}
		if b[0] == '0' {
			b[0] = '1'
		}
		id = string(b)
	}
	if len(id) != 12 || strings.Trim(id, "0123456789") != "" {
		return nil, nil, fmt.Errorf("%w: account ID %q must be 12 digits", ErrInvalidInput, id)
	}
	a := &Account{ID: id, Name: name, Created: s.now().UTC()}
	k := s.newKey(id, "")
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		if tx.Get(spaceAccounts, []byte(id)) != nil {
			return fmt.Errorf("%w: account %s", ErrEntityExists, id)
		}
		if err := put(tx, spaceAccounts, []byte(id), a); err != nil {
			return err
		}
		return put(tx, spaceKeys, []byte(k.ID), k)
	})
	if err != nil {
		return nil, nil, err
	}
	return a, k, nil
}

// EnsureAccount records an account whose root key is given by
// configuration, if it is not recorded yet.
func (s *Store) EnsureAccount(ctx context.Context, id, name string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		if tx.Get(spaceAccounts, []byte(id)) != nil {
			return nil
		}
		return put(tx, spaceAccounts, []byte(id), &Account{ID: id, Name: name, Created: s.now().UTC()})
	})
}

// Accounts lists the accounts.
func (s *Store) Accounts(ctx context.Context) ([]*Account, error) {
	var out []*Account
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		out, err = list[Account](tx, spaceAccounts, nil)
		return err
	})
	return out, err
}

// Account returns an account.
func (s *Store) Account(ctx context.Context, id string) (*Account, error) {
	var a *Account
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		a, err = get[Account](tx, spaceAccounts, []byte(id), "account "+id)
		return err
	})
	return a, err
}

func (s *Store) newKey(account, user string) *AccessKey {
	k := &AccessKey{ID: newID("AKIA", 16), Account: account, User: user, Status: KeyActive, Created: s.now().UTC(), Secret: newSecret()}
	k.Sealed = s.seal.seal(k.ID, k.Secret)
	return k
}

// CreateUser creates a user.
func (s *Store) CreateUser(ctx context.Context, account, name, path string) (*User, error) {
	if err := checkName("userName", name, nameRE); err != nil {
		return nil, err
	}
	path, err := normPath(path)
	if err != nil {
		return nil, err
	}
	u := &User{Account: account, Name: name, Path: path, ID: newID("AIDA", 17), Created: s.now().UTC()}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		if tx.Get(spaceAccounts, []byte(account)) == nil {
			return fmt.Errorf("%w: account %s", ErrNoSuchEntity, account)
		}
		if s.existsFold(tx, spaceUsers, account, name) {
			return fmt.Errorf("%w: User with name %s already exists.", ErrEntityExists, name)
		}
		return put(tx, spaceUsers, entityKey(account, name), u)
	})
	return u, err
}

// existsFold reports whether a name is taken, ignoring case, as IAM names
// are unique case-insensitively.
func (s *Store) existsFold(tx meta.Tx, space, account, name string) bool {
	p := []byte(account + "\x00")
	it := tx.Iter(space)
	for k, _ := it.Seek(p); k != nil && strings.HasPrefix(string(k), string(p)); k, _ = it.Next() {
		if strings.EqualFold(string(k[len(p):]), name) {
			return true
		}
	}
	return false
}

// User returns a user.
func (s *Store) User(ctx context.Context, account, name string) (*User, error) {
	var u *User
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		u, err = get[User](tx, spaceUsers, entityKey(account, name), "The user with name "+name+" cannot be found.")
		return err
	})
	return u, err
}

// Users lists an account's users whose path starts with prefix.
func (s *Store) Users(ctx context.Context, account, prefix string) ([]*User, error) {
	var out []*User
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		out, err = list[User](tx, spaceUsers, []byte(account+"\x00"))
		return err
	})
	out = slices.DeleteFunc(out, func(u *User) bool { return !strings.HasPrefix(u.Path, orSlash(prefix)) })
	return out, err
}

func orSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// DeleteUser deletes a user that has no access keys and no policies left,
// as IAM requires.
func (s *Store) DeleteUser(ctx context.Context, account, name string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		u, err := get[User](tx, spaceUsers, entityKey(account, name), "The user with name "+name+" cannot be found.")
		if err != nil {
			return err
		}
		keys, err := userKeys(tx, account, name)
		if err != nil {
			return err
		}
		if len(keys) > 0 || len(u.Policies) > 0 || len(u.Attached) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must delete access keys and policies first.", ErrDeleteConflict)
		}
		return tx.Delete(spaceUsers, entityKey(account, name))
	})
}

func userKeys(tx meta.Tx, account, user string) ([]*AccessKey, error) {
	all, err := list[AccessKey](tx, spaceKeys, nil)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(all, func(k *AccessKey) bool { return k.Account != account || k.User != user }), nil
}

// CreateAccessKey creates an access key for a user ("" for the account's
// root user). The secret is returned this once.
func (s *Store) CreateAccessKey(ctx context.Context, account, user string) (*AccessKey, error) {
	k := s.newKey(account, user)
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		if user != "" {
			if _, err := get[User](tx, spaceUsers, entityKey(account, user), "The user with name "+user+" cannot be found."); err != nil {
				return err
			}
		}
		keys, err := userKeys(tx, account, user)
		if err != nil {
			return err
		}
		if len(keys) >= MaxAccessKeysPerUser {
			return fmt.Errorf("%w: Cannot exceed quota for AccessKeysPerUser: %d", ErrLimitExceeded, MaxAccessKeysPerUser)
		}
		return put(tx, spaceKeys, []byte(k.ID), k)
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// AccessKeys lists a user's access keys, without secrets.
func (s *Store) AccessKeys(ctx context.Context, account, user string) ([]*AccessKey, error) {
	var out []*AccessKey
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		if user != "" {
			if _, err := get[User](tx, spaceUsers, entityKey(account, user), "The user with name "+user+" cannot be found."); err != nil {
				return err
			}
		}
		var err error
		out, err = userKeys(tx, account, user)
		return err
	})
	return out, err
}

// accessKeyOf finds a key of the user; user "" is the root user.
func accessKeyOf(tx meta.Tx, account, user, id string) (*AccessKey, error) {
	k, err := get[AccessKey](tx, spaceKeys, []byte(id), "The Access Key with id "+id+" cannot be found.")
	if err != nil {
		return nil, err
	}
	if k.Account != account || k.User != user {
		return nil, fmt.Errorf("%w: The Access Key with id %s cannot be found.", ErrNoSuchEntity, id)
	}
	return k, nil
}

// UpdateAccessKey sets a key Active or Inactive.
func (s *Store) UpdateAccessKey(ctx context.Context, account, user, id, status string) error {
	if status != KeyActive && status != KeyInactive {
		return fmt.Errorf("%w: status must be Active or Inactive", ErrInvalidInput)
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		k, err := accessKeyOf(tx, account, user, id)
		if err != nil {
			return err
		}
		k.Status = status
		return put(tx, spaceKeys, []byte(id), k)
	})
}

// DeleteAccessKey deletes a key.
func (s *Store) DeleteAccessKey(ctx context.Context, account, user, id string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		if _, err := accessKeyOf(tx, account, user, id); err != nil {
			return err
		}
		return tx.Delete(spaceKeys, []byte(id))
	})
}

// CreateRole creates a role with its trust policy.
func (s *Store) CreateRole(ctx context.Context, r *Role) (*Role, error) {
	if err := checkName("roleName", r.Name, roleRE); err != nil {
		return nil, err
	}
	path, err := normPath(r.Path)
	if err != nil {
		return nil, err
	}
	if err := checkPolicy(r.Trust, trustKind); err != nil {
		return nil, err
	}
	if r.MaxSession == 0 {
		r.MaxSession = time.Hour
	}
	if r.MaxSession < time.Hour || r.MaxSession > MaxSessionDuration {
		return nil, fmt.Errorf("%w: MaxSessionDuration must be between 3600 and 43200 seconds", ErrInvalidInput)
	}
	role := &Role{Account: r.Account, Name: r.Name, Path: path, ID: newID("AROA", 17), Created: s.now().UTC(),
		Trust: r.Trust, Description: r.Description, MaxSession: r.MaxSession}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		if tx.Get(spaceAccounts, []byte(r.Account)) == nil {
			return fmt.Errorf("%w: account %s", ErrNoSuchEntity, r.Account)
		}
		if s.existsFold(tx, spaceRoles, r.Account, r.Name) {
			return fmt.Errorf("%w: Role with name %s already exists.", ErrEntityExists, r.Name)
		}
		return put(tx, spaceRoles, entityKey(r.Account, r.Name), role)
	})
	return role, err
}

// Role returns a role.
func (s *Store) Role(ctx context.Context, account, name string) (*Role, error) {
	var r *Role
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		r, err = get[Role](tx, spaceRoles, entityKey(account, name), "The role with name "+name+" cannot be found.")
		return err
	})
	return r, err
}

// Roles lists an account's roles whose path starts with prefix.
func (s *Store) Roles(ctx context.Context, account, prefix string) ([]*Role, error) {
	var out []*Role
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		out, err = list[Role](tx, spaceRoles, []byte(account+"\x00"))
		return err
	})
	out = slices.DeleteFunc(out, func(r *Role) bool { return !strings.HasPrefix(r.Path, orSlash(prefix)) })
	return out, err
}

// DeleteRole deletes a role without policies.
func (s *Store) DeleteRole(ctx context.Context, account, name string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		r, err := get[Role](tx, spaceRoles, entityKey(account, name), "The role with name "+name+" cannot be found.")
		if err != nil {
			return err
		}
		if len(r.Policies) > 0 || len(r.Attached) > 0 {
			return fmt.Errorf("%w: Cannot delete entity, must detach all policies first.", ErrDeleteConflict)
		}
		return tx.Delete(spaceRoles, entityKey(account, name))
	})
}

// UpdateAssumeRolePolicy replaces a role's trust policy.
func (s *Store) UpdateAssumeRolePolicy(ctx context.Context, account, name, doc string) error {
	if err := checkPolicy(doc, trustKind); err != nil {
		return err
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		r, err := get[Role](tx, spaceRoles, entityKey(account, name), "The role with name "+name+" cannot be found.")
		if err != nil {
			return err
		}
		r.Trust = doc
		return put(tx, spaceRoles, entityKey(account, name), r)
	})
}

// Kinds of principal entities that hold policies.
const (
	EntityUser = "user"
	EntityRole = "role"
)

func entitySpace(kind string) string {
	if kind == EntityRole {
		return spaceRoles
	}
	return spaceUsers
}

// holder is what users and roles share: inline and attached policies.
type holder interface {
	inline() map[string]string
	setInline(map[string]string)
	attached() *[]string
}

func (u *User) inline() map[string]string     { return u.Policies }
func (u *User) setInline(m map[string]string) { u.Policies = m }
func (u *User) attached() *[]string           { return &u.Attached }
func (r *Role) inline() map[string]string     { return r.Policies }
func (r *Role) setInline(m map[string]string) { r.Policies = m }
func (r *Role) attached() *[]string           { return &r.Attached }

// updateHolder reads a user or role, lets fn change it, and writes it back.
func (s *Store) updateHolder(ctx context.Context, kind, account, name string, fn func(tx meta.Tx, h holder) error) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		key := entityKey(account, name)
		var h holder
		var err error
		if kind == EntityRole {
			h, err = get[Role](tx, spaceRoles, key, "The role with name "+name+" cannot be found.")
		} else {
			h, err = get[User](tx, spaceUsers, key, "The user with name "+name+" cannot be found.")
		}
		if err != nil {
			return err
		}
		if err := fn(tx, h); err != nil {
			return err
		}
		return put(tx, entitySpace(kind), key, h)
	})
}

// PutInlinePolicy adds or replaces an inline policy of a user or role.
func (s *Store) PutInlinePolicy(ctx context.Context, kind, account, name, policyName, doc string) error {
	if err := checkName("policyName", policyName, policyRE); err != nil {
		return err
	}
	if len(doc) > MaxInlinePolicySize {
		return fmt.Errorf("%w: Maximum policy size of %d bytes exceeded for %s %s.", ErrLimitExceeded, MaxInlinePolicySize, kind, name)
	}
	if err := checkPolicy(doc, identityKind); err != nil {
		return err
	}
	return s.updateHolder(ctx, kind, account, name, func(_ meta.Tx, h holder) error {
		m := h.inline()
		if m == nil {
			m = map[string]string{}
		}
		m[policyName] = doc
		h.setInline(m)
		return nil
	})
}

// InlinePolicy returns an inline policy's document.
func (s *Store) InlinePolicy(ctx context.Context, kind, account, name, policyName string) (string, error) {
	var doc string
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		h, err := getHolder(tx, kind, account, name)
		if err != nil {
			return err
		}
		d, ok := h.inline()[policyName]
		if !ok {
			return fmt.Errorf("%w: The %s policy with name %s cannot be found.", ErrNoSuchEntity, kind, policyName)
		}
		doc = d
		return nil
	})
	return doc, err
}

func getHolder(tx meta.Tx, kind, account, name string) (holder, error) {
	if kind == EntityRole {
		return get[Role](tx, spaceRoles, entityKey(account, name), "The role with name "+name+" cannot be found.")
	}
	return get[User](tx, spaceUsers, entityKey(account, name), "The user with name "+name+" cannot be found.")
}

// InlinePolicies lists a user's or role's inline policy names.
func (s *Store) InlinePolicies(ctx context.Context, kind, account, name string) ([]string, error) {
	var out []string
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		h, err := getHolder(tx, kind, account, name)
		if err != nil {
			return err
		}
		for n := range h.inline() {
			out = append(out, n)
		}
		slices.Sort(out)
		return nil
	})
	return out, err
}

// DeleteInlinePolicy removes an inline policy.
func (s *Store) DeleteInlinePolicy(ctx context.Context, kind, account, name, policyName string) error {
	return s.updateHolder(ctx, kind, account, name, func(_ meta.Tx, h holder) error {
		if _, ok := h.inline()[policyName]; !ok {
			return fmt.Errorf("%w: The %s policy with name %s cannot be found.", ErrNoSuchEntity, kind, policyName)
		}
		delete(h.inline(), policyName)
		return nil
	})
}

// CreatePolicy creates a customer managed policy.
func (s *Store) CreatePolicy(ctx context.Context, p *ManagedPolicy) (*ManagedPolicy, error) {
	if err := checkName("policyName", p.Name, policyRE); err != nil {
		return nil, err
	}
	path, err := normPath(p.Path)
	if err != nil {
		return nil, err
	}
	if len(p.Document) > MaxManagedPolicySize {
		return nil, fmt.Errorf("%w: Cannot exceed quota for PolicySize: %d", ErrLimitExceeded, MaxManagedPolicySize)
	}
	if err := checkPolicy(p.Document, identityKind); err != nil {
		return nil, err
	}
	now := s.now().UTC()
	mp := &ManagedPolicy{Account: p.Account, Name: p.Name, Path: path, ID: newID("ANPA", 17), Description: p.Description,
		Document: p.Document, Created: now, Updated: now}
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		if s.existsFold(tx, spacePolicies, p.Account, p.Name) {
			return fmt.Errorf("%w: A policy called %s already exists. Duplicate names are not allowed.", ErrEntityExists, p.Name)
		}
		return put(tx, spacePolicies, entityKey(p.Account, p.Name), mp)
	})
	return mp, err
}

// policyByARN resolves a managed policy ARN.
func policyByARN(tx meta.Tx, arn string) (*ManagedPolicy, error) {
	rest, ok := strings.CutPrefix(arn, "arn:aws:iam::")
	acct, res, ok2 := strings.Cut(rest, ":policy/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%w: ARN %s is not valid.", ErrInvalidInput, arn)
	}
	name := res[strings.LastIndex(res, "/")+1:]
	return get[ManagedPolicy](tx, spacePolicies, entityKey(acct, name), "Policy "+arn+" does not exist or is not attachable.")
}

// Policy returns a managed policy by ARN.
func (s *Store) Policy(ctx context.Context, arn string) (*ManagedPolicy, error) {
	var p *ManagedPolicy
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		p, err = policyByARN(tx, arn)
		return err
	})
	return p, err
}

// Policies lists an account's managed policies.
func (s *Store) Policies(ctx context.Context, account string) ([]*ManagedPolicy, error) {
	var out []*ManagedPolicy
	err := s.meta.View(ctx, func(tx meta.Tx) (err error) {
		out, err = list[ManagedPolicy](tx, spacePolicies, []byte(account+"\x00"))
		return err
	})
	return out, err
}

// DeletePolicy deletes a managed policy attached to nothing.
func (s *Store) DeletePolicy(ctx context.Context, arn string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		p, err := policyByARN(tx, arn)
		if err != nil {
			return err
		}
		if p.Attachments > 0 {
			return fmt.Errorf("%w: Cannot delete a policy attached to entities.", ErrDeleteConflict)
		}
		return tx.Delete(spacePolicies, entityKey(p.Account, p.Name))
	})
}

// AttachPolicy attaches a managed policy of the same account to a user or
// role.
func (s *Store) AttachPolicy(ctx context.Context, kind, account, name, arn string) error {
	return s.updateHolder(ctx, kind, account, name, func(tx meta.Tx, h holder) error {
		p, err := policyByARN(tx, arn)
		if err != nil {
			return err
		}
		if p.Account != account {
			return fmt.Errorf("%w: Policy %s does not exist or is not attachable.", ErrNoSuchEntity, arn)
		}
		at := h.attached()
		if slices.Contains(*at, arn) {
			return nil
		}
		*at = append(*at, arn)
		p.Attachments++
		return put(tx, spacePolicies, entityKey(p.Account, p.Name), p)
	})
}

// DetachPolicy detaches a managed policy.
func (s *Store) DetachPolicy(ctx context.Context, kind, account, name, arn string) error {
	return s.updateHolder(ctx, kind, account, name, func(tx meta.Tx, h holder) error {
		at := h.attached()
		i := slices.Index(*at, arn)
		if i < 0 {
			return fmt.Errorf("%w: Policy %s was not found.", ErrNoSuchEntity, arn)
		}
		*at = slices.Delete(*at, i, i+1)
		p, err := policyByARN(tx, arn)
		if err != nil {
			return nil // deleted meanwhile; nothing to count
		}
		p.Attachments--
		return put(tx, spacePolicies, entityKey(p.Account, p.Name), p)
	})
}

// AttachedPolicies lists the managed policies attached to a user or role.
func (s *Store) AttachedPolicies(ctx context.Context, kind, account, name string) ([]string, error) {
	var out []string
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		h, err := getHolder(tx, kind, account, name)
		if err != nil {
			return err
		}
		out = slices.Clone(*h.attached())
		return nil
	})
	return out, err
}

// WithClock returns a view of the store whose clock is now: tests issue
// sessions that are already expired with it.
func (s *Store) WithClock(now func() time.Time) *Store {
	c := *s
	c.now = now
	return &c
}

// Record is one stored IAM record, as the IAM home region hands its state
// to the other regions.
type Record struct {
	Space string `json:"space"`
	Key   []byte `json:"key"`
	Value []byte `json:"value"`
}

// replicatedSpaces are the keyspaces the other regions copy.
var replicatedSpaces = []string{spaceAccounts, spaceUsers, spaceRoles, spacePolicies, spaceKeys}

// Export returns every IAM record and a digest of them.
func (s *Store) Export(ctx context.Context) ([]Record, string, error) {
	var out []Record
	h := sha256.New()
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		out = out[:0]
		for _, sp := range replicatedSpaces {
			it := tx.Iter(sp)
			for k, v := it.First(); k != nil; k, v = it.Next() {
				out = append(out, Record{Space: sp, Key: bytes.Clone(k), Value: bytes.Clone(v)})
				h.Write([]byte(sp))
				h.Write(k)
				h.Write(v)
			}
		}
		return nil
	})
	return out, hex.EncodeToString(h.Sum(nil)), err
}

// Import replaces this store's IAM records with the home region's.
func (s *Store) Import(ctx context.Context, recs []Record) error {
	for _, r := range recs {
		if !slices.Contains(replicatedSpaces, r.Space) {
			return fmt.Errorf("import IAM: unknown keyspace %q", r.Space)
		}
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		for _, sp := range replicatedSpaces {
			var keys [][]byte
			it := tx.Iter(sp)
			for k, _ := it.First(); k != nil; k, _ = it.Next() {
				keys = append(keys, bytes.Clone(k))
			}
			for _, k := range keys {
				if err := tx.Delete(sp, k); err != nil {
					return err
				}
			}
		}
		for _, r := range recs {
			if err := tx.Put(r.Space, r.Key, r.Value); err != nil {
				return err
			}
		}
		return nil
	})
}
