package lease

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func openStore(t *testing.T) meta.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

const testTTL = 300 * time.Millisecond

// waitFor polls cond for a generous while: the test measures, it does not
// time.
func waitFor(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > 30*time.Second {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// worker counts the gateways running one item of work at once.
type worker struct {
	running, max, runs atomic.Int64
}

func (w *worker) fn(ctx context.Context) error {
	n := w.running.Add(1)
	w.runs.Add(1)
	for {
		m := w.max.Load()
		if n <= m || w.max.CompareAndSwap(m, n) {
			break
		}
	}
	<-ctx.Done()
	w.running.Add(-1)
	return nil
}

// TestOneHolderAndHandOver runs one item of work on three gateways: one
// runs it at a time; when it closes (a clean stop) another takes it at
// its next look, well before a TTL.
func TestOneHolderAndHandOver(t *testing.T) {
	m := openStore(t)
	var w worker
	var works []*Work
	for range 3 {
		l := New(Config{Meta: m, TTL: testTTL})
		wk := l.Work("replication", w.fn)
		wk.Start()
		works = append(works, wk)
	}
	ctx := context.Background()
	waitFor(t, "one gateway runs the work", func() bool { return w.running.Load() == 1 })
	time.Sleep(3 * testTTL) // renewals go on; nobody else takes it
	if w.max.Load() != 1 || w.runs.Load() != 1 {
		t.Fatalf("%d gateways ran the work at once, %d runs; want 1 and 1", w.max.Load(), w.runs.Load())
	}
	var holder *Work
	for _, wk := range works {
		if _, ok := wk.Held(); ok {
			holder = wk
		}
	}
	if err := holder.Close(ctx); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, "another gateway takes the work", func() bool { return w.runs.Load() == 2 && w.running.Load() == 1 })
	t.Logf("taken over %v after a clean stop (TTL %v)", took, testTTL)
	for _, wk := range works {
		if err := wk.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if w.max.Load() != 1 || w.running.Load() != 0 {
		t.Fatalf("max %d at once, %d running after Close", w.max.Load(), w.running.Load())
	}
}

// TestTakeOverFromDeadHolder leaves a lease with a holder that never
// renews (a gateway killed): another gateway takes it once it has seen
// the record unchanged for a TTL, with a new epoch; the dead holder's
// epoch no longer passes Check.
func TestTakeOverFromDeadHolder(t *testing.T) {
	m := openStore(t)
	ctx := context.Background()
	dead := New(Config{Meta: m, TTL: testTTL})
	var obs observation
	epoch, err := dead.tryAcquire(ctx, "scheduler", &obs, time.Now())
	if err != nil || epoch == 0 {
		t.Fatalf("take a free lease: epoch %d, %v", epoch, err)
	}
	live := New(Config{Meta: m, TTL: testTTL})
	var w worker
	wk := live.Work("scheduler", w.fn)
	start := time.Now()
	wk.Start()
	defer wk.Close(ctx)
	waitFor(t, "the live gateway takes the lease", func() bool { return w.running.Load() == 1 })
	took := time.Since(start)
	if took < testTTL {
		t.Fatalf("lease taken %v after the last renewal, before its TTL %v", took, testTTL)
	}
	t.Logf("taken over %v after the holder stopped renewing (TTL %v)", took, testTTL)
	got, _ := wk.Held()
	if got != epoch+1 {
		t.Fatalf("epoch %d after the takeover, want %d", got, epoch+1)
	}
	err = m.Update(ctx, func(tx meta.Tx) error { return Check(tx, "scheduler", dead.Holder(), epoch) })
	if !errors.Is(err, ErrLost) {
		t.Fatalf("Check of the dead holder's epoch: %v, want ErrLost", err)
	}
	if err := m.Update(ctx, func(tx meta.Tx) error { return Check(tx, "scheduler", live.Holder(), got) }); err != nil {
		t.Fatalf("Check of the holder's epoch: %v", err)
	}
}

// TestLive reports gateways whose presence is renewed, and stops
// reporting one a TTL after its presence stops moving.
func TestLive(t *testing.T) {
	m := openStore(t)
	ctx := context.Background()
	a, b := New(Config{Meta: m, TTL: testTTL}), New(Config{Meta: m, TTL: testTTL})
	pa, pb := a.Presence(), b.Presence()
	pa.Start()
	pb.Start()
	defer pa.Close(ctx)
	for _, p := range []*Work{pa, pb} {
		if err := p.Wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	live, err := a.Live(ctx)
	if err != nil || !live[b.Holder()] || !live[a.Holder()] {
		t.Fatalf("Live = %v, %v; want both gateways", live, err)
	}
	time.Sleep(2 * testTTL)
	if live, _ = a.Live(ctx); !live[b.Holder()] {
		t.Fatalf("a renewing gateway reported dead: %v", live)
	}
	// b stops: its presence goes at once.
	if err := pb.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if live, _ = a.Live(ctx); live[b.Holder()] {
		t.Fatalf("a stopped gateway reported live: %v", live)
	}
	// A presence record left by a killed gateway is judged by its
	// silence.
	dead := New(Config{Meta: m, TTL: testTTL})
	var obs observation
	if _, err := dead.tryAcquire(ctx, presencePrefix+dead.Holder(), &obs, time.Now()); err != nil {
		t.Fatal(err)
	}
	if live, _ = a.Live(ctx); !live[dead.Holder()] {
		t.Fatalf("a gateway first seen now reported dead: %v", live)
	}
	waitFor(t, "the silent gateway is reported dead", func() bool {
		live, err := a.Live(ctx)
		return err == nil && !live[dead.Holder()]
	})
}
