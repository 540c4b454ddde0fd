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
	// Candidates are checked and their orphans deleted a batch at a time
	// while the walk goes on, so the sweep holds sweepBatch IDs whatever
	// the number of blobs.
	batch := make([]string, 0, sweepBatch)
	swept := 0
	flush := func() error {
		var orphans []string
		err := s.meta.View(ctx, func(tx meta.Tx) error {
			orphans = orphans[:0]
			for _, id := range batch {
				if tx.Get(spaceBlobRefs, []byte(id)) == nil {
					orphans = append(orphans, id)
				}
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			return err
		}
		for _, id := range orphans {
			if err := s.blobs.Delete(ctx, id); err != nil {
				return err
			}
			s.log.Info("removed orphan blob", "blob", id)
			swept++
		}
		return nil
	}
	err := s.blobs.Walk(ctx, func(in blob.Info) error {
		if grace == 0 || in.ModTime.Before(cutoff) {
			batch = append(batch, in.ID)
		}
		if len(batch) < sweepBatch {
			return nil
		}
		return flush()
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err != nil {
		return swept, fmt.Errorf("sweep orphans: %w", err)
	}
	return swept, nil
}

// sweepBatch is how many blob IDs a sweep checks in one read transaction.
var sweepBatch = 1000

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
