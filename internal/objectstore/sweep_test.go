package objectstore

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
)

// gatedMeta holds the first Update after arm until release: the moment
// between a blob's Create and the commit of the version that names it.
type gatedMeta struct {
	meta.Store
	armed   atomic.Bool
	held    chan struct{}
	release chan struct{}
}

func (g *gatedMeta) Update(ctx context.Context, fn func(meta.Tx) error) error {
	if g.armed.CompareAndSwap(true, false) {
		close(g.held)
		<-g.release
	}
	return g.Store.Update(ctx, fn)
}

// TestSweepSharedStore runs two gateways over one metadata store and two
// blob store instances over one directory, as processes sharing storage
// do. A blob gateway b has written but not yet committed is not swept by
// gateway a, whose clock is even a little ahead; an orphan older than the
// grace time is.
func TestSweepSharedStore(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	m, err := bolt.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	stores := [2]blob.Store{}
	for i := range stores {
		if stores[i], err = blobfs.Open(filepath.Join(dir, "blobs")); err != nil {
			t.Fatal(err)
		}
	}
	const grace = time.Hour
	var skew atomic.Int64 // a's clock ahead of the storage's
	skew.Store(int64(time.Minute))
	a := New(Config{Region: "us-west-2", Meta: m, Blobs: stores[0], InlineLimit: 8,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	gm := &gatedMeta{Store: m, held: make(chan struct{}), release: make(chan struct{})}
	b := New(Config{Region: "us-west-2", Meta: gm, Blobs: stores[1], InlineLimit: 8})
	if err := a.CreateBucket(ctx, "shared", "o", "us-west-2"); err != nil {
		t.Fatal(err)
	}

	data := strings.Repeat("in flight ", 1000)
	gm.armed.Store(true)
	put := make(chan error, 1)
	go func() {
		_, err := b.PutObject(ctx, &PutInput{Bucket: "shared", Key: "k", Body: strings.NewReader(data), Size: int64(len(data))})
		put <- err
	}()
	<-gm.held
	if n := countBlobs(t, stores[0]); n != 1 {
		t.Fatalf("%d blobs while the put is held, want its 1", n)
	}
	if n, err := a.SweepOrphans(ctx, grace); err != nil || n != 0 {
		t.Fatalf("sweep during another gateway's put: %d removed, %v", n, err)
	}
	close(gm.release)
	if err := <-put; err != nil {
		t.Fatal(err)
	}
	if got, err := read(t, a, "shared", "k", ""); err != nil || got != data {
		t.Fatalf("read through the other gateway: %d bytes, %v", len(got), err)
	}

	// An orphan: written by b, which then died before committing.
	if _, err := stores[1].Create(ctx, "ORPHAN", bytes.NewReader([]byte("left by a crash"))); err != nil {
		t.Fatal(err)
	}
	if n, err := a.SweepOrphans(ctx, grace); err != nil || n != 0 {
		t.Fatalf("sweep of a young orphan: %d removed, %v", n, err)
	}
	skew.Store(int64(grace + time.Minute))
	if n, err := a.SweepOrphans(ctx, grace); err != nil || n != 1 {
		t.Fatalf("sweep of an orphan past the grace time: %d removed, %v", n, err)
	}
	if got, err := read(t, a, "shared", "k", ""); err != nil || got != data {
		t.Fatalf("the committed object after the sweep: %d bytes, %v", len(got), err)
	}
}

// walkCounter counts the blobs its Walk has yielded and notes how many
// it had yielded at the first Delete.
type walkCounter struct {
	blob.Store
	walked, atFirstDelete int
}

func (w *walkCounter) Walk(ctx context.Context, fn func(blob.Info) error) error {
	return w.Store.Walk(ctx, func(in blob.Info) error {
		w.walked++
		return fn(in)
	})
}

func (w *walkCounter) Delete(ctx context.Context, id string) error {
	if w.atFirstDelete == 0 {
		w.atFirstDelete = w.walked
	}
	return w.Store.Delete(ctx, id)
}

// TestSweepHoldsABatch sweeps more blobs than one batch: orphans are
// deleted while the walk goes on, a batch behind it, so a sweep's memory
// does not grow with the number of blobs; referenced blobs stay.
func TestSweepHoldsABatch(t *testing.T) {
	defer func(n int) { sweepBatch = n }(sweepBatch)
	sweepBatch = 4
	ctx := context.Background()
	s, blobs := newStore(t)
	w := &walkCounter{Store: blobs}
	s.blobs = w
	_ = s.CreateBucket(ctx, "bkt", "o", "us-west-2")
	for i := range 5 {
		put(t, s, "bkt", fmt.Sprintf("kept%d", i), "referenced data in a blob")
	}
	const orphans = 17
	for i := range orphans {
		if _, err := blobs.Create(ctx, fmt.Sprintf("ORPHAN%02d", i), strings.NewReader("left by a crash")); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.SweepOrphans(ctx, 0)
	if err != nil || n != orphans {
		t.Fatalf("swept %d, %v; want %d", n, err, orphans)
	}
	// The walk's order is the store's: the first batch may hold only
	// referenced blobs (5 of them, 4 to a batch), never the first two.
	if w.walked != orphans+5 || w.atFirstDelete == 0 || w.atFirstDelete > 2*sweepBatch {
		t.Fatalf("walked %d blobs, first delete after %d; want a delete within the first %d", w.walked, w.atFirstDelete, 2*sweepBatch)
	}
	for i := range 5 {
		if got, _ := read(t, s, "bkt", fmt.Sprintf("kept%d", i), ""); got != "referenced data in a blob" {
			t.Fatal("sweeper removed a referenced blob")
		}
	}
}
