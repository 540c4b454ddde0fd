package rds_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/backup/vault/vaulttest"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// restoreTestHarness is an engine harness whose region's backup clock the
// test moves, so that restore testing plans run when it says (day0 is a
// midnight; the clock starts half an hour after it).
type restoreTestHarness struct {
	*engineHarness
	clock *atomic.Int64
	day0  time.Time
}

func newRestoreTestHarness(t *testing.T) *restoreTestHarness {
	h := &restoreTestHarness{clock: &atomic.Int64{}, day0: time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)}
	h.clock.Store(h.day0.Add(30 * time.Minute).UnixNano())
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.BackupClock = func() time.Time { return time.Unix(0, h.clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}})
	h.engineHarness = &engineHarness{t: t, r: r, c: engineSDK(r, servertest.AccessKey, servertest.SecretKey), role: role}
	return h
}

// plan creates a restore testing plan name, daily at 04:00, of the newest
// point, and its one selection (also name) of the RDS resource arn.
func (h *restoreTestHarness) plan(name, arn string, windowHours int32, overrides map[string]string) {
	h.t.Helper()
	ctx := context.Background()
	_, err := h.c.CreateRestoreTestingPlan(ctx, &awsbackup.CreateRestoreTestingPlanInput{RestoreTestingPlan: &types.RestoreTestingPlanForCreate{
		RestoreTestingPlanName: aws.String(name), ScheduleExpression: aws.String("cron(0 4 ? * * *)"), StartWindowHours: 1,
		RecoveryPointSelection: &types.RestoreTestingRecoveryPointSelection{
			Algorithm:     types.RestoreTestingRecoveryPointSelectionAlgorithmLatestWithinWindow,
			IncludeVaults: []string{"*"}, RecoveryPointTypes: []types.RestoreTestingRecoveryPointType{types.RestoreTestingRecoveryPointTypeSnapshot},
		},
	}})
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = h.c.CreateRestoreTestingSelection(ctx, &awsbackup.CreateRestoreTestingSelectionInput{RestoreTestingPlanName: aws.String(name),
		RestoreTestingSelection: &types.RestoreTestingSelectionForCreate{
			RestoreTestingSelectionName: aws.String(name), ProtectedResourceType: aws.String(backup.TypeRDS), ProtectedResourceArns: []string{arn},
			IamRoleArn: h.role, ValidationWindowHours: aws.Int32(windowHours), RestoreMetadataOverrides: overrides,
		}})
	if err != nil {
		h.t.Fatal(err)
	}
}

// runTests moves the clock to at and returns, by plan name, the restore
// jobs restore testing starts from then on, once n of them have ended.
func (h *restoreTestHarness) runTests(at time.Time, n int) map[string]*backup.RestoreJob {
	h.t.Helper()
	h.clock.Store(at.UnixNano())
	var jobs map[string]*backup.RestoreJob
	engineWait(h.t, "the restore tests", func() bool {
		all, err := h.r.Jobs.ListRestoreJobs(context.Background(), servertest.AccountID, backup.JobFilter{})
		if err != nil {
			h.t.Fatal(err)
		}
		jobs = map[string]*backup.RestoreJob{}
		for _, j := range all {
			if j.RestoreTestingPlanARN == "" || j.CreationDate.Before(at) {
				continue
			}
			if j.Status != backup.RestoreCompleted && j.Status != backup.RestoreFailed {
				return false
			}
			_, plan, _ := strings.Cut(j.RestoreTestingPlanARN, ":restore-testing-plan:")
			jobs[plan[:len(plan)-len("-")-36]] = j // NAME-UUID
		}
		return len(jobs) == n
	})
	return jobs
}

// waitDeleted waits until the scratch target of a restore test has been
// deleted, or its deletion failed.
func (h *restoreTestHarness) waitDeleted(j *backup.RestoreJob) *backup.RestoreJob {
	h.t.Helper()
	var d *backup.RestoreJob
	engineWait(h.t, "the deletion of "+j.CreatedResourceARN, func() bool {
		var err error
		if d, err = h.r.Jobs.DescribeRestoreJob(context.Background(), servertest.AccountID, j.JobID); err != nil {
			h.t.Fatal(err)
		}
		return d.DeletionStatus != ""
	})
	return d
}

// TestMySQLRestoreTests runs restore testing plans over a MariaDB
// database: a test restores the newest point into <db>_restore_test_<id>
// on the same server, finds the dump's tables and runs the selection's
// ValidationQuery (SUCCESSFUL), or fails on the query's answer (FAILED);
// each scratch database is dropped when its window has passed, the
// source untouched, and a database that is not a scratch one is never
// dropped. Then the vault's packs are damaged with the region running and
// its cache holding the point (an ordinary restore still succeeds from
// it): the next tests read the stored packs and fail, saying so.
func TestMySQLRestoreTests(t *testing.T) {
	srv := machineMariaDB(t)
	h := newRestoreTestHarness(t)
	db := srv.database(t, "bwrt")
	srv.exec(t, db, "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)) ENGINE=InnoDB; INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c');"+
		"CREATE TABLE notes (n INT) ENGINE=InnoDB; CREATE VIEW item_names AS SELECT name FROM items;")
	arn := h.mustRegister("shop", "mariadb", srv.settings(db), "")
	point := aws.ToString(h.mustBackup(arn).RecoveryPointArn)
	h.plan("nightly", arn, 1, map[string]string{"ValidationQuery": "SELECT COUNT(*) = 3 FROM items"})
	h.plan("strict", arn, 0, map[string]string{"ValidationQuery": "SELECT COUNT(*) = 4 FROM items"})

	jobs := h.runTests(h.day0.Add(4*time.Hour+30*time.Second), 2)
	ok, strict := jobs["nightly"], jobs["strict"]
	scratch := ok.Metadata["TargetDatabase"]
	if ok.Status != backup.RestoreCompleted || ok.ValidationStatus != "SUCCESSFUL" || !strings.HasPrefix(scratch, db+"_restore_test_") ||
		!strings.Contains(ok.ValidationStatusMessage, "with 2 tables, those the recovery point's dump creates") ||
		!strings.Contains(ok.ValidationStatusMessage, "ValidationQuery passed") {
		t.Fatalf("restore test: %s %s into %s: %s %s", ok.Status, ok.StatusMessage, scratch, ok.ValidationStatus, ok.ValidationStatusMessage)
	}
	t.Logf("nightly: %s", ok.ValidationStatusMessage)
	if n := srv.int(t, scratch, "SELECT SUM(id) FROM items"); n != 6 {
		t.Fatalf("scratch database %s: sum %d", scratch, n)
	}
	if strict.Status != backup.RestoreCompleted || strict.ValidationStatus != "FAILED" ||
		!strings.Contains(strict.ValidationStatusMessage, `ValidationQuery returned "0".`) {
		t.Fatalf("restore test with a failing query: %s: %s %s", strict.Status, strict.ValidationStatus, strict.ValidationStatusMessage)
	}
	t.Logf("strict: %s", strict.ValidationStatusMessage)
	schema := func(name string) int64 {
		return srv.int(t, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '"+name+"'")
	}
	// The failed test's window is 0: its database goes at once; the
	// other's stays for its hour.
	if d := h.waitDeleted(strict); d.DeletionStatus != "SUCCESSFUL" || schema(strict.Metadata["TargetDatabase"]) != 0 {
		t.Fatalf("deletion of the failed test's database %s: %s %s", strict.Metadata["TargetDatabase"], d.DeletionStatus, d.DeletionStatusMessage)
	}
	if d, _ := h.r.Jobs.DescribeRestoreJob(context.Background(), servertest.AccountID, ok.JobID); d.DeletionStatus != "" || schema(scratch) != 1 {
		t.Fatalf("scratch database %s deleted within its window: %s", scratch, d.DeletionStatus)
	}
	h.clock.Store(h.day0.Add(5*time.Hour + 5*time.Minute).UnixNano())
	if d := h.waitDeleted(ok); d.DeletionStatus != "SUCCESSFUL" || schema(scratch) != 0 {
		t.Fatalf("deletion of %s: %s %s", scratch, d.DeletionStatus, d.DeletionStatusMessage)
	}
	if n := srv.int(t, db, "SELECT SUM(id) FROM items"); n != 6 {
		t.Fatalf("source database after the tests: sum %d", n)
	}

	// Only a scratch database is ever dropped.
	prov, _ := h.r.Jobs.Providers().ByType(backup.TypeRDS)
	err := prov.(backup.RestoreTester).DeleteRestored(context.Background(), backup.RestoreTestTarget{Account: servertest.AccountID,
		Metadata: map[string]string{"Engine": "mariadb", "TargetDatabase": db, "TargetHost": "127.0.0.1", "TargetPort": strconv.Itoa(srv.port), "TargetUser": "root"}})
	wantInvalid(t, err, backup.ErrInvalidParameter, "is not the database of a restore test")
	if schema(db) != 1 {
		t.Fatal("the source database was dropped")
	}

	// The packs are damaged under a running region whose cache holds the
	// point's data.
	if rj := h.restore(point, map[string]string{"TargetDatabase": db + "_warm"}); rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore before the damage: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
	}
	vaulttest.DamagePacks(t, filepath.Join(h.r.Dir, "vaults"))
	if rj := h.restore(point, map[string]string{"TargetDatabase": db + "_cached"}); rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("an ordinary restore after the damage no longer reads the cache, so this test shows nothing of the restore tests' reads: %s %s",
			rj.Status, aws.ToString(rj.StatusMessage))
	}
	day1 := h.day0.Add(24 * time.Hour)
	for name, j := range h.runTests(day1.Add(4*time.Hour+30*time.Second), 2) {
		if j.Status != backup.RestoreFailed || !strings.Contains(j.StatusMessage, "data corrupt") || j.ValidationStatus != "" {
			t.Fatalf("%s restore test of a damaged point: %s %q, validation %s", name, j.Status, j.StatusMessage, j.ValidationStatus)
		}
		t.Logf("%s, damaged: %s", name, j.StatusMessage)
	}
	if n := srv.int(t, "", "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE '"+db+"\\_restore\\_test\\_%'"); n != 0 {
		t.Fatalf("%d scratch databases left by the failed tests", n)
	}
}

// TestPostgresRestoreTest runs a restore testing plan over a PostgreSQL
// cluster with the region's data directory 0700 (its default): the test
// restores the point into a scratch data directory the server's user can
// reach, starts its server on a free port, finds it answering and the
// selection's ValidationQuery passing (SUCCESSFUL); when its window has
// passed the server is stopped and the directory removed. A test whose
// restore is refused is a FAILED job saying why.
func TestPostgresRestoreTest(t *testing.T) {
	c := rds.StartTestCluster(t, rds.TestClusterOptions{})
	c.Exec(t, "CREATE TABLE items AS SELECT g AS id FROM generate_series(1, 1000) g")
	h := newRestoreTestHarness(t)
	if err := os.Chmod(h.r.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	reg := register(t, h.r, c, "orders", "")
	h.mustBackup(reg.ARN)
	h.plan("nightly", reg.ARN, 1, map[string]string{"ValidationQuery": "SELECT count(*) = 1000 FROM items"})
	h.plan("refused", reg.ARN, 0, map[string]string{"Bogus": "x"})

	jobs := h.runTests(h.day0.Add(4*time.Hour+30*time.Second), 2)
	j := jobs["nightly"]
	dir, port := j.Metadata["DataDirectory"], j.Metadata["Port"]
	t.Cleanup(func() {
		rds.StopServer(t, c.BinDir, dir)
		os.RemoveAll(dir)
		if root := filepath.Dir(filepath.Dir(dir)); strings.HasPrefix(filepath.Base(root), "bulwark-pg-") {
			os.RemoveAll(root) // the region's root outside its data directory
		}
	})
	if j.Status != backup.RestoreCompleted || j.ValidationStatus != "SUCCESSFUL" || !strings.Contains(j.ValidationStatusMessage, "answers SELECT 1") ||
		!strings.Contains(j.ValidationStatusMessage, "ValidationQuery passed") || !strings.Contains(filepath.Base(dir), "restore-test-") {
		t.Fatalf("restore test into %s: %s %s: %s %s", dir, j.Status, j.StatusMessage, j.ValidationStatus, j.ValidationStatusMessage)
	}
	t.Logf("nightly: %s", j.ValidationStatusMessage)
	if os.Geteuid() == 0 && strings.HasPrefix(dir, h.r.Dir+string(filepath.Separator)) {
		t.Fatalf("scratch data directory %s inside the region's data directory, which the server user cannot enter", dir)
	}
	if refused := jobs["refused"]; refused.Status != backup.RestoreFailed || !strings.Contains(refused.StatusMessage, "The restore test did not start") ||
		!strings.Contains(refused.StatusMessage, "Bogus") || refused.CreatedResourceARN != "" {
		t.Fatalf("refused restore test: %s %q", refused.Status, refused.StatusMessage)
	}
	var n int64
	p, _ := strconv.Atoi(port)
	conn := rds.SocketConn(t, dir, p, "postgres")
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM items").Scan(&n); err != nil || n != 1000 {
		t.Fatalf("restored items: %d, %v", n, err)
	}
	conn.Close(context.Background())

	h.clock.Store(h.day0.Add(5*time.Hour + 5*time.Minute).UnixNano())
	if d := h.waitDeleted(j); d.DeletionStatus != "SUCCESSFUL" {
		t.Fatalf("deletion of %s: %s %s", dir, d.DeletionStatus, d.DeletionStatusMessage)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("scratch data directory after its deletion: %v", err)
	}
	if c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", port)); err == nil {
		c.Close()
		t.Fatalf("the restored server still listens on %s", port)
	}
}
