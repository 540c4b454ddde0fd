package objectstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// appendChange adds a record to the change feed. It runs inside the
// transaction of the mutation it describes, so a mutation is never durable
// without its change record, nor the record without the mutation.
func appendChange(tx meta.Tx, c *Change) error {
	seq, err := tx.NextSeq(spaceFeed)
	if err != nil {
		return fmt.Errorf("append change: %w", err)
	}
	c.Seq = seq
	raw, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("append change: %w", err)
	}
	return tx.Put(spaceFeed, seqKey(seq), raw)
}

// Changes returns up to limit change records with sequence numbers above
// after, in sequence order.
func (s *Store) Changes(ctx context.Context, after uint64, limit int) ([]Change, error) {
	var out []Change
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceFeed)
		for k, v := it.Seek(seqKey(after + 1)); k != nil && len(out) < limit; k, v = it.Next() {
			var c Change
			if err := json.Unmarshal(v, &c); err != nil {
				return fmt.Errorf("decode change %x: %w", k, err)
			}
			out = append(out, c)
		}
		return nil
	})
	return out, err
}

// TrimChanges deletes change records up to and including seq, once every
// consumer has passed them; a hold (HoldFeed) keeps the records above it.
func (s *Store) TrimChanges(ctx context.Context, seq uint64) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		if held, ok := heldFrom(tx); ok && held < seq {
			seq = held
		}
		it := tx.Iter(spaceFeed)
		for k, _ := it.First(); k != nil && binary.BigEndian.Uint64(k) <= seq; k, _ = it.Next() {
			if err := tx.Delete(spaceFeed, k); err != nil {
				return err
			}
		}
		return nil
	})
}

// FeedStats describes the change feed.
type FeedStats struct {
	First, Last uint64 // sequence numbers held; both 0 when empty
	Length      uint64
}

// FeedStats returns the range of the change feed.
func (s *Store) FeedStats(ctx context.Context) (FeedStats, error) {
	var st FeedStats
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceFeed)
		if k, _ := it.First(); k != nil {
			st.First = binary.BigEndian.Uint64(k)
		}
		if k, _ := it.Last(); k != nil {
			st.Last = binary.BigEndian.Uint64(k)
			st.Length = st.Last - st.First + 1
		}
		return nil
	})
	return st, err
}

// A feed hold keeps the change records after a sequence number from being
// trimmed, for a consumer other than the replication engine (a continuous
// backup of a bucket reads every change of it).
const spaceFeedHolds = "feed-holds" // name → big-endian sequence

// HoldFeed keeps the records above seq until the hold moves or goes.
func (s *Store) HoldFeed(ctx context.Context, name string, seq uint64) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		return tx.Put(spaceFeedHolds, []byte(name), seqKey(seq))
	})
}

// ReleaseFeed drops a hold.
func (s *Store) ReleaseFeed(ctx context.Context, name string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		return tx.Delete(spaceFeedHolds, []byte(name))
	})
}

// FeedFence returns the sequence number of the last change record and an
// instant such that every change at or before it has a sequence number no
// higher: it runs as a write transaction, after every write that started
// before it, and every write after it takes a later time.
func (s *Store) FeedFence(ctx context.Context) (last uint64, at time.Time, err error) {
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		at = s.now().UTC()
		if k, _ := tx.Iter(spaceFeed).Last(); k != nil {
			last = binary.BigEndian.Uint64(k)
		}
		return nil
	})
	return last, at, err
}

// heldFrom is the lowest sequence number a hold keeps; ok is false when
// there is no hold.
func heldFrom(tx meta.Tx) (seq uint64, ok bool) {
	it := tx.Iter(spaceFeedHolds)
	for k, v := it.First(); k != nil; k, v = it.Next() {
		if n := binary.BigEndian.Uint64(v); !ok || n < seq {
			seq, ok = n, true
		}
	}
	return seq, ok
}
