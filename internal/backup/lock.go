package backup

// Backup Vault Lock, as AWS Backup documents it
// (https://docs.aws.amazon.com/aws-backup/latest/devguide/vault-lock.html
// and the PutBackupVaultLockConfiguration reference):
//
//   - A lock without ChangeableForDays is in governance mode: a caller
//     allowed backup:PutBackupVaultLockConfiguration or
//     backup:DeleteBackupVaultLockConfiguration may change or remove it at
//     any time.
//   - A lock with ChangeableForDays (3 to 36500) is in compliance mode: its
//     LockDate is ChangeableForDays days after it was put; before it the
//     lock may still be changed or removed, on and after it the lock is
//     immutable and its vault cannot be deleted.
//   - In either mode, from the moment the lock is put, no caller (the
//     account's root user included: the lock is judged after
//     authorization) deletes a recovery point of the vault before its
//     retention ends, nor shortens a point's retention.
//   - MinRetentionDays and MaxRetentionDays bound the retention of the
//     points that backup and copy jobs make in the vault afterwards: a job
//     whose lifecycle keeps its point fewer than MinRetentionDays or more
//     than MaxRetentionDays days fails. Points already in the vault keep
//     their lifecycle and expire by it.
//
// Where AWS is silent or unclear, Bulwark chooses (and the doc comments
// below say): Locked is true from the Put on, in both modes, since the
// lock protects points from then on; a point's retention ends at its
// CalculatedLifecycle.DeleteAt, so a point without one cannot be deleted
// while the vault is locked, and a point whose DeleteAt has passed may be
// deleted by hand as the lifecycle would delete it; a lifecycle without
// DeleteAfterDays keeps a point forever, which is more than any
// MaxRetentionDays; UpdateRecoveryPointLifecycle in a locked vault must
// also keep to MinRetentionDays and MaxRetentionDays, points made before
// the lock included; and a vault whose compliance lock is immutable
// cannot be deleted even when empty.

import (
	"context"
	"strconv"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Limits of a vault lock, as AWS Backup's.
const (
	maxLockDays          = 36500
	minChangeableForDays = 3
)

// VaultLockInput is a vault lock configuration as
// PutBackupVaultLockConfiguration gives it; nil fields are not given.
type VaultLockInput struct {
	MinRetentionDays  *int64
	MaxRetentionDays  *int64
	ChangeableForDays *int64
}

func (in VaultLockInput) validate() error {
	if m := in.MinRetentionDays; m != nil && (*m < 1 || *m > maxLockDays) {
		return errorf(ErrInvalidParameter, "MinRetentionDays must be between 1 and %d days; it is %d.", maxLockDays, *m)
	}
	if m := in.MaxRetentionDays; m != nil && (*m < 1 || *m > maxLockDays) {
		return errorf(ErrInvalidParameter, "MaxRetentionDays must be between 1 and %d days; it is %d.", maxLockDays, *m)
	}
	if lo, hi := in.MinRetentionDays, in.MaxRetentionDays; lo != nil && hi != nil && *lo > *hi {
		return errorf(ErrInvalidParameter, "MinRetentionDays (%d) must not be greater than MaxRetentionDays (%d).", *lo, *hi)
	}
	if d := in.ChangeableForDays; d != nil && (*d < minChangeableForDays || *d > maxLockDays) {
		return errorf(ErrInvalidParameter, "ChangeableForDays must be between %d and %d days; it is %d.", minChangeableForDays, maxLockDays, *d)
	}
	return nil
}

// lockImmutable reports whether the vault's lock can no longer be changed
// or removed at now: a compliance-mode lock on or after its LockDate.
func (v *Vault) lockImmutable(now time.Time) bool {
	return v.Locked && v.LockDate != nil && !now.Before(*v.LockDate)
}

func (v *Vault) errImmutable() error {
	return errorf(ErrInvalidRequest, "The vault lock of backup vault %s is in compliance mode and immutable since %s: it cannot be changed or deleted.", v.Name, v.LockDate.Format(time.RFC3339))
}

// PutVaultLock locks a vault, or changes its lock while the lock may
// still change. ChangeableForDays sets the LockDate from the catalog's
// clock; a configuration without it is in governance mode, also when it
// replaces a compliance-mode lock before that lock's LockDate.
func (c *Catalog) PutVaultLock(ctx context.Context, account, name string, in VaultLockInput) (*Vault, error) {
	if err := in.validate(); err != nil {
		return nil, err
	}
	return c.updateLock(ctx, account, name, func(v *Vault, now time.Time) error {
		v.Locked, v.MinRetentionDays, v.MaxRetentionDays, v.LockDate = true, in.MinRetentionDays, in.MaxRetentionDays, nil
		if d := in.ChangeableForDays; d != nil {
			t := now.AddDate(0, 0, int(*d))
			v.LockDate = &t
		}
		return nil
	})
}

// DeleteVaultLock removes a vault's lock unless it is immutable. A vault
// without a lock answers ErrNotFound, as a missing resource does.
func (c *Catalog) DeleteVaultLock(ctx context.Context, account, name string) error {
	_, err := c.updateLock(ctx, account, name, func(v *Vault, _ time.Time) error {
		if !v.Locked {
			return errorf(ErrNotFound, "Backup vault %s has no vault lock configuration.", name)
		}
		v.Locked, v.MinRetentionDays, v.MaxRetentionDays, v.LockDate = false, nil, nil, nil
		return nil
	})
	return err
}

// updateLock changes a vault's lock with fn, in one transaction with the
// check that the lock may still change, and stores the vault.
func (c *Catalog) updateLock(ctx context.Context, account, name string, fn func(v *Vault, now time.Time) error) (*Vault, error) {
	if err := c.initDefault(ctx, account); err != nil {
		return nil, err
	}
	var v *Vault
	err := c.update(ctx, func(tx meta.Tx) error {
		var err error
		if v, err = getVault(tx, account, name); err != nil {
			return err
		}
		now := c.clock()
		if v.lockImmutable(now) {
			return v.errImmutable()
		}
		if err := fn(v, now); err != nil {
			return err
		}
		return putJSON(tx, spaceVaults, key(account, name), v)
	})
	if err != nil {
		return nil, err
	}
	return v, nil
}

// CheckLockRetention reports whether a recovery point created at created
// with lifecycle l may go into a vault, as its lock's MinRetentionDays and
// MaxRetentionDays allow; backup and copy jobs call it before they write.
// The error is an *Error of kind ErrInvalidRequest whose message names the
// lock, for the job's StatusMessage.
func (c *Catalog) CheckLockRetention(ctx context.Context, account, vaultName string, l *Lifecycle, created time.Time) error {
	v, err := c.DescribeVault(ctx, account, vaultName)
	if err != nil {
		return err
	}
	return v.checkRetention(l, created, "The recovery point")
}

// checkRetention judges a lifecycle against the lock's bounds; what names
// the point or job in the message. A lifecycle without DeleteAfterDays
// keeps a point forever: within any minimum, beyond any maximum.
func (v *Vault) checkRetention(l *Lifecycle, created time.Time, what string) error {
	if !v.Locked {
		return nil
	}
	var days *int64
	if l != nil {
		days = l.DeleteAfterDays
	}
	if days == nil {
		if v.MaxRetentionDays != nil {
			return errorf(ErrInvalidRequest, "%s would be kept indefinitely (its lifecycle has no DeleteAfterDays), longer than the maximum retention of %s of the vault lock of backup vault %s.", what, dayCount(*v.MaxRetentionDays), v.Name)
		}
		return nil
	}
	until := created.AddDate(0, 0, int(*days)).Format(time.RFC3339)
	if lo := v.MinRetentionDays; lo != nil && *days < *lo {
		return errorf(ErrInvalidRequest, "%s would be kept %s (until %s), shorter than the minimum retention of %s of the vault lock of backup vault %s.", what, dayCount(*days), until, dayCount(*lo), v.Name)
	}
	if hi := v.MaxRetentionDays; hi != nil && *days > *hi {
		return errorf(ErrInvalidRequest, "%s would be kept %s (until %s), longer than the maximum retention of %s of the vault lock of backup vault %s.", what, dayCount(*days), until, dayCount(*hi), v.Name)
	}
	return nil
}

func dayCount(n int64) string {
	if n == 1 {
		return "1 day"
	}
	return strconv.FormatInt(n, 10) + " days"
}

// checkDelete reports whether the vault's lock lets a caller delete the
// point at now. The point's retention ends at its DeleteAt: from then on
// it may go by hand as by the lifecycle; a point without DeleteAt is kept
// for as long as the vault is locked.
func (v *Vault) checkDelete(rp *RecoveryPoint, now time.Time) error {
	if !v.Locked {
		return nil
	}
	var at *time.Time
	if rp.CalculatedLifecycle != nil {
		at = rp.CalculatedLifecycle.DeleteAt
	}
	if at == nil {
		return errorf(ErrInvalidRequest, "Recovery point %s is protected by the vault lock of backup vault %s and has no retention end (its lifecycle has no DeleteAfterDays): it cannot be deleted while the vault is locked.", rp.ARN, v.Name)
	}
	if now.Before(*at) {
		return errorf(ErrInvalidRequest, "Recovery point %s is protected by the vault lock of backup vault %s: it cannot be deleted before its retention ends at %s.", rp.ARN, v.Name, at.Format(time.RFC3339))
	}
	return nil
}

// checkLifecycleChange reports whether the vault's lock lets a point's
// lifecycle become l, whose dates are calc: the new retention must stay
// within the lock's bounds and must not end before the current one.
func (v *Vault) checkLifecycleChange(rp *RecoveryPoint, l *Lifecycle, calc *CalculatedLifecycle) error {
	if !v.Locked {
		return nil
	}
	if err := v.checkRetention(l, rp.CreationDate, "Recovery point "+rp.ARN); err != nil {
		return err
	}
	var cur *time.Time
	if rp.CalculatedLifecycle != nil {
		cur = rp.CalculatedLifecycle.DeleteAt
	}
	next := calc.DeleteAt
	switch {
	case next == nil:
		return nil
	case cur == nil:
		return errorf(ErrInvalidRequest, "Recovery point %s is kept indefinitely and the vault lock of backup vault %s forbids shortening its retention (to %s).", rp.ARN, v.Name, next.Format(time.RFC3339))
	case next.Before(*cur):
		return errorf(ErrInvalidRequest, "The vault lock of backup vault %s forbids shortening the retention of recovery point %s from %s to %s.", v.Name, rp.ARN, cur.Format(time.RFC3339), next.Format(time.RFC3339))
	}
	return nil
}
