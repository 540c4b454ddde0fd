package rds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

var _ TestEngine = (*Postgres)(nil)

// TestRestoreMetadata restores a test into a new data directory
// Dir/restore-tests/restore-test-<id>, short enough for the server's
// socket, and starts its server on a port free now. The server's user
// must be able to enter Dir (checked when the restore is asked for).
func (pg *Postgres) TestRestoreMetadata(p *backup.RecoveryPoint, id string) map[string]string {
	dir := makeScratchDir(pg.cfg.Dir, 0o755)
	port := ""
	if l, err := net.Listen("tcp", "127.0.0.1:0"); err == nil {
		port = strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
		l.Close()
	}
	return map[string]string{
		MetaDataDirectory: filepath.Join(dir, scratchName("", "-", id, 63)),
		MetaPort:          port,
		MetaInstanceID:    scratchName(resourceName(p.ResourceARN), "-", id, 63),
	}
}

// ScratchPath reports whether path is a data directory of the engine's
// restore tests.
func (pg *Postgres) ScratchPath(path string) bool { return inScratchDir(pg.cfg.Dir, path) }

// pgNotChecked are the entries of a base backup a running server may
// remove or never had: its WAL, statistics and logical decoding state,
// and the backup's own label and manifest.
func pgNotChecked(key string) bool {
	for _, p := range []string{"pg_wal/", "pg_stat/", "pg_stat_tmp/", "pg_logical/", "pg_replslot/"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	switch key {
	case "backup_label", "tablespace_map", "backup_manifest", "backup_label.old":
		return true
	}
	return skipOnRestore[key]
}

// ValidateRestore checks the restored server: it answers SELECT 1 on
// its socket, out of recovery, as the cluster the point was taken of (its
// system identifier); every file of the point's base backup is in the data
// directory. Their data was checked against the SHA-256 the point recorded
// as the restore wrote it (a restore fails otherwise); once the server has
// run recovery its files are no longer the backup's bytes, so they are not
// compared again. Then the check's query runs (in ValidationDatabase,
// default postgres), and its command with PGHOST (the socket's
// directory), PGPORT, PGUSER, PGDATABASE, PGDATA and BULWARK_RESTORE_PATH
// (the data directory) set.
func (pg *Postgres) ValidateRestore(ctx context.Context, run *backup.RestoreRun, check backup.RestoreCheck) (string, error) {
	dir, port := run.Metadata[MetaDataDirectory], run.Metadata[MetaPort]
	rm := run.Point.ResourceMetadata
	user := rm[pgMetaSuperuser]
	if user == "" {
		user = "postgres"
	}
	db := check.Database
	if db == "" {
		db = "postgres"
	}
	src, err := pointSource(run)
	if err != nil {
		return "", err
	}
	files := 0
	err = src.base.Entries(ctx, func(e vault.Entry, _ vault.ObjectRef) error {
		if e.Metadata[pgEntryType] == pgTypeDir || pgNotChecked(e.Key) {
			return nil
		}
		rel := filepath.FromSlash(e.Key)
		if !filepath.IsLocal(rel) {
			return fmt.Errorf("entry %q is not a path inside a data directory", e.Key)
		}
		if _, err := os.Lstat(filepath.Join(dir, rel)); errors.Is(err, fs.ErrNotExist) {
			return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("File %s of the recovery point's base backup is missing from the restored data directory %s.", e.Key, dir)}
		} else if err != nil {
			return err
		}
		files++
		return nil
	})
	if err != nil {
		return "", err
	}
	c, err := pg.connectRestored(ctx, dir, port, user, "template1")
	if err != nil {
		return "", err
	}
	var one int
	var inRecovery bool
	var sysID string
	err = c.QueryRow(ctx, "SELECT 1, pg_is_in_recovery(), (SELECT system_identifier::text FROM pg_control_system())").Scan(&one, &inRecovery, &sysID)
	c.Close(context.WithoutCancel(ctx))
	switch {
	case err != nil:
		return "", &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored server on port %s does not answer SELECT 1: %v", port, err)}
	case inRecovery:
		return "", &backup.Error{Kind: backup.ErrInvalidRequest, Message: "The restored server is still in recovery."}
	case rm[pgMetaSystemID] != "" && sysID != rm[pgMetaSystemID]:
		return "", &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored cluster's system identifier is %s; the recovery point's is %s.", sysID, rm[pgMetaSystemID])}
	}
	if check.Query != "" {
		if err := pg.runValidationQuery(ctx, dir, port, user, db, check.Query); err != nil {
			return "", err
		}
	}
	if err := backup.RunValidationCommand(ctx, run, check.Command, "PGHOST="+dir, "PGPORT="+port, "PGUSER="+user, "PGDATABASE="+db,
		"PGDATA="+dir, "BULWARK_RESTORE_PATH="+dir); err != nil {
		return "", err
	}
	return fmt.Sprintf("the server on port %s answers SELECT 1 as cluster %s, and the %d files of the base backup, checked against their SHA-256 as they were written, are in %s.",
		port, sysID, files, dir), nil
}

// connectRestored connects to a restored server on its socket, as its
// restore's readiness check does.
func (pg *Postgres) connectRestored(ctx context.Context, dir, port, user, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host='%s' port=%s user='%s' dbname='%s' connect_timeout=5 sslmode=disable application_name=bulwark",
		quoteDSN(dir), quoteDSN(port), quoteDSN(user), quoteDSN(db)))
	if err != nil {
		return nil, err
	}
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("Cannot connect to the restored server (database %s): %v", db, err)}
	}
	return c, nil
}

// runValidationQuery runs a ValidationQuery in db and judges its first
// row.
func (pg *Postgres) runValidationQuery(ctx context.Context, dir, port, user, db, q string) error {
	c, err := pg.connectRestored(ctx, dir, port, user, db)
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		return queryFailed(err)
	}
	defer rows.Close()
	var first [][]string
	if rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return queryFailed(err)
		}
		if len(vals) > 0 {
			v := "NULL"
			if vals[0] != nil {
				v = fmt.Sprint(vals[0])
			}
			first = [][]string{{v}}
		}
	}
	for rows.Next() {
	}
	if err := rows.Err(); err != nil {
		return queryFailed(err)
	}
	return backup.CheckValidationQuery(first)
}

// DeleteRestored stops a test's server and removes its data directory;
// it refuses a directory that is not a scratch data directory of the
// engine's.
func (pg *Postgres) DeleteRestored(ctx context.Context, t backup.RestoreTestTarget) error {
	dir := t.Metadata[MetaDataDirectory]
	if !pg.ScratchPath(dir) {
		return invalid("%s is not the data directory of a restore test.", dir)
	}
	if running(dir) {
		if err := pg.stopRestored(ctx, dir); err != nil {
			return err
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete %s: %w", dir, err)
	}
	return nil
}

// stopRestored stops the server of a restored data directory, fast (its
// sessions are cut), as the server user, with the pg_ctl of its version.
func (pg *Postgres) stopRestored(ctx context.Context, dir string) error {
	v, err := os.ReadFile(filepath.Join(dir, "PG_VERSION"))
	if err != nil {
		return fmt.Errorf("stop the server of %s: %w", dir, err)
	}
	major, err := strconv.Atoi(strings.TrimSpace(string(v)))
	if err != nil {
		return fmt.Errorf("stop the server of %s: PG_VERSION %q", dir, v)
	}
	bin, err := pg.serverBinDir(ctx, major)
	if err != nil {
		return fmt.Errorf("stop the server of %s: %w", dir, err)
	}
	u, err := pg.serverUser()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	out, err := u.command(cctx, dir, filepath.Join(bin, "pg_ctl"), "stop", "-D", dir, "-m", "fast", "-w", "-s").CombinedOutput()
	if err != nil && running(dir) {
		return fmt.Errorf("stop the server of %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
	}
	return nil
}
