package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// DeleteRecoveryPoint deletes a recovery point of the account: its record
// and, in the vault's repository, the point (content only it used is
// reclaimed by the vault's next collection). In a locked vault a point
// goes only once its retention has ended (Vault.checkDelete), whoever
// asks.
func (s *Service) DeleteRecoveryPoint(ctx context.Context, account, vaultName, arn string) error {
	rp, err := s.DescribeRecoveryPoint(ctx, account, vaultName, arn)
	if err != nil {
		return err
	}
	_, err = s.deletePoint(ctx, rp, func(v *Vault, cur *RecoveryPoint) error {
		if cur.Status != PointCompleted && cur.Status != PointPartial {
			return errorf(ErrInvalidRequest, "Recovery point %s is %s and cannot be deleted now.", arn, cur.Status)
		}
		return v.checkDelete(cur, s.cat.clock())
	})
	return err
}

// errSkip tells deletePoint to leave a point be.
var errSkip = errors.New("skip")

// deletePoint deletes a recovery point: its record, its count in its vault
// and its data in the vault's repository. allow judges the point's current
// record and its vault in the transaction that deletes the record, so that
// a lock put or a lifecycle changed since rp was read is seen; when it
// returns errSkip, deletePoint returns false and no error. A point deleted
// meanwhile is ErrNotFound.
func (s *Service) deletePoint(ctx context.Context, rp *RecoveryPoint, allow func(v *Vault, cur *RecoveryPoint) error) (bool, error) {
	// The record goes first: a point without a record is garbage the vault
	// reclaims; a record without its point would be a lie.
	k := key(rp.AccountID, rp.VaultName, rp.PointID)
	var deleted *RecoveryPoint // as the transaction found it: in which tier
	err := s.cat.update(ctx, func(tx meta.Tx) error {
		vr, err := getVault(tx, rp.AccountID, rp.VaultName)
		if err != nil {
			return err
		}
		cur := &RecoveryPoint{}
		if ok, err := getJSON(tx, spacePoints, k, cur); err != nil {
			return err
		} else if !ok {
			return errorf(ErrNotFound, "Recovery point %s does not exist in backup vault %s.", rp.ARN, rp.VaultName)
		}
		if err := allow(vr, cur); err != nil {
			return err
		}
		deleted = cur
		if vr.NumberOfRecoveryPoints > 0 {
			vr.NumberOfRecoveryPoints--
		}
		if err := putJSON(tx, spaceVaults, key(rp.AccountID, rp.VaultName), vr); err != nil {
			return err
		}
		if err := tx.Delete(spaceTags, []byte(rp.ARN)); err != nil {
			return err
		}
		return tx.Delete(spacePoints, k)
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	s.markDirty(rp.AccountID, deleted.tier())
	if deleted.IsContinuous() {
		s.deletePieces(ctx, deleted)
		return true, nil
	}
	v, err := s.pointVault(ctx, deleted)
	if err == nil {
		err = v.Delete(ctx, rp.PointID)
	}
	if err != nil {
		s.log.Warn("delete recovery point from its vault; the vault's collection will reclaim it", "point", rp.ARN, "err", err)
	}
	return true, nil
}

// pointsWhere returns the recovery points of every account and vault of
// the region that pass keep.
func (s *Service) pointsWhere(ctx context.Context, keep func(*RecoveryPoint) bool) ([]*RecoveryPoint, error) {
	var out []*RecoveryPoint
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spacePoints)
		for k, raw := it.First(); k != nil; k, raw = it.Next() {
			rp := &RecoveryPoint{}
			if err := json.Unmarshal(raw, rp); err != nil {
				return fmt.Errorf("decode recovery point %s: %w", k, err)
			}
			if keep(rp) {
				out = append(out, rp)
			}
		}
		return nil
	})
	return out, err
}

// due reports whether a point's lifecycle expires it at now.
func due(rp *RecoveryPoint, now time.Time) bool {
	c := rp.CalculatedLifecycle
	return c != nil && c.DeleteAt != nil && !now.Before(*c.DeleteAt)
}

// ExpirePoints deletes the recovery points whose lifecycle's DeleteAt has
// passed at now, and returns how many. The scheduler runs it on its
// clock. A vault lock does not hold a point past its DeleteAt: retention
// has ended, and AWS Backup's lifecycle deletes points of locked vaults
// too.
func (s *Service) ExpirePoints(ctx context.Context, now time.Time) (int, error) {
	var errs []error
	continuous, err := s.pointsWhere(ctx, func(rp *RecoveryPoint) bool { return rp.IsContinuous() })
	if err != nil {
		return 0, err
	}
	for _, rp := range continuous {
		if err := s.prunePieces(ctx, rp, now); err != nil {
			errs = append(errs, fmt.Errorf("expire pieces of %s: %w", rp.ARN, err))
		}
	}
	expired, err := s.pointsWhere(ctx, func(rp *RecoveryPoint) bool { return !rp.IsContinuous() && due(rp, now) })
	if err != nil {
		return 0, err
	}
	n := 0
	for _, rp := range expired {
		// A lifecycle lengthened since the scan keeps its point.
		ok, err := s.deletePoint(ctx, rp, func(_ *Vault, cur *RecoveryPoint) error {
			if !due(cur, now) {
				return errSkip
			}
			return nil
		})
		if errors.Is(err, ErrNotFound) || err == nil && !ok {
			continue // deleted meanwhile, or kept
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("expire %s: %w", rp.ARN, err))
			continue
		}
		n++
		s.log.Info("recovery point expired by its lifecycle", "point", rp.ARN, "delete_at", rp.CalculatedLifecycle.DeleteAt)
	}
	return n, errors.Join(errs...)
}

// UpdateRecoveryPointLifecycle sets a recovery point's lifecycle and
// recomputes its CalculatedLifecycle from its CreationDate, as AWS
// Backup's UpdateRecoveryPointLifecycle does. l replaces the lifecycle
// whole: a nil l, or one without DeleteAfterDays, keeps the point
// indefinitely (AWS warns that fields left out become null). The rules:
// DeleteAfterDays at least 90 days after MoveToColdStorageAfterDays; no
// change to MoveToColdStorageAfterDays once the point is in cold storage;
// and in a locked vault a retention within the lock's bounds that ends no
// earlier than the current one (Vault.checkLifecycleChange).
func (s *Service) UpdateRecoveryPointLifecycle(ctx context.Context, account, vaultName, arn string, l *Lifecycle) (*RecoveryPoint, error) {
	if l == nil {
		l = &Lifecycle{}
	}
	if err := validateLifecycle(l, "the recovery point's lifecycle"); err != nil {
		return nil, err
	}
	id, ok := pointIDOf(arn, s.cat.RecoveryPointARN(account, ""))
	rp := &RecoveryPoint{}
	err := s.cat.update(ctx, func(tx meta.Tx) error {
		v, err := getVault(tx, account, vaultName)
		if err != nil {
			return err
		}
		found := false
		if ok {
			if found, err = getJSON(tx, spacePoints, key(account, vaultName, id), rp); err != nil {
				return err
			}
		}
		if !found {
			return errorf(ErrNotFound, "Recovery point %s does not exist in backup vault %s.", arn, vaultName)
		}
		if rp.StorageClass == StorageCold {
			var cold *int64
			if rp.Lifecycle != nil {
				cold = rp.Lifecycle.MoveToColdStorageAfterDays
			}
			if !sameDays(cold, l.MoveToColdStorageAfterDays) {
				return errorf(ErrInvalidRequest, "Recovery point %s is in cold storage: its MoveToColdStorageAfterDays cannot be changed.", arn)
			}
		}
		calc := calculate(l, rp.CreationDate)
		if err := v.checkLifecycleChange(rp, l, calc); err != nil {
			return err
		}
		rp.Lifecycle, rp.CalculatedLifecycle = l, calc
		return putJSON(tx, spacePoints, key(account, vaultName, id), rp)
	})
	if err != nil {
		return nil, err
	}
	return rp, nil
}

func sameDays(a, b *int64) bool {
	return a == nil && b == nil || a != nil && b != nil && *a == *b
}
