// Package blobtest is the conformance suite every blob.Store passes: it
// checks each guarantee blob.Store's documentation makes, and tries to break
// them with failing readers, cancelled contexts, racing writers and walks
// over a changing store. RunShared repeats the checks that matter between
// processes over two instances of one store on the same storage.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
)

// Run runs the suite against stores made by newStore, each empty and of its
// own.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	t.Run("CreateOpen", func(t *testing.T) { testCreateOpen(t, newStore(t)) })
	t.Run("Empty", func(t *testing.T) { testEmpty(t, newStore(t)) })
	t.Run("ReadEveryOffset", func(t *testing.T) { testReadEveryOffset(t, newStore(t)) })
	t.Run("ParallelReadAt", func(t *testing.T) { testParallelReadAt(t, newStore(t)) })
	t.Run("WriteOnce", func(t *testing.T) { s := newStore(t); testWriteOnce(t, s, s) })
	t.Run("OpenMissing", func(t *testing.T) { testOpenMissing(t, newStore(t)) })
	t.Run("FailedCreateLeavesNothing", func(t *testing.T) { testFailedCreate(t, newStore(t)) })
	t.Run("CancelledCreateLeavesNothing", func(t *testing.T) { testCancelledCreate(t, newStore(t)) })
	t.Run("CancelledContext", func(t *testing.T) { testCancelledContext(t, newStore(t)) })
	t.Run("IncompleteInvisible", func(t *testing.T) { s := newStore(t); testIncompleteInvisible(t, s, s) })
	t.Run("HostileIDs", func(t *testing.T) { testHostileIDs(t, newStore(t)) })
	t.Run("DeleteWalk", func(t *testing.T) { testDeleteWalk(t, newStore(t)) })
	t.Run("WalkInfo", func(t *testing.T) { testWalkInfo(t, newStore(t)) })
	t.Run("WalkWhileChanging", func(t *testing.T) { testWalkWhileChanging(t, newStore(t)) })
	t.Run("WalkStops", func(t *testing.T) { testWalkStops(t, newStore(t)) })
	t.Run("RacingCreates", func(t *testing.T) { s := newStore(t); testRacingCreates(t, s, s) })
}

// RunShared runs the checks between two instances of a store over the same
// storage (two processes on one shared filesystem or one bucket), made by
// newPair over storage of their own for each test.
func RunShared(t *testing.T, newPair func(t *testing.T) (a, b blob.Store)) {
	t.Run("WriteOnce", func(t *testing.T) { a, b := newPair(t); testWriteOnce(t, a, b) })
	t.Run("RacingCreates", func(t *testing.T) { a, b := newPair(t); testRacingCreates(t, a, b) })
	t.Run("IncompleteInvisible", func(t *testing.T) { a, b := newPair(t); testIncompleteInvisible(t, a, b) })
	t.Run("SeenByOther", func(t *testing.T) { a, b := newPair(t); testSeenByOther(t, a, b) })
}

// random returns n bytes that differ from one seed to the next.
func random(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 0x6a09e667))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func create(t *testing.T, s blob.Store, id string, data []byte) {
	t.Helper()
	n, err := s.Create(context.Background(), id, bytes.NewReader(data))
	if err != nil || n != int64(len(data)) {
		t.Fatalf("create %s: n=%d err=%v, want n=%d", id, n, err, len(data))
	}
}

// content opens id and reads it whole, checking Size.
func content(t *testing.T, s blob.Store, id string) []byte {
	t.Helper()
	o, err := s.Open(context.Background(), id)
	if err != nil {
		t.Fatalf("open %s: %v", id, err)
	}
	defer o.Close()
	got, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	if o.Size() != int64(len(got)) {
		t.Fatalf("blob %s: Size %d, read %d bytes", id, o.Size(), len(got))
	}
	return got
}

func wantMissing(t *testing.T, s blob.Store, id, when string) {
	t.Helper()
	if o, err := s.Open(context.Background(), id); !errors.Is(err, blob.ErrNotFound) {
		if err == nil {
			o.Close()
		}
		t.Fatalf("open %s %s: %v, want ErrNotFound", id, when, err)
	}
	ids := walk(t, s)
	if _, ok := ids[id]; ok {
		t.Fatalf("walk %s lists %s", when, id)
	}
}

// walk returns what Walk reports, failing on an ID seen twice.
func walk(t *testing.T, s blob.Store) map[string]blob.Info {
	t.Helper()
	seen := map[string]blob.Info{}
	err := s.Walk(context.Background(), func(in blob.Info) error {
		if _, dup := seen[in.ID]; dup {
			return fmt.Errorf("walk reported %s twice", in.ID)
		}
		seen[in.ID] = in
		return nil
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return seen
}

func testCreateOpen(t *testing.T, s blob.Store) {
	data := random(1, 1_000_003)
	create(t, s, "abc-DEF_123", data)
	if got := content(t, s, "abc-DEF_123"); !bytes.Equal(got, data) {
		t.Fatal("content differs")
	}
}

func testEmpty(t *testing.T, s blob.Store) {
	create(t, s, "empty", nil)
	o, err := s.Open(context.Background(), "empty")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.Size() != 0 {
		t.Fatalf("size %d", o.Size())
	}
	if n, err := o.ReadAt(make([]byte, 4), 0); n != 0 || err != io.EOF {
		t.Fatalf("ReadAt of an empty blob: %d, %v", n, err)
	}
	if n, err := o.Read(make([]byte, 4)); n != 0 || err != io.EOF {
		t.Fatalf("Read of an empty blob: %d, %v", n, err)
	}
	if in := walk(t, s)["empty"]; in.ID != "empty" || in.Size != 0 {
		t.Fatalf("walk: %+v", in)
	}
}

// testReadEveryOffset reads from every offset with ReadAt and with Seek
// (from the start, the current position and the end), past the end too.
func testReadEveryOffset(t *testing.T, s blob.Store) {
	data := random(2, 200)
	create(t, s, "offsets", data)
	o, err := s.Open(context.Background(), "offsets")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	size := int64(len(data))
	buf := make([]byte, 16)
	for off := int64(0); off <= size+2; off++ {
		n, err := o.ReadAt(buf, off)
		want := data[min(off, size):min(off+16, size)]
		if n != len(want) || !bytes.Equal(buf[:n], want) {
			t.Fatalf("ReadAt(16, %d): %d bytes %x, want %x", off, n, buf[:n], want)
		}
		if n < len(buf) && err != io.EOF {
			t.Fatalf("ReadAt(16, %d): short read of %d with error %v, want io.EOF", off, n, err)
		}
		if n == len(buf) && err != nil && err != io.EOF {
			t.Fatalf("ReadAt(16, %d): %v", off, err)
		}
		if off > size {
			continue
		}
		var pos int64
		switch off % 3 {
		case 0:
			pos, err = o.Seek(off, io.SeekStart)
		case 1:
			if _, err = o.Seek(3, io.SeekStart); err == nil {
				pos, err = o.Seek(off-3, io.SeekCurrent)
			}
		case 2:
			pos, err = o.Seek(off-size, io.SeekEnd)
		}
		if err != nil || pos != off {
			t.Fatalf("seek to %d: %d, %v", off, pos, err)
		}
		got, err := io.ReadAll(o)
		if err != nil || !bytes.Equal(got, data[off:]) {
			t.Fatalf("read from %d: %d bytes, %v; want %d", off, len(got), err, size-off)
		}
	}
	if _, err := o.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek before the start succeeded")
	}
	// Reading after a seek past the end yields nothing.
	if _, err := o.Seek(size+10, io.SeekStart); err != nil {
		t.Fatalf("seek past the end: %v", err)
	}
	if n, err := o.Read(buf); n != 0 || err != io.EOF {
		t.Fatalf("read past the end: %d, %v", n, err)
	}
}

func testParallelReadAt(t *testing.T, s blob.Store) {
	data := random(3, 300_000)
	create(t, s, "parallel", data)
	o, err := s.Open(context.Background(), "parallel")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			buf := make([]byte, 10_000)
			for off := int64(g * 1000); off+int64(len(buf)) <= int64(len(data)); off += 37_000 {
				if n, err := o.ReadAt(buf, off); n != len(buf) || (err != nil && err != io.EOF) || !bytes.Equal(buf, data[off:off+int64(n)]) {
					t.Errorf("ReadAt(%d, %d): %d, %v", len(buf), off, n, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// testWriteOnce creates through a and again through b.
func testWriteOnce(t *testing.T, a, b blob.Store) {
	ctx := context.Background()
	first := random(4, 100_000)
	create(t, a, "once", first)
	for _, s := range []blob.Store{a, b} {
		if _, err := s.Create(ctx, "once", bytes.NewReader(random(5, 200_000))); !errors.Is(err, blob.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
		if _, err := s.Create(ctx, "once", bytes.NewReader(nil)); !errors.Is(err, blob.ErrExists) {
			t.Fatalf("second, empty create: %v, want ErrExists", err)
		}
	}
	for _, s := range []blob.Store{a, b} {
		if got := content(t, s, "once"); !bytes.Equal(got, first) {
			t.Fatalf("the first blob changed: %d bytes", len(got))
		}
	}
}

// testRacingCreates races two Creates of each ID, one through a and one
// through b: exactly one wins and its data is what the blob holds.
func testRacingCreates(t *testing.T, a, b blob.Store) {
	ctx := context.Background()
	for i := range 12 {
		id := fmt.Sprintf("race%02d", i)
		datas := [2][]byte{random(uint64(100+2*i), 256<<10), random(uint64(101+2*i), 200<<10)}
		var errs [2]error
		var wg sync.WaitGroup
		start := make(chan struct{})
		for w, s := range []blob.Store{a, b} {
			wg.Go(func() {
				<-start
				_, errs[w] = s.Create(ctx, id, bytes.NewReader(datas[w]))
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for w, err := range errs {
			switch {
			case err == nil && winner < 0:
				winner = w
			case err == nil:
				t.Fatalf("%s: both creates succeeded", id)
			case !errors.Is(err, blob.ErrExists):
				t.Fatalf("%s: losing create: %v, want ErrExists", id, err)
			}
		}
		if winner < 0 {
			t.Fatalf("%s: no create succeeded: %v", id, errs)
		}
		for _, s := range []blob.Store{a, b} {
			if got := content(t, s, id); !bytes.Equal(got, datas[winner]) {
				t.Fatalf("%s: holds %d bytes, not the winner's", id, len(got))
			}
		}
	}
}

func testOpenMissing(t *testing.T, s blob.Store) {
	wantMissing(t, s, "never-created", "of a missing blob")
	create(t, s, "short-lived", []byte("x"))
	if err := s.Delete(context.Background(), "short-lived"); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, s, "short-lived", "after delete")
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }

func testFailedCreate(t *testing.T, s blob.Store) {
	for _, size := range []int{7, 300_000} {
		r := io.MultiReader(bytes.NewReader(random(6, size)), errReader{})
		if _, err := s.Create(context.Background(), "broken", r); err == nil {
			t.Fatal("create from failing reader succeeded")
		}
		wantMissing(t, s, "broken", "after a failed create")
		if n := len(walk(t, s)); n != 0 {
			t.Fatalf("failed create left %d blobs", n)
		}
	}
}

// cancelReader cancels its context once it has yielded some data, and goes
// on yielding.
type cancelReader struct {
	cancel context.CancelFunc
	n      int
}

func (r *cancelReader) Read(p []byte) (int, error) {
	r.n++
	if r.n == 3 {
		r.cancel()
	}
	if r.n > 10_000 {
		return 0, io.EOF
	}
	return copy(p, bytes.Repeat([]byte{'c'}, min(len(p), 4096))), nil
}

func testCancelledCreate(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := s.Create(ctx, "cancelled", &cancelReader{cancel: cancel}); !errors.Is(err, context.Canceled) {
		t.Fatalf("create whose context ends: %v, want context.Canceled", err)
	}
	wantMissing(t, s, "cancelled", "after a cancelled create")
}

func testCancelledContext(t *testing.T, s blob.Store) {
	create(t, s, "there", []byte("data"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Create(ctx, "not-there", bytes.NewReader([]byte("data"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("create: %v, want context.Canceled", err)
	}
	wantMissing(t, s, "not-there", "after a create with an ended context")
	if o, err := s.Open(ctx, "there"); !errors.Is(err, context.Canceled) {
		if err == nil {
			o.Close()
		}
		t.Fatalf("open: %v, want context.Canceled", err)
	}
	if err := s.Walk(ctx, func(blob.Info) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("walk: %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "there"); !errors.Is(err, context.Canceled) {
		t.Fatalf("delete: %v, want context.Canceled", err)
	}
	if got := content(t, s, "there"); string(got) != "data" {
		t.Fatalf("blob after cancelled calls: %q", got)
	}
}

// stallReader yields some data, says so, and waits for release.
type stallReader struct {
	head    []byte
	stalled chan struct{}
	release chan struct{}
	tail    []byte
}

func (r *stallReader) Read(p []byte) (int, error) {
	if len(r.head) > 0 {
		n := copy(p, r.head)
		r.head = r.head[n:]
		return n, nil
	}
	if r.stalled != nil {
		close(r.stalled)
		r.stalled = nil
		<-r.release
	}
	if len(r.tail) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.tail)
	r.tail = r.tail[n:]
	return n, nil
}

// testIncompleteInvisible checks that a blob being written through a is
// neither opened nor walked through b until Create returns.
func testIncompleteInvisible(t *testing.T, a, b blob.Store) {
	data := random(7, 300_000)
	r := &stallReader{head: data[:100_000], tail: data[100_000:], stalled: make(chan struct{}), release: make(chan struct{})}
	stalled := r.stalled
	done := make(chan error, 1)
	go func() {
		_, err := a.Create(context.Background(), "incomplete", r)
		done <- err
	}()
	<-stalled
	wantMissing(t, b, "incomplete", "while it is written")
	close(r.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := content(t, b, "incomplete"); !bytes.Equal(got, data) {
		t.Fatalf("blob holds %d bytes", len(got))
	}
}

func testHostileIDs(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, id := range []string{"", "../x", "a/b", ".", "..", "a b", string(bytes.Repeat([]byte("a"), 129)), "é", "a\x00b"} {
		if _, err := s.Create(ctx, id, bytes.NewReader(nil)); !errors.Is(err, blob.ErrInvalidID) {
			t.Errorf("create %q: %v, want ErrInvalidID", id, err)
		}
		if _, err := s.Open(ctx, id); !errors.Is(err, blob.ErrInvalidID) {
			t.Errorf("open %q: %v, want ErrInvalidID", id, err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, blob.ErrInvalidID) {
			t.Errorf("delete %q: %v, want ErrInvalidID", id, err)
		}
	}
	if n := len(walk(t, s)); n != 0 {
		t.Fatalf("%d blobs after hostile creates", n)
	}
}

func testDeleteWalk(t *testing.T, s blob.Store) {
	ctx := context.Background()
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			if _, err := s.Create(ctx, fmt.Sprintf("blob%04d", i), bytes.NewReader([]byte{byte(i)})); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i := 0; i < 50; i += 2 {
		if err := s.Delete(ctx, fmt.Sprintf("blob%04d", i)); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, fmt.Sprintf("blob%04d", i)); err != nil {
			t.Fatalf("delete again: %v", err)
		}
	}
	if err := s.Delete(ctx, "never-there"); err != nil {
		t.Fatalf("delete missing: %v", err)
	}
	seen := walk(t, s)
	if len(seen) != 25 {
		t.Fatalf("walk saw %d blobs, want 25", len(seen))
	}
	for i := 1; i < 50; i += 2 {
		if in := seen[fmt.Sprintf("blob%04d", i)]; in.Size != 1 {
			t.Fatalf("blob%04d: %+v", i, in)
		}
	}
}

// testWalkInfo checks sizes and that ModTime falls within the Create, as
// the sweeper needs; the slack covers clocks that keep whole seconds.
func testWalkInfo(t *testing.T, s blob.Store) {
	start := time.Now()
	create(t, s, "sized", random(8, 123_457))
	create(t, s, "tiny", []byte("t"))
	end := time.Now()
	seen := walk(t, s)
	for id, size := range map[string]int64{"sized": 123_457, "tiny": 1} {
		in := seen[id]
		if in.ID != id || in.Size != size {
			t.Fatalf("walk: %+v, want %s of %d bytes", in, id, size)
		}
		if in.ModTime.Before(start.Truncate(time.Second).Add(-time.Second)) || in.ModTime.After(end.Add(time.Second)) {
			t.Fatalf("%s: ModTime %v outside its Create [%v, %v]", id, in.ModTime, start, end)
		}
	}
}

// testWalkWhileChanging walks while other goroutines create and delete: the
// blobs that stay are each seen exactly once and the walk does not fail.
func testWalkWhileChanging(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for i := range 30 {
		create(t, s, fmt.Sprintf("stays%03d", i), []byte("s"))
		create(t, s, fmt.Sprintf("goes%03d", i), []byte("g"))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Create(ctx, fmt.Sprintf("comes%05d", i), bytes.NewReader([]byte("c"))); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range 30 {
			if err := s.Delete(ctx, fmt.Sprintf("goes%03d", i)); err != nil {
				t.Error(err)
				return
			}
		}
	})
	for range 3 {
		seen := walk(t, s)
		for i := range 30 {
			if _, ok := seen[fmt.Sprintf("stays%03d", i)]; !ok {
				t.Fatalf("walk missed stays%03d", i)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func testWalkStops(t *testing.T, s blob.Store) {
	for i := range 5 {
		create(t, s, fmt.Sprintf("w%d", i), []byte("w"))
	}
	stopErr := errors.New("enough")
	calls := 0
	err := s.Walk(context.Background(), func(blob.Info) error { calls++; return stopErr })
	if !errors.Is(err, stopErr) || calls != 1 {
		t.Fatalf("walk whose function fails: %v after %d calls", err, calls)
	}
}

// testSeenByOther checks that what one instance does, the other sees.
func testSeenByOther(t *testing.T, a, b blob.Store) {
	data := random(9, 70_000)
	create(t, a, "shared", data)
	if got := content(t, b, "shared"); !bytes.Equal(got, data) {
		t.Fatal("other instance reads different data")
	}
	if in := walk(t, b)["shared"]; in.Size != int64(len(data)) {
		t.Fatalf("other instance walks %+v", in)
	}
	if err := b.Delete(context.Background(), "shared"); err != nil {
		t.Fatal(err)
	}
	wantMissing(t, a, "shared", "deleted by the other instance")
}
