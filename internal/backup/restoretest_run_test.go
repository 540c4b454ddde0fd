package backup_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// TestRestoreTestRuns runs a restore testing plan: at its time the bucket's
// newest point is restored into a scratch bucket, validated, and the
// scratch bucket is deleted once the validation window has passed.
func TestRestoreTestRuns(t *testing.T) {
	ctx := context.Background()
	e := newSchedEnv(t, day(1, 0, 0))
	sc := e.newSc("a", 0)
	e.set(day(1, 3, 0))
	if _, err := e.svc.StartBackupJob(ctx, schedAcct, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::source-bucket-name",
		IAMRoleARN: "arn:aws:iam::" + schedAcct + ":role/backup"}); err != nil {
		t.Fatal(err)
	}
	waitJobs(t, e)
	p, err := e.cat.CreateRestoreTestingPlan(ctx, schedAcct, backup.CreateRestoreTestingPlanInput{Plan: backup.RestoreTestingPlanInput{
		RestoreTestingPlanName: "daily", ScheduleExpression: "cron(0 4 ? * * *)", StartWindowHours: int64p(1),
		RecoveryPointSelection: &backup.RecoveryPointSelection{Algorithm: backup.AlgorithmLatestWithinWindow, IncludeVaults: []string{"*"},
			RecoveryPointTypes: []string{backup.RecoveryPointTypeSnapshot}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.cat.CreateRestoreTestingSelection(ctx, schedAcct, "daily", backup.RestoreTestingSelection{RestoreTestingSelectionName: "src",
		ProtectedResourceType: "S3", ProtectedResourceArns: []string{"arn:aws:s3:::source-bucket-name"}, IamRoleArn: "arn:aws:iam::" + schedAcct + ":role/restore",
		ValidationWindowHours: int64p(1), RestoreMetadataOverrides: map[string]string{"DestinationBucketName": "source-bucket-name"}}, ""); err != nil {
		t.Fatal(err)
	}

	e.tick(sc, day(1, 3, 59))
	if rs, _ := e.svc.ListRestoreJobs(ctx, schedAcct, backup.JobFilter{}); len(rs) != 0 {
		t.Fatalf("restore jobs before 04:00: %+v", rs)
	}
	e.tick(sc, day(1, 4, 5))
	var j *backup.RestoreJob
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		rs, err := e.svc.ListRestoreJobs(ctx, schedAcct, backup.JobFilter{})
		if err != nil || len(rs) != 1 {
			t.Fatalf("restore jobs at 04:05: %+v, %v", rs, err)
		}
		j = rs[0]
		if j.Status == backup.RestoreCompleted || j.Status == backup.RestoreFailed || time.Now().After(deadline) {
			break
		}
	}
	// The override cannot aim the test at the source bucket.
	if j.Status != backup.RestoreCompleted || j.RestoreTestingPlanARN != p.RestoreTestingPlanArn || j.ValidationStatus != backup.ValidationSuccessful ||
		!strings.HasPrefix(j.CreatedResourceARN, "arn:aws:s3:::source-bucket-name-restore-test-") {
		t.Fatalf("restore test job: %+v", j)
	}
	scratch := strings.TrimPrefix(j.CreatedResourceARN, "arn:aws:s3:::")
	if v, err := e.st.HeadObject(ctx, scratch, "k", ""); err != nil || v.Size != 4 {
		t.Fatalf("restored object: %+v, %v", v, err)
	}
	if got, err := e.cat.GetRestoreTestingPlan(ctx, schedAcct, "daily"); err != nil || got.LastExecutionTime == nil || !got.LastExecutionTime.Equal(day(1, 4, 0)) {
		t.Fatalf("plan after its run: %+v, %v", got, err)
	}

	e.tick(sc, day(1, 4, 30)) // within the validation window, and no second run
	if rs, _ := e.svc.ListRestoreJobs(ctx, schedAcct, backup.JobFilter{}); len(rs) != 1 || rs[0].DeletionStatus != "" {
		t.Fatalf("restore jobs at 04:30: %+v", rs)
	}
	if _, err := e.st.Bucket(ctx, scratch); err != nil {
		t.Fatalf("scratch bucket deleted within the window: %v", err)
	}
	e.tick(sc, day(1, 5, 6))
	if j, err = e.svc.DescribeRestoreJob(ctx, schedAcct, j.JobID); err != nil || j.DeletionStatus != backup.DeletionSuccessful {
		t.Fatalf("after the window: %+v, %v", j, err)
	}
	if _, err := e.st.Bucket(ctx, scratch); err != objectstore.ErrNoSuchBucket && (err == nil || !strings.Contains(err.Error(), "does not exist")) {
		t.Fatalf("scratch bucket after the window: %v", err)
	}
	if _, err := e.st.HeadObject(ctx, "source-bucket-name", "k", ""); err != nil {
		t.Fatalf("source bucket: %v", err)
	}
}

func TestS3TestRestoreMetadata(t *testing.T) {
	p := backup.NewS3Provider(nil)
	long := strings.Repeat("a", 40) + "-bcd"
	md := p.TestRestoreMetadata(&backup.RecoveryPoint{ResourceARN: "arn:aws:s3:::" + long}, "0123abcd")
	name := md["DestinationBucketName"]
	if len(name) > 63 || !strings.HasSuffix(name, "-restore-test-0123abcd") || strings.Contains(name, "--") || md["NewBucket"] != "true" {
		t.Fatalf("metadata %v", md)
	}
	if err := p.DeleteRestored(context.Background(), backup.RestoreTestTarget{Account: schedAcct, ARN: "arn:aws:s3:::source-bucket-name"}); err == nil {
		t.Fatal("a bucket not made by a restore test deleted")
	}
}
