package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestCopySurvivesOutage copies a recovery point from us-west-2 to
// us-east-1 while us-east-1 is down, and kills us-west-2 with SIGKILL
// while the copy waits: once both run again the copy completes by itself,
// restores byte-identical in us-east-1, and the us-east-1 vault passes
// verification.
func TestCopySurvivesOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test runs real processes; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "topology.yaml")
	topo := fmt.Sprintf("regions:\n  - name: us-west-2\n    endpoint: http://%s\n  - name: us-east-1\n    endpoint: http://%s\n", freePort(t), freePort(t))
	if err := os.WriteFile(config, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	westDir, eastDir := filepath.Join(dir, "west"), filepath.Join(dir, "east")
	west := startRegion(t, bin, "us-west-2", config, westDir)
	east := startRegion(t, bin, "us-east-1", config, eastDir)
	ctx := context.Background()
	backupClient := func(p *process, region string) *awsbackup.Client {
		return awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(p.url), Region: region, RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	}
	wc := servertest.NewClient(west.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	bucket := aws.String("source-bucket-name")
	if _, err := wc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: bucket,
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}}); err != nil {
		t.Fatal(err)
	}
	if _, err := wc.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: bucket,
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for i := range 150 {
		size := 4<<10 + i*97
		if i%50 == 0 {
			size = 24 << 20 // a few objects of several chunks
		}
		data := make([]byte, size)
		_, _ = rand.Read(data)
		k := fmt.Sprintf("data/%03d", i)
		if _, err := wc.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String(k), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
		want[k] = data
	}

	bc := backupClient(west, "us-west-2")
	point := backupSource(t, ctx, bc)

	// us-east-1 goes down; the copy is asked for all the same.
	east.kill(t)
	cj, err := bc.StartCopyJob(ctx, &awsbackup.StartCopyJobInput{RecoveryPointArn: point, SourceBackupVaultName: aws.String("Default"),
		DestinationBackupVaultArn: aws.String("arn:aws:backup:us-east-1:" + servertest.AccountID + ":backup-vault:Default"), IamRoleArn: backupRole})
	if err != nil {
		t.Fatal(err)
	}
	describe := func(c *awsbackup.Client) (state, msg string) {
		d, err := c.DescribeCopyJob(ctx, &awsbackup.DescribeCopyJobInput{CopyJobId: cj.CopyJobId})
		if err != nil {
			t.Fatal(err)
		}
		return string(d.CopyJob.State), aws.ToString(d.CopyJob.StatusMessage)
	}
	waitUntil(t, time.Minute, "the copy to fail its first attempt", func() bool {
		state, msg := describe(bc)
		if state != "RUNNING" && state != "CREATED" {
			t.Fatalf("copy job while us-east-1 is down: %s %s", state, msg)
		}
		return strings.Contains(msg, "us-east-1")
	})
	if _, msg := describe(bc); !strings.Contains(msg, "Retrying") {
		t.Fatalf("copy job's status while the destination is down: %q", msg)
	}

	// The source dies too, and comes back: the job is not forgotten.
	west.kill(t)
	west = startRegion(t, bin, "us-west-2", config, westDir)
	bc = backupClient(west, "us-west-2")
	if state, msg := describe(bc); state != "RUNNING" && state != "CREATED" {
		t.Fatalf("copy job after a restart of the source: %s %s", state, msg)
	}
	east = startRegion(t, bin, "us-east-1", config, eastDir)
	waitUntil(t, 2*time.Minute, "the copy to complete", func() bool {
		state, msg := describe(bc)
		if state == "FAILED" {
			t.Fatalf("copy failed: %s", msg)
		}
		return state == "COMPLETED"
	})

	// The copy restores byte-identical in us-east-1.
	ebc := backupClient(east, "us-east-1")
	pts, err := ebc.ListRecoveryPointsByBackupVault(ctx, &awsbackup.ListRecoveryPointsByBackupVaultInput{BackupVaultName: aws.String("Default")})
	if err != nil || len(pts.RecoveryPoints) != 1 {
		t.Fatalf("us-east-1 Default vault: %v, %v", pts, err)
	}
	rj, err := ebc.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: pts.RecoveryPoints[0].RecoveryPointArn, IamRoleArn: backupRole,
		Metadata: map[string]string{"DestinationBucketName": "restored-copy", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 2*time.Minute, "the restore", func() bool {
		d, err := ebc.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: rj.RestoreJobId})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == "FAILED" || d.Status == "ABORTED" {
			t.Fatalf("restore: %s %s", d.Status, aws.ToString(d.StatusMessage))
		}
		return d.Status == "COMPLETED"
	})
	ec := servertest.NewClient(east.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	for k, data := range want {
		out, err := ec.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("restored-copy"), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		got, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s restored from the copy differs (%d bytes, want %d): %v", k, len(got), len(data), err)
		}
	}

	// The destination vault is whole.
	east.stop(t)
	west.stop(t)
	verifyVault(t, filepath.Join(eastDir, "vaults", servertest.AccountID, "Default"), pts.RecoveryPoints, "")
}

// backupRole is the role the tests' backup and copy jobs name.
var backupRole = aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")

// backupSource backs source-bucket-name up into the Default vault of bc's
// region and returns the recovery point.
func backupSource(t *testing.T, ctx context.Context, bc *awsbackup.Client) *string {
	t.Helper()
	job, err := bc.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String("arn:aws:s3:::source-bucket-name"), IamRoleArn: backupRole})
	if err != nil {
		t.Fatal(err)
	}
	var point *string
	waitUntil(t, 2*time.Minute, "the backup", func() bool {
		d, err := bc.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: job.BackupJobId})
		if err != nil {
			t.Fatal(err)
		}
		if d.State == "FAILED" || d.State == "ABORTED" {
			t.Fatalf("backup: %s %s", d.State, aws.ToString(d.StatusMessage))
		}
		point = d.RecoveryPointArn
		return d.State == "COMPLETED"
	})
	return point
}

// waitUntil polls cond until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", limit, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
