// Package iam knows who a request comes from and decides what it may do.
//
// This first version holds root access keys of accounts and lets an
// authenticated principal act on its own account's resources only. Every S3
// request already passes through Authorize with its principal, action
// (s3:PutObject, ...), resource ARN and the resource's owning account, so
// identity and bucket policies slot in behind the same call.
package iam

import (
	"context"
	"errors"
	"fmt"
	"sync"
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
}

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
		ARN:       "arn:aws:iam::" + accountID + ":root",
		AccessKey: accessKey,
	}}
}

// ForAccount returns a key of the account's root user, for work the system
// does on the account's behalf.
func (k *Keyring) ForAccount(accountID string) (Key, bool) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	for _, key := range k.keys {
		if key.Principal.AccountID == accountID && key.Principal.ARN == "arn:aws:iam::"+accountID+":root" {
			return key, true
		}
	}
	return Key{}, false
}
