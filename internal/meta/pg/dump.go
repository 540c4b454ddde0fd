package pg

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/meta"
)

var _ meta.Dumper = (*Store)(nil)

// qSpaces lists the keyspaces holding keys by skipping from one to the
// next on the primary key (a loose index scan: one probe per keyspace,
// not a read of every row), and those whose sequence carries the
// keyspace's name: a keyspace emptied of its keys keeps its sequence's
// position, which a copy must not lose. (Sequences made before they
// carried the name are found through their keyspace's keys only.)
const qSpaces = `WITH RECURSIVE s(space) AS (
	(SELECT space FROM meta_kv ORDER BY space LIMIT 1)
	UNION ALL
	SELECT (SELECT k.space FROM meta_kv k WHERE k.space > s.space ORDER BY k.space LIMIT 1)
	FROM s WHERE s.space IS NOT NULL
)
SELECT space FROM s WHERE space IS NOT NULL
UNION
SELECT d FROM (
	SELECT obj_description(c.oid, 'pg_class') AS d FROM pg_class c
	WHERE c.relkind = 'S' AND c.relname LIKE 'meta\_seq\_%' AND pg_table_is_visible(c.oid)
) AS named WHERE d IS NOT NULL`

// Spaces implements meta.Dumper.
func (s *Store) Spaces(ctx context.Context) ([]string, error) {
	var out []string
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		rows, err := conn.Query(ctx, qSpaces)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list keyspaces: %w", err)
	}
	slices.Sort(out) // bytewise, as meta orders keyspaces
	return slices.Compact(out), nil
}

// Seq implements meta.Dumper.
func (s *Store) Seq(ctx context.Context, space string) (uint64, error) {
	var n int64
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		var err error
		n, err = readSeq(ctx, conn, seqName(space))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("read the sequence of %s: %w", space, err)
	}
	return uint64(n), nil
}

// readSeq returns the last value a sequence handed out, 0 when it does
// not exist or never did.
func readSeq(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, seq string) (int64, error) {
	var exists bool
	if err := q.QueryRow(ctx, qSeqExists, seq).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var n int64
	err := q.QueryRow(ctx, "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM "+pgx.Identifier{seq}.Sanitize()).Scan(&n)
	return n, err
}

// SetSeq implements meta.Dumper. It takes the keyspace's lock, as NextSeq
// does, so it cannot interleave with a transaction drawing from it.
func (s *Store) SetSeq(ctx context.Context, space string, n uint64) error {
	if strings.IndexByte(space, 0) >= 0 {
		return fmt.Errorf("meta: keyspace %q: NUL in a keyspace name", space)
	}
	if n > 1<<63-1 {
		return fmt.Errorf("set the sequence of %s to %d: above PostgreSQL's bigint", space, n)
	}
	seq := seqName(space)
	err := s.withConn(ctx, func(conn *pgx.Conn) error {
		return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, qLock, lockClass, spaceLock(space)); err != nil {
				return err
			}
			for _, q := range createSeq(space, seq) {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			cur, err := readSeq(ctx, tx, seq)
			if err != nil {
				return err
			}
			switch {
			case int64(n) < cur:
				return fmt.Errorf("it is at %d, and a sequence never moves back", cur)
			case int64(n) == cur || n == 0:
				return nil
			}
			_, err = tx.Exec(ctx, "SELECT setval($1::regclass, $2, true)", seq, int64(n))
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("set the sequence of %s to %d: %w", space, n, err)
	}
	s.seqs.Store(space, struct{}{})
	return nil
}

// createSeq returns the statements that create a keyspace's sequence if
// it does not exist and name the keyspace in its comment: the sequence's
// own name is a hash, and Spaces reads the keyspace back from the comment.
func createSeq(space, seq string) []string {
	id := pgx.Identifier{seq}.Sanitize()
	return []string{
		"CREATE SEQUENCE IF NOT EXISTS " + id,
		"COMMENT ON SEQUENCE " + id + " IS " + quoteLiteral(space),
	}
}

// quoteLiteral quotes s as an SQL string literal (COMMENT takes no
// parameters), in the escape-string form, whose meaning does not depend on
// standard_conforming_strings.
func quoteLiteral(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	s = strings.ReplaceAll(s, `'`, `''`)
	return `E'` + s + `'`
}

// withConn runs fn on a connection of the pool, outside any transaction
// of the store's.
func (s *Store) withConn(ctx context.Context, fn func(*pgx.Conn) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.inflight.Done()
	conn, err := s.pool.acquire(ctx)
	if err != nil {
		return err
	}
	err = fn(conn)
	if err != nil {
		err = unavailable(err)
	}
	s.pool.release(conn, err == nil)
	return err
}
