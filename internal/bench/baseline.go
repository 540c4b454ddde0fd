package bench

import (
	"context"
	"fmt"
	"os"
	"time"
)

// DiskBaseline measures what the disk under dir gives a single writer that
// appends size bytes and fsyncs, in a loop, for d: the ceiling a naive
// durable store reaches with one fsync per write. PUT rates are reported as
// ratios to it, measured in the same run, because absolute rates on a
// shared machine say little.
func DiskBaseline(ctx context.Context, dir string, size int64, d time.Duration) (opsPerSec float64, err error) {
	f, err := os.CreateTemp(dir, "bulwark-baseline-*")
	if err != nil {
		return 0, fmt.Errorf("disk baseline: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, size)
	start := time.Now()
	n := 0
	for time.Since(start) < d && ctx.Err() == nil {
		if _, err := f.Write(buf); err != nil {
			return 0, fmt.Errorf("disk baseline: %w", err)
		}
		if err := f.Sync(); err != nil {
			return 0, fmt.Errorf("disk baseline: %w", err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds(), ctx.Err()
}
