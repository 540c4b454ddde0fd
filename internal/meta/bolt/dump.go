package bolt

import (
	"context"
	"fmt"

	"go.etcd.io/bbolt"

	"github.com/bulwark/bulwark/internal/meta"
)

var _ meta.Dumper = (*Store)(nil)

// Spaces implements meta.Dumper: a keyspace is a top-level bucket.
func (s *Store) Spaces(ctx context.Context) ([]string, error) {
	var out []string
	err := s.View(ctx, func(t meta.Tx) error {
		return t.(*tx).btx.ForEach(func(name []byte, b *bbolt.Bucket) error {
			if k, _ := b.Cursor().First(); k != nil || b.Sequence() > 0 {
				out = append(out, string(name))
			}
			return ctx.Err()
		})
	})
	return out, err
}

// Seq implements meta.Dumper.
func (s *Store) Seq(ctx context.Context, space string) (uint64, error) {
	var n uint64
	err := s.View(ctx, func(t meta.Tx) error {
		if b := t.(*tx).btx.Bucket([]byte(space)); b != nil {
			n = b.Sequence()
		}
		return nil
	})
	return n, err
}

// SetSeq implements meta.Dumper.
func (s *Store) SetSeq(ctx context.Context, space string, n uint64) error {
	return s.Update(ctx, func(t meta.Tx) error {
		b, err := t.(*tx).bucket(space)
		if err != nil {
			return err
		}
		if cur := b.Sequence(); n < cur {
			return fmt.Errorf("set the sequence of %s to %d: it is at %d, and a sequence never moves back", space, n, cur)
		}
		return b.SetSequence(n)
	})
}
