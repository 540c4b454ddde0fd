package backupapi_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestCrossAccountJobsRefused starts a backup of another account's bucket
// and restores into another account's bucket: both are refused at once,
// with InvalidParameterValueException, and leave no job behind. A bucket
// that does not exist at all still gets a job, which fails.
func TestCrossAccountJobsRefused(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := regionSDK(r, servertest.AccessKey, servertest.SecretKey)
	role := aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")
	for _, b := range []struct{ name, owner string }{{"mine", servertest.AccountID}, {"their-bucket", servertest.OtherAccountID}} {
		if err := r.Store.CreateBucket(ctx, b.name, b.owner, r.Store.Region()); err != nil {
			t.Fatal(err)
		}
		data := []byte("data of " + b.name)
		if _, err := r.Store.PutObject(ctx, &objectstore.PutInput{Bucket: b.name, Key: "k", Owner: b.owner, Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}

	_, err := c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String("arn:aws:s3:::their-bucket"), IamRoleArn: role})
	wantMessage(t, err, "InvalidParameterValueException", "their-bucket", "another account")
	if jobs, err := c.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{}); err != nil || len(jobs.BackupJobs) != 0 {
		t.Fatalf("backup jobs after the refusal: %+v, %v", jobs, err)
	}

	point := sdkBackup(t, c, "mine", "Default").RecoveryPointArn
	for _, md := range []map[string]string{
		{"DestinationBucketName": "their-bucket"},
		{"DestinationBucketName": "their-bucket", "NewBucket": "false"},
		{"DestinationBucketName": "their-bucket", "NewBucket": "true"},
	} {
		_, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: point, IamRoleArn: role, Metadata: md})
		wantMessage(t, err, "InvalidParameterValueException", "their-bucket", "another account")
	}
	if jobs, err := c.ListRestoreJobs(ctx, &awsbackup.ListRestoreJobsInput{}); err != nil || len(jobs.RestoreJobs) != 0 {
		t.Fatalf("restore jobs after the refusals: %+v, %v", jobs, err)
	}
	// The other account's bucket is as it was.
	if vs, err := r.Store.ListObjects(ctx, "their-bucket", objectstore.ListInput{MaxKeys: 1000}); err != nil || len(vs.Objects) != 1 {
		t.Fatalf("their-bucket after the refusals: %+v, %v", vs, err)
	}

	// No bucket at all: the job is accepted and fails, as before.
	start, err := c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String("arn:aws:s3:::nosuch"), IamRoleArn: role})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		j, err := c.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: start.BackupJobId})
		if err != nil {
			t.Fatal(err)
		}
		if j.State == types.BackupJobStateFailed && aws.ToString(j.StatusMessage) == "Bucket nosuch does not exist." {
			break
		}
		if j.State == types.BackupJobStateCompleted || time.Now().After(deadline) {
			t.Fatalf("backup of a missing bucket: %s %s", j.State, aws.ToString(j.StatusMessage))
		}
	}
}
