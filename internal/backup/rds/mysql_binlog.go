package rds

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// A point-in-time restore replays the binary log on top of a snapshot.
// Point N holds its snapshot (dump.sql, at binary log position P_N), the
// snapshot of the point before it in the same vault (pitr/base.sql, at
// P_{N-1}, added by reference: no data is copied), and the binary log
// files from P_{N-1}'s file to the end of the log as it stood right after
// the dump (binlog/NAME; the files that did not change since the last
// backup deduplicate in the vault). A restore to a time T between the
// previous snapshot and the end of the captured log loads the latest of
// the two snapshots no later than T and replays the log from its position
// until the first event stamped T or later: a prefix of the server's
// commit order, so the result is a state the database really had.
//
// The first point of a resource, or one whose previous point's binary log
// is gone from the server (purged, or the log was reset), covers only
// from its own snapshot on.

// mysqlMetaPITRNote says why a point's window starts at its own snapshot.
const mysqlMetaPITRNote = "PointInTimeRecoveryNote"

// captureBinlogs stores the binary log files from the previous point's
// snapshot (or this one's) to the log's current end, and the previous
// point's dump as the base of a restore to a time before this snapshot.
// A log the server does not give (no REPLICATION SLAVE privilege) makes
// the point PARTIAL: it still restores to its snapshot.
func (m *MySQL) captureBinlogs(ctx context.Context, s *mysqlSession, info *mysqlInfo, snap dumpSnapshot, run *backup.BackupRun, res *backup.BackupResult) error {
	md := res.Metadata
	start, earliest := snap.file, snap.at
	var base *vault.Entry
	var baseRef vault.ObjectRef
	note := "this is the first backup of the database in the vault"
	if prev, ref, ok := run.Previous(mysqlDumpKey); ok {
		sid, file, _, ok := parseVersionID(prev.VersionID)
		switch {
		case !ok:
			note = "the previous backup recorded no binary log position"
		case sid != info.serverID:
			note = "the previous backup was taken from another server"
		case !slices.Contains(info.binlogFiles, file):
			note = fmt.Sprintf("binary log %s, where the previous backup's snapshot stands, is no longer on the server", file)
		case binlogAfter(file, snap.file):
			note = "the binary log was reset since the previous backup"
		default:
			note, start, earliest = "", file, time.Unix(0, prev.LastModified)
			base, baseRef = &prev, ref
		}
	}
	prog, err := m.binlog()
	if err != nil {
		return err
	}
	var need int64
	for i, f := range info.binlogFiles {
		if f == start || binlogAfter(f, start) {
			need += info.binlogSizes[i]
		}
	}
	dir, release, err := m.binlogDir(s, need)
	if err != nil {
		return err
	}
	defer release()
	fetched := time.Now()
	cmd := exec.CommandContext(ctx, prog, s.defaults(), "--read-from-remote-server", "--raw",
		"--result-file="+dir+string(filepath.Separator), "--to-last-log", "--", start)
	cmd.WaitDelay = 5 * time.Second
	stderr := &stderrTail{max: 4 << 10}
	cmd.Stderr = stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		why := toolError(prog, err, stderr).Error()
		md[mysqlMetaPITR] = "unavailable: the binary log could not be read: " + why
		res.Partial = "The binary log could not be read (" + why + "); the recovery point restores to its snapshot only, not to a point in time."
		return nil
	}
	files, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var names []string
	for _, f := range files {
		names = append(names, f.Name())
	}
	slices.SortFunc(names, func(a, b string) int {
		if binlogAfter(a, b) {
			return 1
		}
		if binlogAfter(b, a) {
			return -1
		}
		return 0
	})
	if len(names) == 0 || names[0] != start || !slices.Contains(names, snap.file) {
		return fmt.Errorf("binary log from %s: %s wrote %v", start, filepath.Base(prog), names)
	}
	for _, name := range names {
		if err := putFile(ctx, run, filepath.Join(dir, name), vault.Entry{Key: mysqlBinlogDir + name, ContentType: "application/octet-stream"}); err != nil {
			return err
		}
	}
	if base != nil {
		e := vault.Entry{Key: mysqlBaseKey, ContentType: "application/sql", VersionID: base.VersionID, LastModified: base.LastModified, Size: base.Size}
		if err := run.PutUnchanged(ctx, e, baseRef); err != nil {
			return err
		}
	}
	md[mysqlMetaPITR] = "available"
	md[mysqlMetaEarliest] = ceilSecond(earliest).Format(time.RFC3339)
	md[mysqlMetaLatest] = fetched.UTC().Truncate(time.Second).Format(time.RFC3339)
	if note != "" {
		md[mysqlMetaPITRNote] = "the window starts at this point's snapshot: " + note
	}
	return nil
}

// putFile puts a file of the scratch directory.
func putFile(ctx context.Context, run *backup.BackupRun, path string, e vault.Entry) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	e.Size = st.Size()
	return run.Put(ctx, e, f)
}

func ceilSecond(t time.Time) time.Time {
	t = t.UTC()
	if c := t.Truncate(time.Second); !c.Equal(t) {
		return c.Add(time.Second)
	}
	return t
}

// binlogAfter reports whether binary log file a comes after b: the same
// base name with a greater sequence number, or another base name (a log
// renamed or reset, which nothing can be replayed across).
func binlogAfter(a, b string) bool {
	ab, an := splitBinlog(a)
	bb, bn := splitBinlog(b)
	if ab != bb {
		return a > b
	}
	return an > bn
}

func splitBinlog(name string) (string, int64) {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return name, 0
	}
	n, err := strconv.ParseInt(name[i+1:], 10, 64)
	if err != nil {
		return name, 0
	}
	return name[:i], n
}

// replay applies the binary log entries of a point, from file:pos until
// the first event stamped at or after `until`, to database dst: the
// events of database src, renamed.
func (m *MySQL) replay(ctx context.Context, s *mysqlSession, run *backup.RestoreRun, logs []binlogEntry, file string, pos int64, until time.Time, src, dst string) error {
	prog, err := m.binlog()
	if err != nil {
		return err
	}
	var need int64
	var files []binlogEntry
	for _, l := range logs {
		if l.name == file || binlogAfter(l.name, file) {
			files = append(files, l)
			need += l.e.Size
		}
	}
	if len(files) == 0 || files[0].name != file {
		return fmt.Errorf("recovery point %s lacks binary log %s", run.Point.ARN, file)
	}
	dir, release, err := m.binlogDir(s, need)
	if err != nil {
		return err
	}
	defer release()
	args := []string{"--no-defaults", "--start-position=" + strconv.FormatInt(pos, 10),
		"--stop-datetime=" + until.UTC().Format("2006-01-02 15:04:05"),
		"--database=" + src, "--rewrite-db=" + src + "->" + dst, "--"}
	for _, l := range files {
		path := filepath.Join(dir, l.name)
		if err := restoreFile(ctx, run, l.e, l.ref, path); err != nil {
			return err
		}
		args = append(args, path)
	}
	bctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(bctx, prog, args...)
	// --stop-datetime is read in the program's time zone.
	cmd.Env = append(os.Environ(), "TZ=UTC")
	cmd.WaitDelay = 5 * time.Second
	stderr := &stderrTail{max: 4 << 10}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", prog, err)
	}
	ferr := m.feed(ctx, s, dst, newBinlogFilter(out, src))
	if ferr != nil {
		cancel()
		_ = cmd.Wait()
		return ferr
	}
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("replay the binary log: %w", toolError(prog, err, stderr))
	}
	for _, l := range files {
		if err := run.Restored(ctx, l.e); err != nil {
			return err
		}
	}
	return nil
}

// binlogEntry is a binary log file of a point.
type binlogEntry struct {
	name string
	e    vault.Entry
	ref  vault.ObjectRef
}

// restoreFile writes an entry to path, its SHA-256 checked.
func restoreFile(ctx context.Context, run *backup.RestoreRun, e vault.Entry, ref vault.ObjectRef, path string) error {
	rd, err := run.Open(ctx, e, ref)
	if err != nil {
		return err
	}
	defer rd.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, rd); err != nil {
		f.Close()
		return fmt.Errorf("restore %s: %w", e.Key, err)
	}
	return f.Close()
}

// binlogDir makes the session's directory of binary log files, once the
// disk has room for need bytes in it; release gives the room back.
func (m *MySQL) binlogDir(s *mysqlSession, need int64) (dir string, release func(), err error) {
	release, err = m.admit(need)
	if err != nil {
		return "", nil, err
	}
	dir = filepath.Join(s.dir, "binlog")
	if err := os.Mkdir(dir, 0o700); err != nil {
		release()
		return "", nil, err
	}
	return dir, release, nil
}

func (m *MySQL) admit(n int64) (func(), error) {
	if m.cfg.Space == nil {
		return func() {}, nil
	}
	return m.cfg.Space.Admit(n)
}

// gtidSessionRE matches the lines mysqlbinlog writes to give a replayed
// transaction the source's GTID and server ID. They are dropped: the
// target server logs the replayed transactions as its own, instead of
// logging the source's GTIDs a second time, out of order.
var gtidSessionRE = regexp.MustCompile(`^/\*M?!100001 SET @@session\.(gtid_seq_no|gtid_domain_id|server_id)=\d+\*//\*!\*/;$`)

// binlogFilter passes mysqlbinlog's output through, less the GTID lines,
// and stops with an error at a statement that names the source database
// explicitly: --rewrite-db renames the default database of statements and
// the tables of row events, not a database named in a statement's text,
// which the target server would apply to the source database itself.
type binlogFilter struct {
	br        *bufio.Reader
	buf       []byte
	inBase64  bool
	src       string
	qualified *regexp.Regexp
	err       error
}

func newBinlogFilter(r io.Reader, src string) *binlogFilter {
	q := regexp.QuoteMeta(src)
	return &binlogFilter{
		br: bufio.NewReaderSize(r, 64<<10), src: src,
		qualified: regexp.MustCompile("(?i)(^|[^A-Za-z0-9_$`])(" + q + "|`" + q + "`)\\s*\\."),
	}
}

func (f *binlogFilter) Read(p []byte) (int, error) {
	for len(f.buf) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		line, err := f.br.ReadBytes('\n')
		if len(line) > 0 {
			if ferr := f.line(line); ferr != nil {
				f.err = ferr
				return 0, ferr
			}
		}
		if err != nil {
			f.err = err
		}
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

func (f *binlogFilter) line(l []byte) error {
	t := bytes.TrimRight(l, "\r\n")
	switch {
	case f.inBase64:
		f.inBase64 = !bytes.HasPrefix(t, []byte("'"))
	case bytes.Equal(t, []byte("BINLOG '")):
		f.inBase64 = true
	case bytes.HasPrefix(t, []byte("#")):
	case gtidSessionRE.Match(t):
		return nil
	case f.qualified.Match(t):
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf(
			"The binary log holds a statement that names the source database %s explicitly (%.200q): replayed into another database it would change the source. Restore without RestoreTime, or to a time before that statement.", f.src, t)}
	}
	f.buf = append(f.buf[:0], l...)
	return nil
}
