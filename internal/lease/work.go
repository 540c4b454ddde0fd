package lease

import (
	"context"
	"sync"
	"time"
)

// Work is an item of background work done under a lease: between Start and
// Close it runs fn whenever this gateway holds the lease, with a context
// that ends when the lease is lost or Close is called. fn returns once its
// context has ended, having stopped everything it started; returning
// earlier (an error) gives the lease up, and it is taken again at the next
// look, by this gateway or another.
type Work struct {
	l    *Leases
	name string
	fn   func(ctx context.Context) error

	mu     sync.Mutex
	epoch  uint64        // of the lease held; 0 when not held
	first  chan struct{} // closed when the lease is first held
	cancel context.CancelFunc
	done   chan struct{}
}

// Work returns the work fn, done under the lease name; Start runs it.
func (l *Leases) Work(name string, fn func(ctx context.Context) error) *Work {
	return &Work{l: l, name: name, fn: fn, first: make(chan struct{})}
}

// Name is the lease's name.
func (w *Work) Name() string { return w.name }

// Start looks for the lease, and runs fn while it holds it, in a goroutine
// of its own until Close.
func (w *Work) Start() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.cancel, w.done = cancel, make(chan struct{})
	go func() {
		defer close(w.done)
		w.run(ctx)
	}()
}

// Close stops fn, waits for it (until ctx ends) and gives the lease up, so
// that another gateway takes it at its next look.
func (w *Work) Close(ctx context.Context) error {
	w.mu.Lock()
	cancel, done := w.cancel, w.done
	w.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Held returns the epoch of the lease while this gateway holds it.
func (w *Work) Held() (epoch uint64, ok bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.epoch, w.epoch != 0
}

// Wait waits until the lease is first held, or ctx ends.
func (w *Work) Wait(ctx context.Context) error {
	select {
	case <-w.first:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (w *Work) run(ctx context.Context) {
	var obs observation
	for ctx.Err() == nil {
		start := time.Now()
		epoch, err := w.l.tryAcquire(ctx, w.name, &obs, start)
		if err != nil && ctx.Err() == nil {
			w.l.log.Warn("take lease", "lease", w.name, "err", err)
		}
		if epoch != 0 {
			w.hold(ctx, epoch, start)
		}
		select {
		case <-ctx.Done():
		case <-time.After(w.l.renew):
		}
	}
}

// hold runs fn while the lease taken at start stays renewed. The lease is
// taken as lost one Renew before a TTL has passed since the start of the
// last renewal that committed: fn then has that long to stop before any
// other gateway can take the lease.
func (w *Work) hold(ctx context.Context, epoch uint64, start time.Time) {
	w.mu.Lock()
	if w.epoch = epoch; w.first != nil {
		select {
		case <-w.first:
		default:
			close(w.first)
		}
	}
	w.mu.Unlock()
	log := w.l.log.With("lease", w.name, "epoch", epoch)
	log.Info("lease taken")
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.fn(wctx) }()
	margin := w.l.ttl - w.l.renew
	deadline := start.Add(margin)
	t := time.NewTimer(w.l.renew)
	defer t.Stop()
	release := true
loop:
	for {
		select {
		case err := <-done:
			done <- err
			if err != nil && ctx.Err() == nil {
				log.Warn("work under lease ended; giving the lease up", "err", err)
			}
			break loop
		case <-ctx.Done():
			break loop
		case <-t.C:
		}
		rs := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, deadline)
		held, err := w.l.renewLease(rctx, w.name, epoch)
		rcancel()
		switch {
		case err == nil && held:
			deadline = rs.Add(margin)
		case err == nil:
			log.Warn("lease taken by another gateway; stopping its work")
			release = false
			break loop
		case ctx.Err() != nil:
			break loop
		case !time.Now().Before(deadline):
			log.Warn("lease not renewed in time; stopping its work", "err", err)
			release = false
			break loop
		default:
			log.Warn("renew lease", "err", err)
		}
		t.Reset(max(0, min(w.l.renew, time.Until(deadline))))
	}
	cancel()
	<-done
	w.mu.Lock()
	w.epoch = 0
	w.mu.Unlock()
	if release {
		rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		if err := w.l.release(rctx, w.name, epoch); err != nil {
			log.Warn("release lease", "err", err)
		}
		rcancel()
	}
}
