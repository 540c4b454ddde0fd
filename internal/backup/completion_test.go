package backup_test

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// gatedBlobs holds every read of object data until the test opens the
// gate, so that a backup job stays RUNNING for as long as the test needs
// without a large bucket or a sleep.
type gatedBlobs struct {
	blob.Store
	reading  chan struct{} // closed when the first read waits at the gate
	gate     chan struct{} // closed by the test to let reads through
	seen     sync.Once
	openGate sync.Once
}

func (g *gatedBlobs) Open(ctx context.Context, id string) (blob.Object, error) {
	o, err := g.Store.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	return gatedObject{o, g}, nil
}

func (g *gatedBlobs) open() { g.openGate.Do(func() { close(g.gate) }) }

type gatedObject struct {
	blob.Object
	g *gatedBlobs
}

func (o gatedObject) Read(p []byte) (int, error) {
	o.g.seen.Do(func() { close(o.g.reading) })
	<-o.g.gate
	return o.Object.Read(p)
}

// TestSchedulerStopsJobPastCompletionWindow runs the design article's plan
// (02:00, completion window 180 minutes) on a clock the test moves, with a
// backup job held in its first object read. At 05:00 the window has not
// passed and the job runs on; at 05:01 the scheduler's pass cancels it: the
// job ends ABORTED with the completion window's message and no recovery
// point, and its scheduled run is marked overdue.
func TestSchedulerStopsJobPastCompletionWindow(t *testing.T) {
	ctx := context.Background()
	e := &schedEnv{t: t}
	e.set(day(1, 0, 0))
	var blobs *gatedBlobs
	r := openTestRegion(t, regionOptions{now: e.now, blobs: func(fs blob.Store) blob.Store {
		blobs = &gatedBlobs{Store: fs, reading: make(chan struct{}), gate: make(chan struct{})}
		return blobs
	}})
	e.st, e.cat, e.svc = r.st, r.cat, r.svc
	t.Cleanup(blobs.open) // runs first: a failed test must not leave the job stuck at the gate

	if err := e.st.CreateBucket(ctx, "source-bucket-name", schedAcct, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.st.SetVersioning(ctx, "source-bucket-name", objectstore.VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.PutObject(ctx, &objectstore.PutInput{Bucket: "source-bucket-name", Key: "k", Owner: schedAcct, Body: bytes.NewReader([]byte("data")), Size: 4}); err != nil {
		t.Fatal(err)
	}
	plan, err := e.cat.CreatePlan(ctx, schedAcct, backup.CreatePlanInput{Plan: backup.Plan{
		BackupPlanName: "daily",
		Rules: []backup.Rule{{
			RuleName: "nightly", TargetBackupVaultName: "Default",
			ScheduleExpression: "cron(0 2 * * ? *)", StartWindowMinutes: int64p(60), CompletionWindowMinutes: int64p(180),
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	sel := backup.Selection{SelectionName: "s3", IamRoleArn: "arn:aws:iam::" + schedAcct + ":role/backup", Resources: []string{"arn:aws:s3:::source-bucket-name"}}
	if _, err := e.cat.CreateSelection(ctx, schedAcct, plan.BackupPlanID, sel, ""); err != nil {
		t.Fatal(err)
	}
	sc := backup.NewScheduler(backup.SchedulerConfig{Jobs: e.svc, ID: "a", Now: e.now})

	e.tick(sc, day(1, 2, 1))
	js := e.jobs()
	if len(js) != 1 {
		t.Fatalf("jobs at 02:01: %+v", js)
	}
	id := js[0].JobID
	select {
	case <-blobs.reading:
	case <-time.After(20 * time.Second):
		t.Fatalf("the job never read the bucket's data: %+v", e.jobs())
	}
	describe := func() *backup.BackupJob {
		t.Helper()
		j, err := e.svc.DescribeBackupJob(ctx, schedAcct, id)
		if err != nil {
			t.Fatal(err)
		}
		return j
	}
	if j := describe(); j.State != backup.JobRunning {
		t.Fatalf("job reading its first object: %s, want RUNNING", j.State)
	}

	// The window closes at 05:00 sharp: a pass then leaves the job alone.
	e.tick(sc, day(1, 5, 0))
	if sr, err := e.svc.ScheduledRunOf(ctx, schedAcct, id); err != nil || sr == nil || sr.Overdue || !sr.CompleteBy.Equal(day(1, 5, 0)) {
		t.Fatalf("scheduled run at 05:00: %+v, %v", sr, err)
	}
	if j := describe(); j.State != backup.JobRunning {
		t.Fatalf("job at 05:00: %s, want RUNNING", j.State)
	}

	e.tick(sc, day(1, 5, 1))
	blobs.open()
	j := describe()
	for deadline := time.Now().Add(20 * time.Second); (j.State == backup.JobRunning || j.State == backup.JobCreated) && time.Now().Before(deadline); j = describe() {
		time.Sleep(5 * time.Millisecond)
	}
	const msg = "The backup job did not complete within the completion window and was canceled."
	if j.State != backup.JobAborted || j.StatusMessage != msg || j.RecoveryPointARN != "" || j.CompletionDate == nil {
		t.Fatalf("job past its completion window: %s %q point %q completed %v; want ABORTED, %q, no point", j.State, j.StatusMessage, j.RecoveryPointARN, j.CompletionDate, msg)
	}
	if sr, err := e.svc.ScheduledRunOf(ctx, schedAcct, id); err != nil || sr == nil || !sr.Overdue {
		t.Fatalf("scheduled run after 05:01: %+v, %v", sr, err)
	}
	if pts, err := e.svc.ListRecoveryPoints(ctx, schedAcct, "Default", ""); err != nil || len(pts) != 0 {
		t.Fatalf("recovery points after the aborted job: %d, %v", len(pts), err)
	}
	// A later pass neither starts the run again nor touches the record.
	e.tick(sc, day(1, 5, 2))
	if js := e.jobs(); len(js) != 1 || js[0].State != backup.JobAborted {
		t.Fatalf("jobs after a later pass: %+v", js)
	}
}
