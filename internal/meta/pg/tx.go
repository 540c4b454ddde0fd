package pg

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark/bulwark/internal/meta"
)

const (
	qGet    = `SELECT value FROM meta_kv WHERE space = $1 AND key = $2`
	qPut    = `INSERT INTO meta_kv (space, key, value) VALUES ($1, $2, $3) ON CONFLICT (space, key) DO UPDATE SET value = excluded.value`
	qDelete = `DELETE FROM meta_kv WHERE space = $1 AND key = $2`
	// The lock is taken in a subquery, which the executor runs before the
	// outer query computes nextval: the number is drawn under the lock.
	qNextSeq      = `SELECT nextval($3::regclass) FROM (SELECT pg_advisory_xact_lock($1, $2) OFFSET 0) AS l`
	qNextSeqNaive = `SELECT nextval($1::regclass)`
	qLock         = `SELECT pg_advisory_xact_lock($1, $2)`
	qSeqExists    = `SELECT to_regclass($1) IS NOT NULL`
)

// tx is one transaction on one connection. The first store error is kept
// in err; from then on every operation fails with it (meta's sticky
// errors), and the transaction is rolled back.
//
// Round trips are what a transaction costs, so statements whose answer fn
// does not wait for are pipelined: BEGIN goes with the first statement, and
// writes wait in pending until the next read or the commit carries them.
// The server runs the same statements in the same order, so the semantics
// are those of sending each at once; only a write's failure is reported by
// the operation that sends it, or by Update.
type tx struct {
	s        *Store
	conn     *pgx.Conn
	ctx      context.Context
	writable bool
	begin    string // BEGIN, until sent
	pending  []stmt // writes not yet sent
	err      error
	// suspect is set when a round trip failed in a way that leaves the
	// connection's state unknown: it is closed, not reused.
	suspect bool
}

type stmt struct {
	sql  string
	args []any
}

func (t *tx) fail(err error) error {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		t.suspect = true
	}
	if t.err == nil {
		t.err = unavailable(err)
	}
	return t.err
}

// send sends BEGIN if it has not gone yet, the pending writes, and q, in
// one round trip; scan reads q's rows. A failure is recorded in the
// transaction and returned.
func (t *tx) send(what string, q string, args []any, scan func(pgx.Rows) error) error {
	if t.err != nil {
		return t.err
	}
	b := &pgx.Batch{}
	if t.begin != "" {
		b.Queue(t.begin)
	}
	for _, st := range t.pending {
		b.Queue(st.sql, st.args...)
	}
	b.Queue(q, args...)
	br := t.conn.SendBatch(t.ctx, b)
	var err error
	for i := 0; i < b.Len()-1 && err == nil; i++ {
		_, err = br.Exec()
	}
	if err == nil {
		var rows pgx.Rows
		if rows, err = br.Query(); err == nil {
			err = scan(rows)
			rows.Close()
			if err == nil {
				err = rows.Err()
			}
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	t.begin, t.pending = "", t.pending[:0]
	if err != nil {
		return t.fail(fmt.Errorf("%s: %w", what, err))
	}
	return nil
}

// Err implements meta.Tx.
func (t *tx) Err() error { return t.err }

// Get implements meta.Tx.
func (t *tx) Get(space string, key []byte) []byte {
	if strings.IndexByte(space, 0) >= 0 {
		return nil // no such keyspace can hold anything
	}
	var v []byte
	found := false
	err := t.send(fmt.Sprintf("get %s/%q", space, key), qGet, []any{space, key}, func(rows pgx.Rows) error {
		if rows.Next() {
			found = true
			return rows.Scan(&v)
		}
		return nil
	})
	if err != nil || !found {
		return nil
	}
	if v == nil {
		v = []byte{}
	}
	return v
}

// check says whether a write may be queued. Writes are sent later, with
// other functions' statements in a group, so what the server would refuse
// is refused here: an error at commit would fail the whole group.
func (t *tx) check(space string, key []byte) error {
	switch {
	case t.err != nil:
		return t.err
	case !t.writable:
		return meta.ErrReadOnly
	case len(key) == 0:
		return errors.New("meta: key required")
	case strings.IndexByte(space, 0) >= 0:
		return fmt.Errorf("meta: keyspace %q: NUL in a keyspace name", space)
	case t.ctx.Err() != nil:
		return t.fail(t.ctx.Err())
	}
	return nil
}

// Put implements meta.Tx.
func (t *tx) Put(space string, key, value []byte) error {
	if err := t.check(space, key); err != nil {
		return err
	}
	v := make([]byte, len(value)) // never nil, which would be NULL
	copy(v, value)
	t.pending = append(t.pending, stmt{qPut, []any{space, bytes.Clone(key), v}})
	return nil
}

// Delete implements meta.Tx.
func (t *tx) Delete(space string, key []byte) error {
	if err := t.check(space, key); err != nil {
		return err
	}
	t.pending = append(t.pending, stmt{qDelete, []any{space, bytes.Clone(key)}})
	return nil
}

// NextSeq implements meta.Tx. The advisory lock it takes is held until the
// transaction ends, so a transaction drawing from the same keyspace waits
// for this one to commit or roll back: numbers become visible in order.
// PostgreSQL makes a commit visible before it releases the transaction's
// locks, so the next holder's number can only be seen after this one's.
func (t *tx) NextSeq(space string) (uint64, error) {
	if err := t.check(space, []byte(space)); err != nil {
		return 0, err
	}
	seq := seqName(space)
	lock := spaceLock(space)
	if _, known := t.s.seqs.Load(space); !known {
		if err := t.ensureSeq(space, seq, lock); err != nil {
			return 0, err
		}
	}
	q, args := qNextSeq, []any{lockClass, lock, seq}
	if t.s.naiveSeq {
		q, args = qNextSeqNaive, []any{seq}
	}
	var n int64
	if err := t.send("next sequence of "+space, q, args, scanOne(&n)); err != nil {
		return 0, err
	}
	return uint64(n), nil
}

// ensureSeq creates the keyspace's sequence if it does not exist. It runs
// under the keyspace's lock, so two transactions never create it at once;
// a sequence created here exists for others only once this transaction
// commits, so it is remembered only when found.
func (t *tx) ensureSeq(space, seq string, lock int32) error {
	what := "create the sequence of " + space
	if err := t.send(what, qLock, []any{lockClass, lock}, drain); err != nil {
		return err
	}
	var exists bool
	if err := t.send(what, qSeqExists, []any{seq}, scanOne(&exists)); err != nil {
		return err
	}
	if exists {
		t.s.seqs.Store(space, struct{}{})
		return nil
	}
	stmts := createSeq(space, seq)
	if err := t.send(what, stmts[0], nil, drain); err != nil {
		return err
	}
	for _, q := range stmts[1:] {
		t.pending = append(t.pending, stmt{sql: q})
	}
	return nil
}

// scanOne scans the single row of a query into dst.
func scanOne(dst any) func(pgx.Rows) error {
	return func(rows pgx.Rows) error {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return pgx.ErrNoRows
		}
		return rows.Scan(dst)
	}
}

// drain reads a statement's rows, if any, and ignores them.
func drain(rows pgx.Rows) error {
	for rows.Next() {
	}
	return nil
}

// seqName names the sequence of a keyspace: keyspace names are free text,
// identifiers are not, so the name is derived from a hash.
func seqName(space string) string {
	h := sha256.Sum256([]byte(space))
	return "meta_seq_" + hex.EncodeToString(h[:12])
}

// spaceLock is the second key of a keyspace's advisory lock. Two keyspaces
// with one hash share a lock, which only orders them more than needed.
func spaceLock(space string) int32 {
	h := fnv.New32a()
	h.Write([]byte(space))
	return int32(h.Sum32())
}

// Iter implements meta.Tx.
func (t *tx) Iter(space string) meta.Iterator {
	if strings.IndexByte(space, 0) >= 0 {
		return emptyIter{} // no such keyspace can hold anything
	}
	return &iter{t: t, space: space}
}

type emptyIter struct{}

func (emptyIter) First() ([]byte, []byte)      { return nil, nil }
func (emptyIter) Last() ([]byte, []byte)       { return nil, nil }
func (emptyIter) Seek([]byte) ([]byte, []byte) { return nil, nil }
func (emptyIter) Next() ([]byte, []byte)       { return nil, nil }
func (emptyIter) Prev() ([]byte, []byte)       { return nil, nil }

type kv struct{ k, v []byte }

// iter pages through a keyspace. page holds the rows of the last query in
// the order fetched (ascending or descending), i the current one; end says
// the query returned fewer rows than asked, so nothing lies beyond the page
// in its direction.
type iter struct {
	t     *tx
	space string
	page  []kv
	i     int
	asc   bool
	end   bool
	valid bool
	size  int
}

func (it *iter) cur() ([]byte, []byte) {
	if !it.valid {
		return nil, nil
	}
	return it.page[it.i].k, it.page[it.i].v
}

// fetch replaces the page with the rows after bound in the direction
// asc (bound nil: from the start of that direction; incl: bound included).
func (it *iter) fetch(asc bool, bound []byte, incl bool, grow bool) ([]byte, []byte) {
	it.valid, it.page, it.i, it.asc = false, it.page[:0], 0, asc
	if it.t.err != nil {
		return nil, nil
	}
	if grow {
		it.size = min(it.size*2, it.t.s.pageMax)
	} else {
		it.size = it.t.s.pageMin
	}
	op, order := ">", "ASC"
	switch {
	case asc && incl:
		op = ">="
	case !asc:
		op, order = "<", "DESC"
	}
	q := "SELECT key, value FROM meta_kv WHERE space = $1 ORDER BY key " + order + " LIMIT $2"
	args := []any{it.space, it.size}
	if bound != nil {
		q = "SELECT key, value FROM meta_kv WHERE space = $1 AND key " + op + " $2 ORDER BY key " + order + " LIMIT $3"
		args = []any{it.space, bound, it.size}
	}
	err := it.t.send("iterate "+it.space, q, args, func(rows pgx.Rows) error {
		for rows.Next() {
			var r kv
			if err := rows.Scan(&r.k, &r.v); err != nil {
				return err
			}
			if r.v == nil {
				r.v = []byte{}
			}
			it.page = append(it.page, r)
		}
		return nil
	})
	if err != nil {
		it.page = it.page[:0]
		return nil, nil
	}
	it.end = len(it.page) < it.size
	it.valid = len(it.page) > 0
	return it.cur()
}

func (it *iter) First() ([]byte, []byte)          { return it.fetch(true, nil, false, false) }
func (it *iter) Last() ([]byte, []byte)           { return it.fetch(false, nil, false, false) }
func (it *iter) Seek(key []byte) ([]byte, []byte) { return it.fetch(true, key, true, false) }

// Next implements meta.Iterator.
func (it *iter) Next() ([]byte, []byte) { return it.step(true) }

// Prev implements meta.Iterator.
func (it *iter) Prev() ([]byte, []byte) { return it.step(false) }

// step moves one key up (fwd) or down, within the page when it can.
func (it *iter) step(fwd bool) ([]byte, []byte) {
	if !it.valid {
		return nil, nil
	}
	along := fwd == it.asc // moving in the direction the page was fetched
	switch {
	case along && it.i+1 < len(it.page):
		it.i++
		return it.cur()
	case !along && it.i > 0:
		it.i--
		return it.cur()
	case along && it.end:
		it.valid = false
		return nil, nil
	}
	from := it.page[it.i].k
	return it.fetch(fwd, from, false, along)
}
