package objectstore

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

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
// consumer has passed them.
func (s *Store) TrimChanges(ctx context.Context, seq uint64) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
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
