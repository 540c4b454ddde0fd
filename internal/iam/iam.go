// Package iam knows who a request comes from and decides what it may do.
//
// It holds accounts, their root keys, IAM users, roles, policies and
// STS sessions (secrets sealed under the deployment key), and evaluates a
// request as AWS does: every request passes through Authorize with its
// principal, action (s3:PutObject, ...), resource ARN and the resource's
// owning account, and identity policies, resource (bucket, vault) policies
// and session policies are weighed there (package policy holds the
// language). docs/design/iam.md says where it departs from AWS.
package iam

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/iam/policy"
)

// ErrAccessDenied is returned when a principal may not do what it asks.
var ErrAccessDenied = errors.New("access denied")

// ErrUnknownKey is returned for an access key no principal holds.
var ErrUnknownKey = errors.New("unknown access key")

// Principal is an authenticated identity.
type Principal struct {
	AccountID string
	ARN       string
	AccessKey string
	// UserName is set for IAM users; RoleARN and RoleName for assumed-role
	// sessions; Service for a service acting on its own (the replication
	// engine assuming a role, as s3.amazonaws.com).
	UserName string
	RoleARN  string
	RoleName string
	Service  string
}

// Root reports whether the principal is an account's root user.
func (p *Principal) Root() bool { return p.ARN == RootARN(p.AccountID) }

// Request is one authorization question: may Principal do Action on
// Resource? Anonymous requests have a nil Principal.
type Request struct {
	Principal *Principal
	Action    string // e.g. "s3:GetObject"
	Resource  string // e.g. "arn:aws:s3:::bucket/key"
	// ResourceOwner is the account that owns the resource; empty for
	// account-level actions (ListAllMyBuckets, CreateBucket) and for
	// resources that do not exist.
	ResourceOwner string
	// ResourcePolicy is the resource's policy document (a bucket policy, a
	// role's trust policy), if it has one, of ResourcePolicyKind.
	ResourcePolicy     []byte
	ResourcePolicyKind policy.Kind
	// Context holds the request's condition keys (aws:SourceIp,
	// aws:SecureTransport, s3:prefix, ...).
	Context map[string][]string
}

// Authorizer answers authorization questions.
type Authorizer interface {
	Authorize(ctx context.Context, req *Request) error
}

// OwnerOnly is the root user's authority without any policy: an
// authenticated principal may do anything to its own account's resources
// and nothing to another's; anonymous requests are denied.
type OwnerOnly struct{}

// Authorize implements Authorizer.
func (OwnerOnly) Authorize(ctx context.Context, req *Request) error {
	if req.Principal == nil {
		return fmt.Errorf("%w: anonymous %s on %s", ErrAccessDenied, req.Action, req.Resource)
	}
	if req.ResourceOwner != "" && req.ResourceOwner != req.Principal.AccountID {
		return fmt.Errorf("%w: %s may not %s on %s", ErrAccessDenied, req.Principal.ARN, req.Action, req.Resource)
	}
	return nil
}

// Key is an access key pair and the principal it authenticates.
type Key struct {
	AccessKey string
	Secret    string
	Principal Principal
	// Session, set for temporary credentials, reads the session a token
	// describes: a request signed with such a key must carry the token the
	// key was issued with, and is refused once the session expires.
	Session func(token string) (*Session, error)
	// Inactive keys authenticate nothing.
	Inactive bool
}

// Authenticate returns who a request signed with k is, given the session
// token it carried: the key's own principal for a long-term key (which
// takes no token), or the session's for temporary credentials.
func (k Key) Authenticate(token string, now time.Time) (Principal, error) {
	switch {
	case k.Inactive:
		return Principal{}, ErrUnknownKey
	case k.Session == nil && token != "":
		return Principal{}, ErrInvalidClientToken
	case k.Session == nil:
		return k.Principal, nil
	case token == "":
		return Principal{}, ErrInvalidClientToken
	}
	ss, err := k.Session(token)
	if err != nil || ss.ID != k.AccessKey {
		return Principal{}, ErrInvalidClientToken
	}
	if now.After(ss.Expires) {
		return Principal{}, ErrExpiredToken
	}
	return ss.Principal(), nil
}

// KeyLookup finds the key an access key ID names, or ErrUnknownKey.
type KeyLookup interface {
	Lookup(ctx context.Context, accessKey string) (Key, error)
}

// Keyring maps access key IDs to keys.
type Keyring struct {
	mu   sync.RWMutex
	keys map[string]Key
}

// NewKeyring returns a keyring holding keys.
func NewKeyring(keys ...Key) *Keyring {
	k := &Keyring{keys: map[string]Key{}}
	for _, key := range keys {
		k.keys[key.AccessKey] = key
	}
	return k
}

// Lookup returns the key with the given ID.
func (k *Keyring) Lookup(ctx context.Context, accessKey string) (Key, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	key, ok := k.keys[accessKey]
	if !ok {
		return Key{}, ErrUnknownKey
	}
	return key, nil
}

// RootKey returns a key for an account's root user.
func RootKey(accountID, accessKey, secret string) Key {
	return Key{AccessKey: accessKey, Secret: secret, Principal: Principal{
		AccountID: accountID,
		ARN:       RootARN(accountID),
		AccessKey: accessKey,
	}}
}

// ForAccount returns a key of the account's root user, for work the system
// does on the account's behalf.
func (k *Keyring) ForAccount(accountID string) (Key, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, key := range k.keys {
		if key.Principal.AccountID == accountID && key.Principal.Root() {
			return key, true
		}
	}
	return Key{}, false
}
