package backup_test

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
)

const schedAcct = "111122223333"

// schedEnv is a region with a bucket, the design article's plan and a
// selection of the bucket, on a clock the test moves.
type schedEnv struct {
	t     *testing.T
	clock atomic.Int64
	st    *objectstore.Store
	cat   *backup.Catalog
	svc   *backup.Service
	plan  *backup.PlanVersion
	newSc func(id string, maxCatchUp int) *backup.Scheduler
}

func (e *schedEnv) now() time.Time  { return time.Unix(0, e.clock.Load()).UTC() }
func (e *schedEnv) set(t time.Time) { e.clock.Store(t.UnixNano()) }
func day(d, h, m int) time.Time     { return time.Date(2026, 3, d, h, m, 0, 0, time.UTC) }
func int64p(v int64) *int64         { return &v }
func (e *schedEnv) jobs() []*backup.BackupJob {
	e.t.Helper()
	js, err := e.svc.ListBackupJobs(context.Background(), schedAcct, backup.JobFilter{})
	if err != nil {
		e.t.Fatal(err)
	}
	return js
}

func newSchedEnv(t *testing.T, planAt time.Time) *schedEnv {
	ctx := context.Background()
	e := &schedEnv{t: t}
	e.set(planAt)
	r := newTestRegion(t, e.now)
	e.st, e.cat, e.svc = r.st, r.cat, r.svc
	for _, b := range []string{"source-bucket-name", "other-bucket"} {
		if err := e.st.CreateBucket(ctx, b, schedAcct, "us-east-1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.st.PutObject(ctx, &objectstore.PutInput{Bucket: b, Key: "k", Owner: schedAcct, Body: bytes.NewReader([]byte("data")), Size: 4}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	e.plan, err = e.cat.CreatePlan(ctx, schedAcct, backup.CreatePlanInput{Plan: backup.Plan{
		BackupPlanName: "daily",
		Rules: []backup.Rule{{
			RuleName: "nightly", TargetBackupVaultName: "Default",
			ScheduleExpression: "cron(0 2 * * ? *)", StartWindowMinutes: int64p(60), CompletionWindowMinutes: int64p(180),
			Lifecycle: &backup.Lifecycle{DeleteAfterDays: int64p(30)},
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sel := backup.Selection{SelectionName: "s3", IamRoleArn: "arn:aws:iam::" + schedAcct + ":role/backup", Resources: []string{"arn:aws:s3:::source-bucket-name"}}
	if _, err := e.cat.CreateSelection(ctx, schedAcct, e.plan.BackupPlanID, sel, ""); err != nil {
		t.Fatal(err)
	}
	e.newSc = func(id string, maxCatchUp int) *backup.Scheduler {
		return backup.NewScheduler(backup.SchedulerConfig{Jobs: e.svc, ID: id, Now: e.now, MaxCatchUp: maxCatchUp})
	}
	return e
}

func (e *schedEnv) tick(sc *backup.Scheduler, at time.Time) {
	e.t.Helper()
	e.set(at)
	if err := sc.Tick(context.Background()); err != nil {
		e.t.Fatal(err)
	}
}

// TestSchedulerRunsPlanOnTime runs the design article's plan: nothing
// before 02:00, one job for the selected bucket after it, with a recovery
// point kept 30 days, and no second job when the pass is repeated.
func TestSchedulerRunsPlanOnTime(t *testing.T) {
	ctx := context.Background()
	e := newSchedEnv(t, day(1, 0, 0))
	sc := e.newSc("a", 0)

	e.tick(sc, day(1, 1, 59))
	if js := e.jobs(); len(js) != 0 {
		t.Fatalf("jobs at 01:59: %+v", js)
	}
	e.tick(sc, day(1, 2, 1))
	js := e.jobs()
	if len(js) != 1 || js[0].ResourceARN != "arn:aws:s3:::source-bucket-name" || js[0].VaultName != "Default" {
		t.Fatalf("jobs at 02:01: %+v", js)
	}
	var j *backup.BackupJob
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var err error
		if j, err = e.svc.DescribeBackupJob(ctx, schedAcct, js[0].JobID); err != nil {
			t.Fatal(err)
		}
		if j.State == backup.JobCompleted || j.State == backup.JobFailed || time.Now().After(deadline) {
			break
		}
	}
	if j.State != backup.JobCompleted {
		t.Fatalf("job: %+v", j)
	}
	sr, err := e.svc.ScheduledRunOf(ctx, schedAcct, j.JobID)
	if err != nil || sr == nil || sr.BackupPlanID != e.plan.BackupPlanID || sr.RuleID != e.plan.Plan.Rules[0].RuleID || !sr.ScheduledAt.Equal(day(1, 2, 0)) {
		t.Fatalf("scheduled run: %+v, %v", sr, err)
	}
	pts, err := e.svc.ListRecoveryPoints(ctx, schedAcct, "Default", "")
	if err != nil || len(pts) != 1 {
		t.Fatalf("points: %v %v", pts, err)
	}
	p := pts[0]
	if p.CalculatedLifecycle == nil || p.CalculatedLifecycle.DeleteAt == nil || !p.CalculatedLifecycle.DeleteAt.Equal(p.CreationDate.AddDate(0, 0, 30)) {
		t.Fatalf("point lifecycle: %+v", p.CalculatedLifecycle)
	}

	// The lifecycle deletes the point once DeleteAt has passed, not before.
	if n, err := e.svc.ExpirePoints(ctx, p.CalculatedLifecycle.DeleteAt.Add(-time.Minute)); err != nil || n != 0 {
		t.Fatalf("expired before DeleteAt: %d %v", n, err)
	}
	if n, err := e.svc.ExpirePoints(ctx, *p.CalculatedLifecycle.DeleteAt); err != nil || n != 1 {
		t.Fatalf("expired at DeleteAt: %d %v", n, err)
	}
	if pts, _ := e.svc.ListRecoveryPoints(ctx, schedAcct, "Default", ""); len(pts) != 0 {
		t.Fatalf("points after expiry: %d", len(pts))
	}

	e.tick(sc, day(1, 2, 1))
	e.tick(sc, day(1, 2, 30))
	// A scheduler that lost its rule state (a crash between starting the
	// job and recording the rule) does not start it twice either.
	e.tick(e.newSc("a", 0), day(1, 2, 31))
	if js := e.jobs(); len(js) != 1 {
		t.Fatalf("jobs after repeated passes: %+v", js)
	}
}

// TestSchedulerRecordsMissedRuns moves the clock over a downtime: runs
// whose start window closed while no scheduler ran are recorded EXPIRED,
// none is started, and no more than MaxCatchUp of them.
func TestSchedulerRecordsMissedRuns(t *testing.T) {
	e := newSchedEnv(t, day(1, 0, 30))
	sc := e.newSc("a", 0)
	e.tick(sc, day(1, 1, 0))
	e.tick(sc, day(2, 3, 30)) // region down from 01:00 to 03:30 of the next day
	js := e.jobs()
	if len(js) != 2 {
		t.Fatalf("jobs: %+v", js)
	}
	for i, want := range []time.Time{day(2, 2, 0), day(1, 2, 0)} {
		j := js[i]
		if j.State != backup.JobExpired || j.StatusMessage != "The backup job did not start within the start window" ||
			!j.CreationDate.Equal(want) || j.RecoveryPointARN != "" || j.ResourceARN != "arn:aws:s3:::source-bucket-name" {
			t.Fatalf("job %d: %+v", i, j)
		}
	}
	e.tick(sc, day(2, 3, 31))
	if js := e.jobs(); len(js) != 2 {
		t.Fatalf("jobs after a repeated pass: %+v", js)
	}

	// A longer downtime records the newest MaxCatchUp runs only; the run
	// still within its start window starts.
	e2 := newSchedEnv(t, day(1, 0, 30))
	sc2 := e2.newSc("a", 3)
	e2.tick(sc2, day(10, 2, 30))
	js = e2.jobs()
	if len(js) != 3 {
		t.Fatalf("jobs after ten days: %+v", js)
	}
	if js[0].State == backup.JobExpired || !js[0].CreationDate.Equal(day(10, 2, 30)) {
		t.Fatalf("newest job: %+v", js[0])
	}
	for i, want := range []time.Time{day(9, 2, 0), day(8, 2, 0)} {
		if j := js[i+1]; j.State != backup.JobExpired || !j.CreationDate.Equal(want) {
			t.Fatalf("job %d: %+v", i+1, j)
		}
	}
	waitJobs(t, e2)
}

// waitJobs waits for started jobs to end, so that the vault is not in use
// when the test's directory is removed.
func waitJobs(t *testing.T, e *schedEnv) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		busy := false
		for _, j := range e.jobs() {
			busy = busy || j.State == backup.JobCreated || j.State == backup.JobRunning
		}
		if !busy {
			return
		}
	}
	t.Fatal("jobs did not end")
}

// TestSchedulerLease runs two schedulers on one store: the second does
// nothing while the first holds the lease, and takes over once the lease
// expires or is given up.
func TestSchedulerLease(t *testing.T) {
	e := newSchedEnv(t, day(1, 0, 0))
	a, b := e.newSc("a", 0), e.newSc("b", 0)
	e.tick(a, day(1, 1, 59)) // a takes the lease, until 02:01
	e.tick(b, day(1, 2, 0).Add(30*time.Second))
	if js := e.jobs(); len(js) != 0 {
		t.Fatalf("b ran jobs while a held the lease: %+v", js)
	}
	e.tick(a, day(1, 2, 1)) // a renews and runs
	if js := e.jobs(); len(js) != 1 {
		t.Fatalf("jobs: %+v", js)
	}
	waitJobs(t, e)
	e.tick(b, day(1, 2, 2))
	if js := e.jobs(); len(js) != 1 {
		t.Fatalf("jobs after b's pass: %+v", js)
	}
	// a stops renewing: b takes over after the lease expires and runs the
	// next day's job, once.
	e.tick(b, day(2, 2, 1))
	e.tick(a, day(2, 2, 2))
	if js := e.jobs(); len(js) != 2 {
		t.Fatalf("jobs after takeover: %+v", js)
	}
	waitJobs(t, e)

	// The owned goroutine stops on Close.
	b.Start()
	b.Wake()
	time.Sleep(10 * time.Millisecond)
	if err := b.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestSchedulerNewPlanDoesNotRunForThePast creates the plan after the
// day's 02:00: the first pass starts nothing and records nothing.
func TestSchedulerNewPlanDoesNotRunForThePast(t *testing.T) {
	e := newSchedEnv(t, day(1, 2, 30))
	e.tick(e.newSc("a", 0), day(1, 2, 31))
	if js := e.jobs(); len(js) != 0 {
		t.Fatalf("jobs: %+v", js)
	}
}
