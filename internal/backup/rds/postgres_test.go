package rds_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"
	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

var role = aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")

func backupClient(r *servertest.Region, access, secret string) *awsbackup.Client {
	return awsbackup.NewFromConfig(aws.Config{
		Region:       r.Store.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		BaseEndpoint: aws.String(r.URL()),
	})
}

// register registers the cluster as RDS resource name.
func register(t *testing.T, r *servertest.Region, c *rds.TestCluster, name, password string) *backup.Registered {
	t.Helper()
	reg, err := r.Resources.Register(context.Background(), servertest.AccountID, backup.Registration{
		Type: backup.TypeRDS, Engine: "postgres", Name: name, Password: password,
		Settings: map[string]string{backup.SettingHost: "127.0.0.1", backup.SettingPort: c.PortString(), backup.SettingUser: "postgres"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

func startBackup(t *testing.T, c *awsbackup.Client, arn string) *awsbackup.DescribeBackupJobOutput {
	t.Helper()
	start, err := c.StartBackupJob(context.Background(), &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String(arn), IamRoleArn: role})
	if err != nil {
		t.Fatal(err)
	}
	var j *awsbackup.DescribeBackupJobOutput
	waitFor(t, 5*time.Minute, "backup job", func() bool {
		if j, err = c.DescribeBackupJob(context.Background(), &awsbackup.DescribeBackupJobInput{BackupJobId: start.BackupJobId}); err != nil {
			t.Fatal(err)
		}
		return j.State == types.BackupJobStateCompleted || j.State == types.BackupJobStateFailed || j.State == types.BackupJobStateAborted
	})
	return j
}

// restore starts a restore job and waits for its end.
func restore(t *testing.T, c *awsbackup.Client, pointARN string, md map[string]string) *awsbackup.DescribeRestoreJobOutput {
	t.Helper()
	ctx := context.Background()
	start, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: &pointARN, IamRoleArn: role, Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	var j *awsbackup.DescribeRestoreJobOutput
	waitFor(t, 5*time.Minute, "restore job", func() bool {
		if j, err = c.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId}); err != nil {
			t.Fatal(err)
		}
		return j.Status == types.RestoreJobStatusCompleted || j.Status == types.RestoreJobStatusFailed || j.Status == types.RestoreJobStatusAborted
	})
	return j
}

func waitFor(t *testing.T, d time.Duration, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatalf("%s did not end in %s", what, d)
}

// writer inserts numbered rows, batch at a time in one transaction each,
// until stopped, and records the last number committed and when each
// batch's commit returned.
type writer struct {
	committed atomic.Int64
	stop      chan struct{}
	done      sync.WaitGroup
	err       error
	mu        sync.Mutex
	returned  []time.Time // of batch i: rows i*batch+1 .. (i+1)*batch
}

func startWriter(t *testing.T, c *rds.TestCluster, batch int) *writer {
	w := &writer{stop: make(chan struct{})}
	conn := c.Conn(t)
	if _, err := conn.Exec(context.Background(), "CREATE TABLE IF NOT EXISTS numbers (n bigint PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp(), pad text)"); err != nil {
		t.Fatal(err)
	}
	w.done.Add(1)
	go func() {
		defer w.done.Done()
		ctx := context.Background()
		for next := int64(1); ; next += int64(batch) {
			select {
			case <-w.stop:
				return
			case <-time.After(time.Millisecond):
			}
			_, err := conn.Exec(ctx, "INSERT INTO numbers (n, pad) SELECT g, repeat('p', 200) FROM generate_series($1::bigint, $2::bigint) g", next, next+int64(batch)-1)
			if err != nil {
				w.err = err
				return
			}
			now := time.Now()
			w.mu.Lock()
			w.returned = append(w.returned, now)
			w.mu.Unlock()
			w.committed.Store(next + int64(batch) - 1)
		}
	}()
	return w
}

func (w *writer) Stop(t *testing.T) int64 {
	close(w.stop)
	w.done.Wait()
	if w.err != nil {
		t.Fatal(w.err)
	}
	return w.committed.Load()
}

// committedBefore is the last row whose commit returned before t.
func (w *writer) committedBefore(t time.Time, batch int) int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	var n int64
	for i, at := range w.returned {
		if at.Before(t) {
			n = int64(i+1) * int64(batch)
		}
	}
	return n
}

// checkPrefix checks that the numbers of a restored cluster are 1..N
// without a hole, N a whole number of batches and at least least, and
// returns N.
func checkPrefix(t *testing.T, conn *pgx.Conn, batch int, least int64) int64 {
	t.Helper()
	var count, lo, hi int64
	if err := conn.QueryRow(context.Background(), "SELECT count(*), COALESCE(min(n), 0), COALESCE(max(n), 0) FROM numbers").Scan(&count, &lo, &hi); err != nil {
		t.Fatal(err)
	}
	if count != hi || (count > 0 && lo != 1) || hi%int64(batch) != 0 || hi < least {
		t.Fatalf("restored numbers: %d rows from %d to %d (batches of %d, at least %d): not a whole prefix", count, lo, hi, batch, least)
	}
	return hi
}

// TestPostgresSnapshotRestore backs a cluster up while a writer commits
// numbered rows, restores it into a new data directory on a new port, and
// finds a started server whose rows are a prefix of the writer's without a
// hole, holding every row committed before the backup began. A second
// backup stores little new data.
func TestPostgresSnapshotRestore(t *testing.T) {
	c := rds.StartTestCluster(t, rds.TestClusterOptions{})
	c.Exec(t, "CREATE TABLE ballast AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 300000) g")
	r := servertest.Start(t, servertest.Options{})
	reg := register(t, r, c, "orders", "")
	api := backupClient(r, servertest.AccessKey, servertest.SecretKey)

	const batch = 10
	w := startWriter(t, c, batch)
	waitFor(t, time.Minute, "the writer", func() bool { return w.committed.Load() >= 1000 })
	before := w.committed.Load()
	j := startBackup(t, api, reg.ARN)
	if j.State != types.BackupJobStateCompleted {
		t.Fatalf("backup: %s %s", j.State, aws.ToString(j.StatusMessage))
	}
	w.Stop(t)
	pointARN := aws.ToString(j.RecoveryPointArn)
	ctx := context.Background()
	rp1, err := r.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", pointARN)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"ServerVersion", "SystemIdentifier", "StartLSN", "EndLSN", "Timeline", "BackupEndTime", "Engine"} {
		if rp1.ResourceMetadata[k] == "" {
			t.Errorf("point metadata lacks %s: %v", k, rp1.ResourceMetadata)
		}
	}
	md, err := api.GetRecoveryPointRestoreMetadata(ctx, &awsbackup.GetRecoveryPointRestoreMetadataInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: &pointARN})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := md.RestoreMetadata["DataDirectory"]; !ok {
		t.Fatalf("restore metadata: %v", md.RestoreMetadata)
	}

	dir := filepath.Join(c.Base, "restored")
	port := rds.FreePort(t)
	rj := restore(t, api, pointARN, map[string]string{"DataDirectory": dir, "Port": strconv.Itoa(port), "DBInstanceIdentifier": "orders-copy"})
	t.Cleanup(func() { rds.StopServer(t, c.BinDir, dir) })
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if got, want := aws.ToString(rj.CreatedResourceArn), backup.RDSARN("us-west-2", servertest.AccountID, "orders-copy"); got != want {
		t.Fatalf("created resource %s, want %s", got, want)
	}
	conn := rds.SocketConn(t, dir, port, "postgres")
	n := checkPrefix(t, conn, batch, before)
	var ballast int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM ballast").Scan(&ballast); err != nil || ballast != 300000 {
		t.Fatalf("ballast: %d rows, %v", ballast, err)
	}
	t.Logf("restored %d numbered rows (%d committed before the backup began); first backup %d bytes, %d new", n, before, rp1.BackupSizeInBytes, rp1.BytesNew)

	// A second backup of the cluster, a few rows on, stores little.
	c.Exec(t, "INSERT INTO numbers (n) SELECT g FROM generate_series(-100, -1) g")
	j2 := startBackup(t, api, reg.ARN)
	if j2.State != types.BackupJobStateCompleted {
		t.Fatalf("second backup: %s %s", j2.State, aws.ToString(j2.StatusMessage))
	}
	rp2, err := r.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", aws.ToString(j2.RecoveryPointArn))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("second backup: %d bytes, %d new (%.1f%%)", rp2.BackupSizeInBytes, rp2.BytesNew, 100*float64(rp2.BytesNew)/float64(rp2.BackupSizeInBytes))
	if rp2.BytesNew > rp2.BackupSizeInBytes/4 {
		t.Fatalf("second backup stored %d new bytes of %d", rp2.BytesNew, rp2.BackupSizeInBytes)
	}

	// Restoring again into the same, now busy, place is refused before a
	// job starts; so is a port in use.
	for _, m := range []map[string]string{
		{"DataDirectory": dir, "Port": strconv.Itoa(rds.FreePort(t))},
		{"DataDirectory": filepath.Join(c.Base, "other"), "Port": strconv.Itoa(port)},
		{"DataDirectory": filepath.Join(c.Base, "other"), "Port": c.PortString()},
		{"DataDirectory": "relative/dir", "Port": strconv.Itoa(rds.FreePort(t))},
		{"DataDirectory": c.Data, "Port": strconv.Itoa(rds.FreePort(t))},
		{"Port": strconv.Itoa(rds.FreePort(t))},
		{"DataDirectory": filepath.Join(c.Base, "other")},
		{"DataDirectory": filepath.Join(c.Base, "other"), "Port": strconv.Itoa(rds.FreePort(t)), "Bogus": "x"},
	} {
		_, err := api.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: &pointARN, IamRoleArn: role, Metadata: m})
		if code, _ := servertest.APICode(err); code != "InvalidParameterValueException" && code != "MissingParameterValueException" {
			t.Fatalf("restore with %v: %v", m, err)
		}
		t.Logf("refused %v: %v", m, err)
	}
	if _, err := os.Stat(filepath.Join(c.Base, "other")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused restore made its directory: %v", err)
	}

	// A port taken while the job runs: the job fails, saying why, and
	// leaves no directory and no server behind.
	busy := rds.FreePort(t)
	failed := filepath.Join(c.Base, "failed")
	start, err := api.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: &pointARN, IamRoleArn: role,
		Metadata: map[string]string{"DataDirectory": failed, "Port": strconv.Itoa(busy)}})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(busy))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var fj *awsbackup.DescribeRestoreJobOutput
	waitFor(t, time.Minute, "the failing restore", func() bool {
		if fj, err = api.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId}); err != nil {
			t.Fatal(err)
		}
		return fj.Status == types.RestoreJobStatusCompleted || fj.Status == types.RestoreJobStatusFailed
	})
	t.Cleanup(func() { rds.StopServer(t, c.BinDir, failed) })
	if fj.Status != types.RestoreJobStatusFailed {
		t.Fatalf("restore onto a port taken meanwhile: %s", fj.Status)
	}
	t.Logf("restore onto a port taken meanwhile: %s", aws.ToString(fj.StatusMessage))
	if _, err := os.Stat(failed); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a failed restore left its directory: %v", err)
	}
}

// TestPostgresBadInput: registrations that cannot work are refused with a
// clear message, and a backup of another account's resource never starts.
func TestPostgresBadInput(t *testing.T) {
	c := rds.StartTestCluster(t, rds.TestClusterOptions{Password: "s3cret:pw"})
	r := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	try := func(name string, settings map[string]string, password, want string) {
		t.Helper()
		_, err := r.Resources.Register(ctx, servertest.AccountID, backup.Registration{Type: backup.TypeRDS, Engine: "postgres", Name: name, Settings: settings, Password: password})
		var be *backup.Error
		if !errors.As(err, &be) || !errors.Is(err, backup.ErrInvalidParameter) || !strings.Contains(be.Message, want) {
			t.Fatalf("register %s: %v; want a refusal saying %q", name, err, want)
		}
		if strings.Contains(be.Message, "s3cret") {
			t.Fatalf("the refusal shows the password: %s", be.Message)
		}
		t.Logf("%s: %s", name, be.Message)
	}
	set := func(port string) map[string]string {
		return map[string]string{backup.SettingHost: "127.0.0.1", backup.SettingPort: port, backup.SettingUser: "postgres"}
	}
	try("unreachable", set(strconv.Itoa(rds.FreePort(t))), "", "Cannot reach PostgreSQL")
	try("wrongpw", set(c.PortString()), "wrong", "refused the password")
	try("nopw", set(c.PortString()), "", "PostgreSQL at")
	missingDB := set(c.PortString())
	missingDB[backup.SettingDatabase] = "nosuchdb"
	try("missingdb", missingDB, "s3cret:pw", `Database "nosuchdb" does not exist`)
	bad := set(c.PortString())
	bad["Path"] = "/x"
	try("badsetting", bad, "s3cret:pw", "does not apply to PostgreSQL")

	// A user without REPLICATION.
	c.Exec(t, "CREATE ROLE plain LOGIN PASSWORD 'plainpw'")
	plain := set(c.PortString())
	plain[backup.SettingUser] = "plain"
	try("noreplication", plain, "plainpw", "neither REPLICATION nor SUPERUSER")

	// pg_basebackup missing from PATH.
	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir())
	try("notool", set(c.PortString()), "s3cret:pw", "pg_basebackup is not installed")
	t.Setenv("PATH", path)

	// A cluster that goes away after its registration: the job fails,
	// saying why.
	reg := register(t, r, c, "goes", "s3cret:pw")
	c.Stop()
	j := startBackup(t, backupClient(r, servertest.AccessKey, servertest.SecretKey), reg.ARN)
	if j.State != types.BackupJobStateFailed || !strings.Contains(aws.ToString(j.StatusMessage), "Cannot reach PostgreSQL") {
		t.Fatalf("backup of a stopped cluster: %s %s", j.State, aws.ToString(j.StatusMessage))
	}
	t.Logf("backup of a stopped cluster: %s", aws.ToString(j.StatusMessage))
}

// TestPostgresPassword backs up a cluster that needs a password and
// checks that no password reaches a command line or the job's messages;
// another account cannot back it up.
func TestPostgresPassword(t *testing.T) {
	c := rds.StartTestCluster(t, rds.TestClusterOptions{Password: "pa:ss\\word"})
	r := servertest.Start(t, servertest.Options{})
	reg := register(t, r, c, "secured", "pa:ss\\word")
	api := backupClient(r, servertest.AccessKey, servertest.SecretKey)
	c.Exec(t, "CREATE TABLE t AS SELECT 1 AS x")
	j := startBackup(t, api, reg.ARN)
	if j.State != types.BackupJobStateCompleted {
		t.Fatalf("backup: %s %s", j.State, aws.ToString(j.StatusMessage))
	}
	other := backupClient(r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	_, err := other.StartBackupJob(context.Background(), &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String(reg.ARN), IamRoleArn: aws.String("arn:aws:iam::" + servertest.OtherAccountID + ":role/backup")})
	if code, _ := servertest.APICode(err); code != "InvalidParameterValueException" {
		t.Fatalf("another account's backup: %v", err)
	}
	// The restored cluster keeps the source's authentication: TCP needs
	// the password, the socket is the server user's way in.
	dir := filepath.Join(c.Base, "restored")
	port := rds.FreePort(t)
	rj := restore(t, api, aws.ToString(j.RecoveryPointArn), map[string]string{"DataDirectory": dir, "Port": strconv.Itoa(port)})
	t.Cleanup(func() { rds.StopServer(t, c.BinDir, dir) })
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if !strings.HasPrefix(aws.ToString(rj.CreatedResourceArn), backup.RDSARN("us-west-2", servertest.AccountID, "secured-restored-")) {
		t.Fatalf("created resource %s", aws.ToString(rj.CreatedResourceArn))
	}
	cfg, _ := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=postgres dbname=postgres sslmode=disable", port))
	cfg.Password = "pa:ss\\word"
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("connect to the restored cluster with the password: %v", err)
	}
	defer conn.Close(context.Background())
	var x int
	if err := conn.QueryRow(context.Background(), "SELECT x FROM t").Scan(&x); err != nil || x != 1 {
		t.Fatalf("restored table: %d, %v", x, err)
	}
}

// waitWindow waits until the continuous point can be restored to t.
func waitWindow(t *testing.T, r *servertest.Region, pointARN string, at time.Time) []backup.Window {
	t.Helper()
	var ws []backup.Window
	waitFor(t, 2*time.Minute, "the window to reach "+at.Format(time.RFC3339Nano), func() bool {
		rp, err := r.Jobs.DescribeRecoveryPoint(context.Background(), servertest.AccountID, "Default", pointARN)
		if err != nil {
			t.Fatal(err)
		}
		if ws, err = r.Jobs.RestorableWindows(context.Background(), rp); err != nil {
			t.Fatal(err)
		}
		return len(ws) > 0 && !ws[len(ws)-1].Until.Before(at)
	})
	return ws
}

// TestPostgresPointInTimeRestore backs a cluster up continuously while a
// writer commits numbered rows; the region is stopped and started again
// on its data in the middle (the stream resumes from its slot); at T the
// table is dropped. A restore to T-1s brings back a started server with
// every row whose commit returned before T-1s and none begun after it,
// without a hole, across the restart.
func TestPostgresPointInTimeRestore(t *testing.T) {
	ctx := context.Background()
	c := rds.StartTestCluster(t, rds.TestClusterOptions{})
	dir := t.TempDir()
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	opts := servertest.Options{Dir: dir, Configure: func(cfg *server.Config) {
		cfg.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		cfg.BackupSchedulerInterval = 50 * time.Millisecond
		if testing.Verbose() {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
		}
	}}
	const batch = 5
	w := startWriter(t, c, batch)
	defer func() {
		select {
		case <-w.stop:
		default:
			w.Stop(t)
		}
	}()
	var pointARN, resARN string
	t.Run("before the restart", func(t *testing.T) {
		r := servertest.Start(t, opts)
		reg := register(t, r, c, "ledger", "")
		resARN = reg.ARN
		api := backupClient(r, servertest.AccessKey, servertest.SecretKey)
		pointARN = continuousBase(t, api, reg.ARN, nil, func() { clock.Store(day0.Add(2*time.Hour + time.Minute).UnixNano()) })
		waitWindow(t, r, pointARN, time.Now())
		t.Logf("before the restart: %d rows committed", w.committed.Load())
	})
	// The region is down for a while; the writer goes on, the slot keeps
	// the WAL.
	time.Sleep(2 * time.Second)
	r := servertest.Start(t, opts)
	time.Sleep(3 * time.Second)
	w.Stop(t)
	T := time.Now().UTC()
	c.Exec(t, "DROP TABLE numbers")
	rt := T.Add(-time.Second)
	ws := waitWindow(t, r, pointARN, T.Add(time.Second))
	if len(ws) != 1 {
		t.Fatalf("restorable windows: %v, want one (no gap across the restart)", ws)
	}
	api := backupClient(r, servertest.AccessKey, servertest.SecretKey)
	restored := filepath.Join(c.Base, "pitr")
	restoreBefore(t, c, api, pointARN, restored, w, rt, batch)

	// Deleting the point lets go of the slot.
	if _, err := api.DeleteRecoveryPoint(ctx, &awsbackup.DeleteRecoveryPointInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: &pointARN}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "the slot to go", func() bool {
		var n int
		if err := c.Conn(t).QueryRow(ctx, "SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE 'bulwark_%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	_ = resARN
}

// TestPostgresPointInTimeRestoreFromCopy is the article's "a developer
// accidentally drops a table", with us-west-2 lost too: a writer commits
// numbered rows while the cluster is backed up continuously and the rule
// copies to us-east-1; at T the table is dropped; the copy in us-east-1,
// restored to T−1 s, has every row committed before T−1 s and none begun
// after, and the restored cluster answers queries.
func TestPostgresPointInTimeRestoreFromCopy(t *testing.T) {
	ctx := context.Background()
	c := rds.StartTestCluster(t, rds.TestClusterOptions{})
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	regions := servertest.StartRegionsWith(t, func(cfg *server.Config) {
		cfg.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		cfg.BackupSchedulerInterval = 50 * time.Millisecond
	}, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	const batch = 5
	w := startWriter(t, c, batch)
	defer func() {
		select {
		case <-w.stop:
		default:
			w.Stop(t)
		}
	}()
	reg := register(t, west, c, "ledger", "")
	api := backupClient(west, servertest.AccessKey, servertest.SecretKey)
	copyTo := []types.CopyAction{{DestinationBackupVaultArn: aws.String("arn:aws:backup:us-east-1:" + servertest.AccountID + ":backup-vault:Default"),
		Lifecycle: &types.Lifecycle{DeleteAfterDays: aws.Int64(35)}}}
	pointARN := continuousBase(t, api, reg.ARN, copyTo, func() { clock.Store(day0.Add(2*time.Hour + time.Minute).UnixNano()) })
	time.Sleep(3 * time.Second) // the writer goes on after the base
	w.Stop(t)
	T := time.Now().UTC()
	c.Exec(t, "DROP TABLE numbers")
	rt := T.Add(-time.Second)

	// The copy in us-east-1 is the same continuous point's ID.
	copyARN := strings.Replace(pointARN, ":us-west-2:", ":us-east-1:", 1)
	waitFor(t, 2*time.Minute, "the copy in us-east-1", func() bool {
		_, err := east.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", copyARN)
		return err == nil
	})
	waitWindow(t, east, copyARN, T)
	eastAPI := backupClient(east, servertest.AccessKey, servertest.SecretKey)
	restored := filepath.Join(c.Base, "pitr-east")
	restoreBefore(t, c, eastAPI, copyARN, restored, w, rt, batch)
}

// restoreBefore restores a continuous point to rt into a new data
// directory, and checks that the started cluster holds every row the
// writer committed before rt and none begun after it.
func restoreBefore(t *testing.T, c *rds.TestCluster, api *awsbackup.Client, pointARN, dir string, w *writer, rt time.Time, batch int) {
	t.Helper()
	port := rds.FreePort(t)
	rj := restore(t, api, pointARN, map[string]string{"DataDirectory": dir, "Port": strconv.Itoa(port), "RestoreTime": rt.Format(time.RFC3339Nano)})
	t.Cleanup(func() { rds.StopServer(t, c.BinDir, dir) })
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore of %s to %s: %s %s", pointARN, rt, rj.Status, aws.ToString(rj.StatusMessage))
	}
	conn := rds.SocketConn(t, dir, port, "postgres")
	least := w.committedBefore(rt, batch)
	n := checkPrefix(t, conn, batch, least)
	var last time.Time
	if err := conn.QueryRow(context.Background(), "SELECT max(at) FROM numbers").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last.After(rt) {
		t.Fatalf("restored a row begun at %s, after the restore time %s", last, rt)
	}
	t.Logf("%s restored to %s: %d rows (%d committed before it, %d in all; newest row begun %s)", pointARN, rt.Format(time.RFC3339Nano), n, least, w.committed.Load(), last.UTC().Format(time.RFC3339Nano))
}

// continuousBase makes a plan that backs the resource up continuously
// (with copies), lets its 02:00 run come (passTwo moves the clock), and
// returns the continuous point once its base completed.
func continuousBase(t *testing.T, api *awsbackup.Client, resourceARN string, copyTo []types.CopyAction, passTwo func()) string {
	t.Helper()
	ctx := context.Background()
	plan, err := api.CreateBackupPlan(ctx, &awsbackup.CreateBackupPlanInput{BackupPlan: &types.BackupPlanInput{
		BackupPlanName: aws.String("pitr"),
		Rules: []types.BackupRuleInput{{RuleName: aws.String("pitr"), TargetBackupVaultName: aws.String("Default"),
			ScheduleExpression: aws.String("cron(0 2 * * ? *)"), EnableContinuousBackup: aws.Bool(true),
			Lifecycle: &types.Lifecycle{DeleteAfterDays: aws.Int64(35)}, CopyActions: copyTo}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateBackupSelection(ctx, &awsbackup.CreateBackupSelectionInput{BackupPlanId: plan.BackupPlanId,
		BackupSelection: &types.BackupSelection{SelectionName: aws.String("ledger"), IamRoleArn: role, Resources: []string{resourceARN}}}); err != nil {
		t.Fatal(err)
	}
	passTwo()
	var pointARN string
	waitFor(t, 2*time.Minute, "the base", func() bool {
		out, err := api.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{})
		if err != nil {
			t.Fatal(err)
		}
		if len(out.BackupJobs) == 1 && out.BackupJobs[0].State == types.BackupJobStateFailed {
			t.Fatalf("base: %s", aws.ToString(out.BackupJobs[0].StatusMessage))
		}
		if len(out.BackupJobs) == 1 && out.BackupJobs[0].State == types.BackupJobStateCompleted {
			pointARN = aws.ToString(out.BackupJobs[0].RecoveryPointArn)
		}
		return pointARN != ""
	})
	return pointARN
}
