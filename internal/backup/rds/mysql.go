package rds

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// A MySQL or MariaDB database is dumped by mariadb-dump (or mysqldump)
// with --single-transaction: one InnoDB transaction WITH CONSISTENT
// SNAPSHOT, so the dump is every InnoDB table as of one instant while the
// application keeps writing. The dump is streamed from the program's
// output into the vault, never held whole. When the server writes a
// binary log in row format, each backup also stores the binary log from
// the previous backup's snapshot on, which makes a restore to any second
// between the two (and a little after) possible. The tools get the
// password from an option file of mode 0600 in a directory of mode 0700,
// removed when they end: never on a command line, where ps shows it.

// Keys of a MySQL point's ResourceMetadata and restore metadata.
const (
	mysqlDumpKey   = "dump.sql"      // the snapshot
	mysqlBaseKey   = "pitr/base.sql" // the previous point's snapshot, by reference
	mysqlBinlogDir = "binlog/"       // binary log files, by their name

	mysqlMetaHost           = "Host"
	mysqlMetaPort           = "Port"
	mysqlMetaUser           = "User"
	mysqlMetaDatabase       = "Database"
	mysqlMetaServerVersion  = "ServerVersion"
	mysqlMetaServer         = "Server" // @@hostname:@@port:@@datadir, who the server is
	mysqlMetaCharset        = "CharacterSet"
	mysqlMetaCollation      = "Collation"
	mysqlMetaLogBin         = "LogBin" // ON or OFF
	mysqlMetaBinlogFormat   = "BinlogFormat"
	mysqlMetaBinlogFile     = "BinlogFile"     // position of the snapshot
	mysqlMetaBinlogPosition = "BinlogPosition" //
	mysqlMetaGTID           = "GTIDPosition"
	mysqlMetaSnapshotTime   = "SnapshotTime"
	mysqlMetaNonTx          = "NonTransactionalTables"
	mysqlMetaPITR           = "PointInTimeRecovery" // "available" or "unavailable: why"
	mysqlMetaEarliest       = "EarliestRestoreTime"
	mysqlMetaLatest         = "LatestRestoreTime"

	mysqlMetaTargetDatabase = "TargetDatabase"
	mysqlMetaTargetHost     = "TargetHost"
	mysqlMetaTargetPort     = "TargetPort"
	mysqlMetaTargetUser     = "TargetUser"
	mysqlMetaTargetPassword = "TargetPassword"
	mysqlMetaSourceDatabase = "SourceDatabase"
)

// mysqlConnectTimeout bounds each connection attempt of the tools.
const mysqlConnectTimeout = 10 * time.Second

// mysqlScratchPrefix starts the name of every scratch directory of the
// engine.
const mysqlScratchPrefix = "bulwark-mysql-"

// MySQLConfig configures the MySQL/MariaDB engine.
type MySQLConfig struct {
	// ScratchDir holds the tools' option files and, during a
	// point-in-time restore, the binary log files replayed. Default
	// os.TempDir(); a directory given here is Bulwark's own, and what a
	// crash left in it is removed when the engine is made.
	ScratchDir string
	// Space admits the binary log files a restore writes to ScratchDir;
	// nil admits everything.
	Space backup.Space
	// Client, Dump and Binlog are the programs; by default the first of
	// mariadb and mysql, mariadb-dump and mysqldump, mariadb-binlog and
	// mysqlbinlog found on PATH.
	Client, Dump, Binlog string
}

// MySQL is the engine of MySQL and MariaDB databases (backup.EngineMySQL
// and backup.EngineMariaDB). A registration's Settings give the server's
// Host and Port (default 3306), the User and the Database; the password
// is the registration's.
type MySQL struct {
	rs  *backup.Resources
	cfg MySQLConfig
}

// NewMySQL returns the MySQL/MariaDB engine. rs gives a restore the
// registered password of the source server when the restore goes there.
func NewMySQL(rs *backup.Resources, cfg MySQLConfig) *MySQL {
	if cfg.ScratchDir != "" {
		sweepScratchDir(cfg.ScratchDir, mysqlScratchPrefix)
	} else {
		cfg.ScratchDir = os.TempDir()
	}
	return &MySQL{rs: rs, cfg: cfg}
}

// mysqlServer is where and as whom the tools connect.
type mysqlServer struct {
	Host     string
	Port     int
	User     string
	Password string
}

func (s mysqlServer) addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// program finds one of the tools: given when configured, else the first
// of names on PATH.
func (m *MySQL) program(given string, names ...string) (string, error) {
	if given != "" {
		names = []string{given}
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", badParam("The %s program is not installed (not found on PATH): Bulwark runs it to back up and restore MySQL and MariaDB databases. Install the MariaDB client (Debian: apt-get install mariadb-client).", strings.Join(names, " or "))
}

func (m *MySQL) client() (string, error) { return m.program(m.cfg.Client, "mariadb", "mysql") }
func (m *MySQL) dump() (string, error)   { return m.program(m.cfg.Dump, "mariadb-dump", "mysqldump") }
func (m *MySQL) binlog() (string, error) {
	return m.program(m.cfg.Binlog, "mariadb-binlog", "mysqlbinlog")
}

var mysqlIdent = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

// mysqlSource reads a registration's settings.
func mysqlSource(reg *backup.Registered, password string) (mysqlServer, string, error) {
	st := reg.Settings
	srv := mysqlServer{Host: st[backup.SettingHost], User: st[backup.SettingUser], Password: password, Port: 3306}
	db := st[backup.SettingDatabase]
	for _, req := range []struct{ key, what, v string }{
		{backup.SettingHost, "the server's host name or address", srv.Host},
		{backup.SettingUser, "the user Bulwark connects as", srv.User},
		{backup.SettingDatabase, "the database to back up; one registration backs up one database", db},
	} {
		if req.v == "" {
			return srv, "", &backup.Error{Kind: backup.ErrMissingParameter, Message: fmt.Sprintf("Missing setting %s: %s.", req.key, req.what)}
		}
	}
	if p := st[backup.SettingPort]; p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return srv, "", badParam("Invalid Port %q: a number from 1 to 65535.", p)
		}
		srv.Port = n
	}
	if strings.HasPrefix(db, "-") || strings.ContainsAny(db, "\x00/\\.") || len(db) > 64 || strings.TrimSpace(db) != db {
		return srv, "", badParam("Invalid Database %q.", db)
	}
	if strings.ContainsAny(srv.Host, "\n\"\\") || strings.ContainsAny(srv.User, "\n") {
		return srv, "", badParam("Invalid Host or User.")
	}
	return srv, db, nil
}

// mysqlSession is a private directory holding an option file with a
// server's address and credentials, for the tools of one job.
type mysqlSession struct {
	dir  string
	opts string
	srv  mysqlServer
}

// session writes the option file of srv in a new directory of mode 0700
// under the scratch directory.
func (m *MySQL) session(srv mysqlServer) (*mysqlSession, error) {
	dir, err := os.MkdirTemp(m.cfg.ScratchDir, mysqlScratchPrefix)
	if err != nil {
		return nil, fmt.Errorf("mysql scratch directory: %w", err)
	}
	var b strings.Builder
	b.WriteString("[client]\n")
	fmt.Fprintf(&b, "host=%s\nport=%d\nuser=%s\n", optionValue(srv.Host), srv.Port, optionValue(srv.User))
	if srv.Password != "" {
		fmt.Fprintf(&b, "password=%s\n", optionValue(srv.Password))
	}
	opts := filepath.Join(dir, "client.cnf")
	if err := os.WriteFile(opts, []byte(b.String()), 0o600); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("mysql option file: %w", err)
	}
	return &mysqlSession{dir: dir, opts: opts, srv: srv}, nil
}

func (s *mysqlSession) close() { os.RemoveAll(s.dir) }

// defaults is the tools' first argument: it must come before any other.
func (s *mysqlSession) defaults() string { return "--defaults-extra-file=" + s.opts }

// optionValue quotes a value for an option file, whose reader undoes
// backslash escapes inside double quotes.
func optionValue(v string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "\t", `\t`)
	return `"` + r.Replace(v) + `"`
}

// mysqlError is an error a tool printed, with the server's or client's
// error number when it gave one.
type mysqlError struct {
	Code int
	Msg  string
}

func (e *mysqlError) Error() string { return e.Msg }

var mysqlCodeRE = regexp.MustCompile(`(?:ERROR |Got error: |error: )(\d{4})\b`)

// toolError makes an error of a tool's exit and error output.
func toolError(name string, err error, stderr *stderrTail) error {
	msg := strings.TrimSpace(stderr.String())
	if msg == "" {
		return fmt.Errorf("%s: %w", name, err)
	}
	// The last error line says what went wrong; warnings come before it.
	lines := strings.Split(msg, "\n")
	line := strings.TrimSpace(lines[len(lines)-1])
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.Contains(l, "rror") {
			line = l
			break
		}
	}
	e := &mysqlError{Msg: line}
	if !strings.Contains(line, filepath.Base(name)) {
		e.Msg = filepath.Base(name) + ": " + line
	}
	if m := mysqlCodeRE.FindStringSubmatch(line); m != nil {
		e.Code, _ = strconv.Atoi(m[1])
	}
	return e
}

// connectError turns a failed connection into what the caller is told.
func connectError(srv mysqlServer, db string, err error) error {
	var me *mysqlError
	if !errors.As(err, &me) {
		return err
	}
	switch me.Code {
	case 2002, 2003, 2005, 2006, 2013:
		return badParam("Cannot reach the MySQL/MariaDB server at %s: %s", srv.addr(), me.Msg)
	case 1045:
		return badParam("The MySQL/MariaDB server at %s refused user %s: wrong user or password (%s)", srv.addr(), srv.User, me.Msg)
	case 1044:
		return badParam("User %s may not use database %s on %s: %s", srv.User, db, srv.addr(), me.Msg)
	case 1049:
		return badParam("Database %s does not exist on the MySQL/MariaDB server at %s.", db, srv.addr())
	}
	return badParam("Cannot use the MySQL/MariaDB server at %s: %s", srv.addr(), me.Msg)
}

// query runs sql with the client in database db ("" for none) and
// returns its rows of tab-separated fields.
func (m *MySQL) query(ctx context.Context, s *mysqlSession, db, sql string) ([][]string, error) {
	prog, err := m.client()
	if err != nil {
		return nil, err
	}
	args := []string{s.defaults(), "--batch", "--skip-column-names", "--raw",
		"--connect-timeout=" + strconv.Itoa(int(mysqlConnectTimeout.Seconds())), "-e", sql}
	if db != "" {
		args = append(args, "--database="+db)
	}
	cmd := exec.CommandContext(ctx, prog, args...)
	var out strings.Builder
	stderr := &stderrTail{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = &out, stderr
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, toolError(prog, err, stderr)
	}
	var rows [][]string
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if line != "" {
			rows = append(rows, strings.Split(line, "\t"))
		}
	}
	return rows, nil
}

// sqlString quotes s as an SQL string literal.
func sqlString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `''`, "\x00", `\0`).Replace(s) + "'"
}

// sqlIdent quotes s as an SQL identifier.
func sqlIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "``") + "`" }

// mysqlInfo is what the engine reads of a server and database before it
// dumps it.
type mysqlInfo struct {
	version, server    string
	logBin             bool
	format             string
	charset, collation string
	nonTransactional   string
	binlogFiles        []string // SHOW BINARY LOGS, oldest first, when logBin
	binlogSizes        []int64
	binlogErr          string // why SHOW BINARY LOGS failed
	serverID           string
}

// positioned reports whether a dump can record its binary log position.
func (i *mysqlInfo) positioned() bool { return i.logBin && i.binlogErr == "" }

// serverInfo reads the server's version and binary log settings and the
// database's character set and non-transactional tables.
func (m *MySQL) serverInfo(ctx context.Context, s *mysqlSession, db string) (*mysqlInfo, error) {
	rows, err := m.query(ctx, s, db, "SELECT @@version, CONCAT(@@hostname, ':', @@port, ':', @@datadir), @@log_bin, @@binlog_format, @@server_id, "+
		"(SELECT DEFAULT_CHARACTER_SET_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()), "+
		"(SELECT DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = DATABASE()), "+
		"(SELECT IFNULL(GROUP_CONCAT(TABLE_NAME ORDER BY TABLE_NAME SEPARATOR ','), '') FROM information_schema.TABLES "+
		"WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE' AND ENGINE NOT IN ('InnoDB', 'XtraDB'))")
	if err != nil {
		return nil, err
	}
	if len(rows) != 1 || len(rows[0]) != 8 {
		return nil, fmt.Errorf("server information: unexpected answer %q", rows)
	}
	r := rows[0]
	info := &mysqlInfo{version: r[0], server: r[1], logBin: r[2] == "1", format: strings.ToUpper(r[3]), serverID: r[4],
		charset: r[5], collation: r[6], nonTransactional: r[7]}
	if info.logBin {
		// Without the privilege to list the binary logs, the dump cannot
		// read its position either: the point restores to its snapshot.
		logs, err := m.query(ctx, s, "", "SHOW BINARY LOGS")
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			info.binlogErr = err.Error()
		}
		for _, l := range logs {
			if len(l) < 2 {
				continue
			}
			n, _ := strconv.ParseInt(l[1], 10, 64)
			info.binlogFiles = append(info.binlogFiles, l[0])
			info.binlogSizes = append(info.binlogSizes, n)
		}
	}
	return info, nil
}

// Validate connects to the registered database and checks that the tools
// a backup runs are installed.
func (m *MySQL) Validate(ctx context.Context, reg *backup.Registered, password string) error {
	srv, db, err := mysqlSource(reg, password)
	if err != nil {
		return err
	}
	if _, err := m.dump(); err != nil {
		return err
	}
	if _, err := m.client(); err != nil {
		return err
	}
	s, err := m.session(srv)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := m.query(ctx, s, db, "SELECT 1"); err != nil {
		return connectError(srv, db, err)
	}
	return nil
}

// Backup dumps the database in one consistent snapshot, streamed into the
// entry mysqlDumpKey, and, when the server writes a row-format binary
// log, the binary log since the previous point's snapshot.
func (m *MySQL) Backup(ctx context.Context, reg *backup.Registered, password string, run *backup.BackupRun) (backup.BackupResult, error) {
	srv, db, err := mysqlSource(reg, password)
	if err != nil {
		return backup.BackupResult{}, err
	}
	dumpProg, err := m.dump()
	if err != nil {
		return backup.BackupResult{}, err
	}
	s, err := m.session(srv)
	if err != nil {
		return backup.BackupResult{}, err
	}
	defer s.close()
	info, err := m.serverInfo(ctx, s, db)
	if err != nil {
		if ctx.Err() != nil {
			return backup.BackupResult{}, ctx.Err()
		}
		return backup.BackupResult{}, connectError(srv, db, err)
	}
	md := map[string]string{
		mysqlMetaHost: srv.Host, mysqlMetaPort: strconv.Itoa(srv.Port), mysqlMetaUser: srv.User, mysqlMetaDatabase: db,
		mysqlMetaServerVersion: info.version, mysqlMetaServer: info.server,
		mysqlMetaCharset: info.charset, mysqlMetaCollation: info.collation,
		mysqlMetaLogBin: "OFF", mysqlMetaBinlogFormat: info.format,
	}
	if info.nonTransactional != "" {
		md[mysqlMetaNonTx] = info.nonTransactional
	}
	if info.logBin {
		md[mysqlMetaLogBin] = "ON"
	}
	snap, err := m.dumpInto(ctx, s, dumpProg, db, info, run)
	if err != nil {
		return backup.BackupResult{}, err
	}
	md[mysqlMetaSnapshotTime] = snap.at.UTC().Format(time.RFC3339Nano)
	if snap.file != "" {
		md[mysqlMetaBinlogFile], md[mysqlMetaBinlogPosition] = snap.file, strconv.FormatInt(snap.pos, 10)
	}
	if snap.gtid != "" {
		md[mysqlMetaGTID] = snap.gtid
	}
	res := backup.BackupResult{Metadata: md}
	why := m.pitrUnavailable(info)
	if why != "" {
		md[mysqlMetaPITR] = "unavailable: " + why
		return res, nil
	}
	if err := m.captureBinlogs(ctx, s, info, snap, run, &res); err != nil {
		return backup.BackupResult{}, err
	}
	return res, nil
}

// pitrUnavailable says why a point of the server cannot be restored to a
// point in time; "" when it can.
func (m *MySQL) pitrUnavailable(info *mysqlInfo) string {
	if !info.logBin {
		return "binary logging is off on the server (log_bin=OFF); start it with --log-bin and --binlog-format=ROW to restore to a point in time"
	}
	if info.binlogErr != "" {
		return "the binary logs cannot be listed (" + info.binlogErr + "); the user needs the BINLOG MONITOR (REPLICATION CLIENT) privilege"
	}
	if info.format != "ROW" {
		return fmt.Sprintf("the server's binary log is in %s format; a point-in-time restore into another database needs binlog_format=ROW", info.format)
	}
	if _, err := m.binlog(); err != nil {
		return "the mariadb-binlog (mysqlbinlog) program is not installed"
	}
	return ""
}

// dumpSnapshot is where a dump's snapshot stands in the binary log.
type dumpSnapshot struct {
	at   time.Time // no earlier than the snapshot
	file string
	pos  int64
	gtid string
}

// versionID is the snapshot's position as the dump's entry records it
// (VersionID): SERVERID:FILE:POS, what the next backup starts the binary
// log from.
func (d dumpSnapshot) versionID(serverID string) string {
	if d.file == "" {
		return ""
	}
	return serverID + ":" + d.file + ":" + strconv.FormatInt(d.pos, 10)
}

func parseVersionID(v string) (serverID, file string, pos int64, ok bool) {
	i, j := strings.IndexByte(v, ':'), strings.LastIndexByte(v, ':')
	if i <= 0 || j <= i+1 {
		return "", "", 0, false
	}
	pos, err := strconv.ParseInt(v[j+1:], 10, 64)
	if err != nil {
		return "", "", 0, false
	}
	return v[:i], v[i+1 : j], pos, true
}

var (
	changeMasterRE = regexp.MustCompile(`^-- CHANGE MASTER TO MASTER_LOG_FILE='([^']+)', MASTER_LOG_POS=(\d+);`)
	gtidRE         = regexp.MustCompile(`^-- SET GLOBAL gtid_slave_pos='([^']*)';`)
)

// headLimit bounds how far into a dump its binary log position is looked
// for: it comes before the first table.
const headLimit = 1 << 20

// dumpInto runs the dump and streams it into the point as mysqlDumpKey.
// The dump's head is read first, for the snapshot's binary log position
// that the entry records; the dump is complete only when the program
// exits 0 and its output ends with its closing line.
func (m *MySQL) dumpInto(ctx context.Context, s *mysqlSession, prog, db string, info *mysqlInfo, run *backup.BackupRun) (dumpSnapshot, error) {
	args := []string{s.defaults(), "--single-transaction", "--quick", "--routines", "--triggers", "--events",
		"--hex-blob", "--skip-dump-date", "--default-character-set=utf8mb4"}
	if info.positioned() {
		args = append(args, "--master-data=2")
	}
	args = append(args, "--", db)
	dctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(dctx, prog, args...)
	cmd.WaitDelay = 5 * time.Second
	stderr := &stderrTail{max: 8 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return dumpSnapshot{}, err
	}
	if err := cmd.Start(); err != nil {
		return dumpSnapshot{}, fmt.Errorf("start %s: %w", prog, err)
	}
	fail := func(err error) (dumpSnapshot, error) {
		cancel()
		_ = cmd.Wait()
		return dumpSnapshot{}, err
	}
	started := time.Now()
	br := bufio.NewReaderSize(stdout, 64<<10)
	var head strings.Builder
	snap := dumpSnapshot{at: started}
	for info.positioned() && head.Len() < headLimit {
		line, err := br.ReadString('\n')
		head.WriteString(line)
		if mm := changeMasterRE.FindStringSubmatch(line); mm != nil {
			// The dump prints the position once its snapshot is taken.
			snap.at = time.Now()
			snap.file = mm[1]
			snap.pos, _ = strconv.ParseInt(mm[2], 10, 64)
			break
		}
		if err != nil {
			break
		}
	}
	tail := &dumpTail{}
	e := vault.Entry{Key: mysqlDumpKey, ContentType: "application/sql", VersionID: snap.versionID(info.serverID), LastModified: snap.at.UnixNano()}
	body := io.TeeReader(io.MultiReader(strings.NewReader(head.String()), br), tail)
	if err := run.Put(ctx, e, body); err != nil {
		return fail(err)
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return dumpSnapshot{}, ctx.Err()
		}
		return dumpSnapshot{}, m.dumpError(prog, db, s.srv, err, stderr)
	}
	if !tail.completed {
		return dumpSnapshot{}, fmt.Errorf("%s of database %s ended without its closing line: the dump is incomplete", filepath.Base(prog), db)
	}
	if info.positioned() && snap.file == "" {
		return dumpSnapshot{}, fmt.Errorf("%s of database %s printed no binary log position", filepath.Base(prog), db)
	}
	snap.gtid = tail.gtid
	return snap, nil
}

func (m *MySQL) dumpError(prog, db string, srv mysqlServer, err error, stderr *stderrTail) error {
	terr := toolError(prog, err, stderr)
	var me *mysqlError
	if errors.As(terr, &me) && me.Code != 0 {
		return connectError(srv, db, terr)
	}
	return fmt.Errorf("dump database %s: %w", db, terr)
}

// dumpTail watches a dump's comment lines go by: its closing line and the
// GTID position printed near its end.
type dumpTail struct {
	line      []byte // the current line's start, when it is a comment
	skip      bool   // the current line is not a comment
	completed bool
	gtid      string
}

func (d *dumpTail) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' {
			d.endLine()
			continue
		}
		if d.skip {
			continue
		}
		if len(d.line) == 0 && c != '-' {
			d.skip = true
			continue
		}
		if len(d.line) < 512 {
			d.line = append(d.line, c)
		}
	}
	return len(p), nil
}

func (d *dumpTail) endLine() {
	l, skipped := string(d.line), d.skip
	d.line, d.skip = d.line[:0], false
	if l == "" && !skipped {
		return // a blank line
	}
	if strings.HasPrefix(l, "-- Dump completed") {
		d.completed = true
		return
	}
	d.completed = false // something after the closing line
	if mm := gtidRE.FindStringSubmatch(l); mm != nil {
		d.gtid = mm[1]
	}
}
