package rds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark/bulwark/internal/backup"
)

// The PostgreSQL engine backs up a whole cluster physically: the files of
// its data directory as pg_basebackup streams them, each its own entry of
// the point, and — for continuous backup — the write-ahead log, streamed
// over the replication protocol from a physical replication slot. A
// restore writes the files into a new data directory and starts a server
// on it; a restore to a point in time adds the WAL and a recovery target.
// docs/design/postgres-backup.md says why it is built this way.

// PostgresConfig configures the PostgreSQL engine.
type PostgresConfig struct {
	// Dir is the engine's scratch directory, under the region's data
	// directory: password files for the tools it runs, and the spool of
	// WAL received but not yet in the vault.
	Dir string
	// BinDir, when set, is searched first for PostgreSQL's programs.
	// Client programs (pg_basebackup) are otherwise found on PATH; server
	// programs (postgres, pg_ctl), which must be of the major version of
	// the backed-up cluster, in /usr/lib/postgresql/MAJOR/bin,
	// /usr/pgsql-MAJOR/bin, then on PATH.
	BinDir string
	// OSUser is the operating-system user restored servers run as when
	// Bulwark runs as root, which PostgreSQL refuses to be; "postgres"
	// when empty. Bulwark running as another user runs them as itself.
	OSUser string
	// ShipEvery is how often a continuous backup's stream puts the WAL it
	// received into the vault: its RPO. 2 seconds when zero.
	ShipEvery time.Duration
	// HeartbeatEvery is how long a continuous backup's stream waits for a
	// commit before making one (an empty transaction), so that the
	// restorable window of an idle database moves on. 10 seconds when
	// zero; negative turns heartbeats off.
	HeartbeatEvery time.Duration
	Logger         *slog.Logger
}

// Postgres is the PostgreSQL engine of the RDS provider.
type Postgres struct {
	cfg PostgresConfig
	log *slog.Logger

	mu       sync.Mutex
	restores map[string]bool // data directories and ports of restores in progress
}

// NewPostgres returns the PostgreSQL engine.
func NewPostgres(cfg PostgresConfig) *Postgres {
	if cfg.OSUser == "" {
		cfg.OSUser = "postgres"
	}
	if cfg.ShipEvery <= 0 {
		cfg.ShipEvery = 2 * time.Second
	}
	if cfg.HeartbeatEvery == 0 {
		cfg.HeartbeatEvery = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Postgres{cfg: cfg, log: log, restores: map[string]bool{}}
}

// Keys of a PostgreSQL point's ResourceMetadata.
const (
	pgMetaMethod       = "Method" // pgMethodPhysical
	pgMetaVersion      = "ServerVersion"
	pgMetaMajor        = "MajorVersion"
	pgMetaSystemID     = "SystemIdentifier"
	pgMetaStartLSN     = "StartLSN"
	pgMetaEndLSN       = "EndLSN"
	pgMetaTimeline     = "Timeline"
	pgMetaEndTime      = "BackupEndTime"
	pgMetaSegmentSize  = "WalSegmentSize"
	pgMetaSuperuser    = "BootstrapUser"
	pgMetaSourceDir    = "SourceDataDirectory"
	pgMetaSourceServer = "SourceServer"

	pgMethodPhysical = "physical"
)

// pgSettings are a registration's connection settings.
type pgSettings struct {
	host, port, user, database string
}

func settingsOf(reg *backup.Registered) pgSettings {
	s := pgSettings{
		host: reg.Settings[backup.SettingHost], port: reg.Settings[backup.SettingPort],
		user: reg.Settings[backup.SettingUser], database: reg.Settings[backup.SettingDatabase],
	}
	if s.port == "" {
		s.port = "5432"
	}
	if s.user == "" {
		s.user = "postgres"
	}
	return s
}

func (s pgSettings) addr() string { return net.JoinHostPort(s.host, s.port) }

// sqlDatabase is the database a plain connection opens: the registered
// one, or postgres for a whole cluster.
func (s pgSettings) sqlDatabase() string {
	if s.database != "" {
		return s.database
	}
	return "postgres"
}

func invalid(format string, args ...any) error {
	return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf(format, args...)}
}

// connConfig is the configuration of a connection with the registration's
// settings: to database, or a replication connection when replication is
// set. The password travels in the configuration only, never in a string
// that could be logged; the environment (PG* variables) is not read.
func connConfig(s pgSettings, password, database string, replication bool) (*pgconn.Config, error) {
	dsn := fmt.Sprintf("host='%s' port='%s' user='%s' dbname='%s' connect_timeout=10 sslmode=prefer application_name=bulwark",
		quoteDSN(s.host), quoteDSN(s.port), quoteDSN(s.user), quoteDSN(database))
	cfg, err := pgconn.ParseConfig(dsn)
	if err != nil {
		return nil, invalid("Invalid PostgreSQL settings: %v.", err)
	}
	cfg.Password = password
	if replication {
		cfg.RuntimeParams["replication"] = "true"
		delete(cfg.RuntimeParams, "dbname")
	}
	return cfg, nil
}

func quoteDSN(v string) string {
	return strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v)
}

// connect opens a plain connection to database.
func connect(ctx context.Context, s pgSettings, password, database string) (*pgx.Conn, error) {
	cc, err := connConfig(s, password, database, false)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Config = *cc
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, pgConnectError(s, database, false, err)
	}
	return c, nil
}

// connectReplication opens a replication connection.
func connectReplication(ctx context.Context, s pgSettings, password string) (*pgconn.PgConn, error) {
	cfg, err := connConfig(s, password, "", true)
	if err != nil {
		return nil, err
	}
	c, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, pgConnectError(s, "", true, err)
	}
	return c, nil
}

// pgConnectError says why a connection failed in words an operator can act
// on, as a *backup.Error.
func pgConnectError(s pgSettings, database string, replication bool, err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case "28P01":
			return invalid("PostgreSQL at %s refused the password of user %s.", s.addr(), s.user)
		case "3D000":
			return invalid("Database %q does not exist on PostgreSQL at %s.", database, s.addr())
		case "28000":
			if replication {
				return invalid("PostgreSQL at %s does not accept replication connections from Bulwark as user %s (%s): add a \"host replication %s ADDRESS scram-sha-256\" line to its pg_hba.conf.", s.addr(), s.user, pe.Message, s.user)
			}
			return invalid("PostgreSQL at %s refused user %s: %s.", s.addr(), s.user, pe.Message)
		case "53300":
			if replication {
				return invalid("PostgreSQL at %s has no replication connection free (%s): raise max_wal_senders.", s.addr(), pe.Message)
			}
			return invalid("PostgreSQL at %s has no connection free: %s.", s.addr(), pe.Message)
		}
		return invalid("PostgreSQL at %s refused the connection: %s (SQLSTATE %s).", s.addr(), pe.Message, pe.Code)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return invalid("Cannot reach PostgreSQL at %s: %v.", s.addr(), dns)
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return invalid("Cannot reach PostgreSQL at %s: %v.", s.addr(), op.Err)
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return invalid("Cannot reach PostgreSQL at %s: %v.", s.addr(), ne)
	}
	return invalid("Cannot connect to PostgreSQL at %s: %v.", s.addr(), err)
}

// Validate checks that the cluster answers with the registration's
// settings, that the user may take a physical backup (REPLICATION or
// superuser, wal_level replica or logical, a free WAL sender, replication
// connections accepted) and that pg_basebackup is installed.
func (pg *Postgres) Validate(ctx context.Context, reg *backup.Registered, password string) error {
	s := settingsOf(reg)
	if s.host == "" {
		return invalid("Missing setting %s: the host (or socket directory) of the PostgreSQL server.", backup.SettingHost)
	}
	if p, err := strconv.Atoi(s.port); err != nil || p < 1 || p > 65535 {
		return invalid("Invalid %s %q: a TCP port number.", backup.SettingPort, s.port)
	}
	for k := range reg.Settings {
		switch k {
		case backup.SettingHost, backup.SettingPort, backup.SettingUser, backup.SettingDatabase:
		default:
			return invalid("Setting %s does not apply to PostgreSQL: it takes %s, %s, %s and %s.", k, backup.SettingHost, backup.SettingPort, backup.SettingUser, backup.SettingDatabase)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	c, err := connect(ctx, s, password, s.sqlDatabase())
	if err != nil {
		return err
	}
	defer c.Close(context.WithoutCancel(ctx))
	var one int
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return invalid("PostgreSQL at %s does not answer SELECT 1: %v.", s.addr(), err)
	}
	var canReplicate bool
	var walLevel string
	var senders, major int
	err = c.QueryRow(ctx, `SELECT rolreplication OR rolsuper, current_setting('wal_level'), current_setting('max_wal_senders')::int,
		current_setting('server_version_num')::int / 10000 FROM pg_roles WHERE rolname = current_user`).Scan(&canReplicate, &walLevel, &senders, &major)
	if err != nil {
		return invalid("PostgreSQL at %s: cannot read the user's role and the server's settings: %v.", s.addr(), err)
	}
	var problems []string
	if !canReplicate {
		problems = append(problems, fmt.Sprintf("user %s has neither REPLICATION nor SUPERUSER (ALTER ROLE %s REPLICATION)", s.user, s.user))
	}
	if walLevel != "replica" && walLevel != "logical" {
		problems = append(problems, fmt.Sprintf("wal_level is %s, and must be replica or logical (a restart is needed to change it)", walLevel))
	}
	if senders < 2 {
		problems = append(problems, fmt.Sprintf("max_wal_senders is %d: a backup takes two WAL senders, a continuous backup one more", senders))
	}
	if major < 10 {
		problems = append(problems, fmt.Sprintf("PostgreSQL %d is older than 10, the oldest Bulwark backs up", major))
	}
	if tool, err := pg.clientTool("pg_basebackup"); err != nil {
		problems = append(problems, err.Error())
	} else if v, err := toolMajor(ctx, tool); err != nil {
		problems = append(problems, err.Error())
	} else if v < major {
		problems = append(problems, fmt.Sprintf("%s is of PostgreSQL %d, older than the server's %d", tool, v, major))
	}
	if len(problems) > 0 {
		return invalid("PostgreSQL at %s cannot be backed up: %s.", s.addr(), strings.Join(problems, "; "))
	}
	if canReplicate && (walLevel == "replica" || walLevel == "logical") {
		rc, err := connectReplication(ctx, s, password)
		if err != nil {
			return err
		}
		rc.Close(context.WithoutCancel(ctx))
	}
	return nil
}

// clientTool finds a client program (pg_basebackup): in BinDir, else on
// PATH.
func (pg *Postgres) clientTool(name string) (string, error) {
	if pg.cfg.BinDir != "" {
		p := filepath.Join(pg.cfg.BinDir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s is not installed (not on PATH): install PostgreSQL's client programs", name)
	}
	return p, nil
}

// serverBinDir finds the directory of the server programs of a major
// version: postgres and pg_ctl, both of that version.
func (pg *Postgres) serverBinDir(ctx context.Context, major int) (string, error) {
	var dirs []string
	if pg.cfg.BinDir != "" {
		dirs = append(dirs, pg.cfg.BinDir)
	}
	dirs = append(dirs, fmt.Sprintf("/usr/lib/postgresql/%d/bin", major), fmt.Sprintf("/usr/pgsql-%d/bin", major))
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
		if r, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(r))
		}
	}
	for _, d := range dirs {
		if !isExecutable(filepath.Join(d, "postgres")) || !isExecutable(filepath.Join(d, "pg_ctl")) {
			continue
		}
		if v, err := toolMajor(ctx, filepath.Join(d, "postgres")); err == nil && v == major {
			return d, nil
		}
	}
	return "", fmt.Errorf("PostgreSQL %d's server programs (postgres, pg_ctl) are not installed: looked in %s", major, strings.Join(slices.Compact(dirs), ", "))
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(?:\.(\d+))?`)

// toolMajor is the major version of a PostgreSQL program, from --version.
func toolMajor(ctx context.Context, path string) (int, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return 0, fmt.Errorf("%s --version: %v", path, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("%s --version: unexpected answer %q", path, bytes.TrimSpace(out))
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v, nil
}

// serverUser is who restored servers run as.
type serverUser struct {
	name     string
	uid, gid int
	cred     *syscall.Credential // nil when Bulwark is not root: it runs them itself
}

func (pg *Postgres) serverUser() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return &serverUser{name: "", uid: os.Geteuid(), gid: os.Getegid()}, nil
	}
	u, err := user.Lookup(pg.cfg.OSUser)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root, and the user %s it would run as does not exist: %v", pg.cfg.OSUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	var groups []uint32
	if ids, err := u.GroupIds(); err == nil {
		for _, g := range ids {
			if n, err := strconv.Atoi(g); err == nil {
				groups = append(groups, uint32(n))
			}
		}
	}
	return &serverUser{name: u.Username, uid: uid, gid: gid,
		cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: groups}}, nil
}

// command returns a program to run as the server user, in dir.
func (u *serverUser) command(ctx context.Context, dir, prog string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = cleanEnv()
	if u.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: u.cred}
		cmd.Env = append(cmd.Env, "HOME="+dir, "USER="+u.name, "LOGNAME="+u.name)
	}
	return cmd
}

// cleanEnv is Bulwark's environment without the PG* variables, which
// would otherwise steer the programs it runs to other servers or users.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "HOME=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "LOGNAME=") {
			continue
		}
		out = append(out, kv)
	}
	return append(out, "LC_ALL=C")
}

// passfile writes a password file (0600, in the engine's scratch
// directory) that libpq programs read through PGPASSFILE: the password is
// never on a command line or in the environment of a process another user
// could read. remove deletes it.
func (pg *Postgres) passfile(password string) (path string, remove func(), err error) {
	if err := os.MkdirAll(pg.cfg.Dir, 0o700); err != nil {
		return "", nil, err
	}
	f, err := os.CreateTemp(pg.cfg.Dir, "pgpass-*")
	if err != nil {
		return "", nil, err
	}
	esc := strings.NewReplacer(`\`, `\\`, `:`, `\:`).Replace(password)
	_, werr := io.WriteString(f, "*:*:*:*:"+esc+"\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o600)); err != nil {
		os.Remove(f.Name())
		return "", nil, err
	}
	return f.Name(), func() { os.Remove(f.Name()) }, nil
}

// tail keeps the last bytes written to it: a program's stderr, for the
// message of a failure.
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}
