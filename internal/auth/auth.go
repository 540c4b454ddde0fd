// Package auth turns a signed request into the principal that signed it:
// SigV4 verification, the key's lookup and its session token. Every API
// (S3, IAM and STS, Backup, Bulwark's own) authenticates through it and
// maps its errors to its own wire codes.
package auth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/sigv4"
)

// ErrAnonymous is a request that carries no signature at all.
var ErrAnonymous = errors.New("request is not signed")

// Caller verifies r's signature and returns who signed it. The errors it
// returns wrap ErrAnonymous (no signature), iam.ErrUnknownKey (an unknown
// or inactive access key), iam.ErrInvalidClientToken or
// iam.ErrExpiredToken (a session token missing, altered or expired), or
// are the verifier's own. The result's Body replaces r.Body: it checks the
// payload as it is read.
func Caller(ctx context.Context, v *sigv4.Verifier, keys iam.KeyLookup, r *http.Request, now time.Time) (*iam.Principal, *sigv4.Result, error) {
	res, err := v.Verify(ctx, r)
	if err != nil {
		return nil, nil, err
	}
	if res.Anonymous {
		return nil, res, ErrAnonymous
	}
	key, err := keys.Lookup(ctx, res.Credential.AccessKey)
	if err != nil {
		return nil, res, err
	}
	if key.Inactive {
		return nil, res, iam.ErrUnknownKey
	}
	p, err := key.Authenticate(res.SessionToken, now)
	if err != nil {
		return nil, res, err
	}
	return &p, res, nil
}

// Lookup adapts a key lookup to the signature verifier. An inactive key
// is as good as unknown.
func Lookup(keys iam.KeyLookup) sigv4.Lookup {
	return func(ctx context.Context, accessKey string) (sigv4.Credential, error) {
		k, err := keys.Lookup(ctx, accessKey)
		if err != nil || k.Inactive {
			return sigv4.Credential{}, sigv4.ErrInvalidAccessKeyID
		}
		return sigv4.Credential{AccessKey: k.AccessKey, Secret: k.Secret, Principal: k.Principal.ARN}, nil
	}
}
