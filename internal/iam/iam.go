// Package iam knows who a request comes from and decides what it may do.
//
// This first version holds one account's root access keys and lets an
// authenticated principal act on its own account's resources. Every S3
// request already passes through Authorize with its principal, action
// (s3:PutObject, ...) and resource ARN, so policies slot in behind the same
// call.
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
}

// Authorizer answers authorization questions.
type Authorizer interface {
	Authorize(ctx context.Context, req *Request) error
}

// AuthenticatedOnly allows every authenticated principal and denies
// anonymous requests. With a single account it is exactly the account's
// root permissions.
type AuthenticatedOnly struct{}

// Authorize implements Authorizer.
func (AuthenticatedOnly) Authorize(ctx context.Context, req *Request) error {
	if req.Principal == nil {
		return fmt.Errorf("%w: anonymous %s on %s", ErrAccessDenied, req.Action, req.Resource)
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
