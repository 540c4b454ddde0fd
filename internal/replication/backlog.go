package replication

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// indexedKey marks a store whose queue indexes (lanes, ages, versions) are
// complete; a store written before they existed is indexed once at start.
var indexedKey = []byte("indexed")

// indexPage is how many tasks a start-time pass reads per transaction.
const indexPage = 1024

// indexQueue builds the queue's indexes for tasks stored without them.
// Index writes are idempotent, so an interrupted pass is simply redone.
func (e *Engine) indexQueue(ctx context.Context) error {
	done := false
	if err := e.meta.View(ctx, func(tx meta.Tx) error {
		done = tx.Get(spaceState, indexedKey) != nil
		return nil
	}); err != nil || done {
		return err
	}
	for _, space := range []string{spaceTasks, spaceFailed} {
		err := e.eachStored(ctx, space, func(page []*Task) error {
			return e.meta.Update(ctx, func(tx meta.Tx) error {
				for _, t := range page {
					var err error
					if space == spaceTasks {
						err = queueTx(tx, t)
					} else {
						err = indexVersionTx(tx, t, stateFailed)
					}
					if err != nil {
						return err
					}
				}
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("index replication queue: %w", err)
		}
	}
	return e.meta.Update(ctx, func(tx meta.Tx) error { return tx.Put(spaceState, indexedKey, present) })
}

// eachStored calls fn with the tasks of space in ID order, a page per read
// transaction.
func (e *Engine) eachStored(ctx context.Context, space string, fn func([]*Task) error) error {
	var from uint64
	for {
		page, err := e.taskPage(ctx, space, from, indexPage)
		if err != nil || len(page) == 0 {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < indexPage {
			return nil
		}
		from = page[len(page)-1].ID
	}
}

// taskPage reads up to n tasks of space with IDs above after, in ID
// order, in one read transaction.
func (e *Engine) taskPage(ctx context.Context, space string, after uint64, n int) ([]*Task, error) {
	var page []*Task
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		page = page[:0]
		it := tx.Iter(space)
		for k, v := it.Seek(idKey(after + 1)); k != nil && len(page) < n; k, v = it.Next() {
			t, err := decodeTask(k, v)
			if err != nil {
				return err
			}
			t.ID = idOf(k)
			page = append(page, t)
		}
		return nil
	})
	return page, err
}

// backlogSummary is what Start needs to know of the store's queue: sums
// per series and the destinations with work, never the tasks themselves.
type backlogSummary struct {
	tasks, failed int
	pending       map[series]*seriesStat
	failures      map[series]*seriesFailures
	dests         map[string]bool
}

// summarize reads the queue and the failed set once, in pages.
func (e *Engine) summarize(ctx context.Context) (*backlogSummary, error) {
	sum := &backlogSummary{pending: map[series]*seriesStat{}, failures: map[series]*seriesFailures{},
		dests: map[string]bool{}}
	err := e.eachStored(ctx, spaceTasks, func(page []*Task) error {
		for _, t := range page {
			st := sum.pending[t.series()]
			if st == nil {
				st = &seriesStat{}
				sum.pending[t.series()] = st
			}
			st.addPending(t)
			sum.dests[t.Dest] = true
			sum.tasks++
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = e.eachStored(ctx, spaceFailed, func(page []*Task) error {
		for _, t := range page {
			f := sum.failures[t.series()]
			if f == nil {
				f = newSeriesFailures(t.series())
				sum.failures[t.series()] = f
			}
			f.add(t)
			sum.failed++
		}
		return nil
	})
	return sum, err
}

// installLocked takes a summary in: counters, metrics, and a lane for
// every destination with a backlog, which pages its tasks in; e.mu is
// held.
func (e *Engine) installLocked(ctx context.Context, sum *backlogSummary) {
	for s, p := range sum.pending {
		st := e.statLocked(s)
		st.pendingOps += p.pendingOps
		st.pendingBytes += p.pendingBytes
		lv := []string{s.bucket, s.rule, s.dest}
		e.metrics.pendingOps.WithLabelValues(lv...).Add(float64(p.pendingOps))
		e.metrics.pendingBytes.WithLabelValues(lv...).Add(float64(p.pendingBytes))
	}
	for s, f := range sum.failures {
		e.failures[s] = f
		e.metrics.failedOps.WithLabelValues(s.bucket, s.rule, s.dest).Add(float64(f.count))
	}
	for d := range sum.dests {
		l := e.laneLocked(ctx, d)
		l.mu.Lock()
		l.more = true
		l.cond.Signal()
		l.mu.Unlock()
	}
}

// Resident returns the queued tasks the engine holds in memory (at most
// Window per destination bucket; the rest wait in the store), the lanes
// open and their workers.
func (e *Engine) Resident() (tasks, lanes, workers int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.lanes {
		l.mu.Lock()
		tasks += l.resident
		l.mu.Unlock()
	}
	return tasks, len(e.lanes), int(e.workers.Load())
}

// oldestPending returns when the oldest queued task of each series was
// written, from the age index; a series with none is left out.
func (e *Engine) oldestPending(ctx context.Context, ss []series) (map[series]time.Time, error) {
	out := map[series]time.Time{}
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceAges)
		for _, s := range ss {
			p := agePrefix(s)
			if k, _ := it.Seek(p); k != nil && bytes.HasPrefix(k, p) && len(k) == len(p)+16 {
				out[s] = time.Unix(0, int64(binary.BigEndian.Uint64(k[len(p):])))
			}
		}
		return nil
	})
	return out, err
}
