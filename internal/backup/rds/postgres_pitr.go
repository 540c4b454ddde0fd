package rds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// A log piece of a PostgreSQL continuous point holds, for each WAL segment
// the stream received bytes of since the piece before, one entry
// "pg_wal/SEGMENT" with those bytes and their offset in the segment
// (pgEntryOffset); and "pg_wal/TLI.history" for a timeline the source
// switched to.
const (
	walKeyPrefix  = "pg_wal/"
	pgEntryOffset = "Offset"
)

// pgSource is what a restore reads: a base, and for a continuous point
// the log pieces after it and the instant to recover to.
type pgSource struct {
	base     entryLister
	baseMeta map[string]string
	pitr     bool
	logs     []entryLister
	target   time.Time
}

// walRange is a stretch of WAL positions, [from, to).
type walRange struct{ from, to uint64 }

// writeWAL writes the log pieces' WAL into the data directory's pg_wal,
// beside the base's, checks that it runs without a hole from the base's
// start to its end, and finds where recovery is to stop: it returns the
// recovery settings.
//
// Recovery to a time stops before the first commit or abort record, in
// WAL order, whose timestamp is after it. When the WAL holds such a
// record, the settings name the time; when it holds none, every
// transaction of the WAL committed at or before the time, and recovery
// replays it all (a target it never reached would fail it). The base's
// WAL after its end is cut first, so that recovery never reads WAL the
// pieces do not vouch for.
func (pg *Postgres) writeWAL(ctx context.Context, run *backup.RestoreRun, src *pgSource, t *pgTarget) ([]string, error) {
	md := src.baseMeta
	start, err1 := parseLSN(md[pgMetaStartLSN])
	end, err2 := parseLSN(md[pgMetaEndLSN])
	segSize, err3 := strconv.ParseUint(md[pgMetaSegmentSize], 10, 64)
	if err := errors.Join(err1, err2, err3); err != nil || segSize == 0 {
		return nil, fmt.Errorf("the base of %s does not record its WAL positions: %v", run.Point.ARN, err)
	}
	walDir := filepath.Join(t.dataDir, "pg_wal")
	first := start - start%segSize
	if err := cutWAL(walDir, end, segSize); err != nil {
		return nil, err
	}
	have := []walRange{{first, end}}
	for _, piece := range src.logs {
		err := piece.Entries(ctx, func(e vault.Entry, ref vault.ObjectRef) error {
			r, err := writeWALEntry(ctx, run, t, walDir, segSize, first, e, ref)
			if err != nil {
				return err
			}
			if r.to > r.from {
				have = append(have, r)
			}
			return run.Restored(ctx, e)
		})
		if err != nil {
			return nil, err
		}
	}
	upTo, hole := contiguous(have)
	if hole {
		return nil, &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf(
			"The continuous point's WAL has a hole after %s: it cannot be restored to %s from this base.", formatLSN(upTo), src.target.Format(time.RFC3339Nano))}
	}
	stop, err := findStop(walDir, first, upTo, segSize, src.target)
	if err != nil {
		return nil, err
	}
	settings := []string{
		"restore_command = 'false'", // the WAL is in pg_wal already
		"recovery_target_timeline = 'latest'",
		"hot_standby = off",
	}
	if stop != nil {
		if stop.LSN < end {
			return nil, &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf(
				"RestoreTime %s is before the base backup became consistent (a transaction ended at %s, before its end %s): restore to a later time.",
				src.target.Format(time.RFC3339Nano), stop.Time.Format(time.RFC3339Nano), formatLSN(end))}
		}
		settings = append(settings,
			"recovery_target_time = '"+src.target.UTC().Format("2006-01-02 15:04:05.999999")+"+00'",
			"recovery_target_inclusive = on",
			"recovery_target_action = 'promote'")
	}
	pg.log.Info("postgres restore: WAL in place", "point", run.Point.ARN, "from", formatLSN(first), "to", formatLSN(upTo), "stop", stop != nil)
	return settings, nil
}

// cutWAL removes the base's WAL after its end: the segments after the one
// end is in, and that one's bytes from end on.
func cutWAL(walDir string, end, segSize uint64) error {
	ents, err := os.ReadDir(walDir)
	if err != nil {
		return err
	}
	last := end - end%segSize
	for _, e := range ents {
		_, seg, ok := parseWALFileName(e.Name(), segSize)
		switch {
		case !ok || seg < last:
		case seg > last:
			if err := os.Remove(filepath.Join(walDir, e.Name())); err != nil {
				return err
			}
		default:
			f, err := os.OpenFile(filepath.Join(walDir, e.Name()), os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			_, werr := io.Copy(io.NewOffsetWriter(f, int64(end-seg)), io.LimitReader(zeroReader{}, int64(segSize-(end-seg))))
			if err := errors.Join(werr, f.Close()); err != nil {
				return err
			}
		}
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// writeWALEntry writes one entry of a log piece into pg_wal and returns
// the positions it holds (none for a history file, or for WAL before
// first, which the base does not need).
func writeWALEntry(ctx context.Context, run *backup.RestoreRun, t *pgTarget, walDir string, segSize, first uint64, e vault.Entry, ref vault.ObjectRef) (walRange, error) {
	name, ok := strings.CutPrefix(e.Key, walKeyPrefix)
	if !ok || strings.ContainsAny(name, `/\`) || name == "" {
		return walRange{}, fmt.Errorf("log piece entry %q is not WAL", e.Key)
	}
	p := filepath.Join(walDir, name)
	rd, err := run.Open(ctx, e, ref)
	if err != nil {
		return walRange{}, err
	}
	defer rd.Close()
	if strings.HasSuffix(name, ".history") {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return walRange{}, err
		}
		_, cerr := io.Copy(f, ctxReader{ctx, rd})
		if err := errors.Join(cerr, f.Close(), t.user.chown(p)); err != nil {
			return walRange{}, err
		}
		return walRange{}, nil
	}
	_, seg, ok := parseWALFileName(name, segSize)
	off, err := strconv.ParseUint(e.Metadata[pgEntryOffset], 10, 64)
	if !ok || err != nil || off+uint64(e.Size) > segSize {
		return walRange{}, fmt.Errorf("log piece entry %q: not a WAL segment range", e.Key)
	}
	if seg+off+uint64(e.Size) <= first {
		_, err := io.Copy(io.Discard, rd) // checked all the same
		return walRange{}, err
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return walRange{}, err
	}
	fi, err := f.Stat()
	if err == nil && uint64(fi.Size()) < segSize {
		err = f.Truncate(int64(segSize)) // a segment file has its full size
	}
	if err == nil {
		_, err = io.Copy(io.NewOffsetWriter(f, int64(off)), ctxReader{ctx, rd})
	}
	if err := errors.Join(err, f.Close(), t.user.chown(p)); err != nil {
		return walRange{}, fmt.Errorf("restore %s: %w", e.Key, err)
	}
	return walRange{seg + off, seg + off + uint64(e.Size)}, nil
}

// contiguous merges ranges from the first one's start and returns where
// the WAL ends without a hole, and whether there is WAL after a hole.
func contiguous(rs []walRange) (uint64, bool) {
	from := rs[0].from
	slices.SortFunc(rs, func(a, b walRange) int {
		switch {
		case a.from < b.from:
			return -1
		case a.from > b.from:
			return 1
		}
		return 0
	})
	upTo := from
	for _, r := range rs {
		if r.to <= from {
			continue
		}
		if r.from > upTo {
			return upTo, true
		}
		upTo = max(upTo, r.to)
	}
	return upTo, false
}

// findStop scans the WAL in walDir from first to upTo for the first
// commit or abort record after target. A segment's file is the one of the
// newest timeline that has it.
func findStop(walDir string, first, upTo, segSize uint64, target time.Time) (*xactRecord, error) {
	ents, err := os.ReadDir(walDir)
	if err != nil {
		return nil, err
	}
	files := map[uint64]string{}
	tlis := map[uint64]uint32{}
	for _, e := range ents {
		tli, seg, ok := parseWALFileName(e.Name(), segSize)
		if ok && (files[seg] == "" || tli > tlis[seg]) {
			files[seg], tlis[seg] = e.Name(), tli
		}
	}
	var stop *xactRecord
	sc := newWALScanner(first, segSize, func(r xactRecord) {
		if stop == nil && r.Time.After(target) {
			stop = &r
		}
	})
	buf := make([]byte, 1<<20)
	for seg := first; seg < upTo && stop == nil; seg += segSize {
		if files[seg] == "" {
			return nil, fmt.Errorf("WAL segment of %s missing from pg_wal", formatLSN(seg))
		}
		f, err := os.Open(filepath.Join(walDir, files[seg]))
		if err != nil {
			return nil, err
		}
		r := io.LimitReader(f, int64(min(segSize, upTo-seg)))
		for stop == nil {
			n, err := r.Read(buf)
			sc.Feed(buf[:n])
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				f.Close()
				return nil, err
			}
		}
		f.Close()
	}
	if sc.Broken > 0 && sc.Last > sc.BrokenAt {
		return nil, fmt.Errorf("the WAL at %s does not read as WAL: it is damaged", formatLSN(sc.BrokenAt))
	}
	return stop, nil
}
