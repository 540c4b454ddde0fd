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
// reclaimed by the vault's next collection).
func (s *Service) DeleteRecoveryPoint(ctx context.Context, account, vaultName, arn string) error {
	rp, err := s.DescribeRecoveryPoint(ctx, account, vaultName, arn)
	if err != nil {
		return err
	}
	if rp.Status != PointCompleted && rp.Status != PointPartial {
		return errorf(ErrInvalidRequest, "Recovery point %s is %s and cannot be deleted now.", arn, rp.Status)
	}
	return s.deletePoint(ctx, rp)
}

func (s *Service) deletePoint(ctx context.Context, rp *RecoveryPoint) error {
	v, err := s.vault(ctx, rp.AccountID, rp.VaultName)
	if err != nil {
		return err
	}
	// The record goes first: a point without a record is garbage the vault
	// reclaims; a record without its point would be a lie.
	err = s.cat.update(ctx, func(tx meta.Tx) error {
		vr, err := getVault(tx, rp.AccountID, rp.VaultName)
		if err != nil {
			return err
		}
		if vr.NumberOfRecoveryPoints > 0 {
			vr.NumberOfRecoveryPoints--
		}
		if err := putJSON(tx, spaceVaults, key(rp.AccountID, rp.VaultName), vr); err != nil {
			return err
		}
		return tx.Delete(spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID))
	})
	if err != nil {
		return err
	}
	if err := v.Delete(ctx, rp.PointID); err != nil {
		s.log.Warn("delete recovery point from its vault; the vault's collection will reclaim it", "point", rp.ARN, "err", err)
	}
	return nil
}

// ExpirePoints deletes the recovery points whose lifecycle's DeleteAt has
// passed at now, and returns how many. The scheduler runs it on its
// clock.
func (s *Service) ExpirePoints(ctx context.Context, now time.Time) (int, error) {
	var due []*RecoveryPoint
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spacePoints)
		for k, raw := it.First(); k != nil; k, raw = it.Next() {
			rp := &RecoveryPoint{}
			if err := json.Unmarshal(raw, rp); err != nil {
				return fmt.Errorf("decode recovery point %s: %w", k, err)
			}
			if c := rp.CalculatedLifecycle; c != nil && c.DeleteAt != nil && !now.Before(*c.DeleteAt) {
				due = append(due, rp)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, rp := range due {
		if err := s.deletePoint(ctx, rp); err != nil {
			errs = append(errs, fmt.Errorf("expire %s: %w", rp.ARN, err))
			continue
		}
		n++
		s.log.Info("recovery point expired by its lifecycle", "point", rp.ARN, "delete_at", rp.CalculatedLifecycle.DeleteAt)
	}
	return n, errors.Join(errs...)
}
