package iam

import (
	"context"
	"fmt"

	"github.com/bulwark/bulwark/internal/meta"
)

// PutRootKey stores a root user's access key whose secret was made outside
// the store — the deployment's first key, which bulwark up makes before any
// region runs, or one an older version kept in the clear — sealed like
// every other, and records the account if it is not yet. Storing the same
// key again does nothing; a key of that ID that belongs to someone else, or
// has another secret, is ErrEntityExists. Unlike CreateAccessKey it takes
// no heed of MaxAccessKeysPerUser: the key exists already, and refusing it
// would lock its holder out.
func (s *Store) PutRootKey(ctx context.Context, account, id, secret string) error {
	if account == "" || id == "" || secret == "" {
		return fmt.Errorf("%w: a root key needs an account, an access key ID and a secret", ErrInvalidInput)
	}
	k := &AccessKey{ID: id, Account: account, Status: KeyActive, Created: s.now().UTC(), Sealed: s.seal.seal(id, secret)}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		if tx.Get(spaceKeys, []byte(id)) != nil {
			old, err := get[AccessKey](tx, spaceKeys, []byte(id), "access key "+id)
			if err != nil {
				return err
			}
			if old.Account != account || old.User != "" {
				return fmt.Errorf("%w: access key %s belongs to another principal", ErrEntityExists, id)
			}
			if stored, err := s.seal.open(id, old.Sealed); err != nil || stored != secret {
				return fmt.Errorf("%w: access key %s is stored with another secret", ErrEntityExists, id)
			}
			return nil
		}
		if tx.Get(spaceAccounts, []byte(account)) == nil {
			if err := put(tx, spaceAccounts, []byte(account), &Account{ID: account, Created: k.Created}); err != nil {
				return err
			}
		}
		return put(tx, spaceKeys, []byte(id), k)
	})
}
