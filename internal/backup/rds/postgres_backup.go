package rds

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// Entry metadata of a PostgreSQL point: a file's mode, and the type of the
// entries that are not plain files.
const (
	pgEntryMode = "Mode"
	pgEntryType = "Type" // pgTypeDir for a directory; absent for a file
	pgTypeDir   = "dir"
)

// Backup takes a physical backup of the whole cluster: pg_basebackup
// streams the data directory as a tar archive, with the WAL the backup
// needs to be consistent (-X fetch), and every file of it is put as its
// own entry, streamed from the archive. Files that did not change since
// the previous backup are stored again by content, which the vault's
// deduplication turns into references: pg_basebackup's modification times
// are not a safe test of change, the content is.
//
// -X fetch reads the WAL at the end of the backup, which the server may
// have recycled meanwhile under write load; a temporary replication slot,
// held for the length of the backup, keeps it. For the base of a
// continuous point, the stream's permanent slot is made first, so that the
// WAL from the base's start on stays until the stream has it.
func (pg *Postgres) Backup(ctx context.Context, reg *backup.Registered, password string, run *backup.BackupRun) (backup.BackupResult, error) {
	s := settingsOf(reg)
	tool, err := pg.clientTool("pg_basebackup")
	if err != nil {
		return backup.BackupResult{}, invalid("Cannot back up %s: %v.", reg.Name, err)
	}
	facts, err := serverFacts(ctx, s, password)
	if err != nil {
		return backup.BackupResult{}, err
	}
	rc, err := connectReplication(ctx, s, password)
	if err != nil {
		return backup.BackupResult{}, err
	}
	// Closing the connection drops the temporary slot made on it.
	defer rc.Close(context.WithoutCancel(ctx))
	sys, err := pglogrepl.IdentifySystem(ctx, rc)
	if err != nil {
		return backup.BackupResult{}, fmt.Errorf("identify system: %w", err)
	}
	segSize, err := walSegmentSize(ctx, rc)
	if err != nil {
		return backup.BackupResult{}, err
	}
	if isContinuousBase(run) {
		if _, err := ensureSlot(ctx, rc, slotName(run.Resource.ARN)); err != nil {
			return backup.BackupResult{}, err
		}
	}
	tmp := "bulwark_base_" + randomHex(6)
	if _, err := rc.Exec(ctx, "CREATE_REPLICATION_SLOT "+tmp+" TEMPORARY PHYSICAL RESERVE_WAL").ReadAll(); err != nil {
		// Without it the backup still works unless the server recycles
		// the WAL it needs before the end: worth trying.
		pg.log.Warn("postgres backup: no temporary replication slot to hold the WAL of the backup", "resource", reg.ARN, "err", err)
	}

	pass, removePass, err := pg.passfile(password)
	if err != nil {
		return backup.BackupResult{}, err
	}
	defer removePass()
	cmd := exec.CommandContext(ctx, tool, "-D", "-", "-F", "t", "-X", "fetch", "--checkpoint=fast", "-v",
		"-l", "bulwark "+run.At.UTC().Format(time.RFC3339))
	cmd.Env = append(cleanEnv(), "PGHOST="+s.host, "PGPORT="+s.port, "PGUSER="+s.user, "PGPASSFILE="+pass,
		"PGAPPNAME=bulwark", "PGCONNECT_TIMEOUT=10", "PGSSLMODE=prefer")
	cmd.WaitDelay = 10 * time.Second
	stderr := &tail{max: 64 << 10}
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return backup.BackupResult{}, err
	}
	if err := cmd.Start(); err != nil {
		return backup.BackupResult{}, fmt.Errorf("start %s: %w", tool, err)
	}
	label, err := putArchive(ctx, run, bufio.NewReaderSize(stdout, 1<<20))
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if ctx.Err() != nil {
			return backup.BackupResult{}, ctx.Err()
		}
		if msg := stderr.String(); msg != "" {
			return backup.BackupResult{}, fmt.Errorf("%w (pg_basebackup: %s)", err, lastLines(msg, 5))
		}
		return backup.BackupResult{}, err
	}
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return backup.BackupResult{}, ctx.Err()
		}
		return backup.BackupResult{}, &backup.Error{Kind: backup.ErrInvalidRequest,
			Message: fmt.Sprintf("pg_basebackup of %s failed (%v): %s", s.addr(), err, lastLines(stderr.String(), 5))}
	}
	end := time.Now().UTC()
	md := map[string]string{
		pgMetaMethod: pgMethodPhysical, pgMetaVersion: facts.version, pgMetaMajor: strconv.Itoa(facts.major),
		pgMetaSystemID: sys.SystemID, pgMetaTimeline: strconv.Itoa(int(sys.Timeline)),
		pgMetaEndTime: end.Format(time.RFC3339Nano), pgMetaSegmentSize: strconv.FormatUint(segSize, 10),
		pgMetaSuperuser: facts.superuser, pgMetaSourceServer: s.addr(),
	}
	if facts.dataDir != "" {
		md[pgMetaSourceDir] = facts.dataDir
	}
	if m := startRE.FindSubmatch(label); m != nil {
		md[pgMetaStartLSN] = string(m[1])
	}
	if m := timelineRE.FindSubmatch(label); m != nil {
		md[pgMetaTimeline] = string(m[1])
	}
	if m := endRE.FindStringSubmatch(stderr.String()); m != nil {
		md[pgMetaEndLSN] = m[1]
	}
	if md[pgMetaStartLSN] == "" || md[pgMetaEndLSN] == "" {
		return backup.BackupResult{}, fmt.Errorf("pg_basebackup of %s: no start or end position in its output: %s", s.addr(), lastLines(stderr.String(), 5))
	}
	return backup.BackupResult{Metadata: md}, nil
}

var (
	startRE    = regexp.MustCompile(`START WAL LOCATION: ([0-9A-F]+/[0-9A-F]+)`)
	timelineRE = regexp.MustCompile(`START TIMELINE: (\d+)`)
	endRE      = regexp.MustCompile(`write-ahead log end point: ([0-9A-F]+/[0-9A-F]+)`)
)

// putArchive puts every member of the tar archive r as an entry, and
// returns the content of backup_label.
func putArchive(ctx context.Context, run *backup.BackupRun, r io.Reader) ([]byte, error) {
	tr := tar.NewReader(r)
	var label []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read pg_basebackup's archive: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if !filepath.IsLocal(name) {
			return nil, fmt.Errorf("pg_basebackup's archive has a member %q outside the data directory", h.Name)
		}
		mode := "0" + strconv.FormatInt(h.Mode&0o7777, 8)
		switch h.Typeflag {
		case tar.TypeDir:
			e := vault.Entry{Key: name + "/", Metadata: map[string]string{pgEntryType: pgTypeDir, pgEntryMode: mode}}
			if err := run.Put(ctx, e, bytes.NewReader(nil)); err != nil {
				return nil, err
			}
		case tar.TypeReg:
			e := vault.Entry{Key: name, Size: h.Size, LastModified: h.ModTime.UnixNano(), Metadata: map[string]string{pgEntryMode: mode}}
			var body io.Reader = tr
			var lb bytes.Buffer
			if name == "backup_label" {
				body = io.TeeReader(tr, &limitedBuffer{&lb, 64 << 10})
			}
			if err := run.Put(ctx, e, body); err != nil {
				return nil, err
			}
			if name == "backup_label" {
				label = lb.Bytes()
			}
		case tar.TypeSymlink:
			return nil, &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf(
				"The cluster's data directory has a symbolic link %s (to %s): clusters with tablespaces are not backed up.", name, h.Linkname)}
		default:
			// pg_basebackup sends files and directories only.
		}
	}
	// The archive's trailing blocks.
	_, err := io.Copy(io.Discard, r)
	return label, err
}

// limitedBuffer keeps up to max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// facts are what a backup records of the server.
type facts struct {
	version   string
	major     int
	superuser string // the bootstrap superuser (OID 10)
	dataDir   string // "" when the user may not see it
}

func serverFacts(ctx context.Context, s pgSettings, password string) (*facts, error) {
	c, err := connect(ctx, s, password, s.sqlDatabase())
	if err != nil {
		return nil, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	f := &facts{}
	var num int
	err = c.QueryRow(ctx, `SELECT current_setting('server_version'), current_setting('server_version_num')::int,
		(SELECT rolname FROM pg_roles WHERE oid = 10),
		COALESCE((SELECT setting FROM pg_settings WHERE name = 'data_directory'), '')`).Scan(&f.version, &num, &f.superuser, &f.dataDir)
	if err != nil {
		return nil, fmt.Errorf("read the settings of PostgreSQL at %s: %w", s.addr(), err)
	}
	f.major = num / 10000
	if i := strings.IndexByte(f.version, ' '); i > 0 {
		f.version = f.version[:i]
	}
	return f, nil
}

// walSegmentSize asks a replication connection for the size of the
// server's WAL segments.
func walSegmentSize(ctx context.Context, rc *pgconn.PgConn) (uint64, error) {
	res, err := rc.Exec(ctx, "SHOW wal_segment_size").ReadAll()
	if err != nil {
		return 0, fmt.Errorf("show wal_segment_size: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 1 {
		return 0, errors.New("show wal_segment_size: no answer")
	}
	v := string(res[0].Rows[0][0])
	mult := uint64(1)
	switch {
	case strings.HasSuffix(v, "GB"):
		mult, v = 1<<30, strings.TrimSuffix(v, "GB")
	case strings.HasSuffix(v, "MB"):
		mult, v = 1<<20, strings.TrimSuffix(v, "MB")
	case strings.HasSuffix(v, "kB"):
		mult, v = 1<<10, strings.TrimSuffix(v, "kB")
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 || (n*mult)&(n*mult-1) != 0 {
		return 0, fmt.Errorf("show wal_segment_size: unexpected answer %q", res[0].Rows[0][0])
	}
	return n * mult, nil
}

// slotName is the name of the replication slot of the continuous backup
// of a resource: one per resource, as AWS Backup allows one continuous
// backup per resource.
func slotName(arn string) string {
	sum := sha256.Sum256([]byte(arn))
	return "bulwark_" + hex.EncodeToString(sum[:10])
}

// ensureSlot makes the physical replication slot name, reserving WAL from
// now on, unless it exists; it reports whether it made it.
func ensureSlot(ctx context.Context, rc *pgconn.PgConn, name string) (bool, error) {
	_, err := rc.Exec(ctx, "CREATE_REPLICATION_SLOT "+name+" PHYSICAL RESERVE_WAL").ReadAll()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42710" { // duplicate_object
		return false, nil
	}
	if err != nil {
		if errors.As(err, &pe) {
			return false, invalid("Cannot make the replication slot %s of the continuous backup: %s (SQLSTATE %s).", name, pe.Message, pe.Code)
		}
		return false, fmt.Errorf("create replication slot %s: %w", name, err)
	}
	return true, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// lastLines is the last n lines of s, on one line.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}
