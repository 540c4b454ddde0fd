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
// metrics read.
type metaStore interface {
	meta.Store
	Stats() bolt.Stats
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
	return s, nil
}

// pgMeta reports PostgreSQL's counters as bbolt's: every Update is a
// commit of its own (PostgreSQL groups WAL flushes itself).
type pgMeta struct{ *pg.Store }

func (m pgMeta) Stats() bolt.Stats {
	st := m.Store.Stats()
	return bolt.Stats{Commits: st.Commits, Transactions: st.Transactions}
}
