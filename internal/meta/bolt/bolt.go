// Package bolt implements meta.Store on bbolt, a single-file copy-on-write
// B+tree with serializable transactions.
//
// bbolt makes every commit durable with fdatasync. To turn many concurrent
// small transactions into few syncs, Update hands its function to a single
// committer goroutine, which runs every function queued since its previous
// commit inside one bbolt transaction (group commit). There is no artificial
// delay: a lone writer commits at once, and batches form only while a commit
// is in progress. The measured comparison behind the choice of bbolt is in
// docs/design/meta-engine.md.
//
// Preallocate keeps room allocated ahead of the file, so that commits, and
// with them the deletes that free space, go on when the disk is full
// (docs/design/disk-space.md).
package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/meta"
)

// maxBatch bounds the number of transactions grouped into one commit, so a
// commit's dirty pages and one failing function's retry stay small.
const maxBatch = 256

// Store is a bbolt-backed meta.Store.
type Store struct {
	db      *bbolt.DB
	reqs    chan *request
	closing chan struct{}
	done    chan struct{}
	once    sync.Once

	// Commits and Batched count commits and the transactions they carried,
	// for tests and metrics.
	statsMu sync.Mutex
	stats   Stats
}

// Check implements meta.Checker with bbolt's own consistency check: every
// page reachable once, free pages not in use, keys in order. It reports
// at most ten problems.
func (s *Store) Check(ctx context.Context) error {
	return s.db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			if len(errs) < 10 {
				errs = append(errs, err)
			}
			if ctx.Err() != nil && len(errs) == 0 {
				errs = append(errs, ctx.Err())
			}
		}
		if len(errs) > 0 {
			return fmt.Errorf("check %s: %w", s.db.Path(), errors.Join(errs...))
		}
		return nil
	})
}

// Stats describes group commit activity.
type Stats struct {
	Commits      uint64 // durable commits
	Transactions uint64 // Update calls committed
}

type request struct {
	ctx  context.Context
	fn   func(meta.Tx) error
	done chan error
}

// Open opens or creates the store file at path.
func Open(path string) (*Store, error) {
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{
		Timeout:         5 * time.Second,
		NoFreelistSync:  true,
		FreelistType:    bbolt.FreelistMapType,
		InitialMmapSize: 256 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", path, err)
	}
	s := &Store{
		db:      db,
		reqs:    make(chan *request, maxBatch),
		closing: make(chan struct{}),
		done:    make(chan struct{}),
	}
	go s.commitLoop()
	return s, nil
}

// Preallocate makes sure n bytes past the database's high-water mark are
// allocated on disk, and returns how many are.
//
// bbolt grows its file with ftruncate, which allocates nothing: a commit
// that needs pages above the high-water mark writes into a hole, and on a
// full disk that write fails, whatever the commit does, deletes included.
// Pages allocated in advance take no free space when written, so commits
// go on while the reserve lasts; pages freed by earlier commits are reused
// before it is touched, so a permanent delete costs it nothing and a delete
// marker the size of its record. The allocation keeps the file's size and
// content (FALLOC_FL_KEEP_SIZE), so it cannot disturb bbolt, which writes
// only pages it has allocated and extends the file over allocated blocks
// as it grows; it survives a crash and a restart like the file itself.
func (s *Store) Preallocate(n int64) (int64, error) {
	hwm, err := s.highWater()
	if err != nil {
		return 0, fmt.Errorf("preallocate metadata: %w", err)
	}
	f, err := os.OpenFile(s.db.Path(), os.O_RDWR, 0)
	if err != nil {
		return 0, fmt.Errorf("preallocate metadata: %w", err)
	}
	defer f.Close()
	ahead := func() (int64, error) {
		n, err := headroom.Allocated(f)
		return max(n-hwm, 0), err
	}
	have, err := ahead()
	if err != nil || have >= n {
		return have, err
	}
	err = headroom.Preallocate(f, hwm, n)
	if err == nil {
		// The allocation is file metadata; make it as durable as the
		// pages it is for.
		err = f.Sync()
	}
	if err != nil {
		err = fmt.Errorf("preallocate metadata: %w", err)
	}
	have, aerr := ahead()
	return have, errors.Join(err, aerr)
}

// Ahead returns how many bytes are allocated past the high-water mark:
// what is left of the room Preallocate made.
func (s *Store) Ahead() (int64, error) {
	hwm, err := s.highWater()
	if err != nil {
		return 0, err
	}
	f, err := os.Open(s.db.Path())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n, err := headroom.Allocated(f)
	return max(n-hwm, 0), err
}

// highWater is the end of the pages the last commit may use: every page
// below it was written by a commit, so whatever the file has allocated
// beyond it is room ahead.
func (s *Store) highWater() (int64, error) {
	var hwm int64
	err := s.db.View(func(tx *bbolt.Tx) error { hwm = tx.Size(); return nil })
	return hwm, err
}

// Stats returns group commit counters.
func (s *Store) Stats() Stats {
	s.statsMu.Lock()
	defer s.statsMu.Unlock()
	return s.stats
}

// View implements meta.Store.
func (s *Store) View(ctx context.Context, fn func(meta.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case <-s.closing:
		return meta.ErrClosed
	default:
	}
	err := s.db.View(func(btx *bbolt.Tx) error { return fn(&tx{btx: btx}) })
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// Update implements meta.Store. Once the function has been queued, Update
// waits for the outcome whatever ctx does: abandoning it would leave the
// caller unsure whether its writes are durable. The committer looks at ctx
// before and after running fn, so a ctx that ends before fn returns rolls the
// transaction back.
func (s *Store) Update(ctx context.Context, fn func(meta.Tx) error) error {
	r := &request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case <-s.closing:
		return meta.ErrClosed
	default:
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return meta.ErrClosed
	}
	return <-r.done
}

// Close stops accepting transactions, commits those already queued and closes
// the file.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.closing) })
	<-s.done
	return s.db.Close()
}

func (s *Store) commitLoop() {
	defer close(s.done)
	batch := make([]*request, 0, maxBatch)
	prev := 0 // size of the previous group
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *request
		select {
		case first = <-s.reqs:
		case <-s.closing:
			// Drain what was queued before Close so no caller waits forever.
			for {
				select {
				case r := <-s.reqs:
					s.commit([]*request{r})
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
	fill:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break fill
			}
		}
		// Writers that were in the last group are usually about to come
		// back: wait briefly for as many, so that one fsync serves them all.
		// A lone writer (prev <= 1) never waits.
		if len(batch) < prev && groupWindow > 0 {
			timer.Reset(groupWindow)
		wait:
			for len(batch) < prev {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
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
		prev = len(batch)
		s.commit(batch)
	}
}

// groupWindow bounds how long the committer waits for the writers of the
// previous group to return. It trades at most this much latency for fewer
// fsyncs under concurrency; docs/design/meta-engine.md has the measurement.
const groupWindow = time.Millisecond

// errAbort rolls a grouped transaction back when one of its functions fails.
var errAbort = errors.New("abort group")

// commit runs batch in one transaction. When a function fails, the group is
// rolled back, the failing function is run alone so its error reflects a
// transaction of its own, and the rest are retried together.
func (s *Store) commit(batch []*request) {
	for len(batch) > 0 {
		failed := -1
		err := s.db.Update(func(btx *bbolt.Tx) error {
			t := &tx{btx: btx, writable: true}
			for i, r := range batch {
				if err := r.run(t); err != nil {
					failed = i
					return errAbort
				}
			}
			return nil
		})
		if failed >= 0 {
			r := batch[failed]
			batch = append(batch[:failed:failed], batch[failed+1:]...)
			err := s.db.Update(func(btx *bbolt.Tx) error {
				return r.run(&tx{btx: btx, writable: true})
			})
			s.count(1)
			r.done <- err
			continue
		}
		s.count(len(batch))
		for _, r := range batch {
			r.done <- err
		}
		return
	}
}

func (s *Store) count(n int) {
	s.statsMu.Lock()
	s.stats.Commits++
	s.stats.Transactions += uint64(n)
	s.statsMu.Unlock()
}

// run runs the request's function unless its ctx has ended, and fails it
// when the ctx ended while it ran.
func (r *request) run(t meta.Tx) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	err := call(r.fn, t)
	if cerr := r.ctx.Err(); cerr != nil {
		return cerr
	}
	return err
}

// call runs fn, turning a panic into an error: a bug in one request must not
// take the committer, and every other writer, down with it.
func call(fn func(meta.Tx) error, t meta.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("meta: transaction panicked: %v", p)
		}
	}()
	return fn(t)
}

type tx struct {
	btx      *bbolt.Tx
	writable bool
}

// Err implements meta.Tx: bbolt reads memory-mapped pages and cannot fail
// in a way it reports.
func (t *tx) Err() error { return nil }

func (t *tx) Get(space string, key []byte) []byte {
	b := t.btx.Bucket([]byte(space))
	if b == nil {
		return nil
	}
	return b.Get(key)
}

func (t *tx) bucket(space string) (*bbolt.Bucket, error) {
	if !t.writable {
		return nil, meta.ErrReadOnly
	}
	if b := t.btx.Bucket([]byte(space)); b != nil {
		return b, nil
	}
	return t.btx.CreateBucket([]byte(space))
}

func (t *tx) Put(space string, key, value []byte) error {
	b, err := t.bucket(space)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

func (t *tx) Delete(space string, key []byte) error {
	if !t.writable {
		return meta.ErrReadOnly
	}
	b := t.btx.Bucket([]byte(space))
	if b == nil {
		return nil
	}
	return b.Delete(key)
}

func (t *tx) NextSeq(space string) (uint64, error) {
	b, err := t.bucket(space)
	if err != nil {
		return 0, err
	}
	return b.NextSequence()
}

func (t *tx) Iter(space string) meta.Iterator {
	b := t.btx.Bucket([]byte(space))
	if b == nil {
		return emptyIter{}
	}
	return b.Cursor()
}

type emptyIter struct{}

func (emptyIter) First() ([]byte, []byte)      { return nil, nil }
func (emptyIter) Last() ([]byte, []byte)       { return nil, nil }
func (emptyIter) Seek([]byte) ([]byte, []byte) { return nil, nil }
func (emptyIter) Next() ([]byte, []byte)       { return nil, nil }
func (emptyIter) Prev() ([]byte, []byte)       { return nil, nil }
