package rds

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// A restore writes into a new database: TargetDatabase, which must not
// exist, on the source server or another (TargetHost, TargetPort,
// TargetUser, TargetPassword). It creates the database with the source's
// character set and collation, pipes the dump from the vault into the
// client, and, for a RestoreTime, replays the binary log after it. A
// restore that fails drops the database it created: a job is COMPLETED
// with the whole database, or FAILED with none of it.

// RestoreMetadata tells where a restore goes by default, the source
// database, and whether and to which times the point restores.
func (m *MySQL) RestoreMetadata(p *backup.RecoveryPoint) map[string]string {
	src := p.ResourceMetadata
	md := map[string]string{
		mysqlMetaSourceDatabase: src[mysqlMetaDatabase],
		mysqlMetaTargetHost:     src[mysqlMetaHost],
		mysqlMetaTargetPort:     src[mysqlMetaPort],
		mysqlMetaTargetUser:     src[mysqlMetaUser],
	}
	for _, k := range []string{mysqlMetaServerVersion, mysqlMetaSnapshotTime, mysqlMetaBinlogFile, mysqlMetaBinlogPosition, mysqlMetaGTID,
		mysqlMetaPITR, mysqlMetaPITRNote, mysqlMetaEarliest, mysqlMetaLatest, mysqlMetaNonTx} {
		if v, ok := src[k]; ok {
			md[k] = v
		}
	}
	if md[mysqlMetaPITR] == "" {
		md[mysqlMetaPITR] = "unavailable: the point holds no binary log"
	}
	return md
}

// mysqlRestorePlan is a judged restore: where it goes and to when.
type mysqlRestorePlan struct {
	srv      mysqlServer
	src, dst string
	at       time.Time // zero: the snapshot
}

// plan judges a restore's metadata, connecting to the target server.
func (m *MySQL) plan(ctx context.Context, account string, p *backup.RecoveryPoint, md map[string]string) (*mysqlRestorePlan, error) {
	src := p.ResourceMetadata
	pl := &mysqlRestorePlan{src: src[mysqlMetaDatabase], dst: md[mysqlMetaTargetDatabase]}
	if pl.dst == "" {
		return nil, &backup.Error{Kind: backup.ErrMissingParameter, Message: "Missing restore metadata TargetDatabase: the name of a new database to restore into."}
	}
	if !mysqlIdent.MatchString(pl.dst) {
		return nil, badParam("Invalid TargetDatabase %q: 1 to 64 ASCII letters, digits, _ or $.", pl.dst)
	}
	srv, sameServer, err := m.targetServer(ctx, account, p, md)
	if err != nil {
		return nil, err
	}
	pl.srv = srv
	if v := md[metaRestoreTime]; v != "" {
		at, err := m.restoreTime(src, v)
		if err != nil {
			return nil, err
		}
		pl.at = at
	}
	s, err := m.session(pl.srv)
	if err != nil {
		return nil, err
	}
	defer s.close()
	rows, err := m.query(ctx, s, "", "SELECT CONCAT(@@hostname, ':', @@port, ':', @@datadir), "+
		"(SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "+sqlString(pl.dst)+")")
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, connectError(pl.srv, pl.dst, err)
	}
	if len(rows) != 1 || len(rows[0]) != 2 {
		return nil, fmt.Errorf("target server: unexpected answer %q", rows)
	}
	if pl.dst == pl.src && (sameServer || rows[0][0] == src[mysqlMetaServer]) {
		return nil, badParam("TargetDatabase %s is the backed-up database itself, on the same server: restore into a new database.", pl.dst)
	}
	if rows[0][1] != "0" {
		return nil, badParam("Database %s exists already on %s: a restore creates a new database and never writes into one.", pl.dst, pl.srv.addr())
	}
	return pl, nil
}

// targetServer is the server a restore's metadata names (the source's
// by default), with the password to log in: TargetPassword, or the
// source's registered one for its own server and user. sameServer says
// whether it is the source's server.
func (m *MySQL) targetServer(ctx context.Context, account string, p *backup.RecoveryPoint, md map[string]string) (mysqlServer, bool, error) {
	src := p.ResourceMetadata
	srcPort, _ := strconv.Atoi(src[mysqlMetaPort])
	srv := mysqlServer{Host: src[mysqlMetaHost], Port: srcPort, User: src[mysqlMetaUser]}
	if v := md[mysqlMetaTargetHost]; v != "" {
		srv.Host = v
	}
	if v := md[mysqlMetaTargetUser]; v != "" {
		srv.User = v
	}
	if v := md[mysqlMetaTargetPort]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 65535 {
			return srv, false, badParam("Invalid TargetPort %q: a number from 1 to 65535.", v)
		}
		srv.Port = n
	}
	if srv.Host == "" || srv.User == "" || srv.Port == 0 {
		return srv, false, &backup.Error{Kind: backup.ErrMissingParameter, Message: "Missing restore metadata TargetHost, TargetPort or TargetUser."}
	}
	if strings.ContainsAny(srv.Host, "\n\"\\") || strings.ContainsAny(srv.User, "\n") {
		return srv, false, badParam("Invalid TargetHost or TargetUser.")
	}
	sameServer := srv.Host == src[mysqlMetaHost] && strconv.Itoa(srv.Port) == src[mysqlMetaPort]
	if pw, ok := md[mysqlMetaTargetPassword]; ok {
		srv.Password = pw
	} else if sameServer && srv.User == src[mysqlMetaUser] {
		// The source's own server and user: its registered password,
		// while it is registered.
		if reg, err := m.rs.Get(ctx, account, p.ResourceARN); err == nil {
			pw, err := m.rs.Password(reg)
			if err != nil {
				return srv, false, err
			}
			srv.Password = pw
		}
	}
	return srv, sameServer, nil
}

// restoreTime parses a RestoreTime and checks it against the point's
// window.
func (m *MySQL) restoreTime(src map[string]string, v string) (time.Time, error) {
	pitr := src[mysqlMetaPITR]
	if pitr != "available" {
		if pitr == "" {
			pitr = "unavailable: the point holds no binary log"
		}
		return time.Time{}, badParam("This recovery point cannot be restored to a point in time (RestoreTime): point-in-time recovery is %s.", pitr)
	}
	at, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return time.Time{}, badParam("Invalid RestoreTime %q: a time in RFC 3339 form, such as 2006-01-02T15:04:05Z.", v)
	}
	earliest, err1 := time.Parse(time.RFC3339, src[mysqlMetaEarliest])
	latest, err2 := time.Parse(time.RFC3339, src[mysqlMetaLatest])
	if err1 != nil || err2 != nil {
		return time.Time{}, badParam("This recovery point records no point-in-time window.")
	}
	if at.Before(earliest) || at.After(latest) {
		return time.Time{}, badParam("RestoreTime %s is outside the recovery point's window, %s to %s.", v, src[mysqlMetaEarliest], src[mysqlMetaLatest])
	}
	return at, nil
}

// CheckRestore judges a restore and names the database it creates.
func (m *MySQL) CheckRestore(ctx context.Context, account string, p *backup.RecoveryPoint, md map[string]string) (string, error) {
	pl, err := m.plan(ctx, account, p, md)
	if err != nil {
		return "", err
	}
	name, err := restoredInstanceName(md, pl.dst)
	if err != nil {
		return "", err
	}
	return backup.RDSARN(regionOfPoint(p), account, name), nil
}

// Restore creates the target database and loads the point into it.
func (m *MySQL) Restore(ctx context.Context, run *backup.RestoreRun) error {
	pl, err := m.plan(ctx, run.Account, run.Point, run.Metadata)
	if err != nil {
		return err
	}
	var dump, base *vault.Entry
	var dumpRef, baseRef vault.ObjectRef
	var logs []binlogEntry
	err = run.Entries(ctx, func(e vault.Entry, ref vault.ObjectRef) error {
		switch {
		case e.Key == mysqlDumpKey:
			dump, dumpRef = &e, ref
		case e.Key == mysqlBaseKey:
			base, baseRef = &e, ref
		case strings.HasPrefix(e.Key, mysqlBinlogDir):
			logs = append(logs, binlogEntry{name: strings.TrimPrefix(e.Key, mysqlBinlogDir), e: e, ref: ref})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if dump == nil {
		return fmt.Errorf("recovery point %s has no %s", run.Point.ARN, mysqlDumpKey)
	}
	// The latest snapshot no later than RestoreTime.
	load, loadRef := dump, dumpRef
	if !pl.at.IsZero() && pl.at.Before(time.Unix(0, dump.LastModified)) {
		if base == nil || pl.at.Before(time.Unix(0, base.LastModified).Truncate(time.Second)) {
			return badParam("RestoreTime %s is before the recovery point's window.", pl.at.Format(time.RFC3339))
		}
		load, loadRef = base, baseRef
	}
	s, err := m.session(pl.srv)
	if err != nil {
		return err
	}
	defer s.close()
	charset, collation := run.Point.ResourceMetadata[mysqlMetaCharset], run.Point.ResourceMetadata[mysqlMetaCollation]
	create := "CREATE DATABASE " + sqlIdent(pl.dst)
	if mysqlIdent.MatchString(charset) && mysqlIdent.MatchString(collation) {
		create += " CHARACTER SET " + charset + " COLLATE " + collation
	}
	if _, err := m.query(ctx, s, "", create); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("Database %s could not be created on %s: %v", pl.dst, pl.srv.addr(), err)}
	}
	done := false
	defer func() {
		if !done {
			// What was restored of a failed job is not left to be taken
			// for the database.
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
			defer cancel()
			_, _ = m.query(dctx, s, "", "DROP DATABASE IF EXISTS "+sqlIdent(pl.dst))
		}
	}()
	rd, err := run.Open(ctx, *load, loadRef)
	if err != nil {
		return err
	}
	err = m.feed(ctx, s, pl.dst, rd)
	rd.Close()
	if err != nil {
		return err
	}
	if err := run.Restored(ctx, *load); err != nil {
		return err
	}
	if !pl.at.IsZero() {
		_, file, pos, ok := parseVersionID(load.VersionID)
		if !ok {
			return fmt.Errorf("recovery point %s: snapshot %s has no binary log position", run.Point.ARN, load.Key)
		}
		if err := m.replay(ctx, s, run, logs, file, pos, pl.at, pl.src, pl.dst); err != nil {
			return err
		}
	}
	done = true
	return nil
}

// feed pipes r into the client, in database db. It fails, having killed
// the client so that it runs nothing more, when r fails (data the vault
// found damaged, a statement the replay refuses); it fails with the
// client's error when a statement fails.
func (m *MySQL) feed(ctx context.Context, s *mysqlSession, db string, r io.Reader) error {
	prog, err := m.client()
	if err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(cctx, prog, s.defaults(), "--batch", "--skip-column-names",
		"--connect-timeout="+strconv.Itoa(int(mysqlConnectTimeout.Seconds())), "--database="+db)
	cmd.WaitDelay = 5 * time.Second
	stderr := &stderrTail{max: 4 << 10}
	cmd.Stderr, cmd.Stdout = stderr, io.Discard
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", prog, err)
	}
	src := &readErr{r: r}
	_, cerr := io.Copy(stdin, src)
	if src.err != nil {
		cancel() // before stdin closes: a cut statement is never run
		_ = cmd.Wait()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return src.err
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("Restoring into database %s failed: %v", db, toolError(prog, err, stderr))}
	}
	return cerr
}

// readErr remembers the error of the reader it wraps, to tell it from an
// error of the writer.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		r.err = err
	}
	return n, err
}
