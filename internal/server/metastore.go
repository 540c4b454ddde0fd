package server

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/meta/pg"
)

// metaStore is the region's metadata store, with the commit counters its
// metrics read. It is the only place that names the engines: the rest of
// the wiring sees this interface.
type metaStore interface {
	meta.Store
	// commitStats returns the durable commits and the transactions they
	// carried.
	commitStats() (commits, transactions uint64)
	// shared says whether other processes may use the store at once
	// (several gateways serving the region).
	shared() bool
}

// openMeta opens the region's metadata store: the PostgreSQL database
// cfg.MetaDSN names when set, so that several gateways can serve the
// region, else bbolt in the data directory, with its disk reserve kept by
// the guard.
func openMeta(ctx context.Context, cfg Config, disk *headroom.Guard) (metaStore, error) {
	if cfg.MetaDSN != "" {
		s, err := pg.Open(ctx, cfg.MetaDSN)
		if err != nil {
			return nil, fmt.Errorf("open region %s: %w", cfg.Region, err)
		}
		if from, err := meta.Migrating(ctx, s); err != nil || from != "" {
			s.Close()
			if err == nil {
				err = fmt.Errorf("the database holds an unfinished copy of %s: run bulwark migrate again to finish it", from)
			}
			return nil, fmt.Errorf("open region %s: %w", cfg.Region, err)
		}
		return pgMeta{s}, nil
	}
	s, err := bolt.Open(filepath.Join(cfg.DataDir, "meta.db"))
	if err != nil {
		return nil, err
	}
	if to, at, err := meta.Moved(ctx, s); err != nil || to != "" {
		s.Close()
		if err == nil {
			// Its keys stop at the copy: serving them would hide every
			// write made since, and the orphan sweep would delete their
			// blobs.
			err = fmt.Errorf("its metadata was moved to %s on %s by bulwark migrate: serve it with -meta (or BULWARK_META_DSN); bulwark migrate -revert goes back to this copy",
				to, at.Format(time.RFC3339))
		}
		return nil, fmt.Errorf("open region %s: %w", cfg.Region, err)
	}
	disk.KeepAhead(s)
	return boltMeta{s}, nil
}

// boltMeta is bbolt, which one process opens at a time (a file lock).
type boltMeta struct{ *bolt.Store }

func (m boltMeta) commitStats() (uint64, uint64) {
	st := m.Store.Stats()
	return st.Commits, st.Transactions
}

func (boltMeta) shared() bool { return false }

// pgMeta is PostgreSQL: every gateway of the region opens it.
type pgMeta struct{ *pg.Store }

func (m pgMeta) commitStats() (uint64, uint64) {
	st := m.Store.Stats()
	return st.Commits, st.Transactions
}

func (pgMeta) shared() bool { return true }
