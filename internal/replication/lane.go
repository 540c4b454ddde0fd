package replication

import (
	"context"
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
type lane struct {
	e    *Engine
	dest string

	mu        sync.Mutex
	cond      *sync.Cond
	keys      map[string]*keyQueue
	ready     []*keyQueue
	closed    bool
	downUntil time.Time
	backoff   time.Duration
	lastErr   string
	lastOK    time.Time
	lastFail  time.Time
	timer     *time.Timer
	limiter   *rate.Limiter
}

type keyQueue struct {
	id     string
	tasks  []*Task
	busy   bool
	queued bool
}

func (e *Engine) laneLocked(ctx context.Context, dest string) *lane {
	l := e.lanes[dest]
	if l != nil {
		return l
	}
	l = &lane{e: e, dest: dest, keys: map[string]*keyQueue{}}
	l.cond = sync.NewCond(&l.mu)
	if bw := e.cfg.Bandwidth; bw > 0 {
		l.limiter = rate.NewLimiter(rate.Limit(bw), int(min(bw, 1<<20)))
	}
	e.lanes[dest] = l
	for range e.cfg.Workers {
		e.wg.Add(1)
		go func() { defer e.wg.Done(); l.work(ctx) }()
	}
	return l
}

// limiter returns the bandwidth cap of a destination, which batch jobs
// share with the live queue; nil when there is none.
func (e *Engine) limiter(dest string) *rate.Limiter {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.runCtx == nil {
		return nil
	}
	return e.laneLocked(e.runCtx, dest).limiter
}

// enqueueLocked queues a task and counts it; e.mu is held.
func (e *Engine) enqueueLocked(ctx context.Context, t *Task) {
	if ctx.Err() != nil {
		return
	}
	if t.Op != OpTags {
		e.open[t.version()]++
	}
	e.statLocked(t.series()).addPending(t, e.now())
	e.metrics.pending(t, 1)
	e.laneLocked(ctx, t.Dest).push(t)
}

func (l *lane) push(t *Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
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

func (l *lane) close() {
	l.mu.Lock()
	l.closed = true
	if l.timer != nil {
		l.timer.Stop()
	}
	l.cond.Broadcast()
	l.mu.Unlock()
}

// next waits for a key whose head task may run now.
func (l *lane) next() (*keyQueue, *Task) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for {
		if l.closed {
			return nil, nil
		}
		if len(l.ready) > 0 && !l.e.now().Before(l.downUntil) {
			q := l.ready[0]
			l.ready[0] = nil
			l.ready = l.ready[1:]
			q.queued, q.busy = false, true
			return q, q.tasks[0]
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
	}
	if len(q.tasks) == 0 {
		delete(l.keys, q.id)
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
		q, t := l.next()
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
	// time, so the status written last is the one that counts them all.
	vl := &e.vlocks[versionStripe(t.version())]
	vl.Lock()
	defer vl.Unlock()
	e.mu.Lock()
	ref := t.version()
	open, failed := e.open[ref], e.failed[ref]
	e.mu.Unlock()
	if t.Op != OpTags {
		open--
		if res.failed() {
			failed++
		}
	}
	status := objectstore.StatusCompleted
	switch {
	case failed > 0:
		status = objectstore.StatusFailed
	case open > 0:
		status = objectstore.StatusPending
	}
	now := e.now()
	ft := *t
	if res.failed() {
		ft.Reason, ft.Code, ft.FailedAt = res.reason, res.code, now
	}
	err := e.meta.Update(ctx, func(tx meta.Tx) error {
		if err := tx.Delete(spaceTasks, idKey(t.ID)); err != nil {
			return err
		}
		if res.failed() {
			if err := putTask(tx, spaceFailed, &ft); err != nil {
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
		return objectstore.SetReplicationStatusTx(tx, t.Bucket, t.Key, t.VersionID, status)
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if t.Op != OpTags {
		if e.open[ref]--; e.open[ref] <= 0 {
			delete(e.open, ref)
		}
	}
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

func (e *Engine) addFailedLocked(t *Task) {
	e.failures[t.ID] = t
	if t.Op != OpTags {
		e.failed[t.version()]++
	}
	e.statLocked(t.series()).failedNow++
	e.metrics.failedGauge(t, 1)
}

func (e *Engine) removeFailedLocked(id uint64) {
	t := e.failures[id]
	if t == nil {
		return
	}
	delete(e.failures, id)
	if t.Op != OpTags {
		if e.failed[t.version()]--; e.failed[t.version()] <= 0 {
			delete(e.failed, t.version())
		}
	}
	e.statLocked(t.series()).failedNow--
	e.metrics.failedGauge(t, -1)
}
