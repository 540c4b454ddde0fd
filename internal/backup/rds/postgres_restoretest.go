package rds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

var _ TestEngine = (*Postgres)(nil)

// TestRestoreMetadata restores a test into a new data directory
// ROOT/restore-tests/restore-test-<id>, short enough for the server's
// socket, and starts its server on a port free now. ROOT is the engine's
// directory when the server's user can enter it (Bulwark runs as that
// user, or the region's data directory lets it pass), else the engine's
// root in the system's temporary directory (outsideScratchRoot): a
// region's data directory is 0700 and root's, which the postgres user
// cannot enter, and opening it to that user would open it to more.
func (pg *Postgres) TestRestoreMetadata(p *backup.RecoveryPoint, id string) map[string]string {
	root := pg.cfg.Dir
	if u, err := pg.serverUser(); err == nil && !reachable(filepath.Join(root, restoreTestsDir), u) {
		root = pg.outsideScratchRoot()
	}
	var dir string
	if root == pg.cfg.Dir {
		dir = makeScratchDir(root, 0o755)
	} else {
		dir = filepath.Join(root, restoreTestsDir)
		if err := makeOutsideScratchDir(root); err != nil {
			pg.log.Warn("postgres restore test: scratch directory", "dir", dir, "err", err) // refused by CheckRestore
		}
	}
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
// restore tests, in either of its roots.
func (pg *Postgres) ScratchPath(path string) bool {
	return inScratchDir(pg.cfg.Dir, path) || inScratchDir(pg.outsideScratchRoot(), path)
}

// outsideScratchRoot is the engine's root for restore tests out of the
// region's data directory: a directory of the system's temporary
// directory named for the engine's directory, so that it is the same
// after a restart (a test's target is deleted then) and each region has
// its own. It and its restore-tests directory are Bulwark's user's, mode
// 0711: the server's user passes through to its data directory (its own,
// 0700), no one else may list or change them.
func (pg *Postgres) outsideScratchRoot() string {
	dir, err := filepath.Abs(pg.cfg.Dir)
	if err != nil {
		dir = pg.cfg.Dir
	}
	h := sha256.Sum256([]byte(dir))
	return filepath.Join(os.TempDir(), "bulwark-pg-"+hex.EncodeToString(h[:6]))
}

// makeOutsideScratchDir makes root and its restore-tests directory, or
// checks them when they exist: a directory of the system's temporary
// directory could have been made by another user first.
func makeOutsideScratchDir(root string) error {
	for _, d := range []string{root, filepath.Join(root, restoreTestsDir)} {
		if err := os.Mkdir(d, 0o711); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := ownScratchDir(d); err != nil {
			return err
		}
		if err := os.Chmod(d, 0o711); err != nil {
			return err
		}
	}
	return nil
}

// ownScratchDir checks that a directory above a scratch data directory is
// Bulwark's own: a real directory (not a link), of Bulwark's user, that
// no one else may write to. The restore writes below it as Bulwark's
// user, which must not be steered elsewhere.
func ownScratchDir(d string) error {
	fi, err := os.Lstat(d)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", d)
	case ok && int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to user %d, not to Bulwark's user %d", d, st.Uid, os.Geteuid())
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s may be written to by others (mode %04o)", d, fi.Mode().Perm())
	}
	return nil
}

// checkScratchTarget refuses a restore test whose data directory is not
// in a scratch directory of the engine's that is Bulwark's own.
func (pg *Postgres) checkScratchTarget(dir string) error {
	if !pg.ScratchPath(dir) {
		return invalid("%s is not the data directory of a restore test.", dir)
	}
	tests := filepath.Dir(dir)
	for _, d := range []string{tests, filepath.Dir(tests)} {
		if err := ownScratchDir(d); err != nil {
			return invalid("The restore test's scratch directory cannot be used: %v.", err)
		}
	}
	return nil
}

// reachable reports whether the server's user can enter every existing
// directory of path and above; those missing, a restore makes passable.
func reachable(path string, u *serverUser) bool {
	for d := path; ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && (!fi.IsDir() || !searchable(fi, u)) {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

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
