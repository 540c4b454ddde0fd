package objectstore

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/meta"
)

// SweepOrphans deletes blobs that no version references and that are older
// than grace. A blob being written now has no reference yet, so the grace
// period must exceed the longest upload; at start-up, before any request is
// served, a grace of zero is safe. It returns the number of blobs deleted.
func (s *Store) SweepOrphans(ctx context.Context, grace time.Duration) (int, error) {
	cutoff := s.now().Add(-grace)
	var candidates []string
	err := s.blobs.Walk(ctx, func(in blob.Info) error {
		if grace == 0 || in.ModTime.Before(cutoff) {
			candidates = append(candidates, in.ID)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("sweep orphans: %w", err)
	}
	var orphans []string
	for len(candidates) > 0 {
		batch := candidates[:min(len(candidates), 1000)]
		candidates = candidates[len(batch):]
		err := s.meta.View(ctx, func(tx meta.Tx) error {
			for _, id := range batch {
				if tx.Get(spaceBlobRefs, []byte(id)) == nil {
					orphans = append(orphans, id)
				}
			}
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("sweep orphans: %w", err)
		}
	}
	for _, id := range orphans {
		if err := s.blobs.Delete(ctx, id); err != nil {
			return 0, fmt.Errorf("sweep orphans: %w", err)
		}
		s.log.Info("removed orphan blob", "blob", id)
	}
	return len(orphans), nil
}

// RunSweeper sweeps orphan blobs and aborts multipart uploads older than
// uploadAge every interval until ctx ends.
func (s *Store) RunSweeper(ctx context.Context, interval, grace, uploadAge time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.AbortStaleUploads(ctx, uploadAge); err != nil && ctx.Err() == nil {
				s.log.Warn("abort stale uploads", "err", err)
			}
			if _, err := s.SweepOrphans(ctx, grace); err != nil && ctx.Err() == nil {
				s.log.Warn("orphan sweep", "err", err)
			}
		}
	}
}
