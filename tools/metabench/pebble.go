package main

import (
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

type pebbleOpts struct {
	cacheMB    int
	rangeDel   bool // consumer deletes with one DeleteRange instead of point deletes
	lockStripe int
}

// pebbleEngine keeps the three keyspaces under one-byte prefixes. Pebble has
// no read-write transactions, so a PUT's read-check-write holds a lock striped
// by key hash across the read and the durable commit, and feed sequence
// numbers are allocated by the application, with a watermark so a consumer
// never reads past a sequence whose commit is still in flight.
type pebbleEngine struct {
	db     *pebble.DB
	opts   pebbleOpts
	clock  versionClock
	locks  []sync.Mutex
	seed   maphash.Seed
	seq    atomic.Uint64
	wm     seqWatermark
	cursor uint64
}

func nsKey(ns byte, k []byte) []byte {
	b := make([]byte, 0, 1+len(k))
	return append(append(b, ns), k...)
}

func openPebble(dir string, o pebbleOpts) (*pebbleEngine, error) {
	po := &pebble.Options{FormatMajorVersion: pebble.FormatNewest}
	if o.cacheMB > 0 {
		po.CacheSize = int64(o.cacheMB) << 20
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, err
	}
	if o.lockStripe <= 0 {
		o.lockStripe = 1024
	}
	e := &pebbleEngine{db: db, opts: o, locks: make([]sync.Mutex, o.lockStripe), seed: maphash.MakeSeed()}
	// Recover the feed sequence and the consumer cursor.
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsFeed}, UpperBound: []byte{nsFeed + 1}})
	if err != nil {
		return nil, err
	}
	if it.Last() {
		e.seq.Store(binary.BigEndian.Uint64(it.Key()[1:]))
	}
	it.Close()
	if v, c, err := db.Get(nsKey(nsCursors, []byte(consumerName))); err == nil {
		e.cursor = binary.BigEndian.Uint64(v)
		c.Close()
	}
	e.wm.init(e.seq.Load())
	return e, nil
}

func (e *pebbleEngine) lockFor(bucket, key string) *sync.Mutex {
	var h maphash.Hash
	h.SetSeed(e.seed)
	h.WriteString(bucket)
	h.WriteByte(0)
	h.WriteString(key)
	return &e.locks[h.Sum64()%uint64(len(e.locks))]
}

func (e *pebbleEngine) put(r *putReq) error {
	mu := e.lockFor(r.bucket, r.key)
	mu.Lock()
	defer mu.Unlock()
	p := nsKey(nsVersions, objPrefix(r.bucket, r.key))
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixSuccessor(p)})
	if err != nil {
		return err
	}
	if it.First() {
		if _, err := decodeMeta(it.Value()); err != nil {
			it.Close()
			return err
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	vt := e.clock.next()
	b := e.db.NewBatch()
	defer b.Close()
	_ = b.Set(nsKey(nsVersions, versionKey(r.bucket, r.key, vt)), r.meta, nil)
	seq := e.seq.Add(1)
	_ = b.Set(nsKey(nsFeed, feedKey(seq)), feedRecord(r.bucket, r.key, vt, r.meta), nil)
	err = b.Commit(pebble.Sync)
	e.wm.done(seq) // a failed commit leaves a permanent gap; fine for a benchmark
	return err
}

func (e *pebbleEngine) appendFeed(rec []byte) error {
	b := e.db.NewBatch()
	defer b.Close()
	seq := e.seq.Add(1)
	_ = b.Set(nsKey(nsFeed, feedKey(seq)), rec, nil)
	err := b.Commit(pebble.Sync)
	e.wm.done(seq)
	return err
}

func (e *pebbleEngine) consume(max int) (int, error) {
	hi := e.wm.get()
	if hi <= e.cursor {
		return 0, nil
	}
	it, err := e.db.NewIter(&pebble.IterOptions{
		LowerBound: nsKey(nsFeed, feedKey(e.cursor+1)),
		UpperBound: nsKey(nsFeed, feedKey(hi+1)),
	})
	if err != nil {
		return 0, err
	}
	b := e.db.NewBatch()
	defer b.Close()
	n := 0
	var first, last []byte
	for ok := it.First(); ok && n < max; ok = it.Next() {
		_ = it.Value() // a real consumer ships the record
		last = append(last[:0], it.Key()...)
		if first == nil {
			first = append([]byte(nil), last...)
		}
		if !e.opts.rangeDel {
			_ = b.Delete(last, nil)
		}
		n++
	}
	if err := it.Close(); err != nil || n == 0 {
		return 0, err
	}
	if e.opts.rangeDel {
		_ = b.DeleteRange(first, prefixSuccessor(last), nil)
	}
	lastSeq := binary.BigEndian.Uint64(last[1:])
	_ = b.Set(nsKey(nsCursors, []byte(consumerName)), feedKey(lastSeq), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, err
	}
	e.cursor = lastSeq
	return n, nil
}

func (e *pebbleEngine) cursorSeek() (time.Duration, time.Duration, error) {
	t0 := time.Now()
	v, c, err := e.db.Get(nsKey(nsCursors, []byte(consumerName)))
	if err != nil {
		return 0, 0, err
	}
	cur := binary.BigEndian.Uint64(v)
	c.Close()
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsFeed}, UpperBound: []byte{nsFeed + 1}})
	if err != nil {
		return 0, 0, err
	}
	it.SeekGE(nsKey(nsFeed, feedKey(cur+1)))
	it.Close()
	atCursor := time.Since(t0)
	t1 := time.Now()
	it, err = e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{nsFeed}, UpperBound: []byte{nsFeed + 1}})
	if err != nil {
		return 0, 0, err
	}
	it.First()
	err = it.Close()
	return atCursor, time.Since(t1), err
}

type pebbleCursor struct {
	it *pebble.Iterator
	ns byte
}

func (c *pebbleCursor) pos(ok bool) ([]byte, []byte) {
	if !ok {
		return nil, nil
	}
	return c.it.Key()[1:], c.it.Value()
}
func (c *pebbleCursor) seek(k []byte) ([]byte, []byte) { return c.pos(c.it.SeekGE(nsKey(c.ns, k))) }
func (c *pebbleCursor) next() ([]byte, []byte)         { return c.pos(c.it.Next()) }
func (c *pebbleCursor) close()                         { _ = c.it.Close() }

func (e *pebbleEngine) reader(ns byte) (cursor, error) {
	it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{ns}, UpperBound: []byte{ns + 1}})
	if err != nil {
		return nil, err
	}
	return &pebbleCursor{it: it, ns: ns}, nil
}

func (e *pebbleEngine) close() error { return e.db.Close() }

// seqWatermark tracks the highest sequence s such that every sequence <= s
// has finished committing.
type seqWatermark struct {
	mu      sync.Mutex
	next    uint64 // lowest sequence not yet known to be committed
	pending map[uint64]struct{}
}

func (w *seqWatermark) init(last uint64) {
	w.next = last + 1
	w.pending = map[uint64]struct{}{}
}

func (w *seqWatermark) done(s uint64) {
	w.mu.Lock()
	w.pending[s] = struct{}{}
	for {
		if _, ok := w.pending[w.next]; !ok {
			break
		}
		delete(w.pending, w.next)
		w.next++
	}
	w.mu.Unlock()
}

func (w *seqWatermark) get() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next - 1
}

// lsmState summarises the LSM shape (a listing's cost depends on it).
func (e *pebbleEngine) lsmState() string {
	m := e.db.Metrics()
	return fmt.Sprintf("read-amp %d, L0 tables %d, tables %d, compaction debt %s",
		m.ReadAmp(), m.Levels[0].TablesCount, m.Total().TablesCount, mib(int64(m.Compact.EstimatedDebt)))
}
