package pg

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/metatest"
	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
)

// opener returns a metatest.Opener whose stores live in one test
// database, one schema per directory, so reopening a directory reopens its
// store.
func opener(t *testing.T, tune func(*Store)) metatest.Opener {
	db := pgtest.Database(t)
	var mu sync.Mutex
	schemas := map[string]string{}
	return func(t *testing.T, dir string) meta.Store {
		mu.Lock()
		dsn, ok := schemas[dir]
		if !ok {
			dsn = pgtest.Schema(t, db, fmt.Sprintf("s%d", len(schemas)))
			schemas[dir] = dsn
		}
		mu.Unlock()
		s, err := Open(context.Background(), dsn)
		if err != nil {
			t.Fatal(err)
		}
		if tune != nil {
			tune(s)
		}
		return s
	}
}

// disconnect ends tx's backend from another connection, as a database
// restart or a failover does, and waits until it is gone.
func disconnect(t *testing.T, mtx meta.Tx) {
	tx := mtx.(*tx)
	ctx := context.Background()
	conn, err := pgx.ConnectConfig(ctx, tx.s.pool.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := tx.conn.PgConn().PID()
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_terminate_backend($1, 60000)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate backend %d: %v %v", pid, ok, err)
	}
}

func TestConformance(t *testing.T) {
	metatest.RunWith(t, opener(t, nil), metatest.Options{Shared: true, Disconnect: disconnect})
}

// TestConformanceSmallPages runs the suite with pages of two rows, so that
// every iteration crosses pages and turns at their edges.
func TestConformanceSmallPages(t *testing.T) {
	metatest.RunWith(t, opener(t, func(s *Store) { s.pageMin, s.pageMax = 1, 2 }), metatest.Options{Shared: true})
}

// TestNaiveFeedSkips shows that metatest's feed ordering case catches a
// feed numbered by a bare SEQUENCE: the transactions of several gateways
// commit out of the order of their numbers, and a reader following the
// feed passes records that commit later below its cursor.
func TestNaiveFeedSkips(t *testing.T) {
	open := opener(t, func(s *Store) { s.naiveSeq = true })
	for round := 1; round <= 5; round++ {
		dir := t.TempDir()
		var ss []meta.Store
		for range metatest.Gateways {
			ss = append(ss, open(t, dir))
		}
		skipped, err := metatest.CheckFeedOrder(context.Background(), ss, 8, 40)
		for _, s := range ss {
			s.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(skipped) > 0 {
			t.Logf("round %d: the reader skipped %d records: %v", round, len(skipped), skipped)
			return
		}
	}
	t.Fatal("five rounds of concurrent appends without the commit-ordering lock skipped nothing")
}

// TestMigrations opens a database twice (the second open finds the schema
// current) and refuses one migrated by a newer binary.
func TestMigrations(t *testing.T) {
	dsn := pgtest.Database(t)
	ctx := context.Background()
	for range 2 {
		s, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var versions []int
	rows, _ := conn.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil || len(versions) != SchemaVersion() || versions[0] != 1 {
		t.Fatalf("schema_migrations holds %v (%v), want 1..%d", versions, err, SchemaVersion())
	}
	if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", SchemaVersion()+1); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(ctx, dsn); err == nil {
		s.Close()
		t.Fatal("opened a database whose schema is newer than the binary's")
	} else {
		t.Logf("newer schema: %v", err)
	}
}

// TestRetries has a second gateway change a key between an Update's read
// and its write: the Update loses the serialization conflict and runs
// again, reading the new value, where committing would lose an update.
func TestRetries(t *testing.T) {
	open := opener(t, nil)
	dir := t.TempDir()
	a, b := open(t, dir).(*Store), open(t, dir).(*Store)
	defer a.Close()
	defer b.Close()
	ctx := context.Background()
	calls := 0
	err := a.Update(ctx, func(tx meta.Tx) error {
		calls++
		v := tx.Get("r", []byte("n"))
		if calls == 1 {
			err := b.Update(ctx, func(tx meta.Tx) error { return tx.Put("r", []byte("n"), []byte("b")) })
			if err != nil {
				return err
			}
		}
		return tx.Put("r", []byte("n"), append(v, 'a'))
	})
	if err != nil {
		t.Fatal(err)
	}
	var v []byte
	if err := a.View(ctx, func(tx meta.Tx) error { v = tx.Get("r", []byte("n")); return nil }); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || string(v) != "ba" || a.Stats().Retries != 1 {
		t.Fatalf("fn ran %d times, value %q, %d retries; want 2 runs, \"ba\", 1 retry", calls, v, a.Stats().Retries)
	}
}

// TestGroupCommit shows concurrent Updates sharing commits, and a failing
// function in a group leaving the others' writes.
func TestGroupCommit(t *testing.T) {
	s := opener(t, nil)(t, t.TempDir()).(*Store)
	defer s.Close()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 30 {
				err := s.Update(context.Background(), func(tx meta.Tx) error {
					if _, err := tx.NextSeq("feed"); err != nil {
						return err
					}
					return tx.Put("g", []byte(fmt.Sprint(w, "/", i)), []byte("v"))
				})
				if err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	st := s.Stats()
	if st.Transactions != 480 || st.Commits >= st.Transactions {
		t.Fatalf("%d transactions in %d commits: want 480 in fewer", st.Transactions, st.Commits)
	}
	t.Logf("%d transactions in %d commits, %d retries", st.Transactions, st.Commits, st.Retries)
}
