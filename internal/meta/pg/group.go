package pg

import (
	"context"
	"errors"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Group commit. The change feed's ordering lock lets one transaction at a
// time append to a keyspace's feed, from its NextSeq to its COMMIT, fsync
// included: one transaction per feed append would cap a region at one
// fsync per PUT (measured: 212 Updates/s). So Update hands fn to a
// committer goroutine, which runs every function queued since its previous
// commit in one transaction, each function under a savepoint so that one
// that fails leaves the others' writes, and commits them with one fsync and
// one hold of the lock, as package bolt does for bbolt.

// maxGroup bounds the functions of one group: each runs in a
// subtransaction, and PostgreSQL's snapshots handle a transaction of up to
// 64 subtransactions without spilling to pg_subtrans.
const maxGroup = 32

// DefaultCommitters is the number of groups committing at once per Store.
// One, as in package bolt: Updates that append to the feed are serialized
// by its lock whatever runs them, and a second committer only splits the
// writers into alternating groups of one and of all the others, twice the
// commits for the same work (measured: 1,560 feed appends/s with two
// committers against 4,704 with one, docs/design/meta-postgres.md).
// Gateways, each with its committer, and Views run in parallel.
const DefaultCommitters = 1

type request struct {
	ctx  context.Context
	fn   func(meta.Tx) error
	done chan error
}

// Update implements meta.Store. Once fn has been queued, Update waits for
// the outcome whatever ctx does; the committer looks at ctx before and
// after running fn, so a ctx that ends before fn returns rolls fn's writes
// back.
func (s *Store) Update(ctx context.Context, fn func(meta.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-r.done
}

// groupWindow bounds how long the committer waits for the writers of the
// previous group to come back, as package bolt's does: without it, 16
// closed-loop writers settle into two alternating groups of 8.
const groupWindow = time.Millisecond

// committer runs groups until the store closes.
func (s *Store) committer() {
	defer s.committers.Done()
	group := make([]*request, 0, maxGroup)
	prev := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case r := <-s.reqs:
			group = append(group[:0], r)
		case <-s.stop:
			return
		}
	fill:
		for len(group) < maxGroup {
			select {
			case r := <-s.reqs:
				group = append(group, r)
			default:
				break fill
			}
		}
		if len(group) < prev {
			// A lone writer (prev <= 1) never waits.
			timer.Reset(groupWindow)
		wait:
			for len(group) < prev {
				select {
				case r := <-s.reqs:
					group = append(group, r)
				case <-timer.C:
					break wait
				}
			}
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
		prev = len(group)
		s.commitGroup(group)
	}
}

// commitGroup runs group until every request has its outcome: a function
// that failed gets its error, one that lost a conflict runs again, and the
// others commit together.
func (s *Store) commitGroup(group []*request) {
	for attempt := 1; len(group) > 0; attempt++ {
		rerun, retry := s.runGroup(group)
		if retry {
			s.retries.Add(uint64(len(rerun)))
			if attempt == maxAttempts {
				for _, r := range rerun {
					r.done <- errors.New("meta: transaction kept losing serialization conflicts")
				}
				return
			}
			s.backoff(attempt)
		}
		group = rerun
	}
}

// backoff waits a little, at random, so that transactions which collided
// do not collide again at once.
func (s *Store) backoff(attempt int) {
	d := time.Duration(randN(int64(min(50*time.Microsecond<<min(attempt, 10), 20*time.Millisecond))))
	select {
	case <-time.After(d):
	case <-s.stop:
	}
}

// runGroup runs group in one transaction and answers the requests it
// settles. It returns those to run again: all of them when the transaction
// lost a conflict (retry), or those a failure of another request's read
// kept from committing.
func (s *Store) runGroup(group []*request) (rerun []*request, retry bool) {
	conn, err := s.pool.acquire(s.ctx)
	if err != nil {
		for _, r := range group {
			r.done <- err
		}
		return nil, false
	}
	t := &tx{s: s, conn: conn, ctx: s.ctx, writable: true, begin: "BEGIN ISOLATION LEVEL SERIALIZABLE"}
	grouped := len(group) > 1
	results := make([]error, len(group))
	done := make([]bool, len(group)) // settled by fn's own outcome
	live := 0
	for i, r := range group {
		if err := r.ctx.Err(); err != nil {
			results[i], done[i] = err, true
			continue
		}
		if grouped {
			t.pending = append(t.pending, stmt{sql: "SAVEPOINT fn"})
		}
		ferr := call(r.fn, t)
		if t.err != nil {
			// The transaction is lost. A conflict is everyone's; any
			// other failure is the error of the request that met it, and
			// the others run again, in a new transaction.
			s.pool.release(conn, t.rollback())
			if retryable(t.err) {
				return group, true
			}
			r.done <- t.err
			for j, o := range group {
				switch {
				case j == i:
				case done[j]:
					o.done <- results[j]
				default:
					rerun = append(rerun, o)
				}
			}
			return rerun, false
		}
		if err := r.ctx.Err(); err != nil {
			ferr = err
		}
		done[i] = ferr != nil
		results[i] = ferr
		switch {
		case ferr == nil && grouped:
			t.pending = append(t.pending, stmt{sql: "RELEASE SAVEPOINT fn"})
			live++
		case ferr == nil:
			live++
		case grouped:
			t.pending = append(t.pending, stmt{sql: "ROLLBACK TO SAVEPOINT fn"}, stmt{sql: "RELEASE SAVEPOINT fn"})
		}
	}
	var cerr error
	if live == 0 {
		s.pool.release(conn, t.rollback())
	} else {
		var reusable bool
		cerr, reusable = t.commit()
		s.pool.release(conn, reusable)
		if retryable(cerr) {
			return group, true
		}
		if cerr == nil {
			s.commits.Add(1)
			s.transactions.Add(uint64(live))
		}
	}
	for i, r := range group {
		if done[i] {
			r.done <- results[i]
		} else {
			r.done <- cerr
		}
	}
	return nil, false
}
