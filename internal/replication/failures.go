package replication

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// seriesFailures sums up the failed operations of one rule and destination
// for status: a count and, per error code, a count with the latest reason
// and an example. The failed tasks themselves stay in the store, so memory
// does not grow with their number.
//
// Counts are exact. When some but not all of a series' failures go (a
// batch job makes them good), its example and oldest time may name one
// that went; the series is then marked stale and Status recomputes it
// from the store.
type seriesFailures struct {
	Bucket, Rule, Dest string
	// FailedAt is when the oldest failure of the series failed.
	FailedAt time.Time
	count    int
	groups   map[string]*FailureGroup // by error code
	gen      uint64                   // counts changes, for refreshes
	stale    bool
}

func (f *seriesFailures) series() series { return series{f.Bucket, f.Rule, f.Dest} }

func newSeriesFailures(s series) *seriesFailures {
	return &seriesFailures{Bucket: s.bucket, Rule: s.rule, Dest: s.dest, groups: map[string]*FailureGroup{}}
}

// add counts a failed task in.
func (f *seriesFailures) add(t *Task) {
	f.count++
	f.gen++
	if f.FailedAt.IsZero() || t.FailedAt.Before(f.FailedAt) {
		f.FailedAt = t.FailedAt
	}
	g := f.groups[t.Code]
	if g == nil {
		g = &FailureGroup{Code: t.Code}
		f.groups[t.Code] = g
	}
	g.Count++
	if !t.FailedAt.Before(g.Last) {
		g.Reason, g.ExampleKey, g.ExampleVersion, g.Last = t.Reason, t.Key, t.VersionID, t.FailedAt
	}
}

// addFailedLocked counts a failed task kept in the store; e.mu is held.
func (e *Engine) addFailedLocked(t *Task) {
	s := t.series()
	f := e.failures[s]
	if f == nil {
		f = newSeriesFailures(s)
		e.failures[s] = f
	}
	f.add(t)
	e.metrics.failedGauge(t, 1)
}

// removeFailedLocked counts out a failed task the store no longer holds;
// e.mu is held.
func (e *Engine) removeFailedLocked(t *Task) {
	f := e.failures[t.series()]
	if f == nil {
		return
	}
	e.metrics.failedGauge(t, -1)
	if f.count--; f.count <= 0 {
		delete(e.failures, t.series())
		return
	}
	f.gen++
	f.stale = true
	if g := f.groups[t.Code]; g != nil {
		if g.Count--; g.Count <= 0 {
			delete(f.groups, t.Code)
		}
	}
}

// refreshFailures recomputes the stale series from the failed tasks in the
// store. A series that changed meanwhile stays stale for the next time.
func (e *Engine) refreshFailures(ctx context.Context) error {
	e.mu.Lock()
	gens := map[series]uint64{}
	for s, f := range e.failures {
		if f.stale {
			gens[s] = f.gen
		}
	}
	e.mu.Unlock()
	if len(gens) == 0 {
		return nil
	}
	fresh := map[series]*seriesFailures{}
	err := e.eachFailed(ctx, 0, func(t *Task) bool {
		if _, ok := gens[t.series()]; ok {
			f := fresh[t.series()]
			if f == nil {
				f = newSeriesFailures(t.series())
				fresh[t.series()] = f
			}
			f.add(t)
		}
		return true
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for s, gen := range gens {
		f, n := e.failures[s], fresh[s]
		if f == nil || f.gen != gen || n == nil || n.count != f.count {
			continue
		}
		f.FailedAt, f.groups, f.stale = n.FailedAt, n.groups, false
	}
	return nil
}

// failureGroupsLocked returns a series' failures grouped by code, the
// largest group first; e.mu is held.
func (e *Engine) failureGroupsLocked(s series) (int, []FailureGroup) {
	f := e.failures[s]
	if f == nil {
		return 0, nil
	}
	var out []FailureGroup
	for _, g := range f.groups {
		out = append(out, *g)
	}
	slices.SortFunc(out, func(a, b FailureGroup) int { return b.Count - a.Count })
	return f.count, out
}

// failedPage is how many failed tasks a requeue moves per transaction.
const failedPage = 512

// eachFailed calls fn with the failed tasks after ID from, in ID order,
// a page per read transaction, until fn returns false.
func (e *Engine) eachFailed(ctx context.Context, from uint64, fn func(*Task) bool) error {
	for {
		page, err := e.taskPage(ctx, spaceFailed, from, failedPage)
		if err != nil {
			return fmt.Errorf("read failed replication: %w", err)
		}
		for _, t := range page {
			if !fn(t) {
				return nil
			}
			from = t.ID
		}
		if len(page) < failedPage {
			return nil
		}
	}
}

// lastFailedID returns the highest ID of a failed task, 0 when none is.
func (e *Engine) lastFailedID(ctx context.Context) (uint64, error) {
	var last uint64
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		if k, _ := tx.Iter(spaceFailed).Last(); k != nil {
			last = idOf(k)
		}
		return nil
	})
	return last, err
}

// requeueFailed moves the failed tasks that match back into the queue,
// under new IDs so they follow what was queued meanwhile, a page per
// transaction. Tasks that fail again meanwhile get IDs above the last one
// seen at the start and are left for the next time.
func (e *Engine) requeueFailed(ctx context.Context, match func(*Task) bool) (int, error) {
	last, err := e.lastFailedID(ctx)
	if err != nil || last == 0 {
		return 0, err
	}
	var from uint64
	total := 0
	for from < last {
		var pick []*Task
		err := e.eachFailed(ctx, from, func(t *Task) bool {
			if t.ID > last {
				from = last
				return false
			}
			from = t.ID
			if match(t) {
				pick = append(pick, t)
			}
			return len(pick) < failedPage
		})
		if err != nil {
			return total, err
		}
		if len(pick) == 0 && from < last {
			from = last // nothing more matched
		}
		if err := e.requeue(ctx, pick); err != nil {
			return total, err
		}
		total += len(pick)
	}
	return total, nil
}

// requeue queues failed tasks again in one transaction.
func (e *Engine) requeue(ctx context.Context, failed []*Task) error {
	if len(failed) == 0 {
		return nil
	}
	e.qmu.Lock()
	defer e.qmu.Unlock()
	var queued, gone []*Task
	err := e.meta.Update(ctx, func(tx meta.Tx) error {
		queued, gone = queued[:0], gone[:0]
		for _, f := range failed {
			if tx.Get(spaceFailed, idKey(f.ID)) == nil {
				continue // made good by a batch job meanwhile
			}
			if err := unfailTx(tx, f); err != nil {
				return err
			}
			t := *f
			t.Reason, t.Code, t.FailedAt, t.Attempts = "", "", time.Time{}, 0
			id, err := tx.NextSeq(spaceTasks)
			if err != nil {
				return err
			}
			t.ID = id
			if err := queueTx(tx, &t); err != nil {
				return err
			}
			queued, gone = append(queued, &t), append(gone, f)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("requeue failed replication: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, t := range queued {
		e.removeFailedLocked(gone[i])
		e.enqueueLocked(e.runCtx, t)
	}
	return nil
}
