package bench

import (
	"context"
	"crypto/rand"
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

// SequentialWrite measures the disk under dir writing total bytes in 8 MiB
// writes, with fdatasync every 256 MiB and at the end: a sustained rate, not
// the burst a virtual disk's host cache absorbs. It returns MiB/s.
func SequentialWrite(ctx context.Context, dir string, total int64) (float64, error) {
	f, err := os.CreateTemp(dir, "bulwark-seqwrite-*")
	if err != nil {
		return 0, fmt.Errorf("sequential write: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 8<<20)
	_, _ = rand.Read(buf)
	start := time.Now()
	for written := int64(0); written < total; {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		n, err := f.Write(buf[:min(int64(len(buf)), total-written)])
		if err != nil {
			return 0, fmt.Errorf("sequential write: %w", err)
		}
		written += int64(n)
		if written%(256<<20) == 0 || written == total {
			if err := f.Sync(); err != nil {
				return 0, fmt.Errorf("sequential write: %w", err)
			}
		}
	}
	return float64(total) / (1 << 20) / time.Since(start).Seconds(), nil
}
