package server_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault/vaulttest"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// restoreTestEnv is a region whose backup clock a test moves, with a
// bucket and an SQLite database registered and backed up.
type restoreTestEnv struct {
	t      *testing.T
	r      *servertest.Region
	aws    *servertest.CLI
	clock  *atomic.Int64
	day0   time.Time
	db     string // the SQLite file
	dbARN  string
	bucket string
}

func newRestoreTestEnv(t *testing.T) *restoreTestEnv {
	servertest.RequireTool(t, "sqlite3")
	e := &restoreTestEnv{t: t, clock: &atomic.Int64{}, bucket: "ledger-bucket"}
	e.day0 = time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	e.clock.Store(e.day0.Add(30 * time.Minute).UnixNano())
	e.start("")
	ctx := context.Background()

	c := e.r.Client(t)
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: ptr(e.bucket)})
	mustDo(t, err)
	for i := range 5 {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: ptr(e.bucket), Key: ptr(fmt.Sprintf("2024/%02d.csv", i)),
			Body: strings.NewReader(strings.Repeat(fmt.Sprintf("row %d\n", i), 200))})
		mustDo(t, err)
	}
	e.db = filepath.Join(t.TempDir(), "orders.db")
	sqliteRun(t, e.db, "CREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT); INSERT INTO orders(item) VALUES ('a'),('b'),('c');")
	reg, err := e.r.Resources.Register(ctx, servertest.AccountID, backup.Registration{Type: backup.TypeRDS, Engine: backup.EngineSQLite,
		Name: "orders", Settings: map[string]string{backup.SettingPath: e.db}})
	mustDo(t, err)
	e.dbARN = reg.ARN
	for _, arn := range []string{"arn:aws:s3:::" + e.bucket, e.dbARN} {
		id := e.aws.Run("backup", "start-backup-job", "--backup-vault-name", "Default", "--resource-arn", arn, "--iam-role-arn", roleARN)["BackupJobId"].(string)
		var d map[string]any
		waitFor(t, "the backup of "+arn, func() bool {
			d = e.aws.Run("backup", "describe-backup-job", "--backup-job-id", id)
			return d["State"] == "COMPLETED" || d["State"] == "FAILED"
		})
		if d["State"] != "COMPLETED" {
			t.Fatalf("backup of %s: %v", arn, d)
		}
	}
	return e
}

// start starts the region on dir (a new one when empty).
func (e *restoreTestEnv) start(dir string) {
	e.r = servertest.Start(e.t, servertest.Options{Dir: dir, Configure: func(c *server.Config) {
		c.BackupClock = func() time.Time { return time.Unix(0, e.clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}})
	e.aws = servertest.AWSCLI(e.t, e.r)
}

func sqliteRun(t *testing.T, db, script string) {
	t.Helper()
	cmd := exec.Command("sqlite3", "-batch", "-bail", db)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sqlite3: %v: %s", err, out)
	}
}

// plan creates a daily 04:00 restore testing plan and a selection of the
// bucket and one of the database, with the given validation windows and
// the database's overrides.
func (e *restoreTestEnv) plan(s3Window, dbWindow int, dbOverrides string) {
	e.aws.Run("backup", "create-restore-testing-plan", "--restore-testing-plan",
		`{"RestoreTestingPlanName":"nightly","ScheduleExpression":"cron(0 4 ? * * *)","StartWindowHours":1,`+
			`"RecoveryPointSelection":{"Algorithm":"LATEST_WITHIN_WINDOW","IncludeVaults":["*"],"RecoveryPointTypes":["SNAPSHOT"]}}`)
	e.aws.Run("backup", "create-restore-testing-selection", "--restore-testing-plan-name", "nightly", "--restore-testing-selection",
		fmt.Sprintf(`{"RestoreTestingSelectionName":"buckets","ProtectedResourceType":"S3","ProtectedResourceArns":["arn:aws:s3:::%s"],`+
			`"IamRoleArn":"%s","ValidationWindowHours":%d}`, e.bucket, roleARN, s3Window))
	e.aws.Run("backup", "create-restore-testing-selection", "--restore-testing-plan-name", "nightly", "--restore-testing-selection",
		fmt.Sprintf(`{"RestoreTestingSelectionName":"databases","ProtectedResourceType":"RDS","ProtectedResourceArns":["%s"],`+
			`"IamRoleArn":"%s","ValidationWindowHours":%d,"RestoreMetadataOverrides":%s}`, e.dbARN, roleARN, dbWindow, dbOverrides))
}

// runTests moves the clock past 04:00 and returns the restore jobs the
// plan started, by resource type, once they have ended (other restores
// are left out).
func (e *restoreTestEnv) runTests(n int) map[string]map[string]any {
	e.clock.Store(e.day0.Add(4*time.Hour + 30*time.Second).UnixNano())
	jobs := map[string]map[string]any{}
	waitFor(e.t, "the restore tests", func() bool {
		tests := 0
		for _, j := range e.aws.Run("backup", "list-restore-jobs")["RestoreJobs"].([]any) {
			j := j.(map[string]any)
			if by, _ := j["CreatedBy"].(map[string]any); by["RestoreTestingPlanArn"] == nil {
				continue
			}
			if j["Status"] != "COMPLETED" && j["Status"] != "FAILED" {
				return false
			}
			jobs[j["ResourceType"].(string)] = j
			tests++
		}
		return tests == n
	})
	return jobs
}

// job describes a restore job until done holds.
func (e *restoreTestEnv) waitJob(what, id string, done func(map[string]any) bool) map[string]any {
	var d map[string]any
	waitFor(e.t, what, func() bool {
		d = e.aws.Run("backup", "describe-restore-job", "--restore-job-id", id)
		return done(d)
	})
	return d
}

func deleted(d map[string]any) bool {
	return d["DeletionStatus"] == "SUCCESSFUL" || d["DeletionStatus"] == "FAILED"
}

// TestCLIRestoreTestsEndToEnd runs a restore testing plan made with the
// aws CLI over a bucket and an SQLite database: at 04:00 each newest point
// is restored into a scratch target and validated (the database with the
// selection's own query and command), the jobs say how long it took, and
// each scratch target goes when its test is over: the bucket's as soon as
// a validation result is put, the database's when its validation window
// has passed.
func TestCLIRestoreTestsEndToEnd(t *testing.T) {
	e := newRestoreTestEnv(t)
	e.plan(2, 1, `{"ValidationQuery":"SELECT count(*) = 3 FROM orders","ValidationCommand":"test -s \"$BULWARK_RESTORE_PATH\""}`)
	// And a directory, whose test ends when its restore does (no window).
	dir := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(dir, "invoices"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, "invoices", "0001.pdf"), []byte(strings.Repeat("%PDF", 1000)), 0o644))
	dirARN := registerDir(t, e.r, &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}, "invoices", dir, nil).ResourceArn
	id := e.aws.Run("backup", "start-backup-job", "--backup-vault-name", "Default", "--resource-arn", dirARN, "--iam-role-arn", roleARN)["BackupJobId"].(string)
	waitFor(t, "the directory's backup", func() bool {
		return e.aws.Run("backup", "describe-backup-job", "--backup-job-id", id)["State"] == "COMPLETED"
	})
	e.aws.Run("backup", "create-restore-testing-selection", "--restore-testing-plan-name", "nightly", "--restore-testing-selection",
		`{"RestoreTestingSelectionName":"directories","ProtectedResourceType":"EFS","ProtectedResourceArns":["*"],"IamRoleArn":"`+roleARN+`"}`)
	jobs := e.runTests(3)
	efsJob := e.waitJob("the scratch directory's deletion", jobs["EFS"]["RestoreJobId"].(string), deleted)
	if efsJob["DeletionStatus"] != "SUCCESSFUL" || efsJob["ValidationStatus"] != "SUCCESSFUL" ||
		!strings.Contains(efsJob["ValidationStatusMessage"].(string), "with their size and SHA-256") {
		t.Fatalf("directory restore test: %v", efsJob)
	}
	ej, err := e.r.Jobs.DescribeRestoreJob(context.Background(), servertest.AccountID, jobs["EFS"]["RestoreJobId"].(string))
	mustDo(t, err)
	if _, err := os.Stat(ej.Metadata["TargetDirectory"]); !strings.Contains(ej.Metadata["TargetDirectory"], "-restore-test-") || !os.IsNotExist(err) {
		t.Fatalf("scratch directory %s after the test: %v", ej.Metadata["TargetDirectory"], err)
	}
	delete(jobs, "EFS")
	planARN := e.aws.Run("backup", "get-restore-testing-plan", "--restore-testing-plan-name", "nightly")["RestoreTestingPlan"].(map[string]any)["RestoreTestingPlanArn"]
	for typ, j := range jobs {
		msg, _ := j["ValidationStatusMessage"].(string)
		if j["Status"] != "COMPLETED" || j["ValidationStatus"] != "SUCCESSFUL" || !strings.HasPrefix(msg, "Restored in ") || !strings.Contains(msg, ", validated in ") ||
			j["CreatedBy"].(map[string]any)["RestoreTestingPlanArn"] != planARN || j["DeletionStatus"] != nil {
			t.Fatalf("%s restore test: %v", typ, j)
		}
		t.Logf("%s: %s", typ, msg)
	}
	if msg := jobs["RDS"]["ValidationStatusMessage"].(string); !strings.Contains(msg, "PRAGMA integrity_check answers ok") ||
		!strings.Contains(msg, "ValidationQuery passed") || !strings.Contains(msg, "ValidationCommand passed") {
		t.Fatalf("database validation: %s", msg)
	}
	byResource := e.aws.Run("backup", "list-restore-jobs-by-protected-resource", "--resource-arn", e.dbARN)["RestoreJobs"].([]any)
	if len(byResource) != 1 || byResource[0].(map[string]any)["RestoreJobId"] != jobs["RDS"]["RestoreJobId"] {
		t.Fatalf("restore jobs of %s: %v", e.dbARN, byResource)
	}

	// The scratch targets are there, apart from the sources.
	dbJob := e.aws.Run("backup", "describe-restore-job", "--restore-job-id", jobs["RDS"]["RestoreJobId"].(string))
	var rj *backup.RestoreJob
	rj, err = e.r.Jobs.DescribeRestoreJob(context.Background(), servertest.AccountID, jobs["RDS"]["RestoreJobId"].(string))
	mustDo(t, err)
	scratchDB := rj.Metadata["TargetPath"]
	if !strings.Contains(scratchDB, "-restore-test-") || scratchDB == e.db || !strings.HasPrefix(dbJob["CreatedResourceArn"].(string), "arn:aws:rds:") {
		t.Fatalf("database restore test into %s: %v", scratchDB, dbJob)
	}
	if _, err := os.Stat(scratchDB); err != nil {
		t.Fatalf("scratch database: %v", err)
	}
	scratchBucket := strings.TrimPrefix(jobs["S3"]["CreatedResourceArn"].(string), "arn:aws:s3:::")
	if !strings.HasPrefix(scratchBucket, e.bucket+"-restore-test-") {
		t.Fatalf("bucket restore test into %s", scratchBucket)
	}
	if _, err := e.r.Store.Bucket(context.Background(), scratchBucket); err != nil {
		t.Fatalf("scratch bucket: %v", err)
	}

	// A validation result of one's own ends the bucket's test now, two
	// hours before its window would.
	e.aws.Run("backup", "put-restore-validation-result", "--restore-job-id", jobs["S3"]["RestoreJobId"].(string),
		"--validation-status", "SUCCESSFUL", "--validation-status-message", "row counts match")
	d := e.waitJob("the scratch bucket's deletion", jobs["S3"]["RestoreJobId"].(string), deleted)
	if d["DeletionStatus"] != "SUCCESSFUL" || d["ValidationStatusMessage"] != "row counts match" {
		t.Fatalf("bucket restore test after its validation result: %v", d)
	}
	if _, err := e.r.Store.Bucket(context.Background(), scratchBucket); err == nil {
		t.Fatalf("scratch bucket %s still there", scratchBucket)
	}
	if d := e.aws.Run("backup", "describe-restore-job", "--restore-job-id", jobs["RDS"]["RestoreJobId"].(string)); d["DeletionStatus"] != nil {
		t.Fatalf("database target deleted within its window: %v", d)
	}

	// The database's window (1 hour) passes.
	e.clock.Store(e.day0.Add(5*time.Hour + 5*time.Minute).UnixNano())
	d = e.waitJob("the scratch database's deletion", jobs["RDS"]["RestoreJobId"].(string), deleted)
	if d["DeletionStatus"] != "SUCCESSFUL" || d["ValidationStatus"] != "SUCCESSFUL" {
		t.Fatalf("database restore test after its window: %v", d)
	}
	if _, err := os.Stat(scratchDB); !os.IsNotExist(err) {
		t.Fatalf("scratch database after the window: %v", err)
	}
	if _, err := os.Stat(e.db); err != nil {
		t.Fatalf("source database: %v", err)
	}
}

// TestCLIRestoreTestOfCorruptPoints damages the vault's data of a bucket's
// and a database's points on disk, with the region running and its vault
// cache holding the database's data (an ordinary restore read it, and
// reads it again from the cache after the damage): their restore tests,
// which read the vault's storage, fail, saying what is wrong, and what
// they restored is deleted.
func TestCLIRestoreTestOfCorruptPoints(t *testing.T) {
	e := newRestoreTestEnv(t)
	point := e.aws.Run("backup", "list-recovery-points-by-resource", "--resource-arn", e.dbARN)["RecoveryPoints"].([]any)[0].(map[string]any)["RecoveryPointArn"].(string)
	restoreCopy := func(name string) map[string]any {
		md := fmt.Sprintf(`{"TargetPath":%q}`, filepath.Join(t.TempDir(), name))
		id := e.aws.Run("backup", "start-restore-job", "--recovery-point-arn", point, "--iam-role-arn", roleARN, "--metadata", md)["RestoreJobId"].(string)
		return e.waitJob("the restore of "+name, id, func(d map[string]any) bool { return d["Status"] == "COMPLETED" || d["Status"] == "FAILED" })
	}
	if d := restoreCopy("before.db"); d["Status"] != "COMPLETED" {
		t.Fatalf("restore before the damage: %v", d)
	}
	vaulttest.DamagePacks(t, filepath.Join(e.r.Dir, "vaults"))
	if d := restoreCopy("cached.db"); d["Status"] != "COMPLETED" {
		t.Fatalf("an ordinary restore after the damage no longer reads the cache, so this test shows nothing of the restore tests' reads: %v", d)
	}
	e.plan(0, 0, `{}`)
	jobs := e.runTests(2)
	for typ, j := range jobs {
		msg, _ := j["StatusMessage"].(string)
		if j["Status"] != "FAILED" || !strings.Contains(msg, "data corrupt") || j["ValidationStatus"] != nil {
			t.Fatalf("%s restore test of a damaged point: %v", typ, j)
		}
		t.Logf("%s: %s", typ, msg)
		d := e.waitJob("the deletion of what the "+typ+" test restored", j["RestoreJobId"].(string), deleted)
		if d["DeletionStatus"] != "SUCCESSFUL" {
			t.Fatalf("%s restore test's deletion: %v", typ, d)
		}
	}
	if b := strings.TrimPrefix(jobs["S3"]["CreatedResourceArn"].(string), "arn:aws:s3:::"); b != "" {
		if _, err := e.r.Store.Bucket(context.Background(), b); err == nil {
			t.Fatalf("scratch bucket %s left", b)
		}
	}
}
