package rds_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// engineHarness is a region under test with a Backup API client, through
// which the tests of the database engines back up and restore.
type engineHarness struct {
	t    *testing.T
	r    *servertest.Region
	c    *awsbackup.Client
	role *string
}

func newEngineHarness(t *testing.T) *engineHarness {
	r := servertest.Start(t, servertest.Options{})
	return &engineHarness{t: t, r: r, c: engineSDK(r, servertest.AccessKey, servertest.SecretKey),
		role: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")}
}

func engineSDK(r *servertest.Region, access, secret string) *awsbackup.Client {
	return awsbackup.NewFromConfig(aws.Config{
		Region:       r.Store.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		BaseEndpoint: aws.String(r.URL()),
	})
}

func (h *engineHarness) register(name, engine string, settings map[string]string, password string) (*backup.Registered, error) {
	return h.r.Resources.Register(context.Background(), servertest.AccountID, backup.Registration{
		Type: backup.TypeRDS, Engine: engine, Name: name, Settings: settings, Password: password})
}

func (h *engineHarness) mustRegister(name, engine string, settings map[string]string, password string) string {
	h.t.Helper()
	reg, err := h.register(name, engine, settings, password)
	if err != nil {
		h.t.Fatalf("register %s: %v", name, err)
	}
	return reg.ARN
}

// backup runs a backup job of arn into the Default vault to its end.
func (h *engineHarness) backup(arn string) *awsbackup.DescribeBackupJobOutput {
	h.t.Helper()
	ctx := context.Background()
	start, err := h.c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String(arn), IamRoleArn: h.role})
	if err != nil {
		h.t.Fatal(err)
	}
	var j *awsbackup.DescribeBackupJobOutput
	engineWait(h.t, "backup job", func() bool {
		if j, err = h.c.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: start.BackupJobId}); err != nil {
			h.t.Fatal(err)
		}
		return j.State == types.BackupJobStateCompleted || j.State == types.BackupJobStateFailed || j.State == types.BackupJobStateAborted
	})
	return j
}

func (h *engineHarness) mustBackup(arn string) *awsbackup.DescribeBackupJobOutput {
	h.t.Helper()
	j := h.backup(arn)
	if j.State != types.BackupJobStateCompleted {
		h.t.Fatalf("backup of %s: %s %s", arn, j.State, aws.ToString(j.StatusMessage))
	}
	return j
}

func (h *engineHarness) startRestore(point string, md map[string]string) (*awsbackup.StartRestoreJobOutput, error) {
	return h.c.StartRestoreJob(context.Background(), &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(point),
		IamRoleArn: h.role, Metadata: md})
}

// restore runs a restore job to its end.
func (h *engineHarness) restore(point string, md map[string]string) *awsbackup.DescribeRestoreJobOutput {
	h.t.Helper()
	start, err := h.startRestore(point, md)
	if err != nil {
		h.t.Fatalf("start restore: %v", err)
	}
	var j *awsbackup.DescribeRestoreJobOutput
	engineWait(h.t, "restore job", func() bool {
		if j, err = h.c.DescribeRestoreJob(context.Background(), &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId}); err != nil {
			h.t.Fatal(err)
		}
		return j.Status == types.RestoreJobStatusCompleted || j.Status == types.RestoreJobStatusFailed || j.Status == types.RestoreJobStatusAborted
	})
	return j
}

func (h *engineHarness) restoreMetadata(point string) map[string]string {
	h.t.Helper()
	md, err := h.c.GetRecoveryPointRestoreMetadata(context.Background(), &awsbackup.GetRecoveryPointRestoreMetadataInput{
		BackupVaultName: aws.String("Default"), RecoveryPointArn: aws.String(point)})
	if err != nil {
		h.t.Fatal(err)
	}
	return md.RestoreMetadata
}

// point returns the recovery point record of a job, with what the API
// does not show (the bytes new to the vault).
func (h *engineHarness) point(j *awsbackup.DescribeBackupJobOutput) *backup.RecoveryPoint {
	h.t.Helper()
	p, err := h.r.Jobs.DescribeRecoveryPoint(context.Background(), servertest.AccountID, "Default", aws.ToString(j.RecoveryPointArn))
	if err != nil {
		h.t.Fatal(err)
	}
	return p
}

func engineWait(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatalf("%s did not end", what)
}

// wantRefused fails unless err is the API error code with a message
// containing want.
func wantRefused(t *testing.T, err error, code, want string) {
	t.Helper()
	c, _ := servertest.APICode(err)
	if c != code || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %s saying %q", err, code, want)
	}
}

// wantInvalid fails unless err is a *backup.Error of kind with a message
// containing want.
func wantInvalid(t *testing.T, err error, kind error, want string) {
	t.Helper()
	var be *backup.Error
	if !errors.As(err, &be) || !errors.Is(err, kind) || !strings.Contains(be.Message, want) {
		t.Fatalf("got %v, want a %v error saying %q", err, kind, want)
	}
}

// sqlite runs the sqlite3 program on a database and returns its output.
func sqlite(t *testing.T, db, script string) string {
	t.Helper()
	cmd := exec.Command("sqlite3", "-batch", "-bail", db)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqlite3 %s: %v: %s", db, err, out)
	}
	return strings.TrimSpace(string(out))
}

func sqliteInt(t *testing.T, db, query string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(sqlite(t, db, query), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

const (
	accounts       = 50
	accountBalance = 1000
)

// newBankSQLite makes a WAL database of accounts holding accounts *
// accountBalance in total and a ledger numbered 1..n, with some padding so
// that a copy takes a moment.
func newBankSQLite(t *testing.T, path string) {
	sqlite(t, path, fmt.Sprintf(`PRAGMA journal_mode=WAL;
CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER NOT NULL);
CREATE TABLE ledger(n INTEGER PRIMARY KEY, pad BLOB);
CREATE TABLE filler(x BLOB);
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < %d) INSERT INTO acct SELECT i, %d FROM c;
WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 20000) INSERT INTO filler SELECT randomblob(300) FROM c;
INSERT INTO ledger VALUES (1, randomblob(100));
`, accounts, accountBalance))
}

// bankWriter moves money between accounts and appends to the ledger, one
// transaction at a time, through one sqlite3 process, until stopped.
type bankWriter struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	stop   chan struct{}
	done   chan error
	stopFn func() error
}

func startBankWriter(t *testing.T, name string, args []string, tx func(i int) string) *bankWriter {
	t.Helper()
	cmd := exec.Command(name, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w := &bankWriter{cmd: cmd, in: in, stop: make(chan struct{}), done: make(chan error, 1)}
	go func() {
		bw := bufio.NewWriter(in)
		var err error
		for i := 0; err == nil; i++ {
			select {
			case <-w.stop:
				err = errors.New("stopped")
				continue
			default:
			}
			if _, err = bw.WriteString(tx(i)); err == nil && i%20 == 0 {
				err = bw.Flush()
			}
		}
		bw.Flush()
		in.Close()
		werr := cmd.Wait()
		if werr != nil {
			werr = fmt.Errorf("%v: %s", werr, stderr.String())
		}
		w.done <- werr
	}()
	var once sync.Once
	t.Cleanup(func() { once.Do(func() { close(w.stop); <-w.done }) })
	w.stopFn = func() error {
		var err error
		once.Do(func() { close(w.stop); err = <-w.done })
		return err
	}
	return w
}

// stop ends the writer once its last transaction is in.
func (w *bankWriter) Stop() error { return w.stopFn() }

// waitGrowth waits until count() exceeds n.
func waitGrowth(t *testing.T, n int64, count func() int64) int64 {
	t.Helper()
	var c int64
	engineWait(t, "the writer", func() bool { c = count(); return c > n+50 })
	return c
}

func sqliteTx(i int) string {
	from, to := i%accounts+1, (i*7+3)%accounts+1
	return fmt.Sprintf("BEGIN IMMEDIATE; UPDATE acct SET bal = bal - %d WHERE id = %d; UPDATE acct SET bal = bal + %d WHERE id = %d; "+
		"INSERT INTO ledger SELECT max(n) + 1, randomblob(100) FROM ledger; COMMIT;\n", i%13+1, from, i%13+1, to)
}

// TestSQLiteBackupDuringWrites backs up an SQLite database while a writer
// moves money between accounts and numbers ledger rows, restores it, and
// finds a state the database really had: the total unchanged, the ledger
// without gaps, integrity_check ok, and some but not all of the writes.
func TestSQLiteBackupDuringWrites(t *testing.T) {
	servertest.RequireTool(t, "sqlite3")
	h := newEngineHarness(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	newBankSQLite(t, db)
	arn := h.mustRegister("appdb", "sqlite", map[string]string{backup.SettingPath: db}, "")

	w := startBankWriter(t, "sqlite3", []string{"-batch", "-cmd", ".timeout 20000", db}, sqliteTx)
	count := func() int64 { return sqliteInt(t, db, ".timeout 20000\nSELECT count(*) FROM ledger;") }
	before := waitGrowth(t, 1, count)
	j := h.mustBackup(arn)
	waitGrowth(t, count(), count)
	if err := w.Stop(); err != nil {
		t.Fatalf("writer: %v", err)
	}
	final := count()

	point := aws.ToString(j.RecoveryPointArn)
	md := h.restoreMetadata(point)
	if md["Path"] != db || md["Engine"] != "sqlite" || md["PageSize"] == "" || md["JournalMode"] != "wal" {
		t.Fatalf("restore metadata: %v", md)
	}
	target := filepath.Join(t.TempDir(), "app-restored.db")
	rj := h.restore(point, map[string]string{"TargetPath": target})
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if got, want := aws.ToString(rj.CreatedResourceArn), backup.RDSARN("us-west-2", servertest.AccountID, "app-restored"); got != want {
		t.Fatalf("created resource %s, want %s", got, want)
	}
	if got := sqlite(t, target, "PRAGMA integrity_check;"); got != "ok" {
		t.Fatalf("integrity_check: %s", got)
	}
	if total := sqliteInt(t, target, "SELECT sum(bal) FROM acct;"); total != accounts*accountBalance {
		t.Fatalf("restored total %d, want %d", total, accounts*accountBalance)
	}
	rows, max := sqliteInt(t, target, "SELECT count(*) FROM ledger;"), sqliteInt(t, target, "SELECT max(n) FROM ledger;")
	if rows != max {
		t.Fatalf("restored ledger has %d rows numbered up to %d", rows, max)
	}
	if rows <= before || rows >= final {
		t.Fatalf("restored ledger has %d rows; the writer had %d when the backup started and %d at the end", rows, before, final)
	}
	t.Logf("ledger: %d rows at the backup's start, %d restored, %d at the end", before, rows, final)
	st, err := os.Stat(target)
	if err != nil {
		t.Fatal(err)
	}
	if leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(target), ".*")); len(leftovers) != 0 {
		t.Fatalf("restore left %v", leftovers)
	}
	if scratch, _ := filepath.Glob(filepath.Join(h.r.Dir, "tmp", "*")); len(scratch) != 0 {
		t.Fatalf("backup left %v in the scratch directory", scratch)
	}

	// Two more backups, the writer stopped, around a small change: the
	// pages that did not change are chunks the vault holds. (The first
	// point was taken under the writer, whose transfers touched pages all
	// over the file since.)
	j1 := h.mustBackup(arn)
	sqlite(t, db, "UPDATE acct SET bal = bal WHERE id = 1; INSERT INTO ledger SELECT max(n) + 1, randomblob(100) FROM ledger;")
	j2 := h.mustBackup(arn)
	p1, p2 := h.point(j1), h.point(j2)
	t.Logf("database %d bytes; first point %d bytes, %d new; second point %d bytes, %d new", st.Size(),
		p1.BackupSizeInBytes, p1.BytesNew, p2.BackupSizeInBytes, p2.BytesNew)
	if p2.BytesNew*2 > p2.BackupSizeInBytes {
		t.Fatalf("second point stored %d new bytes of %d", p2.BytesNew, p2.BackupSizeInBytes)
	}
}

// TestSQLiteRefusals: what cannot be registered, backed up or restored
// says why, and nothing is COMPLETED without its data.
func TestSQLiteRefusals(t *testing.T) {
	servertest.RequireTool(t, "sqlite3")
	h := newEngineHarness(t)
	dir := t.TempDir()
	db := filepath.Join(dir, "app.db")
	sqlite(t, db, "CREATE TABLE t(x); INSERT INTO t VALUES (1);")
	text := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(text, []byte("not a database at all, just text\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		settings map[string]string
		password string
		kind     error
		want     string
	}{
		{"missing", map[string]string{backup.SettingPath: filepath.Join(dir, "nope.db")}, "", backup.ErrInvalidParameter, "does not exist"},
		{"relative", map[string]string{backup.SettingPath: "app.db"}, "", backup.ErrInvalidParameter, "not a clean absolute path"},
		{"nopath", map[string]string{}, "", backup.ErrMissingParameter, "Missing setting Path"},
		{"text", map[string]string{backup.SettingPath: text}, "", backup.ErrInvalidParameter, "is not an SQLite database"},
		{"dir", map[string]string{backup.SettingPath: dir}, "", backup.ErrInvalidParameter, "not a regular file"},
		{"password", map[string]string{backup.SettingPath: db}, "secret", backup.ErrInvalidParameter, "no password"},
	} {
		_, err := h.register(c.name, "sqlite", c.settings, c.password)
		wantInvalid(t, err, c.kind, c.want)
	}

	// Without the sqlite3 program, nothing can be copied consistently.
	t.Run("no tool", func(t *testing.T) {
		t.Setenv("PATH", t.TempDir())
		_, err := h.register("notool", "sqlite", map[string]string{backup.SettingPath: db}, "")
		wantInvalid(t, err, backup.ErrInvalidParameter, "sqlite3 program is not installed")
	})

	arn := h.mustRegister("appdb", "sqlite", map[string]string{backup.SettingPath: db}, "")
	// Another account's resource.
	other := engineSDK(h.r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	_, err := other.StartBackupJob(context.Background(), &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String(arn), IamRoleArn: aws.String("arn:aws:iam::" + servertest.OtherAccountID + ":role/backup")})
	wantRefused(t, err, "InvalidParameterValueException", "another account")

	point := aws.ToString(h.mustBackup(arn).RecoveryPointArn)
	exists := filepath.Join(dir, "exists.db")
	if err := os.WriteFile(exists, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	staleWAL := filepath.Join(dir, "stale.db")
	if err := os.WriteFile(staleWAL+"-wal", []byte("old log"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		md         map[string]string
		code, want string
	}{
		{map[string]string{"TargetPath": exists}, "InvalidParameterValueException", "exists already"},
		{map[string]string{"TargetPath": db}, "InvalidParameterValueException", "the backed-up database itself"},
		{map[string]string{"TargetPath": staleWAL}, "InvalidParameterValueException", "stale.db-wal exists already"},
		{map[string]string{"TargetPath": filepath.Join(dir, "no", "such", "dir.db")}, "InvalidParameterValueException", "does not exist"},
		{map[string]string{}, "MissingParameterValueException", "TargetPath"},
		{map[string]string{"TargetPath": filepath.Join(dir, "r.db"), "RestoreTime": "2024-01-01T00:00:00Z"}, "InvalidParameterValueException", "no point-in-time restore"},
		{map[string]string{"TargetPath": filepath.Join(dir, "r.db"), "DBInstanceIdentifier": "no--good"}, "InvalidParameterValueException", "Invalid DBInstanceIdentifier"},
	} {
		_, err := h.startRestore(point, c.md)
		wantRefused(t, err, c.code, c.want)
	}
	rj := h.restore(point, map[string]string{"TargetPath": filepath.Join(dir, "9 lives.db"), "DBInstanceIdentifier": "lives"})
	if rj.Status != types.RestoreJobStatusCompleted || aws.ToString(rj.CreatedResourceArn) != backup.RDSARN("us-west-2", servertest.AccountID, "lives") {
		t.Fatalf("restore: %s %s %s", rj.Status, aws.ToString(rj.StatusMessage), aws.ToString(rj.CreatedResourceArn))
	}

	// A database whose pages are damaged is backed up as it is, and its
	// restore fails SQLite's integrity check: the target never appears.
	bad := filepath.Join(dir, "bad.db")
	sqlite(t, bad, "PRAGMA page_size=4096; CREATE TABLE t(x); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 5000) INSERT INTO t SELECT randomblob(200) FROM c; CREATE INDEX ti ON t(x);")
	f, err := os.OpenFile(bad, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte(strings.Repeat("\xff", 4096)), 4096*5); err != nil {
		t.Fatal(err)
	}
	f.Close()
	badARN := h.mustRegister("baddb", "sqlite", map[string]string{backup.SettingPath: bad}, "")
	badPoint := aws.ToString(h.mustBackup(badARN).RecoveryPointArn)
	badTarget := filepath.Join(dir, "bad-restored.db")
	rj = h.restore(badPoint, map[string]string{"TargetPath": badTarget})
	if rj.Status != types.RestoreJobStatusFailed || !strings.Contains(aws.ToString(rj.StatusMessage), "integrity check") {
		t.Fatalf("restore of a damaged database: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*bad-restored*")); len(left) != 0 {
		t.Fatalf("failed restore left %v", left)
	}

	// A database deleted after it was registered: the job fails, saying
	// so.
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	j := h.backup(arn)
	if j.State != types.BackupJobStateFailed || !strings.Contains(aws.ToString(j.StatusMessage), "does not exist") {
		t.Fatalf("backup of a deleted database: %s %s", j.State, aws.ToString(j.StatusMessage))
	}
}
