package server_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// articlePlan is the design article's backup plan, verbatim but for the
// account ID.
const articlePlan = `{"BackupPlanName":"s3-daily-backup","Rules":[{"RuleName":"daily-s3-backup","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"Lifecycle":{"DeleteAfterDays":30},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:111122223333:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`

// TestArticleBackupPlan creates the article's plan with the aws CLI, lets
// the backup clock pass 02:00 UTC, and follows what the plan does: the
// job runs, its recovery point lands in us-west-2's Default vault and is
// copied to us-east-1's, with expiry 30 and 90 days out, and each goes
// when the clock passes its date.
func TestArticleBackupPlan(t *testing.T) {
	ctx := context.Background()
	// The backup clock runs ahead of the real one (objects are written at
	// real time and must be in the backup), from 00:30 UTC tomorrow.
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	regions := servertest.StartRegionsWith(t, func(c *server.Config) {
		c.BackupClock = now
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	aws := servertest.AWSCLI(t, west)
	awsEast := servertest.AWSCLI(t, east)

	c := west.Client(t)
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: ptr("source-bucket-name"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
	mustDo(t, err)
	_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: ptr("source-bucket-name"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	mustDo(t, err)
	for i := range 20 {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: ptr("source-bucket-name"), Key: ptr(fmt.Sprintf("ledger/%02d.csv", i)),
			Body: strings.NewReader(strings.Repeat(fmt.Sprintf("row %d\n", i), 100))})
		mustDo(t, err)
	}

	// The article's command, then get-backup-plan returns the plan.
	created := aws.Run("backup", "create-backup-plan", "--backup-plan", articlePlan)
	planID, _ := created["BackupPlanId"].(string)
	if planID == "" {
		t.Fatalf("create-backup-plan: %v", created)
	}
	got := aws.Run("backup", "get-backup-plan", "--backup-plan-id", planID)
	rule := got["BackupPlan"].(map[string]any)["Rules"].([]any)[0].(map[string]any)
	delete(rule, "RuleId")
	wantRule := map[string]any{
		"RuleName": "daily-s3-backup", "TargetBackupVaultName": "Default", "ScheduleExpression": "cron(0 2 * * ? *)",
		"ScheduleExpressionTimezone": "Etc/UTC", "StartWindowMinutes": 60.0, "CompletionWindowMinutes": 180.0,
		"Lifecycle": map[string]any{"DeleteAfterDays": 30.0},
		"CopyActions": []any{map[string]any{"DestinationBackupVaultArn": "arn:aws:backup:us-east-1:111122223333:backup-vault:Default",
			"Lifecycle": map[string]any{"DeleteAfterDays": 90.0}}},
	}
	if !reflect.DeepEqual(rule, wantRule) {
		t.Fatalf("get-backup-plan rule:\n%v\nwant\n%v", rule, wantRule)
	}
	aws.Run("backup", "create-backup-selection", "--backup-plan-id", planID, "--backup-selection",
		`{"SelectionName":"source-bucket","IamRoleArn":"arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole","Resources":["arn:aws:s3:::source-bucket-name"]}`)

	// 02:00 UTC passes.
	clock.Store(day0.Add(2*time.Hour + 30*time.Second).UnixNano())
	var job map[string]any
	waitFor(t, "the scheduled backup job", func() bool {
		jobs := aws.Run("backup", "list-backup-jobs")["BackupJobs"].([]any)
		if len(jobs) == 0 {
			return false
		}
		job = jobs[0].(map[string]any)
		return job["State"] == "COMPLETED" || job["State"] == "FAILED"
	})
	if job["State"] != "COMPLETED" || job["CreatedBy"].(map[string]any)["BackupPlanId"] != planID {
		t.Fatalf("backup job: %v", job)
	}
	points := aws.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)
	if len(points) != 1 {
		t.Fatalf("us-west-2 Default vault: %v", points)
	}
	point := points[0].(map[string]any)
	createdAt := isoTime(t, point["CreationDate"])
	if d := isoTime(t, point["CalculatedLifecycle"].(map[string]any)["DeleteAt"]); !d.Equal(createdAt.AddDate(0, 0, 30)) {
		t.Fatalf("us-west-2 point deletes at %v, want 30 days after %v", d, createdAt)
	}

	var copyJob map[string]any
	waitFor(t, "the copy job", func() bool {
		jobs := aws.Run("backup", "list-copy-jobs")["CopyJobs"].([]any)
		if len(jobs) == 0 {
			return false
		}
		copyJob = jobs[0].(map[string]any)
		return copyJob["State"] == "COMPLETED" || copyJob["State"] == "FAILED"
	})
	if copyJob["State"] != "COMPLETED" || copyJob["SourceRecoveryPointArn"] != point["RecoveryPointArn"] {
		t.Fatalf("copy job: %v", copyJob)
	}
	copies := awsEast.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)
	if len(copies) != 1 {
		t.Fatalf("us-east-1 Default vault: %v", copies)
	}
	cp := copies[0].(map[string]any)
	if cp["RecoveryPointArn"] != copyJob["DestinationRecoveryPointArn"] || !strings.HasPrefix(cp["RecoveryPointArn"].(string), "arn:aws:backup:us-east-1:111122223333:recovery-point:") ||
		cp["SourceBackupVaultArn"] != "arn:aws:backup:us-west-2:111122223333:backup-vault:Default" {
		t.Fatalf("copy in us-east-1: %v", cp)
	}
	if d := isoTime(t, cp["CalculatedLifecycle"].(map[string]any)["DeleteAt"]); !d.Equal(createdAt.AddDate(0, 0, 90)) {
		t.Fatalf("us-east-1 copy deletes at %v, want 90 days after %v", d, createdAt)
	}

	// Day 31: the point in us-west-2 has expired, the copy stays.
	clock.Store(day0.AddDate(0, 0, 31).Add(time.Hour).UnixNano())
	waitFor(t, "the us-west-2 point to expire", func() bool {
		return len(aws.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)) == 0
	})
	if n := len(awsEast.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)); n != 1 {
		t.Fatalf("on day 31 us-east-1 holds %d points, want the copy", n)
	}
	// Day 91: the copy too.
	clock.Store(day0.AddDate(0, 0, 91).Add(time.Hour).UnixNano())
	waitFor(t, "the us-east-1 copy to expire", func() bool {
		return len(awsEast.Run("backup", "list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)) == 0
	})
}

// isoTime reads a timestamp the aws CLI printed: ISO 8601 (CLI v2), or
// seconds since the epoch as the service sent them (CLI v1).
func isoTime(t *testing.T, v any) time.Time {
	t.Helper()
	if f, ok := v.(float64); ok {
		return time.UnixMilli(int64(math.Round(f * 1000))).UTC()
	}
	s, _ := v.(string)
	tm, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("timestamp %v: %v", v, err)
	}
	return tm
}

// waitFor polls cond until it holds, failing the test after a minute.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited a minute for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
