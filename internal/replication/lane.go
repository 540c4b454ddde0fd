package replication

import (
	"bytes"
	"context"
	"fmt"
	"hash/fnv"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// lane is the queue of one destination bucket and its workers. Tasks of one
// key run one at a time, in queue order; different keys run concurrently.
// A transient failure holds the whole lane back for a backoff, since it
// almost always means the destination is unreachable: workers then wait
// instead of hammering a dead peer with every queued task.
//
// A lane holds at most a window of its tasks in memory, the ones with the
// lowest IDs; the rest wait in the store and are paged in, in ID order, as
// the window drains. A lane with nothing to do for LaneIdle retires, and
// its workers with it.
type lane struct {
	e       *Engine
	dest    string
	limiter *rate.Limiter

	mu        sync.Mutex
	cond      *sync.Cond
	keys      map[string]*keyQueue
	ready     []*keyQueue
	resident  int    // tasks in memory, the ones being sent included
	loadedTo  uint64 // the highest task ID taken into memory
	more      bool   // the store holds tasks of the lane after loadedTo
	refilling bool   // a worker is paging tasks in
	pushes    uint64 // tasks taken in so far: an idle timer's witness
	idle      *time.Timer
	closed    bool
	downUntil time.Time
	backoff   time.Duration
	lastErr   string
	lastOK    time.Time
	lastFail  time.Time
	timer     *time.Timer
}

type keyQueue struct {
	id     string
	tasks  []*Task
	busy   bool
	queued bool
}

// laneLocked returns the lane of dest, made and started when there is
// none; e.mu is held.
func (e *Engine) laneLocked(ctx context.Context, dest string) *lane {
	l := e.lanes[dest]
	if l != nil {
		return l
	}
	l = &lane{e: e, dest: dest, keys: map[string]*keyQueue{}, limiter: e.limiterLocked(dest)}
	l.cond = sync.NewCond(&l.mu)
	e.lanes[dest] = l
	for range e.cfg.Workers {
		e.wg.Add(1)
		e.workers.Add(1)
		go func() {
			defer e.wg.Done()
			defer e.workers.Add(-1)
			l.work(ctx)
		}()
	}
	return l
}

// limiterLocked returns the bandwidth cap of a destination, shared by its
// lane (whichever lane serves it) and batch jobs; nil when there is none.
func (e *Engine) limiterLocked(dest string) *rate.Limiter {
	bw := e.cfg.Bandwidth
	if bw <= 0 {
		return nil
	}
	l := e.limiters[dest]
	if l == nil {
		l = rate.NewLimiter(rate.Limit(bw), int(min(bw, 1<<20)))
		e.limiters[dest] = l
	}
	return l
}

// limiter returns the bandwidth cap of a destination; nil when there is
// none.
func (e *Engine) limiter(dest string) *rate.Limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.limiterLocked(dest)
}

// enqueueLocked counts a task queued durably and offers it to its lane;
// e.qmu and e.mu are held, and tasks come in ID order. An engine not
// running (stopped, or in a gateway that does not hold the replication
// lease) leaves the task in the store for the next Start.
func (e *Engine) enqueueLocked(_ context.Context, t *Task) {
	ctx := e.runCtx
	if ctx == nil || ctx.Err() != nil {
		return
	}
	e.statLocked(t.series()).addPending(t)
	e.metrics.pending(t, 1)
	e.laneLocked(ctx, t.Dest).offer(t)
}

// offer takes a task just queued into memory when the window has room and
// nothing older waits in the store; otherwise the task waits there for the
// lane to page it in.
func (l *lane) offer(t *Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.more || l.resident >= l.e.window {
		l.more = true
		l.cond.Signal()
		return
	}
	l.pushLocked(t)
	l.loadedTo = t.ID
}

func (l *lane) pushLocked(t *Task) {
	l.resident++
	l.pushes++
	id := t.Bucket + "\x00" + t.Key
	q := l.keys[id]
	if q == nil {
		q = &keyQueue{id: id}
		l.keys[id] = q
	}
	q.tasks = append(q.tasks, t)
	if !q.busy && !q.queued {
		q.queued = true
		l.ready = append(l.ready, q)
		l.cond.Signal()
	}
}

// refill pages the lane's next tasks in from the store, after the ones in
// memory, up to the window. e.qmu keeps new tasks out meanwhile, so a
// short page means the store holds no more.
func (l *lane) refill(ctx context.Context) {
	e := l.e
	e.qmu.Lock()
	defer e.qmu.Unlock()
	l.mu.Lock()
	from, n := l.loadedTo, e.window-l.resident
	l.mu.Unlock()
	tasks, err := e.pageLane(ctx, l.dest, from, n)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refilling = false
	if err != nil {
		if ctx.Err() == nil {
			e.log.Error("page replication tasks in", "dest", l.dest, "err", err)
			l.holdLocked(err.Error())
		}
		return
	}
	for _, t := range tasks {
		l.pushLocked(t)
		l.loadedTo = t.ID
	}
	if len(tasks) < n {
		l.more = false
		l.idleLocked()
	}
	l.cond.Broadcast()
}

// pageLane reads up to n tasks of a lane with IDs after from, in ID order.
func (e *Engine) pageLane(ctx context.Context, dest string, from uint64, n int) ([]*Task, error) {
	var out []*Task
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		out = out[:0]
		prefix := []byte(dest + "\x00")
		it := tx.Iter(spaceLanes)
		for k, _ := it.Seek(laneKey(dest, from+1)); k != nil && len(out) < n && bytes.HasPrefix(k, prefix); k, _ = it.Next() {
			key := idKey(idOf(k))
			raw := tx.Get(spaceTasks, key)
			if raw == nil {
				continue // an index entry without its task: nothing to send
			}
			t, err := decodeTask(key, raw)
			if err != nil {
				return err
			}
			out = append(out, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("page tasks of %q: %w", dest, err)
	}
	return out, nil
}

// idleLocked arms the retirement of a lane left with nothing to do.
func (l *lane) idleLocked() {
	if l.resident > 0 || l.more || l.closed {
		return
	}
	if l.idle != nil {
		l.idle.Stop()
	}
	pushes := l.pushes
	l.idle = time.AfterFunc(l.e.laneIdle, func() { l.e.retire(l, pushes) })
}

// retire closes a lane that took no task since it became idle; the next
// task for its destination makes a new one.
func (e *Engine) retire(l *lane, pushes uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.lanes[l.dest] != l {
		return
	}
	l.mu.Lock()
	idle := !l.closed && l.pushes == pushes && l.resident == 0 && !l.more
	l.mu.Unlock()
	if idle {
		delete(e.lanes, l.dest)
		l.close()
	}
}

func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	if l.idle != nil {
		l.idle.Stop()
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// next waits for a key whose head task may run now, or asks its worker to
// page tasks in (refill) when the window has drained to half.
func (l *lane) next() (q *keyQueue, t *Task, refill bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.closed {
			return nil, nil, false
		}
		up := !l.e.now().Before(l.downUntil)
		if up && l.more && !l.refilling && l.resident <= l.e.window/2 {
			l.refilling = true
			return nil, nil, true
		}
		if len(l.ready) > 0 && up {
			q := l.ready[0]
			l.ready[0] = nil
			l.ready = l.ready[1:]
			q.queued, q.busy = false, true
			return q, q.tasks[0], false
		}
		l.cond.Wait()
	}
}

// done records the head task's outcome and makes the key ready again if
// more of its tasks wait.
func (l *lane) done(q *keyQueue, retry bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	q.busy = false
	if !retry {
		q.tasks[0] = nil
		q.tasks = q.tasks[1:]
		l.resident--
	}
	if len(q.tasks) == 0 {
		delete(l.keys, q.id)
		l.idleLocked()
		return
	}
	q.queued = true
	if retry {
		// Keep the key's place at the front: its order matters.
		l.ready = append([]*keyQueue{q}, l.ready...)
	} else {
		l.ready = append(l.ready, q)
	}
	l.cond.Signal()
}

// hold stops the lane after a transient failure, for a backoff that
// doubles up to RetryMax while failures go on.
func (l *lane) hold(reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.holdLocked(reason)
}

func (l *lane) holdLocked(reason string) {
	now := l.e.now()
	if now.Before(l.downUntil) {
		return // another worker's failure already holds it
	}
	if l.backoff == 0 {
		l.backoff = l.e.cfg.RetryMin
	} else {
		l.backoff = min(2*l.backoff, l.e.cfg.RetryMax)
	}
	l.downUntil = now.Add(l.backoff)
	l.lastErr, l.lastFail = reason, now
	if l.timer != nil {
		l.timer.Stop()
	}
	l.timer = time.AfterFunc(l.backoff, func() {
		l.mu.Lock()
		l.cond.Broadcast()
		l.mu.Unlock()
	})
}

func (l *lane) up() {
	l.mu.Lock()
	l.backoff, l.downUntil, l.lastOK = 0, time.Time{}, l.e.now()
	l.mu.Unlock()
}

// reachability reports the lane's view of its destination.
func (l *lane) reachability() (reachable bool, lastErr string, since time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lastFail.After(l.lastOK) {
		return false, l.lastErr, l.lastFail
	}
	return true, "", l.lastOK
}

func (l *lane) work(ctx context.Context) {
	for {
		q, t, refill := l.next()
		if refill {
			l.refill(ctx)
			continue
		}
		if t == nil {
			return
		}
		res := l.e.send(ctx, t, l.limiter)
		if ctx.Err() != nil {
			l.done(q, true)
			return
		}
		switch {
		case res.transient:
			l.e.metrics.attemptFailed(t, res.code)
			l.hold(res.reason)
			l.done(q, true)
		default:
			l.up()
			if err := l.e.finish(ctx, t, res); err != nil {
				l.e.log.Error("record replication outcome", "key", t.Key, "version", t.VersionID, "err", err)
				l.hold(err.Error())
				l.done(q, true)
				continue
			}
			l.done(q, false)
		}
	}
}

// finish records a task's final outcome durably: the task leaves the
// queue, a failure is kept with its reason, and the source version's
// status follows in the same transaction.
func (e *Engine) finish(ctx context.Context, t *Task, res result) error {
	// Outcomes of one version (several destinations) are recorded one at a
	// time, so that concurrent outcomes do not conflict in the store.
	vl := &e.vlocks[versionStripe(t.version())]
	vl.Lock()
	defer vl.Unlock()
	now := e.now()
	ft := *t
	if res.failed() {
		ft.Reason, ft.Code, ft.FailedAt = res.reason, res.code, now
	}
	err := e.meta.Update(ctx, func(tx meta.Tx) error {
		if err := dequeueTx(tx, t); err != nil {
			return err
		}
		if res.failed() {
			if err := failTx(tx, &ft); err != nil {
				return err
			}
		}
		if res.skipped {
			return nil
		}
		if !res.failed() {
			if err := countTx(tx, []*Task{t}, now); err != nil {
				return err
			}
		}
		if t.Op == OpTags {
			return nil
		}
		// The status counts the version's tasks left for every
		// destination: COMPLETED only when none is queued or failed.
		status := objectstore.StatusCompleted
		switch open, failed := versionStateTx(tx, t.version()); {
		case failed > 0:
			status = objectstore.StatusFailed
		case open > 0:
			status = objectstore.StatusPending
		}
		return objectstore.SetReplicationStatusTx(tx, t.Bucket, t.Key, t.VersionID, status)
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	st := e.statLocked(t.series())
	st.removePending(t)
	e.metrics.pending(t, -1)
	if res.failed() {
		e.addFailedLocked(&ft)
		e.metrics.failed(t, res.code)
		e.log.Warn("replication failed", "bucket", t.Bucket, "key", t.Key, "version", t.VersionID, "dest", t.Dest, "reason", res.reason)
		return nil
	}
	if !res.skipped {
		lat := now.Sub(t.Written)
		st.observe(now, lat)
		e.metrics.replicated(t, lat)
	}
	return nil
}

func versionStripe(v versionRef) int {
	h := fnv.New32a()
	h.Write([]byte(v.bucket))
	h.Write([]byte{0})
	h.Write([]byte(v.key))
	h.Write([]byte(v.versionID))
	return int(h.Sum32() % vlockCount)
}
