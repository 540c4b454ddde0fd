package pg

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// migrations are the schema's versions, in order: migrations[i] takes the
// database from version i to i+1. A migration, once released, never
// changes; a new schema is a new entry.
var migrations = []string{
	// 1: one table for every keyspace. The keyspace is a column, not a
	// table of its own: keyspaces are created on first write, and DDL in
	// the middle of a request's transaction would take locks on the
	// catalog; the primary key (space, key) makes a keyspace a contiguous
	// range of one B-tree, which is all iteration needs. space is compared
	// bytewise ("C"), key is bytea, compared bytewise as meta requires.
	`CREATE TABLE meta_kv (
		space text COLLATE "C" NOT NULL,
		key bytea NOT NULL,
		value bytea NOT NULL,
		PRIMARY KEY (space, key)
	)`,
}

// migrationLock is the advisory lock key under which one process at a time
// migrates a database (the first of the two int4 keys; see lockClass).
const migrationLock = 1

// migrate brings the database's schema to the latest version. Gateways
// opening at once take turns under a session advisory lock; each migration
// commits with its version row, so a crash between two leaves a schema at
// a known version.
func migrate(ctx context.Context, conn *pgx.Conn) (err error) {
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1, $2)", lockClass, migrationLock); err != nil {
		return fmt.Errorf("migrate: lock: %w", err)
	}
	defer func() {
		if _, uerr := conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1, $2)", lockClass, migrationLock); uerr != nil && err == nil {
			err = fmt.Errorf("migrate: unlock: %w", uerr)
		}
	}()
	_, err = conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now()
	)`)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	var version int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&version); err != nil {
		return fmt.Errorf("migrate: read version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("migrate: the database's schema is at version %d, newer than this binary's %d: run a newer Bulwark", version, len(migrations))
	}
	for v := version + 1; v <= len(migrations); v++ {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion is the schema version this binary migrates databases to.
func SchemaVersion() int { return len(migrations) }
