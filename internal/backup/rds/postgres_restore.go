package rds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// Restore metadata keys of a PostgreSQL point.
const (
	MetaDataDirectory = "DataDirectory"
	MetaPort          = "Port"
	MetaInstanceID    = "DBInstanceIdentifier"
)

// restoreWriters is how many files a restore writes at once.
const restoreWriters = 4

// maxSocketPath is the longest path of a Unix socket (sun_path less its
// NUL byte, Linux).
const maxSocketPath = 107

// RestoreMetadata asks for the new data directory and port a restore
// starts a server on, and suggests a name.
func (pg *Postgres) RestoreMetadata(p *backup.RecoveryPoint) map[string]string {
	return map[string]string{MetaDataDirectory: "", MetaPort: "", MetaInstanceID: resourceName(p.ResourceARN) + "-restored"}
}

func resourceName(arn string) string { return arn[strings.LastIndexByte(arn, ':')+1:] }

// pgTarget is a restore's checked metadata.
type pgTarget struct {
	dataDir  string
	port     int
	name     string
	major    int
	binDir   string
	user     *serverUser
	superuse string // the role the readiness check connects as
}

// CheckRestore refuses a restore whose metadata is wrong before the job
// starts: a data directory that is not absolute, not empty, the source's,
// or out of the server user's reach; a port that is taken; no server
// programs of the point's major version.
func (pg *Postgres) CheckRestore(ctx context.Context, account string, p *backup.RecoveryPoint, md map[string]string) (string, error) {
	t, err := pg.checkTarget(ctx, p, md)
	if err != nil {
		return "", err
	}
	region := strings.SplitN(p.ResourceARN, ":", 5)[3]
	return backup.RDSARN(region, account, t.name), nil
}

func (pg *Postgres) checkTarget(ctx context.Context, p *backup.RecoveryPoint, md map[string]string) (*pgTarget, error) {
	rm := p.ResourceMetadata
	if rm[pgMetaMethod] != pgMethodPhysical {
		return nil, invalid("Recovery point %s is not a physical PostgreSQL backup.", p.ARN)
	}
	for k := range md {
		switch k {
		case MetaDataDirectory, MetaPort, MetaInstanceID, MetaEngine, backup.MetaRestoreTime:
		default:
			return nil, invalid("Unknown restore metadata %s: a PostgreSQL restore takes %s, %s, %s and, for a continuous point, RestoreTime.", k, MetaDataDirectory, MetaPort, MetaInstanceID)
		}
	}
	if md[backup.MetaRestoreTime] != "" && !p.IsContinuous() {
		return nil, invalid("RestoreTime applies to continuous recovery points; %s is a snapshot.", p.ARN)
	}
	t := &pgTarget{superuse: rm[pgMetaSuperuser]}
	if t.superuse == "" {
		t.superuse = "postgres"
	}
	var err error
	if t.major, err = strconv.Atoi(rm[pgMetaMajor]); err != nil {
		return nil, invalid("Recovery point %s does not record its PostgreSQL version.", p.ARN)
	}
	t.name = md[MetaInstanceID]
	if t.name == "" {
		t.name = fmt.Sprintf("%s-restored-%d", resourceName(p.ResourceARN), time.Now().Unix())
	}
	if !backup.ValidRDSName(t.name) {
		return nil, invalid("Invalid %s %q: 1 to 63 letters, digits or hyphens, beginning with a letter, with no two hyphens in a row or at the end.", MetaInstanceID, t.name)
	}
	if t.user, err = pg.serverUser(); err != nil {
		return nil, invalid("Cannot start a restored PostgreSQL server: %v.", err)
	}
	if t.dataDir, err = checkDataDir(md[MetaDataDirectory], rm[pgMetaSourceDir], t.user); err != nil {
		return nil, err
	}
	if backup.IsRestoreTest(ctx) {
		if err := pg.checkScratchTarget(t.dataDir); err != nil {
			return nil, err
		}
	}
	if t.port, err = checkPort(md[MetaPort]); err != nil {
		return nil, err
	}
	if t.binDir, err = pg.serverBinDir(ctx, t.major); err != nil {
		return nil, invalid("Cannot restore a PostgreSQL %d backup: %v.", t.major, err)
	}
	return t, nil
}

func checkDataDir(dir, source string, u *serverUser) (string, error) {
	if dir == "" {
		return "", &backup.Error{Kind: backup.ErrInvalidParameter, Message: "Missing restore metadata " + MetaDataDirectory + ": the absolute path of a new, empty data directory for the restored cluster."}
	}
	if !filepath.IsAbs(dir) {
		return "", invalid("%s %q is not an absolute path.", MetaDataDirectory, dir)
	}
	dir = filepath.Clean(dir)
	if dir == "/" || (source != "" && filepath.Clean(source) == dir) {
		return "", invalid("%s %s is the source cluster's data directory: a restore writes a new one.", MetaDataDirectory, dir)
	}
	if n := len(dir) + len("/.s.PGSQL.65535"); n > maxSocketPath {
		return "", invalid("%s %s is too long: the restored server's socket lives in it, and a socket path has at most %d bytes.", MetaDataDirectory, dir, maxSocketPath)
	}
	fi, err := os.Lstat(dir)
	switch {
	case err == nil && !fi.IsDir():
		return "", invalid("%s %s exists and is not a directory.", MetaDataDirectory, dir)
	case err == nil:
		ents, err := os.ReadDir(dir)
		if err != nil {
			return "", invalid("%s %s cannot be read: %v.", MetaDataDirectory, dir, err)
		}
		if len(ents) > 0 {
			return "", invalid("%s %s is not empty: a restore writes into a new or empty directory only.", MetaDataDirectory, dir)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return "", invalid("%s %s: %v.", MetaDataDirectory, dir, err)
	}
	// Every existing directory above it must let the server's user pass;
	// the ones a restore makes, it makes passable.
	for d := filepath.Dir(dir); ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err == nil {
			if !fi.IsDir() {
				return "", invalid("%s %s: %s is not a directory.", MetaDataDirectory, dir, d)
			}
			if !searchable(fi, u) {
				return "", invalid("%s %s: the user %s the restored server runs as cannot enter %s (mode %04o): choose another place or give it search permission.", MetaDataDirectory, dir, u.label(), d, fi.Mode().Perm())
			}
		}
		if d == "/" {
			break
		}
	}
	return dir, nil
}

func (u *serverUser) label() string {
	if u.name == "" {
		return strconv.Itoa(u.uid)
	}
	return u.name
}

// searchable reports whether the server's user may enter a directory.
func searchable(fi fs.FileInfo, u *serverUser) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || u.uid == 0 {
		return true
	}
	perm := fi.Mode().Perm()
	if int(st.Uid) == u.uid {
		return perm&0o100 != 0
	}
	inGroup := int(st.Gid) == u.gid
	if u.cred != nil && slices.Contains(u.cred.Groups, st.Gid) {
		inGroup = true
	}
	if inGroup {
		return perm&0o010 != 0
	}
	return perm&0o001 != 0
}

func checkPort(v string) (int, error) {
	if v == "" {
		return 0, &backup.Error{Kind: backup.ErrInvalidParameter, Message: "Missing restore metadata " + MetaPort + ": a free TCP port for the restored server."}
	}
	port, err := strconv.Atoi(v)
	if err != nil || port < 1 || port > 65535 {
		return 0, invalid("Invalid %s %q: a TCP port number.", MetaPort, v)
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", v))
	if err != nil {
		return 0, invalid("%s %d is in use on 127.0.0.1: the restored server needs a free port.", MetaPort, port)
	}
	l.Close()
	return port, nil
}

// reserve keeps two restores from taking one directory or port at once.
func (pg *Postgres) reserve(t *pgTarget) (release func(), err error) {
	keys := []string{"dir:" + t.dataDir, "port:" + strconv.Itoa(t.port)}
	pg.mu.Lock()
	defer pg.mu.Unlock()
	for _, k := range keys {
		if pg.restores[k] {
			return nil, invalid("Another restore is writing to %s or starting a server on port %d.", t.dataDir, t.port)
		}
	}
	for _, k := range keys {
		pg.restores[k] = true
	}
	return func() {
		pg.mu.Lock()
		defer pg.mu.Unlock()
		for _, k := range keys {
			delete(pg.restores, k)
		}
	}, nil
}

// Restore writes the point's files into the new data directory, sets the
// server up to run there on the port asked for (and, for a continuous
// point, to recover to the restore time), starts it as the server user
// and waits until it answers SELECT 1 as a primary: only then is the job
// done. The server goes on running after the job; what failed is undone:
// the server stopped, the directory emptied.
func (pg *Postgres) Restore(ctx context.Context, run *backup.RestoreRun) error {
	t, err := pg.checkTarget(ctx, run.Point, run.Metadata)
	if err != nil {
		return err
	}
	release, err := pg.reserve(t)
	if err != nil {
		return err
	}
	defer release()
	src, err := pointSource(run)
	if err != nil {
		return err
	}
	created, err := makeDataDir(t)
	if err != nil {
		return err
	}
	started := false
	ok := false
	defer func() {
		if ok {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if started {
			_ = t.user.command(cctx, t.dataDir, filepath.Join(t.binDir, "pg_ctl"), "stop", "-D", t.dataDir, "-m", "immediate", "-s").Run()
		}
		emptyDir(t.dataDir, created)
	}()
	if err := pg.writeFiles(ctx, run, src.base, t); err != nil {
		return err
	}
	var recovery []string
	if src.pitr {
		if recovery, err = pg.writeWAL(ctx, run, src, t); err != nil {
			return err
		}
	}
	if err := configure(t, run, recovery); err != nil {
		return fmt.Errorf("configure the restored cluster: %w", err)
	}
	started = true
	if err := pg.start(ctx, t); err != nil {
		return err
	}
	if err := pg.waitReady(ctx, t); err != nil {
		return err
	}
	if src.pitr {
		if err := removeRecoveryBlock(t); err != nil {
			return err
		}
	}
	ok = true
	pg.log.Info("postgres restore: server running", "point", run.Point.ARN, "data_directory", t.dataDir, "port", t.port)
	return nil
}

// entryLister is what a restore reads entries from: a point, or a piece
// of a continuous one.
type entryLister interface {
	Entries(ctx context.Context, fn func(vault.Entry, vault.ObjectRef) error) error
}

// makeDataDir makes the data directory (and the directories above it, as
// root would: searchable) owned by the server user, mode 0700, and reports
// whether it made the directory itself.
func makeDataDir(t *pgTarget) (bool, error) {
	created := false
	if _, err := os.Stat(t.dataDir); errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(t.dataDir), 0o755); err != nil {
			return false, fmt.Errorf("make %s: %w", filepath.Dir(t.dataDir), err)
		}
		if err := os.Mkdir(t.dataDir, 0o700); err != nil {
			return false, invalid("Cannot make %s %s: %v.", MetaDataDirectory, t.dataDir, err)
		}
		created = true
	}
	if err := os.Chmod(t.dataDir, 0o700); err != nil {
		return created, err
	}
	return created, t.user.chown(t.dataDir)
}

func (u *serverUser) chown(path string) error {
	if u.cred == nil {
		return nil
	}
	return os.Lchown(path, u.uid, u.gid)
}

// emptyDir undoes a failed restore: the directory goes if the restore
// made it, its content otherwise.
func emptyDir(dir string, created bool) {
	if created {
		_ = os.RemoveAll(dir)
		return
	}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		_ = os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// skipOnRestore are files of a source's data directory a restored cluster
// must not have: the source's running state, and signal files that would
// make it a standby of the source.
var skipOnRestore = map[string]bool{
	"postmaster.pid": true, "postmaster.opts": true, "standby.signal": true, "recovery.signal": true,
}

// writeFiles writes the entries of a base into the data directory, owned
// by the server user, restoreWriters at a time. It does not fsync them:
// the server syncs the whole data directory before it recovers from a
// backup (its control file says it was not shut down), and nothing counts
// as restored before the server has.
func (pg *Postgres) writeFiles(ctx context.Context, run *backup.RestoreRun, base entryLister, t *pgTarget) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan restoreItem)
	for range restoreWriters {
		g.Go(func() error {
			for it := range work {
				if err := writeEntry(gctx, run, t, it.e, it.ref); err != nil {
					return err
				}
				if err := run.Restored(gctx, it.e); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := base.Entries(gctx, func(e vault.Entry, ref vault.ObjectRef) error {
		if skipOnRestore[e.Key] {
			return run.Skipped(gctx, e)
		}
		if e.Metadata[pgEntryType] == pgTypeDir {
			// Directories first, in the order the archive had them, so
			// that the files' writers find them.
			if err := makeOwnedDir(t, e.Key, e.Metadata[pgEntryMode]); err != nil {
				return err
			}
			return run.Restored(gctx, e)
		}
		select {
		case work <- restoreItem{e, ref}:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	})
	close(work)
	if werr := g.Wait(); werr != nil {
		return werr
	}
	return err
}

type restoreItem struct {
	e   vault.Entry
	ref vault.ObjectRef
}

// localPath is where an entry's key lands in the data directory.
func localPath(t *pgTarget, key string) (string, error) {
	rel := filepath.FromSlash(strings.TrimSuffix(key, "/"))
	if !filepath.IsLocal(rel) {
		return "", fmt.Errorf("entry %q is not a path inside a data directory", key)
	}
	return filepath.Join(t.dataDir, rel), nil
}

func parseMode(v string, def os.FileMode) os.FileMode {
	m, err := strconv.ParseUint(v, 8, 32)
	if err != nil || v == "" {
		return def
	}
	return os.FileMode(m) & os.ModePerm
}

// makeOwnedDir makes a directory of the data directory and those above it
// inside it, owned by the server user.
func makeOwnedDir(t *pgTarget, key, mode string) error {
	p, err := localPath(t, key)
	if err != nil {
		return err
	}
	m := parseMode(mode, 0o700)
	if err := mkdirOwned(t, p, m); err != nil {
		return err
	}
	// A writer may have made it first, for a file in it.
	return os.Chmod(p, m)
}

func mkdirOwned(t *pgTarget, p string, mode os.FileMode) error {
	if p == t.dataDir {
		return nil
	}
	if _, err := os.Lstat(p); err == nil {
		return nil
	}
	if err := mkdirOwned(t, filepath.Dir(p), 0o700); err != nil {
		return err
	}
	if err := os.Mkdir(p, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(p, mode); err != nil {
		return err
	}
	return t.user.chown(p)
}

// writeEntry writes one file. Its data is read through run.Open, whose
// reader fails at the end unless the SHA-256 is the one recorded.
func writeEntry(ctx context.Context, run *backup.RestoreRun, t *pgTarget, e vault.Entry, ref vault.ObjectRef) error {
	p, err := localPath(t, e.Key)
	if err != nil {
		return err
	}
	if err := mkdirOwned(t, filepath.Dir(p), 0o700); err != nil {
		return err
	}
	rd, err := run.Open(ctx, e, ref)
	if err != nil {
		return err
	}
	defer rd.Close()
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, parseMode(e.Metadata[pgEntryMode], 0o600))
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, ctxReader{ctx, rd}); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: %w", e.Key, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return t.user.chown(p)
}

// ctxReader stops a copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Markers of the settings a restore adds to postgresql.auto.conf.
const (
	confBegin     = "# BEGIN bulwark restore: this server's own place, apart from the source's"
	confEnd       = "# END bulwark restore"
	recoveryBegin = "# BEGIN bulwark recovery: removed once the server is promoted"
	recoveryEnd   = "# END bulwark recovery"
	hbaLine       = "local all all trust # bulwark restore: the socket is in the data directory (mode 0700), reachable by root and the server user only"
)

// configure sets the restored cluster up to run on its own: on its port,
// on 127.0.0.1 and a socket in its data directory, with no archiving, no
// standby settings of the source, and a way in for the server user; and
// with the recovery settings given (a continuous point's).
func configure(t *pgTarget, run *backup.RestoreRun, recovery []string) error {
	own := func(p string) error { return t.user.chown(p) }
	conf := filepath.Join(t.dataDir, "postgresql.conf")
	if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
		// Packaged clusters (Debian's) keep their configuration out of
		// the data directory, and pg_basebackup does not send it.
		if err := writeOwned(conf, "# Written by a Bulwark restore: the source cluster kept its configuration outside its data directory.\n", own); err != nil {
			return err
		}
	}
	hba := filepath.Join(t.dataDir, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		err = writeOwned(hba, hbaLine+"\n"+
			"host all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n"+
			"host replication all 127.0.0.1/32 scram-sha-256\nhost replication all ::1/128 scram-sha-256\n", own)
	case err == nil:
		err = writeOwned(hba, hbaLine+"\n"+string(old), own)
	}
	if err != nil {
		return err
	}
	ident := filepath.Join(t.dataDir, "pg_ident.conf")
	if _, err := os.Stat(ident); errors.Is(err, fs.ErrNotExist) {
		if err := writeOwned(ident, "", own); err != nil {
			return err
		}
	}
	q := func(v string) string { return "'" + strings.ReplaceAll(v, "'", "''") + "'" }
	lines := []string{"", confBegin,
		"port = " + strconv.Itoa(t.port),
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = " + q(t.dataDir),
		"unix_socket_permissions = 0700",
		"hba_file = " + q(hba),
		"ident_file = " + q(ident),
		"external_pid_file = ''",
		"archive_mode = off",
		"primary_conninfo = ''",
		"primary_slot_name = ''",
		"synchronous_standby_names = ''",
		"cluster_name = " + q(t.name),
		confEnd,
	}
	if len(recovery) > 0 {
		lines = append(lines, recoveryBegin)
		lines = append(lines, recovery...)
		lines = append(lines, recoveryEnd)
		if err := writeOwned(filepath.Join(t.dataDir, "recovery.signal"), "", own); err != nil {
			return err
		}
	}
	auto := filepath.Join(t.dataDir, "postgresql.auto.conf")
	prev, err := os.ReadFile(auto)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return writeOwned(auto, string(prev)+strings.Join(lines, "\n")+"\n", own)
}

func writeOwned(p, content string, own func(string) error) error {
	if err := os.WriteFile(p+".tmp", []byte(content), 0o600); err != nil {
		return err
	}
	if err := own(p + ".tmp"); err != nil {
		return err
	}
	return os.Rename(p+".tmp", p)
}

// removeRecoveryBlock takes the recovery settings out of
// postgresql.auto.conf once the server is promoted: they served their one
// recovery, and would mislead whoever reads the file later.
func removeRecoveryBlock(t *pgTarget) error {
	auto := filepath.Join(t.dataDir, "postgresql.auto.conf")
	b, err := os.ReadFile(auto)
	if err != nil {
		return err
	}
	var out []string
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		switch {
		case l == recoveryBegin:
			in = true
		case l == recoveryEnd:
			in = false
		case !in:
			out = append(out, l)
		}
	}
	return writeOwned(auto, strings.Join(out, "\n"), t.user.chown)
}

// logFile is where the restored server writes its log until its own
// settings say otherwise.
func logFile(t *pgTarget) string { return filepath.Join(t.dataDir, "bulwark-restore.log") }

// start starts the server with pg_ctl, as the server user, without
// waiting: waitReady does.
func (pg *Postgres) start(ctx context.Context, t *pgTarget) error {
	cmd := t.user.command(ctx, t.dataDir, filepath.Join(t.binDir, "pg_ctl"), "start", "-D", t.dataDir, "-W", "-s", "-l", logFile(t))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("pg_ctl start of the restored cluster failed (%v): %s %s",
			err, strings.TrimSpace(string(out)), lastLines(readTail(logFile(t)), 5))}
	}
	return nil
}

// waitReady waits until the restored server answers SELECT 1 over its
// socket and is out of recovery, or has died, or ctx ends.
func (pg *Postgres) waitReady(ctx context.Context, t *pgTarget) error {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host='%s' port=%d user='%s' dbname=template1 connect_timeout=5 sslmode=disable application_name=bulwark",
		quoteDSN(t.dataDir), t.port, quoteDSN(t.superuse)))
	if err != nil {
		return err
	}
	begun := time.Now()
	var last error
	for {
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			var one int
			var inRecovery bool
			err = c.QueryRow(ctx, "SELECT 1, pg_is_in_recovery()").Scan(&one, &inRecovery)
			c.Close(context.WithoutCancel(ctx))
			if err == nil && !inRecovery {
				return nil
			}
		}
		if err != nil {
			last = err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !running(t.dataDir) && time.Since(begun) > 5*time.Second {
			msg := lastLines(readTail(logFile(t)), 6)
			if msg == "" && last != nil {
				msg = last.Error()
			}
			return &backup.Error{Kind: backup.ErrInvalidRequest, Message: "The restored PostgreSQL server stopped before it was ready: " + msg}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// running reports whether the postmaster of a data directory is alive.
func running(dataDir string) bool {
	b, err := os.ReadFile(filepath.Join(dataDir, "postmaster.pid"))
	if err != nil {
		return false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == nil
}

// readTail is the end of a file, for a failure's message.
func readTail(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(fi.Size()-4096, 0)
	b := make([]byte, fi.Size()-off)
	n, _ := f.ReadAt(b, off)
	return string(b[:n])
}
