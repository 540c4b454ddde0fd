package rds

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

var _ TestEngine = (*MySQL)(nil)

// maxMySQLName is MySQL's bound on a database name.
const maxMySQLName = 64

// TestRestoreMetadata restores a test into a new database
// <source>_restore_test_<id> on the source's server, as the source's
// user.
func (m *MySQL) TestRestoreMetadata(p *backup.RecoveryPoint, id string) map[string]string {
	src := p.ResourceMetadata
	return map[string]string{
		mysqlMetaTargetDatabase: scratchName(src[mysqlMetaDatabase], "_", id, maxMySQLName),
		mysqlMetaTargetHost:     src[mysqlMetaHost],
		mysqlMetaTargetPort:     src[mysqlMetaPort],
		mysqlMetaTargetUser:     src[mysqlMetaUser],
	}
}

// ScratchPath: a MySQL restore names no host path.
func (m *MySQL) ScratchPath(string) bool { return false }

// ValidateRestore checks that the restored database answers a query and
// holds the tables the point's dump creates, no fewer and no more (for a
// restore to a RestoreTime, which replays changes after the dump, only
// that it answers); the summary counts their rows. Then the check's query
// runs in it, and its command with BULWARK_RESTORE_DATABASE, MYSQL_HOST,
// MYSQL_TCP_PORT and BULWARK_RESTORE_USER set (no password: the command
// brings its own credentials).
func (m *MySQL) ValidateRestore(ctx context.Context, run *backup.RestoreRun, check backup.RestoreCheck) (string, error) {
	srv, _, err := m.targetServer(ctx, run.Account, run.Point, run.Metadata)
	if err != nil {
		return "", err
	}
	db := run.Metadata[mysqlMetaTargetDatabase]
	s, err := m.session(srv)
	if err != nil {
		return "", err
	}
	defer s.close()
	rows, err := m.query(ctx, s, db, "SELECT TABLE_NAME, COALESCE(TABLE_ROWS, 0) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "+
		sqlString(db)+" AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME")
	if err != nil {
		return "", &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored database %s does not answer: %v", db, err)}
	}
	var got []string
	for _, r := range rows {
		got = append(got, r[0])
	}
	what := fmt.Sprintf("database %s on %s answers, with %d tables", db, srv.addr(), len(got))
	if run.Metadata[metaRestoreTime] == "" {
		want, err := m.dumpTables(ctx, run)
		if err != nil {
			return "", err
		}
		if !slices.Equal(got, want) {
			return "", &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored database %s has tables %s; the recovery point's dump creates %s.",
				db, strings.Join(got, ", "), strings.Join(want, ", "))}
		}
		what += ", those the recovery point's dump creates"
	}
	if check.Query != "" {
		rows, err := m.query(ctx, s, db, check.Query)
		if err != nil {
			return "", queryFailed(err)
		}
		if err := backup.CheckValidationQuery(rows); err != nil {
			return "", err
		}
	}
	if err := backup.RunValidationCommand(ctx, run, check.Command, "BULWARK_RESTORE_DATABASE="+db, "MYSQL_HOST="+srv.Host,
		"MYSQL_TCP_PORT="+strconv.Itoa(srv.Port), "BULWARK_RESTORE_USER="+srv.User); err != nil {
		return "", err
	}
	return what + ".", nil
}

// dumpTables lists, sorted, the tables the point's dump creates: the
// names of its CREATE TABLE statements, read from the vault (checked
// against the SHA-256 it recorded, as a restore reads it).
func (m *MySQL) dumpTables(ctx context.Context, run *backup.RestoreRun) ([]string, error) {
	var dump *vault.Entry
	var ref vault.ObjectRef
	err := run.Entries(ctx, func(e vault.Entry, r vault.ObjectRef) error {
		if e.Key == mysqlDumpKey {
			dump, ref = &e, r
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if dump == nil {
		return nil, fmt.Errorf("recovery point %s has no %s", run.Point.ARN, mysqlDumpKey)
	}
	rd, err := run.Open(ctx, *dump, ref)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	tables, err := createdTables(rd)
	slices.Sort(tables)
	return slices.Compact(tables), err
}

// createdTables reads the table names of the CREATE TABLE statements
// that start lines of a dump, whatever the length of its other lines.
func createdTables(r io.Reader) ([]string, error) {
	const prefix = "CREATE TABLE `"
	br := bufio.NewReaderSize(r, 64<<10)
	var out []string
	start := true
	for {
		line, err := br.ReadSlice('\n')
		if start && len(line) > len(prefix) && string(line[:len(prefix)]) == prefix {
			rest := string(line[len(prefix):])
			if i := strings.Index(rest, "`"); i > 0 {
				out = append(out, strings.ReplaceAll(rest[:i], "``", "`"))
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			start = false
		case errors.Is(err, io.EOF):
			return out, nil
		case err != nil:
			return out, err
		default:
			start = true
		}
	}
}

// DeleteRestored drops a test's database, only if its name is a scratch
// database's, logging in as its metadata says with the password of a
// registered database of that server and user.
func (m *MySQL) DeleteRestored(ctx context.Context, t backup.RestoreTestTarget) error {
	md := t.Metadata
	db := md[mysqlMetaTargetDatabase]
	if !mysqlIdent.MatchString(db) || !scratchNameRE.MatchString(db) || !strings.Contains(db, "_restore_test_") {
		return badParam("Database %q is not the database of a restore test.", db)
	}
	port, err := strconv.Atoi(md[mysqlMetaTargetPort])
	if err != nil {
		return badParam("Invalid TargetPort %q.", md[mysqlMetaTargetPort])
	}
	srv := mysqlServer{Host: md[mysqlMetaTargetHost], Port: port, User: md[mysqlMetaTargetUser]}
	regs, err := m.rs.List(ctx, t.Account, backup.TypeRDS)
	if err != nil {
		return err
	}
	for _, reg := range regs {
		rs, _, err := mysqlSource(reg, "")
		if (reg.Engine == backup.EngineMySQL || reg.Engine == backup.EngineMariaDB) && err == nil && rs == srv {
			if srv.Password, err = m.rs.Password(reg); err != nil {
				return err
			}
			break
		}
	}
	s, err := m.session(srv)
	if err != nil {
		return err
	}
	defer s.close()
	if _, err := m.query(ctx, s, "", "DROP DATABASE IF EXISTS "+sqlIdent(db)); err != nil {
		return fmt.Errorf("drop database %s on %s: %w", db, srv.addr(), err)
	}
	return nil
}
