// Package pg implements meta.Store on PostgreSQL, so that several stateless
// gateways can serve one region over one shared database.
//
// Every keyspace lives in one table, meta_kv (space, key, value), whose
// primary key orders a keyspace as bbolt orders a bucket. Update runs fn in
// a SERIALIZABLE transaction and retries it on a serialization failure or a
// deadlock; View runs it in a REPEATABLE READ READ ONLY one, a snapshot.
// Iterators read pages of keys by key range within the transaction's
// snapshot, never a whole keyspace at once. A read that fails records its
// error in the transaction, which then fails as a whole (meta's sticky
// errors). The schema is created and migrated by Open (schema_migrations).
//
// The change feed's ordering guarantee costs a lock: NextSeq takes a
// transaction-scoped advisory lock per keyspace before it draws from the
// keyspace's SEQUENCE, so the transactions that draw from one keyspace
// commit in the order of their numbers, and a reader can never see number n
// before a lower one is settled. docs/design/meta-postgres.md has the
// argument, the measurements and what differs on CockroachDB and
// YugabyteDB.
package pg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark/bulwark/internal/meta"
)

// lockClass is the first key of every advisory lock Bulwark takes (ASCII
// "BLWK"), so that they cannot collide with another application's in the
// same database.
const lockClass int32 = 0x424c574b

// DefaultPoolSize is the number of connections a Store opens at most when
// the DSN does not set pool_max_conns.
const DefaultPoolSize = 16

// maxAttempts bounds how often Update runs fn when its transaction keeps
// losing serialization conflicts.
const maxAttempts = 200

// commitTimeout bounds the wait for COMMIT's answer. COMMIT does not take
// the caller's cancellation: a commit abandoned halfway is an unknown
// outcome, which cancelling must not create.
const commitTimeout = time.Minute

// connectTimeout bounds a connection attempt when the DSN sets no
// connect_timeout.
const connectTimeout = 10 * time.Second

// Store is a PostgreSQL-backed meta.Store.
type Store struct {
	pool *pool

	mu       sync.Mutex
	closed   bool
	inflight sync.WaitGroup

	seqs sync.Map // keyspace → struct{}: its sequence is known to exist

	// pageMin and pageMax bound the rows an iterator fetches at once: the
	// first page is small (most scans read a few keys after a Seek), and
	// each further page in the same direction doubles.
	pageMin, pageMax int
	// naiveSeq draws sequence numbers without the lock that orders the
	// commits: only tests set it, to show what the feed ordering case
	// catches.
	naiveSeq bool
	// commitSent, set by tests, runs once COMMIT is on its way, before
	// its answer is read: where a lost connection makes the outcome
	// unknown.
	commitSent func(*pgx.Conn)

	// Update's group commit (group.go).
	reqs       chan *request
	stop       chan struct{}
	ctx        context.Context // of the committers' statements
	committers sync.WaitGroup

	commits, transactions, retries atomic.Uint64
}

// Stats counts the store's transactions.
type Stats struct {
	Commits      uint64 // PostgreSQL transactions committed by Update
	Transactions uint64 // Updates committed; over Commits, the group commit factor
	Retries      uint64 // runs of fn that lost a conflict and were retried
}

// Open connects to the database dsn names (a postgres:// URL or key=value
// string; pool_max_conns sets the pool size) and brings its schema to the
// current version.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("open metadata database: %w", err)
	}
	size := DefaultPoolSize
	if v, ok := cfg.RuntimeParams["pool_max_conns"]; ok {
		delete(cfg.RuntimeParams, "pool_max_conns")
		if size, err = strconv.Atoi(v); err != nil || size < 1 {
			return nil, fmt.Errorf("open metadata database: pool_max_conns %q is not a positive number", v)
		}
	}
	if cfg.ConnectTimeout == 0 {
		// A database that does not answer (a host gone, a partition) must
		// fail a request within a bound, not after the kernel gives up.
		cfg.ConnectTimeout = connectTimeout
	}
	if _, ok := cfg.RuntimeParams["application_name"]; !ok {
		cfg.RuntimeParams["application_name"] = "bulwark"
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open metadata database %s: %w", cfg.Host, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// A successful Update is durable: a database whose default lets a
	// commit return before its WAL is flushed is overridden for Bulwark's
	// sessions (remote_apply and the like are stronger and kept).
	var sync string
	if err := conn.QueryRow(ctx, "SHOW synchronous_commit").Scan(&sync); err != nil {
		return nil, fmt.Errorf("open metadata database: %w", err)
	}
	if sync == "off" {
		cfg.RuntimeParams["synchronous_commit"] = "on"
	}
	if err := migrate(ctx, conn); err != nil {
		return nil, fmt.Errorf("open metadata database %s: %w", cfg.Database, err)
	}
	s := &Store{
		pool: newPool(cfg, size), pageMin: 16, pageMax: 512,
		reqs: make(chan *request, maxGroup), stop: make(chan struct{}), ctx: context.Background(),
	}
	for range DefaultCommitters {
		s.committers.Add(1)
		go s.committer()
	}
	return s, nil
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{Commits: s.commits.Load(), Transactions: s.transactions.Load(), Retries: s.retries.Load()}
}

// enter registers a transaction, unless the store is closed.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return meta.ErrClosed
	}
	s.inflight.Add(1)
	return nil
}

// Close waits for the transactions in progress, stops the committers and
// closes the connections.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	s.inflight.Wait()
	close(s.stop)
	s.committers.Wait()
	s.pool.close()
	return nil
}

// View implements meta.Store. A read-only REPEATABLE READ transaction
// cannot lose a serialization conflict, so fn runs once.
func (s *Store) View(ctx context.Context, fn func(meta.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	conn, err := s.pool.acquire(ctx)
	if err != nil {
		return err
	}
	t := &tx{s: s, conn: conn, ctx: ctx, begin: "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}
	ferr := call(fn, t)
	s.pool.release(conn, t.rollback())
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case t.err != nil:
		return t.err
	}
	return ferr
}

// commit sends the pending writes and COMMIT in one round trip and reports
// whether the connection can be used again. COMMIT does not take the
// caller's cancellation: cancelling must not turn a commit into one of
// unknown outcome.
func (t *tx) commit() (err error, reusable bool) {
	if t.begin != "" && len(t.pending) == 0 {
		return nil, true // nothing was sent: nothing to commit
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(t.ctx), commitTimeout)
	defer cancel()
	b := &pgx.Batch{}
	if t.begin != "" {
		b.Queue(t.begin)
	}
	for _, st := range t.pending {
		b.Queue(st.sql, st.args...)
	}
	b.Queue("COMMIT")
	br := t.conn.SendBatch(ctx, b)
	t.begin, t.pending = "", nil
	if t.s.commitSent != nil {
		t.s.commitSent(t.conn)
	}
	for i := 0; i < b.Len()-1 && err == nil; i++ {
		_, err = br.Exec()
	}
	var tag pgconn.CommandTag
	if err == nil {
		tag, err = br.Exec()
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	var pgErr *pgconn.PgError
	switch {
	case err == nil && tag.String() == "COMMIT":
		return nil, true
	case err == nil:
		// The server had aborted the transaction, and COMMIT rolled it back.
		return fmt.Errorf("commit: transaction was aborted (%s)", tag), true
	case errors.As(err, &pgErr):
		// The server answered with an error: a write failed, or the
		// commit did (a serialization failure), and nothing committed.
		return fmt.Errorf("commit: %w", unavailable(err)), t.rollback()
	case pgconn.SafeToRetry(err):
		// Nothing was sent: the server rolls back when the connection goes.
		return fmt.Errorf("commit: %w", unavailable(err)), false
	default:
		return fmt.Errorf("commit: %w: %w", meta.ErrUnknownOutcome, err), false
	}
}

// rollback ends the transaction without committing and reports whether the
// connection can be used again.
func (t *tx) rollback() bool {
	switch {
	case t.conn.IsClosed() || t.suspect:
		return false
	case t.begin != "":
		return true // BEGIN never went
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := t.conn.Exec(ctx, "ROLLBACK")
	return err == nil
}

// retryable reports whether err is a conflict that running fn again, in a
// new transaction, may resolve.
func retryable(err error) bool {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return false
	}
	switch pgErr.Code {
	case "40001", "40P01": // serialization_failure, deadlock_detected
		return true
	}
	return false
}

// call runs fn, turning a panic into an error.
func call(fn func(meta.Tx) error, t meta.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("meta: transaction panicked: %v", p)
		}
	}()
	return fn(t)
}

func randN(n int64) int64 { return rand.Int64N(n) }
