package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	backuptypes "github.com/aws/aws-sdk-go-v2/service/backup/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestBackupCrash kills the server with SIGKILL while a backup job runs.
// After a restart the job is FAILED and no recovery point claims to be
// COMPLETED for it; a new backup then completes, and its restore reads
// back every object.
func TestBackupCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startServe(t, bin, dir)
	ctx := context.Background()
	sc := servertest.NewClient(p.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	if _, err := sc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("data")}); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("data"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
	// Enough incompressible data that the backup is still running when
	// the process is killed.
	const objects = 300
	for i := range objects {
		data := make([]byte, 2<<20)
		_, _ = rand.Read(data)
		if _, err := sc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("data"), Key: aws.String(fmt.Sprintf("o%03d", i)), Body: bytes.NewReader(data)}); err != nil {
			t.Fatal(err)
		}
	}
	bc := func(url string) *awsbackup.Client {
		return awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(url), Region: "us-east-1", RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	}
	start := func(c *awsbackup.Client) string {
		t.Helper()
		out, err := c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
			ResourceArn: aws.String("arn:aws:s3:::data"), IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(out.BackupJobId)
	}
	job := start(bc(p.url))
	// Kill it once the job has run a while, before it finishes (600 MiB
	// of incompressible data take seconds to back up).
	started := time.Now()
	deadline := started.Add(30 * time.Second)
	for {
		d, err := bc(p.url).DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: aws.String(job)})
		if err != nil {
			t.Fatal(err)
		}
		if d.State == "COMPLETED" {
			t.Fatal("the backup completed before the kill: the test proves nothing (more data needed)")
		}
		if d.State == "RUNNING" && time.Since(started) > 700*time.Millisecond || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	p.kill(t)

	p = startServe(t, bin, dir)
	c := bc(p.url)
	d, err := c.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: aws.String(job)})
	if err != nil {
		t.Fatal(err)
	}
	if d.State != "FAILED" || aws.ToString(d.StatusMessage) == "" {
		t.Fatalf("interrupted job: state %s (%q), want FAILED with a reason", d.State, aws.ToString(d.StatusMessage))
	}
	killedPoint := aws.ToString(d.RecoveryPointArn)
	points, err := c.ListRecoveryPointsByBackupVault(ctx, &awsbackup.ListRecoveryPointsByBackupVaultInput{BackupVaultName: aws.String("Default")})
	if err != nil {
		t.Fatal(err)
	}
	for _, rp := range points.RecoveryPoints {
		if aws.ToString(rp.RecoveryPointArn) == aws.ToString(d.RecoveryPointArn) && rp.Status == "COMPLETED" {
			t.Fatalf("recovery point %s of the killed job claims COMPLETED", aws.ToString(rp.RecoveryPointArn))
		}
	}

	// The vault still works: a new backup completes and restores whole.
	job = start(c)
	for {
		d, err = c.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: aws.String(job)})
		if err != nil {
			t.Fatal(err)
		}
		if d.State == "COMPLETED" || d.State == "FAILED" || time.Now().After(deadline.Add(time.Minute)) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if d.State != "COMPLETED" {
		t.Fatalf("backup after the crash: %s %q\n%s", d.State, aws.ToString(d.StatusMessage), p.log)
	}
	r, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: d.RecoveryPointArn,
		IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup"),
		Metadata:   map[string]string{"DestinationBucketName": "restored", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		rd, err := c.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: r.RestoreJobId})
		if err != nil {
			t.Fatal(err)
		}
		if rd.Status == "COMPLETED" {
			break
		}
		if rd.Status == "FAILED" || rd.Status == "ABORTED" || time.Now().After(deadline.Add(2*time.Minute)) {
			t.Fatalf("restore: %s %q", rd.Status, aws.ToString(rd.StatusMessage))
		}
		time.Sleep(20 * time.Millisecond)
	}
	sc = servertest.NewClient(p.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	for i := range objects {
		k := aws.String(fmt.Sprintf("o%03d", i))
		a, err := sc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("data"), Key: k})
		if err != nil {
			t.Fatal(err)
		}
		b, err := sc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("restored"), Key: k})
		if err != nil {
			t.Fatalf("restored %s: %v", *k, err)
		}
		x, _ := io.ReadAll(a.Body)
		y, _ := io.ReadAll(b.Body)
		a.Body.Close()
		b.Body.Close()
		if !bytes.Equal(x, y) {
			t.Fatalf("restored %s differs", *k)
		}
	}

	// The repository the killed job was writing into is whole: with the
	// server stopped, every point the catalog calls COMPLETED reads back
	// against its checksums, and the killed job's point was never
	// committed.
	points, err = c.ListRecoveryPointsByBackupVault(ctx, &awsbackup.ListRecoveryPointsByBackupVaultInput{BackupVaultName: aws.String("Default")})
	if err != nil {
		t.Fatal(err)
	}
	p.stop(t)
	verifyVault(t, filepath.Join(dir, "vaults", servertest.AccountID, "Default"), points.RecoveryPoints, killedPoint)
}

// stop ends a serve process as an operator would, with SIGTERM, so that
// it closes its vault repositories.
func (p *process) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("serve after SIGTERM: %v\n%s", err, p.log)
	}
}

// verifyVault opens a vault repository as the server does (its directory
// and the deployment key) and runs vault.Verify on every point the catalog
// lists as COMPLETED. The repository must hold no point the catalog does
// not list, and not the point of the killed job.
func verifyVault(t *testing.T, dir string, points []backuptypes.RecoveryPointByBackupVault, killedPoint string) {
	t.Helper()
	ctx := context.Background()
	key, err := base64.StdEncoding.DecodeString(deploymentKey)
	if err != nil {
		t.Fatal(err)
	}
	// The cache is kopia's copy of what the server last read; the
	// repository's own blobs are what must be whole.
	if err := os.RemoveAll(filepath.Join(dir, "cache")); err != nil {
		t.Fatal(err)
	}
	v, err := vault.Open(ctx, dir, key)
	if err != nil {
		t.Fatalf("open vault %s after the crash: %v", dir, err)
	}
	defer v.Close(ctx)
	pointID := func(arn string) string { return arn[strings.LastIndex(arn, ":")+1:] }
	listed, verified := map[string]bool{}, 0
	for _, rp := range points {
		arn := aws.ToString(rp.RecoveryPointArn)
		listed[pointID(arn)] = true
		if rp.Status != backuptypes.RecoveryPointStatusCompleted {
			continue
		}
		if err := v.Verify(ctx, pointID(arn)); err != nil {
			t.Errorf("recovery point %s: %v", arn, err)
		}
		verified++
	}
	if verified == 0 {
		t.Fatal("no COMPLETED recovery point to verify; the backup after the restart should have made one")
	}
	committed, err := v.Points(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, pt := range committed {
		if pt.ID == pointID(killedPoint) {
			t.Errorf("the vault committed point %s of the killed job", pt.ID)
		} else if !listed[pt.ID] {
			t.Errorf("the vault holds point %s, which the catalog does not list", pt.ID)
		}
	}
}
