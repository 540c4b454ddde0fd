package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestReplicaIsNotABackup is the design article's core scenario: a bucket
// replicated to another region is damaged — objects deleted, others
// overwritten with garbage — and the damage reaches the replica too; the
// recovery point taken before brings every object back byte-identical, and
// so does its copy in the other region.
func TestReplicaIsNotABackup(t *testing.T) {
	ctx := context.Background()
	regions := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	wc, ec := west.Client(t), east.Client(t)
	for _, b := range []struct {
		c      *s3.Client
		name   string
		region string
	}{{wc, "source-bucket-name", "us-west-2"}, {ec, "dest-bucket-name-us-east-1", "us-east-1"}} {
		_, err := b.c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b.name),
			CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(b.region)}})
		mustDo(t, err)
		_, err = b.c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b.name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		mustDo(t, err)
	}
	_, err := wc.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String("source-bucket-name"),
		ReplicationConfiguration: &types.ReplicationConfiguration{Role: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/s3-replication-role"),
			Rules: []types.ReplicationRule{{ID: aws.String("replicate-all-objects"), Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
				Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::dest-bucket-name-us-east-1"), StorageClass: types.StorageClassStandard}}}}})
	mustDo(t, err)

	const n = 40
	original := map[string][]byte{}
	for i := range n {
		k := fmt.Sprintf("ledger/%02d.csv", i)
		data := make([]byte, 10<<10+i)
		_, _ = rand.Read(data)
		original[k] = data
		_, err := wc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("source-bucket-name"), Key: aws.String(k), Body: bytes.NewReader(data)})
		mustDo(t, err)
	}
	read := func(c *s3.Client, bucket, k string) ([]byte, error) {
		out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(k)})
		if err != nil {
			return nil, err
		}
		defer out.Body.Close()
		return io.ReadAll(out.Body)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Minute); !ok(); time.Sleep(20 * time.Millisecond) { // a loaded machine is slow
			if time.Now().After(deadline) {
				t.Fatalf("waiting for %s", what)
			}
		}
	}
	waitFor("the replica", func() bool {
		for k, want := range original {
			if got, err := read(ec, "dest-bucket-name-us-east-1", k); err != nil || !bytes.Equal(got, want) {
				return false
			}
		}
		return true
	})

	// A backup before the damage.
	bc := awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(west.URL()), Region: "us-west-2", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	role := aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")
	job, err := bc.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String("arn:aws:s3:::source-bucket-name"), IamRoleArn: role})
	mustDo(t, err)
	var point *string
	waitFor("the backup", func() bool {
		d, err := bc.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: job.BackupJobId})
		mustDo(t, err)
		if d.State == "FAILED" {
			t.Fatalf("backup failed: %s", aws.ToString(d.StatusMessage))
		}
		point = d.RecoveryPointArn
		return d.State == "COMPLETED"
	})

	// And its copy in the other region, as a plan's copy action makes.
	cj, err := bc.StartCopyJob(ctx, &awsbackup.StartCopyJobInput{RecoveryPointArn: point, SourceBackupVaultName: aws.String("Default"),
		DestinationBackupVaultArn: aws.String("arn:aws:backup:us-east-1:" + servertest.AccountID + ":backup-vault:Default"), IamRoleArn: role})
	mustDo(t, err)
	var copied *string
	waitFor("the copy to us-east-1", func() bool {
		d, err := bc.DescribeCopyJob(ctx, &awsbackup.DescribeCopyJobInput{CopyJobId: cj.CopyJobId})
		mustDo(t, err)
		if d.CopyJob.State == "FAILED" {
			t.Fatalf("copy failed: %s", aws.ToString(d.CopyJob.StatusMessage))
		}
		copied = d.CopyJob.DestinationRecoveryPointArn
		return d.CopyJob.State == "COMPLETED"
	})

	// The damage: ten objects deleted, ten overwritten with garbage.
	for i := range 20 {
		k := fmt.Sprintf("ledger/%02d.csv", i)
		if i < 10 {
			_, err = wc.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("source-bucket-name"), Key: aws.String(k)})
		} else {
			_, err = wc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("source-bucket-name"), Key: aws.String(k), Body: bytes.NewReader([]byte("corrupted"))})
		}
		mustDo(t, err)
	}
	// It reaches the replica: replication does its job, which is the
	// problem.
	waitFor("the damage to replicate", func() bool {
		for i := range 20 {
			got, err := read(ec, "dest-bucket-name-us-east-1", fmt.Sprintf("ledger/%02d.csv", i))
			if i < 10 && err == nil || i >= 10 && string(got) != "corrupted" {
				return false
			}
		}
		return true
	})

	// The recovery point brings every object back, as new versions.
	r, err := bc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: point, IamRoleArn: role,
		Metadata: map[string]string{"DestinationBucketName": "source-bucket-name"}})
	mustDo(t, err)
	waitFor("the restore", func() bool {
		d, err := bc.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: r.RestoreJobId})
		mustDo(t, err)
		if d.Status == "FAILED" || d.Status == "ABORTED" {
			t.Fatalf("restore: %s %s", d.Status, aws.ToString(d.StatusMessage))
		}
		return d.Status == "COMPLETED"
	})
	for k, want := range original {
		got, err := read(wc, "source-bucket-name", k)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the restore: %v", k, err)
		}
	}
	// The copy in us-east-1 restores the same, there: what a region
	// lost to an outage or an operator is still in the other one.
	ebc := awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(east.URL()), Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	er, err := ebc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: copied, IamRoleArn: role,
		Metadata: map[string]string{"DestinationBucketName": "restored-in-us-east-1", "NewBucket": "true"}})
	mustDo(t, err)
	waitFor("the restore from the copy", func() bool {
		d, err := ebc.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: er.RestoreJobId})
		mustDo(t, err)
		if d.Status == "FAILED" || d.Status == "ABORTED" {
			t.Fatalf("restore from the copy: %s %s", d.Status, aws.ToString(d.StatusMessage))
		}
		return d.Status == "COMPLETED"
	})
	for k, want := range original {
		got, err := read(ec, "restored-in-us-east-1", k)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s restored from the copy in us-east-1: %v", k, err)
		}
	}
	// And the restored versions replicate in turn.
	waitFor("the replica to heal", func() bool {
		for k, want := range original {
			if got, err := read(ec, "dest-bucket-name-us-east-1", k); err != nil || !bytes.Equal(got, want) {
				return false
			}
		}
		return true
	})
}
