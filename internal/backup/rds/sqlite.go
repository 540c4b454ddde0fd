package rds

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// An SQLite database is copied by the sqlite3 program, the reference
// implementation, with the online backup API inside one read transaction:
// a page-for-page copy of the database as of the transaction's start,
// whatever the application writes meanwhile. A WAL database keeps taking
// writes while it is copied; a rollback-journal database makes its writers
// wait (busy timeout) until the copy ends, as any consistent read does.
// The copy lands in a scratch file, is streamed into the vault as one
// entry, and is removed. Page-for-page matters for the next backup: the
// pages that did not change stay where they were, so the vault's
// content-defined chunks of them are the ones it holds already (VACUUM
// INTO would renumber pages and defeat that).

// Keys of an SQLite point's ResourceMetadata and restore metadata.
const (
	// sqliteKey is the vault entry of the database file.
	sqliteKey = "database.sqlite"

	sqliteMetaPath        = "Path"          // the backed-up file
	sqliteMetaVersion     = "SQLiteVersion" // of the sqlite3 program that copied it
	sqliteMetaPageSize    = "PageSize"
	sqliteMetaPageCount   = "PageCount"
	sqliteMetaJournalMode = "JournalMode"
	sqliteMetaSize        = "Size"     // bytes of the copy
	sqliteMetaFileMode    = "FileMode" // permission bits of the source, octal

	// sqliteMetaTargetPath is the restore's required target file.
	sqliteMetaTargetPath = "TargetPath"
	// metaInstanceID names the restored database in the job's
	// CreatedResourceArn; derived from the target when absent.
	metaInstanceID = "DBInstanceIdentifier"
	// metaRestoreTime asks for a point-in-time restore.
	metaRestoreTime = "RestoreTime"
)

// sqliteMagic starts every SQLite database file.
const sqliteMagic = "SQLite format 3\x00"

// sqliteBusyTimeout is how long the copy waits for a writer's lock before
// it fails.
const sqliteBusyTimeout = time.Minute

// SQLiteConfig configures the SQLite engine.
type SQLiteConfig struct {
	// ScratchDir holds the copy of a database between the database and
	// the vault, and a restore's file until it is checked; it needs room
	// for the largest database backed up at once. Default os.TempDir(); a
	// directory given here is Bulwark's own, and what a crash left in it
	// is removed when the engine is made.
	ScratchDir string
	// Space admits the copy's bytes on ScratchDir's filesystem (the
	// region's disk guard when ScratchDir is under its data directory);
	// nil admits everything.
	Space backup.Space
	// Program is the sqlite3 program; default "sqlite3" on PATH.
	Program string
}

// SQLite is the engine of SQLite databases (backup.EngineSQLite). A
// registration's Settings give the database file's absolute Path.
type SQLite struct {
	cfg SQLiteConfig
}

// sqliteScratchPrefix starts the name of every scratch directory of the
// engine.
const sqliteScratchPrefix = "bulwark-sqlite-"

// NewSQLite returns the SQLite engine.
func NewSQLite(cfg SQLiteConfig) *SQLite {
	if cfg.Program == "" {
		cfg.Program = "sqlite3"
	}
	if cfg.ScratchDir != "" {
		sweepScratchDir(cfg.ScratchDir, sqliteScratchPrefix)
	} else {
		cfg.ScratchDir = os.TempDir()
	}
	return &SQLite{cfg: cfg}
}

// sweepScratchDir removes what a crash left in a scratch directory of
// Bulwark's: no job runs yet when an engine is made.
func sweepScratchDir(dir, prefix string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), prefix) {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

func badParam(format string, args ...any) error {
	return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf(format, args...)}
}

func (s *SQLite) program() (string, error) {
	p, err := exec.LookPath(s.cfg.Program)
	if err != nil {
		return "", badParam("The %s program is not installed (not found on PATH): Bulwark runs it to copy SQLite databases consistently. Install it (Debian: apt-get install sqlite3).", s.cfg.Program)
	}
	return p, nil
}

// Validate checks that Path is an absolute path to a readable SQLite
// database and that the sqlite3 program is there to copy it.
func (s *SQLite) Validate(ctx context.Context, reg *backup.Registered, password string) error {
	if password != "" {
		return badParam("An SQLite database has no password.")
	}
	path := reg.Settings[backup.SettingPath]
	if err := checkSQLiteFile(path); err != nil {
		return err
	}
	prog, err := s.program()
	if err != nil {
		return err
	}
	// The file has the header; the program opening it catches what the
	// header does not show (a database the program's version cannot read).
	_, err = s.run(ctx, prog, "", []string{"-readonly", "-bail", "-batch", path}, ".timeout 10000\nSELECT count(*) FROM sqlite_schema;\n")
	if err != nil {
		return badParam("SQLite cannot read %s: %v", path, err)
	}
	return nil
}

// checkSQLiteFile says what is wrong with path as an SQLite database.
func checkSQLiteFile(path string) error {
	if path == "" {
		return &backup.Error{Kind: backup.ErrMissingParameter, Message: "Missing setting Path: the absolute path of the SQLite database file."}
	}
	if !filepath.IsAbs(path) || filepath.Clean(path) != path {
		return badParam("Path %q is not a clean absolute path.", path)
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return badParam("SQLite database %s does not exist.", path)
	}
	if err != nil {
		return badParam("SQLite database %s cannot be read: %v.", path, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return badParam("SQLite database %s cannot be read: %v.", path, err)
	}
	if !st.Mode().IsRegular() {
		return badParam("%s is not a regular file.", path)
	}
	head := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, head); err != nil || string(head) != sqliteMagic {
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			return badParam("SQLite database %s cannot be read: %v.", path, err)
		}
		return badParam("%s is not an SQLite database (no \"SQLite format 3\" header).", path)
	}
	return nil
}

// run runs the sqlite3 program with args, script on its standard input,
// in dir, and returns its standard output. Its error carries the
// program's own message.
func (s *SQLite) run(ctx context.Context, prog, dir string, args []string, script string) (string, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader(script)
	var out bytes.Buffer
	stderr := &stderrTail{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = &out, stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return "", errors.New(headLine(msg))
		}
		return "", err
	}
	return out.String(), nil
}

// Backup copies the database inside one read transaction into a scratch
// file and puts it as the entry sqliteKey.
func (s *SQLite) Backup(ctx context.Context, reg *backup.Registered, _ string, run *backup.BackupRun) (backup.BackupResult, error) {
	path := reg.Settings[backup.SettingPath]
	if err := checkSQLiteFile(path); err != nil {
		return backup.BackupResult{}, err
	}
	prog, err := s.program()
	if err != nil {
		return backup.BackupResult{}, err
	}
	st, err := os.Stat(path)
	if err != nil {
		return backup.BackupResult{}, err
	}
	// The copy is at most the database and its write-ahead log.
	need := st.Size()
	if wst, err := os.Stat(path + "-wal"); err == nil {
		need += wst.Size()
	}
	if err := run.Expect(ctx, 1, st.Size()); err != nil {
		return backup.BackupResult{}, err
	}
	release, err := s.admit(need)
	if err != nil {
		return backup.BackupResult{}, err
	}
	defer release()
	dir, err := os.MkdirTemp(s.cfg.ScratchDir, sqliteScratchPrefix)
	if err != nil {
		return backup.BackupResult{}, fmt.Errorf("sqlite scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)

	// The SELECT opens the read transaction that .backup then copies
	// from: every page as of that instant. The pragmas are read in it.
	script := fmt.Sprintf(".timeout %d\nBEGIN;\n"+
		"SELECT sqlite_version(), (SELECT page_size FROM pragma_page_size()), (SELECT page_count FROM pragma_page_count()), (SELECT journal_mode FROM pragma_journal_mode());\n"+
		".backup main snapshot.sqlite\nCOMMIT;\n", sqliteBusyTimeout.Milliseconds())
	out, err := s.run(ctx, prog, dir, []string{"-readonly", "-bail", "-batch", "-separator", "|", path}, script)
	if err != nil {
		if ctx.Err() != nil {
			return backup.BackupResult{}, err
		}
		return backup.BackupResult{}, s.explain(fmt.Errorf("copy SQLite database %s: %w", path, err))
	}
	fields := strings.Split(strings.TrimSpace(out), "|")
	if len(fields) != 4 {
		return backup.BackupResult{}, fmt.Errorf("copy SQLite database %s: unexpected output %q", path, out)
	}
	snap := filepath.Join(dir, "snapshot.sqlite")
	f, err := os.Open(snap)
	if err != nil {
		return backup.BackupResult{}, fmt.Errorf("copy SQLite database %s: %w", path, err)
	}
	defer f.Close()
	sst, err := f.Stat()
	if err != nil {
		return backup.BackupResult{}, err
	}
	e := vault.Entry{Key: sqliteKey, Size: sst.Size(), ContentType: "application/vnd.sqlite3", LastModified: st.ModTime().UnixNano()}
	if err := run.Put(ctx, e, f); err != nil {
		return backup.BackupResult{}, err
	}
	return backup.BackupResult{Metadata: map[string]string{
		sqliteMetaPath:        path,
		sqliteMetaVersion:     fields[0],
		sqliteMetaPageSize:    fields[1],
		sqliteMetaPageCount:   fields[2],
		sqliteMetaJournalMode: fields[3],
		sqliteMetaSize:        strconv.FormatInt(sst.Size(), 10),
		sqliteMetaFileMode:    fmt.Sprintf("%04o", st.Mode().Perm()),
	}}, nil
}

func (s *SQLite) admit(n int64) (func(), error) {
	if s.cfg.Space == nil {
		return func() {}, nil
	}
	return s.cfg.Space.Admit(n)
}

func (s *SQLite) explain(err error) error {
	if s.cfg.Space == nil {
		return err
	}
	return s.cfg.Space.Explain(err)
}

// RestoreMetadata names the source file; a restore needs a TargetPath of
// its own.
func (s *SQLite) RestoreMetadata(p *backup.RecoveryPoint) map[string]string {
	md := map[string]string{}
	for _, k := range []string{sqliteMetaPath, sqliteMetaVersion, sqliteMetaPageSize, sqliteMetaJournalMode, sqliteMetaSize} {
		if v, ok := p.ResourceMetadata[k]; ok {
			md[k] = v
		}
	}
	return md
}

// CheckRestore judges a restore's target: a new file, beside no journal
// or write-ahead log, in a directory that exists, and not the source.
func (s *SQLite) CheckRestore(ctx context.Context, account string, p *backup.RecoveryPoint, md map[string]string) (string, error) {
	target, err := sqliteTarget(p, md)
	if err != nil {
		return "", err
	}
	name, err := restoredInstanceName(md, strings.TrimSuffix(filepath.Base(target), filepath.Ext(target)))
	if err != nil {
		return "", err
	}
	return backup.RDSARN(regionOfPoint(p), account, name), nil
}

// sqliteTarget returns the restore's TargetPath once it passes.
func sqliteTarget(p *backup.RecoveryPoint, md map[string]string) (string, error) {
	if md[metaRestoreTime] != "" {
		return "", badParam("An SQLite recovery point is restored as it was backed up: it has no point-in-time restore (RestoreTime).")
	}
	target := md[sqliteMetaTargetPath]
	if target == "" {
		return "", &backup.Error{Kind: backup.ErrMissingParameter, Message: "Missing restore metadata TargetPath: the absolute path of a new file to restore the SQLite database into."}
	}
	if !filepath.IsAbs(target) || filepath.Clean(target) != target {
		return "", badParam("TargetPath %q is not a clean absolute path.", target)
	}
	src := p.ResourceMetadata[sqliteMetaPath]
	if sameFile(target, src) {
		return "", badParam("TargetPath %s is the backed-up database itself: restore into a new file, then move it into place once the application is stopped.", target)
	}
	parent := filepath.Dir(target)
	if st, err := os.Stat(parent); err != nil || !st.IsDir() {
		return "", badParam("The directory of TargetPath, %s, does not exist.", parent)
	}
	// A journal or log left beside the target would be applied to the
	// restored file the first time it is opened.
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if _, err := os.Lstat(target + suffix); err == nil {
			return "", badParam("TargetPath %s exists already: a restore writes a new file and never replaces one.", target+suffix)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return "", badParam("TargetPath %s cannot be checked: %v.", target+suffix, err)
		}
	}
	return target, nil
}

// same reports whether two paths name one file, following symbolic links
// of the directories.
func sameFile(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	if a == b {
		return true
	}
	da, err1 := filepath.EvalSymlinks(filepath.Dir(a))
	db, err2 := filepath.EvalSymlinks(filepath.Dir(b))
	if err1 == nil && err2 == nil && filepath.Join(da, filepath.Base(a)) == filepath.Join(db, filepath.Base(b)) {
		return true
	}
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// Restore writes the point's database file beside TargetPath, syncs it,
// has SQLite check its integrity, and only then gives it its name.
func (s *SQLite) Restore(ctx context.Context, run *backup.RestoreRun) error {
	target, err := sqliteTarget(run.Point, run.Metadata)
	if err != nil {
		return err
	}
	prog, err := s.program()
	if err != nil {
		return err
	}
	var entry *vault.Entry
	var ref vault.ObjectRef
	err = run.Entries(ctx, func(e vault.Entry, r vault.ObjectRef) error {
		if e.Key == sqliteKey {
			entry, ref = &e, r
		}
		return nil
	})
	if err != nil {
		return err
	}
	if entry == nil {
		return fmt.Errorf("recovery point %s has no %s", run.Point.ARN, sqliteKey)
	}
	perm := fs.FileMode(0o600)
	if m, err := strconv.ParseUint(run.Point.ResourceMetadata[sqliteMetaFileMode], 8, 32); err == nil {
		perm = fs.FileMode(m).Perm()
	}
	tmp, err := writeRestoreFile(ctx, run, *entry, ref, target, perm)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // gone once linked; there on every failure
	uri := "file:" + (&url.URL{Path: tmp}).EscapedPath() + "?immutable=1"
	out, err := s.run(ctx, prog, "", []string{"-readonly", "-batch", uri}, "PRAGMA integrity_check;\n")
	if err != nil {
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored database failed SQLite's integrity check: %v", err)}
	}
	if res := strings.TrimSpace(out); res != "ok" {
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored database failed SQLite's integrity check: %s", headLine(res))}
	}
	// A link, not a rename: it fails rather than replace a file that
	// appeared at the target since the restore was asked for.
	if err := os.Link(tmp, target); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("TargetPath %s was created while the restore ran; it was left alone.", target)}
		}
		return fmt.Errorf("restore %s: %w", target, err)
	}
	if err := os.Remove(tmp); err != nil {
		return fmt.Errorf("restore %s: %w", target, err)
	}
	if err := fsyncDir(filepath.Dir(target)); err != nil {
		return fmt.Errorf("restore %s: %w", target, err)
	}
	return run.Restored(ctx, *entry)
}

// writeRestoreFile writes an entry's data into a new hidden file beside
// target, fsynced, and returns its path. The data is complete and
// matches the vault's SHA-256, or the file is removed and the error
// returned.
func writeRestoreFile(ctx context.Context, run *backup.RestoreRun, e vault.Entry, ref vault.ObjectRef, target string, perm fs.FileMode) (string, error) {
	rd, err := run.Open(ctx, e, ref)
	if err != nil {
		return "", err
	}
	defer rd.Close()
	f, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".restore-")
	if err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	w := bufio.NewWriterSize(f, 1<<20)
	if _, err := io.Copy(w, rd); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	if err := w.Flush(); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	if err := f.Chmod(perm); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	if err := f.Sync(); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("restore %s: %w", target, err)
	}
	ok = true
	return f.Name(), nil
}

func fsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// restoredInstanceName is the name of a restored database in its RDS ARN: the
// metadata's DBInstanceIdentifier, which must be a valid RDS name, or one
// made of base (a file or database name): its letters and digits, other
// characters as hyphens, prefixed with "db-" unless it starts with a
// letter, at most 63 characters.
func restoredInstanceName(md map[string]string, base string) (string, error) {
	if id, ok := md[metaInstanceID]; ok {
		if !backup.ValidRDSName(id) {
			return "", badParam("Invalid DBInstanceIdentifier %q: 1 to 63 letters, digits or hyphens, beginning with a letter, with no two hyphens in a row or at the end.", id)
		}
		return id, nil
	}
	var b strings.Builder
	hyphen := false
	for _, r := range base {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
			hyphen = false
		default:
			if !hyphen && b.Len() > 0 {
				b.WriteByte('-')
				hyphen = true
			}
		}
	}
	name := strings.TrimRight(b.String(), "-")
	if name == "" || !(name[0] >= 'a' && name[0] <= 'z' || name[0] >= 'A' && name[0] <= 'Z') {
		name = "db-" + name
	}
	if len(name) > 63 {
		name = name[:63]
	}
	name = strings.TrimRight(name, "-")
	if !backup.ValidRDSName(name) {
		name = "restored"
	}
	return name, nil
}

// regionOfPoint is the region of a recovery point's ARN: where it is
// restored.
func regionOfPoint(p *backup.RecoveryPoint) string {
	f := strings.SplitN(p.ARN, ":", 5)
	if len(f) < 5 {
		return ""
	}
	return f[3]
}

// stderrTail keeps the last max bytes written to it: a program's error
// output, bounded.
type stderrTail struct {
	max int
	b   []byte
}

func (t *stderrTail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *stderrTail) String() string { return string(t.b) }

func headLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
