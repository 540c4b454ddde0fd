package objectstore

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
)

// lostAnswer commits an armed Update and then answers as a store that
// lost the commit's answer does.
type lostAnswer struct {
	meta.Store
	armed atomic.Bool
}

func (l *lostAnswer) Update(ctx context.Context, fn func(meta.Tx) error) error {
	if err := l.Store.Update(ctx, fn); err != nil || !l.armed.Swap(false) {
		return err
	}
	return fmt.Errorf("commit: connection reset: %w", meta.ErrUnknownOutcome)
}

// TestUnknownCommitOutcomeKeepsData: a PUT whose commit went through but
// whose answer was lost fails, yet the version it committed keeps its
// data (the blob is left to the sweeper, which sees it referenced).
func TestUnknownCommitOutcomeKeepsData(t *testing.T) {
	dir := t.TempDir()
	m, err := bolt.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b, err := blobfs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	lm := &lostAnswer{Store: m}
	s := New(Config{Region: "us-west-2", Meta: lm, Blobs: b, InlineLimit: 8})
	ctx := context.Background()
	if err := s.CreateBucket(ctx, "bkt", "owner", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	data := strings.Repeat("committed, answer lost ", 10)
	lm.armed.Store(true)
	if _, err := s.PutObject(ctx, &PutInput{Bucket: "bkt", Key: "k", Body: strings.NewReader(data), Size: int64(len(data))}); err == nil {
		t.Fatal("a put whose commit answer was lost succeeded")
	}
	if got, err := read(t, s, "bkt", "k", ""); err != nil || got != data {
		t.Fatalf("the committed version reads %q, %v", got, err)
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n != 0 {
		t.Fatalf("sweep removed %d blobs (%v): the committed version's blob is referenced", n, err)
	}
}
