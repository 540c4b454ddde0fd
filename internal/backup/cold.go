package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/meta"
)

// Cold storage. A vault has a second repository beside its own, its cold
// tier (Dir/ACCOUNT/NAME.cold), where the lifecycle moves recovery points
// at their MoveToColdStorageAt. The move is a vault transfer — the cold
// tier receives only the chunks it lacks — then the record says COLD, then
// the point leaves the warm repository, whose next collection reclaims
// what only it used. A crash between the steps is mended by the next pass:
// a point the cold tier holds already is not sent again.
//
// The cold tier is a separate repository on the same disk here; it is the
// place to put on cheaper storage (a slower disk, an object store) when
// the vault directory is split.

// MovePoints moves to the cold tier the recovery points whose
// MoveToColdStorageAt has passed at now, and returns how many it moved. The
// scheduler runs it on its clock.
func (s *Service) MovePoints(ctx context.Context, now time.Time) (int, error) {
	due, err := s.pointsWhere(ctx, func(rp *RecoveryPoint) bool {
		c := rp.CalculatedLifecycle
		switch {
		case rp.StorageClass == StorageCold || c == nil || c.MoveToColdStorageAt == nil || now.Before(*c.MoveToColdStorageAt):
			return false
		case c.DeleteAt != nil && !now.Before(*c.DeleteAt):
			return false // expires instead
		}
		return rp.Status == PointCompleted || rp.Status == PointPartial
	})
	if err != nil {
		return 0, err
	}
	var errs []error
	n := 0
	for _, rp := range due {
		if err := s.moveToCold(ctx, rp); err != nil {
			errs = append(errs, fmt.Errorf("move %s to cold storage: %w", rp.ARN, err))
			continue
		}
		n++
		s.log.Info("recovery point moved to cold storage by its lifecycle", "point", rp.ARN, "move_at", rp.CalculatedLifecycle.MoveToColdStorageAt)
	}
	return n, errors.Join(errs...)
}

func (s *Service) moveToCold(ctx context.Context, rp *RecoveryPoint) error {
	warm, err := s.vault(ctx, rp.AccountID, rp.VaultName)
	if err != nil {
		return err
	}
	cold, err := s.vault(ctx, rp.AccountID, rp.VaultName+coldSuffix)
	if err != nil {
		return err
	}
	if _, err := cold.Point(ctx, rp.PointID); errors.Is(err, vault.ErrNotFound) {
		w, err := cold.Begin(ctx, rp.PointID, map[string]string{"resource": rp.ResourceARN})
		if err != nil {
			return err
		}
		if _, _, err := warm.Transfer(ctx, rp.PointID, w, nil); err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	moved := false
	err = s.cat.update(ctx, func(tx meta.Tx) error {
		cur := &RecoveryPoint{}
		found, err := getJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), cur)
		if err != nil || !found {
			return err // deleted meanwhile: the cold copy is garbage for Collect
		}
		cur.StorageClass = StorageCold
		moved = true
		return putJSON(tx, spacePoints, key(rp.AccountID, rp.VaultName, rp.PointID), cur)
	})
	if err != nil {
		return err
	}
	if !moved {
		return cold.Delete(ctx, rp.PointID)
	}
	if err := warm.Delete(ctx, rp.PointID); err != nil && !errors.Is(err, vault.ErrNotFound) {
		s.log.Warn("remove a point moved to cold storage from the warm tier", "point", rp.ARN, "err", err)
	}
	s.markDirty(rp.AccountID, rp.VaultName)
	return nil
}

// markDirty notes that a vault repository has garbage for Collect.
func (s *Service) markDirty(account, name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dirty == nil {
		s.dirty = map[string][2]string{}
	}
	s.dirty[account+"/"+name] = [2]string{account, name}
}

// CollectVaults runs vault.Collect on the repositories recovery points
// left since the last call (deleted, expired or moved to cold storage),
// reclaiming the space only they used. Collect waits for backups writing
// to the vault; the service calls CollectVaults in a goroutine of its own
// every CollectInterval.
func (s *Service) CollectVaults(ctx context.Context) error {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = nil
	s.mu.Unlock()
	var errs []error
	for _, an := range dirty {
		v, err := s.vault(ctx, an[0], an[1])
		if err == nil {
			err = s.dropOrphans(ctx, an[0], an[1], v)
		}
		if err == nil {
			err = v.Collect(ctx)
		}
		if err != nil {
			s.markDirty(an[0], an[1]) // next time
			errs = append(errs, fmt.Errorf("collect vault %s of %s: %w", an[1], an[0], err))
		}
	}
	return errors.Join(errs...)
}

// orphanGrace is how old a point of a repository must be, with no record
// that places it there, before dropOrphans removes it: a job commits its
// point to the repository just before it records it.
var orphanGrace = time.Hour // a variable for tests

// dropOrphans removes from a vault repository (tier: a vault's name, or
// its cold tier's) the points no catalog record places there — left by a
// crash between a repository's step and the catalog's, or by a deletion
// whose repository step failed — so that Collect can reclaim their data.
func (s *Service) dropOrphans(ctx context.Context, account, tier string, v *vault.Vault) error {
	points, err := v.Points(ctx, nil)
	if err != nil {
		return err
	}
	vaultName, _, _ := strings.Cut(tier, ".")
	var errs []error
	for _, p := range points {
		if time.Since(p.Created) < orphanGrace {
			continue
		}
		var rp RecoveryPoint
		var found bool
		err := s.cat.view(ctx, func(tx meta.Tx) error {
			var err error
			found, err = getJSON(tx, spacePoints, key(account, vaultName, p.ID), &rp)
			return err
		})
		if err != nil {
			return err
		}
		if found && rp.tier() == tier {
			continue
		}
		s.log.Warn("vault repository holds a point no record places there: removing it", "account", account, "repository", tier, "point", p.ID)
		if err := v.Delete(ctx, p.ID); err != nil && !errors.Is(err, vault.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// DefaultCollectInterval is how often the service collects the vaults
// recovery points left.
const DefaultCollectInterval = 10 * time.Minute

func (s *Service) collectLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.CollectVaults(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("vault collection", "err", err)
			}
		}
	}
}
