package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// statusTime is how backup status writes a time.
const statusTime = "2006-01-02 15:04:05 MST"

// TestBackupStatus runs `bulwark backup status` against a region with a
// plan of two rules, a job one of them ran, a restore, and a bucket
// without backups.
func TestBackupStatus(t *testing.T) {
	ctx := context.Background()
	r := servertest.Start(t, servertest.Options{})
	env := ownerEnv(r.URL())
	bc := awsbackup.New(awsbackup.Options{Region: "us-west-2", BaseEndpoint: aws.String(r.URL()),
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})

	code, out, errOut := runCommand(t, env, "backup", "status")
	if code != 0 || !strings.Contains(out, "no backup plans") || !strings.Contains(out, "no protected resources") {
		t.Fatalf("status of an empty region: exit %d\n%s%s", code, out, errOut)
	}

	c := r.Client(t)
	versioned(t, c, "photos", "us-west-2")
	versioned(t, c, "scratch", "us-west-2")
	putVersions(t, c, "photos", "a.jpg", "b.jpg")
	plan, err := bc.CreateBackupPlan(ctx, &awsbackup.CreateBackupPlanInput{BackupPlan: &types.BackupPlanInput{
		BackupPlanName: aws.String("nightly"),
		Rules: []types.BackupRuleInput{{
			RuleName: aws.String("daily"), TargetBackupVaultName: aws.String("Default"),
			ScheduleExpression: aws.String("cron(0 5 ? * * *)"), ScheduleExpressionTimezone: aws.String("America/New_York"),
			Lifecycle: &types.Lifecycle{DeleteAfterDays: aws.Int64(35)},
		}, {
			RuleName: aws.String("twice-a-day"), TargetBackupVaultName: aws.String("Default"),
			ScheduleExpression: aws.String("rate(12 hours)"),
		}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := bc.GetBackupPlan(ctx, &awsbackup.GetBackupPlanInput{BackupPlanId: plan.BackupPlanId})
	if err != nil {
		t.Fatal(err)
	}
	daily := got.BackupPlan.Rules[0]

	// A job as the scheduler starts it for the daily rule, then a restore.
	j, err := r.Jobs.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{
		VaultName: "Default", ResourceARN: "arn:aws:s3:::photos", IAMRoleARN: "arn:aws:iam::" + servertest.AccountID + ":role/backup",
		Lifecycle: &backup.Lifecycle{DeleteAfterDays: aws.Int64(35)},
		CreatedBy: &backup.CreatedBy{BackupPlanId: aws.ToString(plan.BackupPlanId), BackupPlanArn: aws.ToString(plan.BackupPlanArn),
			BackupPlanVersion: aws.ToString(plan.VersionId), BackupRuleId: aws.ToString(daily.RuleId)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); j.State != backup.JobCompleted; time.Sleep(20 * time.Millisecond) {
		if j, err = r.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID); err != nil || j.State == backup.JobFailed || time.Now().After(deadline) {
			t.Fatalf("backup job: %+v, %v", j, err)
		}
	}
	rs, err := bc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(j.RecoveryPointARN),
		IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup"), Metadata: map[string]string{"DestinationBucketName": "photos"}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		rj, err := bc.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: rs.RestoreJobId})
		if err != nil || rj.Status == types.RestoreJobStatusFailed || time.Now().After(deadline) {
			t.Fatalf("restore job: %+v, %v", rj, err)
		}
		if rj.Status == types.RestoreJobStatusCompleted {
			break
		}
	}

	// The next runs, as the scheduler works them out: the cron in New
	// York, the rate every 12 hours from the plan's creation.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skipf("no time zone database: %v", err)
	}
	cron, err := schedule.Parse("cron(0 5 ? * * *)")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	nextDaily := cron.Next(now, ny)
	nextRate := aws.ToTime(got.CreationDate).Add(12 * time.Hour).In(time.UTC)

	code, out, errOut = runCommand(t, env, "backup", "status", "--endpoint", r.URL(), "-next", "2")
	if code != 0 {
		t.Fatalf("backup status: exit %d\n%s%s", code, out, errOut)
	}
	t.Logf("backup status:\n%s", out)
	if !strings.HasPrefix(out, "region us-west-2 ("+r.URL()+")\n") {
		t.Fatalf("status does not start with the endpoint's region:\n%s", out)
	}
	lines := strings.Split(out, "\n")
	line := func(prefix string) string {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no line starts with %q in\n%s", prefix, out)
		return ""
	}
	dailyLine := line("nightly  daily ")
	for _, want := range []string{"Default", "cron(0 5 ? * * *)", "America/New_York",
		nextDaily.Format(statusTime) + ", " + cron.Next(nextDaily, ny).Format(statusTime),
		"COMPLETED " + j.CompletionDate.In(ny).Format(statusTime)} {
		if !strings.Contains(dailyLine, want) {
			t.Fatalf("daily rule's line lacks %q: %s", want, dailyLine)
		}
	}
	rateLine := line("nightly  twice-a-day ")
	for _, want := range []string{"rate(12 hours)", "Etc/UTC", nextRate.Format(statusTime) + ", " + nextRate.Add(12*time.Hour).Format(statusTime), "never ran"} {
		if !strings.Contains(rateLine, want) {
			t.Fatalf("rate rule's line lacks %q: %s", want, rateLine)
		}
	}
	res := line("arn:aws:s3:::photos ")
	if !strings.Contains(res, "last backup "+j.CreationDate.Local().Format(statusTime)+" in Default") || !strings.Contains(res, "last restore ") {
		t.Fatalf("resource line: %s", res)
	}
	expires := j.CreationDate.AddDate(0, 0, 35).Local().Format(statusTime)
	point := line("  Default ")
	for _, want := range []string{j.CreationDate.Local().Format(statusTime), "COMPLETED", fmt.Sprintf("%d B", j.BackupSizeInBytes), "WARM", expires} {
		if !strings.Contains(point, want) {
			t.Fatalf("point line lacks %q: %s", want, point)
		}
	}
	if strings.Contains(out, "scratch") {
		t.Fatalf("a bucket without recovery points is listed:\n%s", out)
	}

	code, out, errOut = runCommand(t, env, "backup", "status", "-json")
	var st struct {
		Rules []struct {
			Rule     string
			NextRuns []time.Time
			LastJob  *struct{ State, PercentDone string }
		}
		Resources []struct {
			ARN    string
			Points []struct {
				ARN, Status, StorageClass string
				Expires                   *time.Time
			} `json:"recoveryPoints"`
		}
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil {
		t.Fatalf("backup status -json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	if len(st.Rules) != 2 || len(st.Rules[0].NextRuns) != 3 || st.Rules[0].LastJob == nil || st.Rules[0].LastJob.PercentDone != "100.0" ||
		len(st.Resources) != 1 || len(st.Resources[0].Points) != 1 || st.Resources[0].Points[0].ARN != j.RecoveryPointARN ||
		st.Resources[0].Points[0].Expires == nil {
		t.Fatalf("backup status -json: %+v", st)
	}

	// Another account sees none of it.
	other := ownerEnv(r.URL())
	other["AWS_ACCESS_KEY_ID"], other["AWS_SECRET_ACCESS_KEY"] = servertest.OtherAccessKey, servertest.OtherSecretKey
	if code, out, errOut := runCommand(t, other, "backup", "status"); code != 0 || strings.Contains(out, "photos") || strings.Contains(out, "nightly") {
		t.Fatalf("another account's status: exit %d\n%s%s", code, out, errOut)
	}
}

// TestBackupStatusErrors checks what backup status says when it cannot
// ask.
func TestBackupStatusErrors(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	env := ownerEnv(r.URL())
	env["AWS_SECRET_ACCESS_KEY"] = "wrong"
	if code, _, errOut := runCommand(t, env, "backup", "status"); code != 1 || !strings.Contains(errOut, "InvalidSignatureException") {
		t.Fatalf("wrong secret: exit %d, %s", code, errOut)
	}
	if code, _, errOut := runCommand(t, ownerEnv("http://127.0.0.1:1"), "backup", "status"); code != 1 || !strings.Contains(errOut, "no answer from http://127.0.0.1:1") {
		t.Fatalf("no server: exit %d, %s", code, errOut)
	}
	if code, _, _ := runCommand(t, env, "backup", "nope"); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
}
