package meta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// MigrationSpace is the keyspace where Copy keeps its progress in the
// target. While it holds a key, the target is an unfinished copy: a region
// must not be served from it (Migrating says so), and Copy run again with
// the same source resumes where the record says.
const MigrationSpace = "meta-migration"

var migrationKey = []byte("progress")

// migration is the progress record: every batch of keys is committed in
// the target with the record naming its last key, so the record never
// claims a key the target does not hold.
type migration struct {
	Source  string    `json:"source"`
	Started time.Time `json:"started"`
	Space   string    `json:"space,omitempty"` // the keyspace being copied
	After   []byte    `json:"after,omitempty"` // its last key copied
}

// ErrNotEmpty is returned by Copy for a target that holds keys and is not
// an unfinished copy of the same source.
var ErrNotEmpty = errors.New("meta: target store is not empty")

// CopyOptions tune Copy.
type CopyOptions struct {
	// Source names the source in the progress record, so that a resumed
	// copy is known to come from the same one.
	Source string
	// Force copies into a target that holds keys already: keys present in
	// both take the source's value, the target's others are kept.
	Force bool
	// BatchKeys and BatchBytes bound one transaction of the copy, and so
	// the memory it takes: 1,000 keys and 4 MiB of keys and values when
	// zero (a single larger value makes a batch of its own).
	BatchKeys, BatchBytes int
	// Progress, when set, is called after each committed batch with the
	// keyspace and the keys copied of it so far in this run.
	Progress func(space string, keys int64)
}

// CopyStats describes a finished copy.
type CopyStats struct {
	Spaces  int   // keyspaces copied (with keys or a sequence)
	Keys    int64 // keys copied by this run
	Bytes   int64 // bytes of keys and values copied by this run
	Resumed bool  // the run continued an unfinished copy
}

// Copy copies every keyspace of src into dst, keys and sequences, in
// batches of transactions, so that it takes the memory of one batch
// whatever the size of the store. Neither store may be in use by a
// region. The copy is restartable: each batch commits with a progress
// record in dst (MigrationSpace), and Copy run again from the same source
// continues after the last batch committed; keys are written with Put, so
// copying one again is harmless. A sequence is set to src's position once
// its keyspace's keys are in, so that NextSeq in dst hands out values
// above every value src ever did. The progress record is deleted last:
// until then, Migrating reports dst as unfinished.
func Copy(ctx context.Context, dst, src Dumper, o CopyOptions) (CopyStats, error) {
	var st CopyStats
	if o.BatchKeys <= 0 {
		o.BatchKeys = 1000
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 4 << 20
	}
	if rec, err := readMigration(ctx, src); err != nil {
		return st, err
	} else if rec != nil {
		return st, fmt.Errorf("copy metadata: the source is itself an unfinished copy of %s", rec.Source)
	}
	rec, err := startMigration(ctx, dst, o)
	if err != nil {
		return st, err
	}
	st.Resumed = rec.Space != ""
	spaces, err := src.Spaces(ctx)
	if err != nil {
		return st, fmt.Errorf("copy metadata: list the source's keyspaces: %w", err)
	}
	for _, space := range spaces {
		if space == MigrationSpace || space < rec.Space {
			continue // copied by the run that was interrupted
		}
		var after []byte
		if space == rec.Space {
			after = rec.After
		}
		if err := copySpace(ctx, dst, src, space, after, rec, o, &st); err != nil {
			return st, err
		}
		st.Spaces++
	}
	err = dst.Update(ctx, func(tx Tx) error { return tx.Delete(MigrationSpace, migrationKey) })
	if err != nil {
		return st, fmt.Errorf("copy metadata: mark the copy finished: %w", err)
	}
	return st, nil
}

// startMigration checks that dst may be copied into and returns the
// progress record to start from: a new one, or that of an interrupted copy
// of the same source.
func startMigration(ctx context.Context, dst Dumper, o CopyOptions) (*migration, error) {
	rec, err := readMigration(ctx, dst)
	if err != nil {
		return nil, err
	}
	if rec != nil {
		if rec.Source != o.Source && !o.Force {
			return nil, fmt.Errorf("copy metadata: the target holds an unfinished copy of %s, not of %s", rec.Source, o.Source)
		}
		rec.Source = o.Source
		return rec, nil
	}
	spaces, err := dst.Spaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("copy metadata: list the target's keyspaces: %w", err)
	}
	spaces = slices.DeleteFunc(spaces, func(s string) bool { return s == MigrationSpace })
	if len(spaces) > 0 && !o.Force {
		shown := spaces[:min(len(spaces), 5)]
		return nil, fmt.Errorf("%w: it holds the keyspaces %s", ErrNotEmpty, strings.Join(shown, ", "))
	}
	rec = &migration{Source: o.Source, Started: time.Now().UTC()}
	if err := dst.Update(ctx, func(tx Tx) error { return putMigration(tx, rec) }); err != nil {
		return nil, fmt.Errorf("copy metadata: mark the target: %w", err)
	}
	return rec, nil
}

// copySpace copies the keys of space above after, batch by batch, then
// its sequence.
func copySpace(ctx context.Context, dst, src Dumper, space string, after []byte, rec *migration, o CopyOptions, st *CopyStats) error {
	var copied int64
	for {
		batch, size, err := readBatch(ctx, src, space, after, o)
		if err != nil {
			return fmt.Errorf("copy metadata: read %s: %w", space, err)
		}
		if len(batch) == 0 {
			break
		}
		after = batch[len(batch)-1].k
		next := *rec
		next.Space, next.After = space, after
		err = dst.Update(ctx, func(tx Tx) error {
			for _, p := range batch {
				if err := tx.Put(space, p.k, p.v); err != nil {
					return err
				}
			}
			return putMigration(tx, &next)
		})
		if err != nil {
			return fmt.Errorf("copy metadata: write %s: %w", space, err)
		}
		*rec = next
		copied += int64(len(batch))
		st.Keys += int64(len(batch))
		st.Bytes += size
		if o.Progress != nil {
			o.Progress(space, copied)
		}
	}
	n, err := src.Seq(ctx, space)
	if err != nil {
		return fmt.Errorf("copy metadata: read the sequence of %s: %w", space, err)
	}
	if n > 0 {
		if err := dst.SetSeq(ctx, space, n); err != nil {
			return fmt.Errorf("copy metadata: set the sequence of %s: %w", space, err)
		}
	}
	return nil
}

type pair struct{ k, v []byte }

// readBatch reads the keys of space above after, up to the batch limits,
// copied out of the transaction.
func readBatch(ctx context.Context, src Store, space string, after []byte, o CopyOptions) ([]pair, int64, error) {
	var batch []pair
	var size int64
	err := src.View(ctx, func(tx Tx) error {
		batch, size = batch[:0], 0
		it := tx.Iter(space)
		var k, v []byte
		if after == nil {
			k, v = it.First()
		} else if k, v = it.Seek(after); bytes.Equal(k, after) {
			k, v = it.Next()
		}
		for ; k != nil; k, v = it.Next() {
			batch = append(batch, pair{bytes.Clone(k), bytes.Clone(v)})
			size += int64(len(k) + len(v))
			if len(batch) >= o.BatchKeys || size >= int64(o.BatchBytes) {
				break
			}
		}
		return tx.Err()
	})
	return batch, size, err
}

func readMigration(ctx context.Context, s Store) (*migration, error) {
	var rec *migration
	err := s.View(ctx, func(tx Tx) error {
		raw := tx.Get(MigrationSpace, migrationKey)
		if raw == nil {
			return tx.Err()
		}
		rec = &migration{}
		return json.Unmarshal(raw, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("read the migration record: %w", err)
	}
	return rec, nil
}

func putMigration(tx Tx, rec *migration) error {
	raw, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Put(MigrationSpace, migrationKey, raw)
}

// Migrating returns the source of an unfinished copy into s (Copy was
// interrupted, or is running), or "" when s is not one. A region refuses
// to serve such a store: it holds only part of the source's keys.
func Migrating(ctx context.Context, s Store) (string, error) {
	rec, err := readMigration(ctx, s)
	if err != nil || rec == nil {
		return "", err
	}
	return rec.Source, nil
}

var movedKey = []byte("moved")

// moved is the record MarkMoved leaves in a store whose keys were copied
// to another, which the region now uses.
type moved struct {
	To string    `json:"to"`
	At time.Time `json:"at"`
}

// MarkMoved records in s, the source of a finished copy, that the region's
// metadata now lives in to: a region refuses to start on s (Moved), whose
// keys stop at the time of the copy. Copy and Compare ignore the record.
func MarkMoved(ctx context.Context, s Store, to string) error {
	raw, err := json.Marshal(moved{To: to, At: time.Now().UTC()})
	if err != nil {
		return err
	}
	if err := s.Update(ctx, func(tx Tx) error { return tx.Put(MigrationSpace, movedKey, raw) }); err != nil {
		return fmt.Errorf("mark the metadata moved: %w", err)
	}
	return nil
}

// Moved returns where MarkMoved said s's keys went, "" when it did not.
func Moved(ctx context.Context, s Store) (to string, at time.Time, err error) {
	var m moved
	err = s.View(ctx, func(tx Tx) error {
		if raw := tx.Get(MigrationSpace, movedKey); raw != nil {
			return json.Unmarshal(raw, &m)
		}
		return tx.Err()
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("read the migration record: %w", err)
	}
	return m.To, m.At, nil
}

// Unmark removes MarkMoved's record, so that a region may start on s
// again: going back to the store a region was moved from.
func Unmark(ctx context.Context, s Store) error {
	if err := s.Update(ctx, func(tx Tx) error { return tx.Delete(MigrationSpace, movedKey) }); err != nil {
		return fmt.Errorf("unmark the metadata: %w", err)
	}
	return nil
}

// SpaceDiff counts what Compare found in one keyspace.
type SpaceDiff struct {
	Space                  string
	SourceKeys, TargetKeys int64
	SourceSeq, TargetSeq   uint64
	// Missing keys are in the source only, Extra in the target only,
	// Changed in both with different values.
	Missing, Extra, Changed int64
}

// Differs reports whether the keyspace differs between the stores: a key
// not in both with the same value, or a target sequence behind the
// source's (one ahead only means the target has been written to since).
func (d SpaceDiff) Differs() bool {
	return d.Missing+d.Extra+d.Changed > 0 || d.TargetSeq < d.SourceSeq
}

// Difference is one key that differs, or a sequence (Key nil).
type Difference struct {
	Space string
	Key   []byte
	What  string
}

// Compare compares every keyspace of src and dst key by key, and their
// sequences, calling report for each difference. It reads one keyspace at
// a time in one snapshot of each store, through iterators, so it takes
// the memory of an iterator's page whatever the size of the stores.
// MigrationSpace, the copy's own records, is not compared: Migrating says
// whether dst is an unfinished copy.
func Compare(ctx context.Context, src, dst Dumper, report func(Difference)) ([]SpaceDiff, error) {
	a, err := src.Spaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("compare metadata: list the source's keyspaces: %w", err)
	}
	b, err := dst.Spaces(ctx)
	if err != nil {
		return nil, fmt.Errorf("compare metadata: list the target's keyspaces: %w", err)
	}
	spaces := slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a), b...))))
	spaces = slices.DeleteFunc(spaces, func(s string) bool { return s == MigrationSpace })
	out := make([]SpaceDiff, 0, len(spaces))
	for _, space := range spaces {
		d, err := compareSpace(ctx, src, dst, space, report)
		if err != nil {
			return out, fmt.Errorf("compare metadata: %s: %w", space, err)
		}
		out = append(out, d)
	}
	return out, nil
}

func compareSpace(ctx context.Context, src, dst Dumper, space string, report func(Difference)) (SpaceDiff, error) {
	d := SpaceDiff{Space: space}
	var err error
	if d.SourceSeq, err = src.Seq(ctx, space); err != nil {
		return d, err
	}
	if d.TargetSeq, err = dst.Seq(ctx, space); err != nil {
		return d, err
	}
	if d.TargetSeq < d.SourceSeq {
		report(Difference{Space: space, What: fmt.Sprintf("sequence at %d in the target, below the source's %d", d.TargetSeq, d.SourceSeq)})
	}
	diff := func(k []byte, what string) { report(Difference{Space: space, Key: bytes.Clone(k), What: what}) }
	err = src.View(ctx, func(stx Tx) error {
		return dst.View(ctx, func(dtx Tx) error {
			d.SourceKeys, d.TargetKeys, d.Missing, d.Extra, d.Changed = 0, 0, 0, 0, 0
			si, di := stx.Iter(space), dtx.Iter(space)
			sk, sv := si.First()
			dk, dv := di.First()
			for sk != nil || dk != nil {
				c := compareKeys(sk, dk)
				switch {
				case c < 0:
					d.SourceKeys++
					d.Missing++
					diff(sk, "missing in the target")
					sk, sv = si.Next()
				case c > 0:
					d.TargetKeys++
					d.Extra++
					diff(dk, "only in the target")
					dk, dv = di.Next()
				default:
					d.SourceKeys++
					d.TargetKeys++
					if !bytes.Equal(sv, dv) {
						d.Changed++
						diff(sk, "value differs")
					}
					sk, sv = si.Next()
					dk, dv = di.Next()
				}
			}
			return errors.Join(stx.Err(), dtx.Err())
		})
	})
	return d, err
}

// compareKeys orders keys with nil (an iterator's end) after every key.
func compareKeys(a, b []byte) int {
	switch {
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return bytes.Compare(a, b)
}
