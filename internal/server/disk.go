package server

import (
	"context"
	"io"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/meta"
)

// DiskConfig sets how much of the data directory's filesystem a region
// leaves free and the reserves that keep deletes working when it is full
// (package headroom). Zero values take the defaults.
type DiskConfig struct {
	// Floor is the free space, in bytes, below which new data is refused;
	// FloorPercent gives it as a percentage of the filesystem instead.
	Floor        int64
	FloorPercent float64
	// Ballast is the size of the ballast file; negative keeps none.
	Ballast int64
	// MetaReserve is the room kept preallocated ahead of meta.db;
	// negative keeps none.
	MetaReserve int64
	// Interval is the time between two looks at the filesystem.
	Interval time.Duration
	// Statfs, when set, replaces the operating system's view of the
	// filesystem (tests).
	Statfs headroom.Statfs
}

func (d DiskConfig) guard(region, dir string) headroom.Config {
	return headroom.Config{
		Region: region, Dir: dir, Floor: d.Floor, FloorPercent: d.FloorPercent,
		Ballast: d.Ballast, Reserve: d.MetaReserve, Interval: d.Interval, Statfs: d.Statfs,
	}
}

// spaceMeta is the metadata store as the region's packages see it: a
// commit that ran out of disk space fails with the guard's error, which
// every API answers 503 with the cause, never a bare 500.
type spaceMeta struct {
	meta.Store
	g *headroom.Guard
}

func (m spaceMeta) Update(ctx context.Context, fn func(meta.Tx) error) error {
	return m.g.Explain(m.Store.Update(ctx, fn))
}

// spaceBlobs is the blob store with the same translation. A blob that
// could not be written is removed by the store itself, so nothing half
// written is left to be referenced.
type spaceBlobs struct {
	blob.Store
	g *headroom.Guard
}

func (b spaceBlobs) Create(ctx context.Context, id string, r io.Reader) (int64, error) {
	n, err := b.Store.Create(ctx, id, r)
	return n, b.g.Explain(err)
}
