package iam_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/meta/bolt"
)

func TestPutRootKey(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	m, err := bolt.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := iam.NewStore(m, bytes.Repeat([]byte{1}, iam.DeploymentKeySize), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	const acct, id, secret = "123456789012", "AKIAROOTKEY000000001", "the-secret-of-the-root-key/0000000000000"
	for range 2 { // storing it again changes nothing
		if err := st.PutRootKey(ctx, acct, id, secret); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.Account(ctx, acct); err != nil {
		t.Fatalf("the account is not recorded: %v", err)
	}
	k, err := st.Lookup(ctx, id)
	if err != nil || k.Secret != secret || !k.Principal.Root() || k.Principal.AccountID != acct {
		t.Fatalf("lookup: %+v, %v", k.Principal, err)
	}
	if keys, err := st.AccessKeys(ctx, acct, ""); err != nil || len(keys) != 1 {
		t.Fatalf("root keys: %d, %v", len(keys), err)
	}
	for _, tc := range []struct{ acct, secret string }{{acct, "another secret"}, {"444455556666", secret}} {
		if err := st.PutRootKey(ctx, tc.acct, id, tc.secret); !errors.Is(err, iam.ErrEntityExists) {
			t.Fatalf("PutRootKey(%s, another secret: %v) = %v", tc.acct, tc.secret != secret, err)
		}
	}
	if err := st.PutRootKey(ctx, acct, "AKIAROOTKEY000000002", ""); !errors.Is(err, iam.ErrInvalidInput) {
		t.Fatalf("no secret: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte(secret)) {
		t.Fatal("the secret is stored in the clear")
	}
}
