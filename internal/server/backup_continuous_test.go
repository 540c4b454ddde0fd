package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	btypes "github.com/aws/aws-sdk-go-v2/service/backup/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// continuousPlan is a plan whose rule backs buckets up continuously, with
// a copy that follows in us-east-1.
const continuousPlan = `{"BackupPlanName":"s3-continuous","Rules":[{"RuleName":"pitr","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"EnableContinuousBackup":true,"Lifecycle":{"DeleteAfterDays":35},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:111122223333:backup-vault:Default","Lifecycle":{"DeleteAfterDays":35}}]}]}`

// TestBucketPointInTimeRestore backs a bucket up continuously, lets an
// attacker with the keys overwrite and then permanently delete versions
// after instant T, and restores the bucket to T from the continuous point
// in us-west-2 and from its copy in us-east-1: both bring back exactly
// what the bucket held at T.
func TestBucketPointInTimeRestore(t *testing.T) {
	ctx := context.Background()
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	regions := servertest.StartRegionsWith(t, func(c *server.Config) {
		c.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	cli := servertest.AWSCLI(t, west)
	c := west.Client(t)
	const bucket = "ledger"
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
	mustDo(t, err)
	_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	mustDo(t, err)
	state := map[string]string{} // what the bucket holds
	put := func(k, v string) {
		t.Helper()
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader(v)})
		mustDo(t, err)
		state[k] = v
	}
	for i := range 10 {
		put(fmt.Sprintf("rows/%02d", i), fmt.Sprintf("row %d, first version", i))
	}

	planID := cli.Run("backup", "create-backup-plan", "--backup-plan", continuousPlan)["BackupPlanId"].(string)
	cli.Run("backup", "create-backup-selection", "--backup-plan-id", planID, "--backup-selection",
		`{"SelectionName":"ledger","IamRoleArn":"arn:aws:iam::111122223333:role/service-role/AWSBackupDefaultServiceRole","Resources":["arn:aws:s3:::ledger"]}`)
	clock.Store(day0.Add(2*time.Hour + time.Minute).UnixNano())
	bc := backupSDK(west)
	var job btypes.BackupJob
	waitFor(t, "the continuous backup's base", func() bool {
		out, err := bc.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{})
		mustDo(t, err)
		if len(out.BackupJobs) == 0 {
			return false
		}
		job = out.BackupJobs[0]
		return job.State == btypes.BackupJobStateCompleted || job.State == btypes.BackupJobStateFailed
	})
	pointARN := aws.ToString(job.RecoveryPointArn)
	if job.State != btypes.BackupJobStateCompleted || !strings.Contains(pointARN, ":recovery-point:continuous:") {
		t.Fatalf("base job: %s %s, point %s", job.State, aws.ToString(job.StatusMessage), pointARN)
	}

	// Before T: overwrites, new keys, a delete marker.
	logged, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("rows/11"), Body: strings.NewReader("row 11")})
	mustDo(t, err)
	state["rows/11"] = "row 11"
	put("rows/03", "row 3, second version")
	put("rows/10", "row 10")
	_, err = c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: aws.String("rows/07")})
	mustDo(t, err)
	delete(state, "rows/07")
	time.Sleep(1100 * time.Millisecond)
	T := time.Now().UTC()
	atT := maps.Clone(state)
	time.Sleep(1100 * time.Millisecond)

	// After T, with the keys: every object overwritten, then every version
	// of every key deleted for good.
	for k := range atT {
		put(k, "ransom")
	}
	versions, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	mustDo(t, err)
	for _, v := range versions.Versions {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: v.Key, VersionId: v.VersionId})
		mustDo(t, err)
	}
	for _, m := range versions.DeleteMarkers {
		_, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(bucket), Key: m.Key, VersionId: m.VersionId})
		mustDo(t, err)
	}

	restoreAt := func(bc *awsbackup.Client, point, target string) {
		t.Helper()
		var start *awsbackup.StartRestoreJobOutput
		// Refused until the window reaches T, which the copy reaches last.
		waitFor(t, "the window to reach T", func() bool {
			start, err = bc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(point),
				IamRoleArn: aws.String("arn:aws:iam::111122223333:role/backup"),
				Metadata:   map[string]string{"RestoreTime": T.Format(time.RFC3339Nano), "DestinationBucketName": target, "NewBucket": "true"}})
			if code, _ := servertest.APICode(err); err != nil && code != "InvalidParameterValueException" {
				t.Fatal(err)
			}
			return err == nil
		})
		var j *awsbackup.DescribeRestoreJobOutput
		waitFor(t, "the restore", func() bool {
			j, err = bc.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId})
			mustDo(t, err)
			return j.Status == btypes.RestoreJobStatusCompleted || j.Status == btypes.RestoreJobStatusFailed
		})
		if j.Status != btypes.RestoreJobStatusCompleted {
			t.Fatalf("restore to T into %s: %s %s", target, j.Status, aws.ToString(j.StatusMessage))
		}
	}
	bucketState := func(c *s3.Client, b string) map[string]string {
		t.Helper()
		out := map[string]string{}
		list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(b)})
		mustDo(t, err)
		for _, o := range list.Contents {
			g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(b), Key: o.Key})
			mustDo(t, err)
			body, err := io.ReadAll(g.Body)
			g.Body.Close()
			mustDo(t, err)
			out[aws.ToString(o.Key)] = string(body)
		}
		return out
	}

	// Outside the window: refused with the window in the message.
	_, err = bc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(pointARN),
		IamRoleArn: aws.String("arn:aws:iam::111122223333:role/backup"),
		Metadata:   map[string]string{"RestoreTime": day0.Add(-48 * time.Hour).Format(time.RFC3339), "DestinationBucketName": "nope", "NewBucket": "true"}})
	if code, _ := servertest.APICode(err); code != "InvalidParameterValueException" || !strings.Contains(err.Error(), "outside the restorable window") {
		t.Fatalf("restore before the window: %v", err)
	}

	// The region says how far behind its continuous backup is.
	resp := west.Metrics(t)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `bulwark_backup_continuous_lag_seconds{account="111122223333",resource="arn:aws:s3:::ledger",vault="Default"}`) {
		t.Fatalf("no continuous lag in the metrics")
	}

	d, err := bc.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: aws.String(pointARN)})
	mustDo(t, err)
	if !strings.HasPrefix(aws.ToString(d.StatusMessage), "Continuous backup: restorable from ") {
		t.Fatalf("describe-recovery-point of a continuous point says %q", aws.ToString(d.StatusMessage))
	}

	restoreAt(bc, pointARN, "ledger-at-t")

	// A version the log holds can heal its damaged copy (scrub), even
	// after it was deleted at the source.
	waitFor(t, "the version in the log", func() bool {
		rc, from, err := west.Jobs.OpenBackedUpObject(ctx, servertest.AccountID, "arn:aws:s3:::"+bucket, "rows/11", aws.ToString(logged.VersionId), strings.Trim(aws.ToString(logged.ETag), `"`))
		if err != nil {
			return false
		}
		body, _ := io.ReadAll(rc)
		rc.Close()
		if string(body) != "row 11" || from != pointARN {
			t.Fatalf("backed-up version from %s: %q", from, body)
		}
		return true
	})
	if got := bucketState(c, "ledger-at-t"); !maps.Equal(got, atT) {
		t.Fatalf("restored to T in us-west-2:\n%v\nwant\n%v", got, atT)
	}

	// The copy in us-east-1 follows the point piece by piece.
	be := backupSDK(east)
	var copied string
	waitFor(t, "the continuous copy in us-east-1", func() bool {
		out, err := be.ListRecoveryPointsByBackupVault(ctx, &awsbackup.ListRecoveryPointsByBackupVaultInput{BackupVaultName: aws.String("Default")})
		mustDo(t, err)
		for _, p := range out.RecoveryPoints {
			if strings.Contains(aws.ToString(p.RecoveryPointArn), ":continuous:") && p.Status == btypes.RecoveryPointStatusCompleted {
				copied = aws.ToString(p.RecoveryPointArn)
			}
		}
		return copied != ""
	})
	restoreAt(be, copied, "ledger-at-t-east")
	if got := bucketState(east.Client(t), "ledger-at-t-east"); !maps.Equal(got, atT) {
		t.Fatalf("restored to T in us-east-1:\n%v\nwant\n%v", got, atT)
	}
}

func backupSDK(r *servertest.Region) *awsbackup.Client {
	return awsbackup.NewFromConfig(aws.Config{
		Region:       r.Store.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, ""),
		BaseEndpoint: aws.String(r.URL()),
	})
}

// TestContinuousBucketResumesAfterRestart stops the region while a
// bucket is backed up continuously and starts it again on the same data:
// the stream resumes at its cursor, the window goes on without a gap, and
// a restore to an instant after the restart has the objects written
// before and after it.
func TestContinuousBucketResumesAfterRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	opts := servertest.Options{Dir: dir, Configure: func(c *server.Config) {
		c.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}}
	const plan = `{"BackupPlanName":"pitr","Rules":[{"RuleName":"pitr","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","EnableContinuousBackup":true,"Lifecycle":{"DeleteAfterDays":35}}]}`
	want := map[string]string{}
	var pointARN string
	t.Run("before", func(t *testing.T) {
		r := servertest.Start(t, opts)
		c := r.Client(t)
		_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("journal"),
			CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
		mustDo(t, err)
		_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("journal"),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		mustDo(t, err)
		cli := servertest.AWSCLI(t, r)
		planID := cli.Run("backup", "create-backup-plan", "--backup-plan", plan)["BackupPlanId"].(string)
		cli.Run("backup", "create-backup-selection", "--backup-plan-id", planID, "--backup-selection",
			`{"SelectionName":"journal","IamRoleArn":"arn:aws:iam::111122223333:role/backup","Resources":["arn:aws:s3:::journal"]}`)
		clock.Store(day0.Add(2*time.Hour + time.Minute).UnixNano())
		bc := backupSDK(r)
		waitFor(t, "the base", func() bool {
			out, err := bc.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{})
			mustDo(t, err)
			if len(out.BackupJobs) == 1 && out.BackupJobs[0].State == btypes.BackupJobStateCompleted {
				pointARN = aws.ToString(out.BackupJobs[0].RecoveryPointArn)
			}
			return pointARN != ""
		})
		for i := range 5 {
			k, v := fmt.Sprintf("before/%d", i), fmt.Sprintf("entry %d", i)
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("journal"), Key: aws.String(k), Body: strings.NewReader(v)})
			mustDo(t, err)
			want[k] = v
		}
		written := time.Now()
		waitWindow(t, r, pointARN, written)
	})
	r := servertest.Start(t, opts)
	c := r.Client(t)
	for i := range 5 {
		k, v := fmt.Sprintf("after/%d", i), fmt.Sprintf("entry %d", i)
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("journal"), Key: aws.String(k), Body: strings.NewReader(v)})
		mustDo(t, err)
		want[k] = v
	}
	T := time.Now().UTC()
	ws := waitWindow(t, r, pointARN, T)
	if len(ws) != 1 {
		t.Fatalf("restorable windows after the restart: %v, want one", ws)
	}
	bc := backupSDK(r)
	start, err := bc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(pointARN),
		IamRoleArn: aws.String("arn:aws:iam::111122223333:role/backup"),
		Metadata:   map[string]string{"RestoreTime": T.Format(time.RFC3339Nano), "DestinationBucketName": "journal-restored", "NewBucket": "true"}})
	mustDo(t, err)
	waitFor(t, "the restore", func() bool {
		j, err := bc.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId})
		mustDo(t, err)
		if j.Status == btypes.RestoreJobStatusFailed {
			t.Fatalf("restore: %s", aws.ToString(j.StatusMessage))
		}
		return j.Status == btypes.RestoreJobStatusCompleted
	})
	got := map[string]string{}
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("journal-restored")})
	mustDo(t, err)
	for _, o := range list.Contents {
		g, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("journal-restored"), Key: o.Key})
		mustDo(t, err)
		b, _ := io.ReadAll(g.Body)
		g.Body.Close()
		got[aws.ToString(o.Key)] = string(b)
	}
	if !maps.Equal(got, want) {
		t.Fatalf("restored after the restart:\n%v\nwant\n%v", got, want)
	}

	// 36 days on, the 35-day retention has cut the window: T is no
	// longer restorable.
	clock.Store(day0.Add(36 * 24 * time.Hour).UnixNano())
	cutoff := day0.Add(24 * time.Hour)
	waitFor(t, "the retention to cut the window", func() bool {
		rp, err := r.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", pointARN)
		mustDo(t, err)
		ws, err := r.Jobs.RestorableWindows(ctx, rp)
		mustDo(t, err)
		return len(ws) == 0 || !ws[0].Since.Before(cutoff)
	})
	_, err = bc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(pointARN),
		IamRoleArn: aws.String("arn:aws:iam::111122223333:role/backup"),
		Metadata:   map[string]string{"RestoreTime": T.Format(time.RFC3339Nano), "DestinationBucketName": "journal-too-late", "NewBucket": "true"}})
	if code, _ := servertest.APICode(err); code != "InvalidParameterValueException" {
		t.Fatalf("restore to an instant past the retention: %v", err)
	}

	// Deleting the point stops the stream and drops its pieces.
	_, err = bc.DeleteRecoveryPoint(ctx, &awsbackup.DeleteRecoveryPointInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: aws.String(pointARN)})
	mustDo(t, err)
	if _, err := r.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", pointARN); err == nil {
		t.Fatal("the continuous point is still there after its deletion")
	}
}

// waitWindow waits until the continuous point's newest window reaches at,
// and returns the windows.
func waitWindow(t *testing.T, r *servertest.Region, pointARN string, at time.Time) []backup.Window {
	t.Helper()
	var ws []backup.Window
	waitFor(t, "the window to reach "+at.String(), func() bool {
		rp, err := r.Jobs.DescribeRecoveryPoint(context.Background(), servertest.AccountID, "Default", pointARN)
		mustDo(t, err)
		ws, err = r.Jobs.RestorableWindows(context.Background(), rp)
		mustDo(t, err)
		return len(ws) > 0 && !ws[len(ws)-1].Until.Before(at)
	})
	return ws
}
