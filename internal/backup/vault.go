package backup

import (
	"context"
	"regexp"
	"sort"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

var vaultNameRE = regexp.MustCompile(`^[a-zA-Z0-9\-\_]{2,50}$`)

// Vault is a backup vault: a named container of recovery points.
type Vault struct {
	Name string
	ARN  string
	// EncryptionKeyARN names the key the vault's recovery points are
	// encrypted with. Bulwark has no KMS: unless the caller names a key,
	// the catalog makes up an identifier of KMS's shape
	// (arn:aws:kms:REGION:ACCOUNT:key/UUID) per vault, which the vault's
	// repository uses as the name of its key.
	EncryptionKeyARN       string
	CreatorRequestID       string
	CreationDate           time.Time
	NumberOfRecoveryPoints int64
	// Locked says a Backup Vault Lock protects the vault (lock.go): from
	// PutVaultLock on, no caller deletes its recovery points before their
	// retention ends nor shortens their retention. MinRetentionDays and
	// MaxRetentionDays bound the retention of new points (nil: no bound).
	// LockDate is set in compliance mode only: from it on the lock is
	// immutable and the vault cannot be deleted.
	Locked           bool
	MinRetentionDays *int64     `json:",omitempty"`
	MaxRetentionDays *int64     `json:",omitempty"`
	LockDate         *time.Time `json:",omitempty"`
}

// VaultARN returns the ARN of a vault of the catalog's region.
func (c *Catalog) VaultARN(account, name string) string {
	return "arn:aws:backup:" + c.region + ":" + account + ":backup-vault:" + name
}

// CreateVaultInput describes a vault to create.
type CreateVaultInput struct {
	Name             string
	EncryptionKeyARN string
	CreatorRequestID string
	Tags             map[string]string
}

// CreateVault creates a vault in the caller's account.
func (c *Catalog) CreateVault(ctx context.Context, account string, in CreateVaultInput) (*Vault, error) {
	if in.Name == "" {
		return nil, errorf(ErrMissingParameter, "Missing required parameter BackupVaultName.")
	}
	if !vaultNameRE.MatchString(in.Name) {
		return nil, errorf(ErrInvalidParameter, "Invalid backup vault name %q: it must contain 2 to 50 alphanumeric, '-' or '_' characters.", in.Name)
	}
	if err := validateTags(in.Tags); err != nil {
		return nil, err
	}
	v := &Vault{
		Name:             in.Name,
		ARN:              c.VaultARN(account, in.Name),
		EncryptionKeyARN: in.EncryptionKeyARN,
		CreatorRequestID: in.CreatorRequestID,
		CreationDate:     c.clock(),
	}
	if v.EncryptionKeyARN == "" {
		v.EncryptionKeyARN = "arn:aws:kms:" + c.region + ":" + account + ":key/" + newUUID()
	}
	err := c.update(ctx, func(tx meta.Tx) error {
		if err := c.ensureDefault(tx, account); err != nil {
			return err
		}
		if tx.Get(spaceVaults, key(account, in.Name)) != nil {
			return &Error{Kind: ErrAlreadyExists, Message: "Backup vault with the same name already exists", ARN: v.ARN}
		}
		n := 0
		if err := scan(tx, spaceVaults, key(account), func(k, _ []byte) error { n++; return nil }); err != nil {
			return err
		}
		if n >= MaxVaults {
			return errorf(ErrLimitExceeded, "The number of backup vaults in the account would exceed %d.", MaxVaults)
		}
		if len(in.Tags) > 0 {
			if err := putJSON(tx, spaceTags, []byte(v.ARN), in.Tags); err != nil {
				return err
			}
		}
		return putJSON(tx, spaceVaults, key(account, in.Name), v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// ensureDefault creates the account's Default vault on first use: AWS
// Backup offers it in every region without asking.
func (c *Catalog) ensureDefault(tx meta.Tx, account string) error {
	k := key(account, defaultVaultName)
	if tx.Get(spaceVaults, k) != nil {
		return nil
	}
	return putJSON(tx, spaceVaults, k, &Vault{
		Name:             defaultVaultName,
		ARN:              c.VaultARN(account, defaultVaultName),
		EncryptionKeyARN: "arn:aws:kms:" + c.region + ":" + account + ":key/" + newUUID(),
		CreationDate:     c.clock(),
	})
}

// hasDefault reports whether the account's Default vault exists yet.
func (c *Catalog) hasDefault(ctx context.Context, account string) (bool, error) {
	var ok bool
	err := c.view(ctx, func(tx meta.Tx) error {
		ok = tx.Get(spaceVaults, key(account, defaultVaultName)) != nil
		return nil
	})
	return ok, err
}

// initDefault makes sure the Default vault exists before a read.
func (c *Catalog) initDefault(ctx context.Context, account string) error {
	ok, err := c.hasDefault(ctx, account)
	if err != nil || ok {
		return err
	}
	return c.update(ctx, func(tx meta.Tx) error { return c.ensureDefault(tx, account) })
}

// DescribeVault returns a vault of the caller's account.
func (c *Catalog) DescribeVault(ctx context.Context, account, name string) (*Vault, error) {
	if err := c.initDefault(ctx, account); err != nil {
		return nil, err
	}
	var v *Vault
	err := c.view(ctx, func(tx meta.Tx) error {
		var err error
		v, err = getVault(tx, account, name)
		return err
	})
	return v, err
}

func getVault(tx meta.Tx, account, name string) (*Vault, error) {
	v := &Vault{}
	ok, err := getJSON(tx, spaceVaults, key(account, name), v)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errorf(ErrNotFound, "Backup vault %s does not exist.", name)
	}
	return v, nil
}

// ListVaults returns the account's vaults in name order.
func (c *Catalog) ListVaults(ctx context.Context, account string) ([]*Vault, error) {
	if err := c.initDefault(ctx, account); err != nil {
		return nil, err
	}
	var out []*Vault
	err := c.view(ctx, func(tx meta.Tx) error {
		return scan(tx, spaceVaults, key(account), func(k, _ []byte) error {
			v := &Vault{}
			if _, err := getJSON(tx, spaceVaults, k, v); err != nil {
				return err
			}
			out = append(out, v)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// DeleteVault deletes an empty vault. The Default vault stays: AWS Backup
// would only make it again on next use. A vault whose compliance-mode lock
// has passed its LockDate stays too, even empty: the lock is immutable,
// and deleting the vault would delete the lock with it.
func (c *Catalog) DeleteVault(ctx context.Context, account, name string) error {
	if err := c.initDefault(ctx, account); err != nil {
		return err
	}
	return c.update(ctx, func(tx meta.Tx) error {
		v, err := getVault(tx, account, name)
		if err != nil {
			return err
		}
		if v.Name == defaultVaultName {
			return errorf(ErrInvalidRequest, "The Default backup vault cannot be deleted.")
		}
		if v.lockImmutable(c.clock()) {
			return errorf(ErrInvalidRequest, "Backup vault %s cannot be deleted: its vault lock in compliance mode is immutable since %s.", name, v.LockDate.Format(time.RFC3339))
		}
		if v.NumberOfRecoveryPoints > 0 {
			return errorf(ErrInvalidRequest, "Backup vault cannot be deleted because it contains recovery points.")
		}
		if err := tx.Delete(spaceTags, []byte(v.ARN)); err != nil {
			return err
		}
		return tx.Delete(spaceVaults, key(account, name))
	})
}
