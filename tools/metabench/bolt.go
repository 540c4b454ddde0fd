package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

var (
	bktVersions = []byte{nsVersions}
	bktFeed     = []byte{nsFeed}
	bktCursors  = []byte{nsCursors}
)

type boltOpts struct {
	commit    string // "batch" (db.Batch) or "group" (own group commit)
	batchSize int    // db.MaxBatchSize override (0 = bbolt default)
	groupMax  int
	groupWait time.Duration
	freelist  string // "array" or "map"
	noFLSync  bool
	mmapMB    int
}

type boltEngine struct {
	db     *bolt.DB
	opts   boltOpts
	clock  versionClock
	reqs   chan *boltReq
	done   chan struct{}
	cursor uint64

	commits, grouped atomic.Int64 // group commit: transactions, requests
}

type boltReq struct {
	fn  func(*bolt.Tx) error
	res chan error
}

func openBolt(dir string, o boltOpts) (*boltEngine, error) {
	bo := &bolt.Options{Timeout: time.Second, NoFreelistSync: o.noFLSync, InitialMmapSize: o.mmapMB << 20}
	if o.freelist == "map" {
		bo.FreelistType = bolt.FreelistMapType
	}
	db, err := bolt.Open(filepath.Join(dir, "meta.db"), 0o600, bo)
	if err != nil {
		return nil, err
	}
	if o.batchSize > 0 {
		db.MaxBatchSize = o.batchSize
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bktVersions, bktFeed, bktCursors} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	e := &boltEngine{db: db, opts: o, reqs: make(chan *boltReq, 4096), done: make(chan struct{})}
	go e.committer()
	return e, nil
}

// committer is a group commit: it takes the first waiting request, gathers
// more for up to groupWait (or, with groupWait 0, only those already queued)
// or until groupMax, and commits them all in one read-write transaction with
// a single fsync.
func (e *boltEngine) committer() {
	defer close(e.done)
	batch := make([]*boltReq, 0, e.opts.groupMax)
	for first := range e.reqs {
		batch = append(batch[:0], first)
		if e.opts.groupWait > 0 {
			timer := time.NewTimer(e.opts.groupWait)
		gather:
			for len(batch) < e.opts.groupMax {
				select {
				case r, ok := <-e.reqs:
					if !ok {
						break gather
					}
					batch = append(batch, r)
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		} else {
			// No timer: take only what queued up while the previous
			// commit was in flight.
		drain:
			for len(batch) < e.opts.groupMax {
				select {
				case r, ok := <-e.reqs:
					if !ok {
						break drain
					}
					batch = append(batch, r)
				default:
					break drain
				}
			}
		}
		e.commits.Add(1)
		e.grouped.Add(int64(len(batch)))
		err := e.db.Update(func(tx *bolt.Tx) error {
			for _, r := range batch {
				if err := r.fn(tx); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil && len(batch) > 1 {
			// Like db.Batch: rerun each request alone so one failure does
			// not fail its neighbours.
			for _, r := range batch {
				r.res <- e.db.Update(r.fn)
			}
			continue
		}
		for _, r := range batch {
			r.res <- err
		}
	}
}

func (e *boltEngine) run(fn func(*bolt.Tx) error) error {
	if e.opts.commit == "batch" {
		return e.db.Batch(fn)
	}
	r := &boltReq{fn: fn, res: make(chan error, 1)}
	e.reqs <- r
	return <-r.res
}

func (e *boltEngine) appendFeedTx(tx *bolt.Tx, rec []byte) error {
	fb := tx.Bucket(bktFeed)
	fb.FillPercent = 0.95 // append-only keyspace
	seq, err := fb.NextSequence()
	if err != nil {
		return err
	}
	return fb.Put(feedKey(seq), rec)
}

func (e *boltEngine) put(r *putReq) error {
	return e.run(func(tx *bolt.Tx) error {
		vb := tx.Bucket(bktVersions)
		p := objPrefix(r.bucket, r.key)
		// Read-check: the current latest version, inside the same
		// serializable transaction as the write.
		if k, v := vb.Cursor().Seek(p); k != nil && bytes.HasPrefix(k, p) {
			if _, err := decodeMeta(v); err != nil {
				return err
			}
		}
		vt := e.clock.next()
		if err := vb.Put(versionKey(r.bucket, r.key, vt), r.meta); err != nil {
			return err
		}
		return e.appendFeedTx(tx, feedRecord(r.bucket, r.key, vt, r.meta))
	})
}

func (e *boltEngine) appendFeed(rec []byte) error {
	return e.run(func(tx *bolt.Tx) error { return e.appendFeedTx(tx, rec) })
}

func (e *boltEngine) consume(max int) (int, error) {
	n := 0
	var last uint64
	err := e.db.Update(func(tx *bolt.Tx) error {
		fb := tx.Bucket(bktFeed)
		c := fb.Cursor()
		keys := make([][]byte, 0, max)
		for k, _ := c.Seek(feedKey(e.cursor + 1)); k != nil && len(keys) < max; k, _ = c.Next() {
			keys = append(keys, append([]byte(nil), k...))
		}
		for _, k := range keys {
			if err := fb.Delete(k); err != nil {
				return err
			}
		}
		n = len(keys)
		if n == 0 {
			return nil
		}
		last = binary.BigEndian.Uint64(keys[n-1])
		return tx.Bucket(bktCursors).Put([]byte(consumerName), feedKey(last))
	})
	if err == nil && n > 0 {
		e.cursor = last
	}
	return n, err
}

func (e *boltEngine) cursorSeek() (time.Duration, time.Duration, error) {
	t0 := time.Now()
	err := e.db.View(func(tx *bolt.Tx) error {
		cur := tx.Bucket(bktCursors).Get([]byte(consumerName))
		if cur == nil {
			return errors.New("no cursor")
		}
		tx.Bucket(bktFeed).Cursor().Seek(feedKey(binary.BigEndian.Uint64(cur) + 1))
		return nil
	})
	atCursor := time.Since(t0)
	t1 := time.Now()
	err2 := e.db.View(func(tx *bolt.Tx) error {
		tx.Bucket(bktFeed).Cursor().First()
		return nil
	})
	return atCursor, time.Since(t1), errors.Join(err, err2)
}

type boltCursor struct {
	tx *bolt.Tx
	c  *bolt.Cursor
}

func (c *boltCursor) seek(k []byte) ([]byte, []byte) { return c.c.Seek(k) }
func (c *boltCursor) next() ([]byte, []byte)         { return c.c.Next() }
func (c *boltCursor) close()                         { _ = c.tx.Rollback() }

func (e *boltEngine) reader(ns byte) (cursor, error) {
	tx, err := e.db.Begin(false)
	if err != nil {
		return nil, err
	}
	return &boltCursor{tx: tx, c: tx.Bucket([]byte{ns}).Cursor()}, nil
}

// groupState reports the group commit's average group size so far.
func (e *boltEngine) groupState() string {
	c := e.commits.Load()
	if c == 0 {
		return "n/a (db.Batch)"
	}
	return fmt.Sprintf("%d commits, %.1f requests each", c, float64(e.grouped.Load())/float64(c))
}

func (e *boltEngine) close() error {
	close(e.reqs)
	<-e.done
	return e.db.Close()
}
