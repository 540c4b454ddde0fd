//go:build linux

package efs_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestDirectoryCopyLockCold: an EFS point is like any other to what the
// job service does with points. Copied to the other region, it restores
// there byte for byte; in a locked vault it cannot be deleted before its
// retention ends; its lifecycle moves it to cold storage, from where it
// restores, and deletes it on its day.
func TestDirectoryCopyLockCold(t *testing.T) {
	regions := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	e := &env{t: t, r: west, c: sdk(west, servertest.AccessKey, servertest.SecretKey)}
	ec := sdk(east, servertest.AccessKey, servertest.SecretKey)
	base := t.TempDir()
	src := filepath.Join(base, "docs")
	if err := os.MkdirAll(filepath.Join(src, "sub/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	randomFile(t, filepath.Join(src, "sub/data.bin"), 3<<20, 7, 0o640)
	if err := os.Symlink("sub/data.bin", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, src)
	reg := e.register("docs", src, nil)
	_, rp := e.completed(reg.ARN, "Default", nil)

	// The copy in us-east-1, restored there.
	cj, err := e.c.StartCopyJob(ctx, &awsbackup.StartCopyJobInput{RecoveryPointArn: aws.String(rp.ARN), SourceBackupVaultName: aws.String("Default"),
		DestinationBackupVaultArn: aws.String("arn:aws:backup:us-east-1:" + servertest.AccountID + ":backup-vault:Default"), IamRoleArn: aws.String(role)})
	if err != nil {
		t.Fatal(err)
	}
	var copied *types.CopyJob
	waitUntil(t, "the copy job", func() bool {
		d, err := e.c.DescribeCopyJob(ctx, &awsbackup.DescribeCopyJobInput{CopyJobId: cj.CopyJobId})
		if err != nil {
			t.Fatal(err)
		}
		copied = d.CopyJob
		return copied.State == types.CopyJobStateCompleted || copied.State == types.CopyJobStateFailed
	})
	if copied.State != types.CopyJobStateCompleted || aws.ToString(copied.ResourceType) != "EFS" {
		t.Fatalf("copy job: %s %s, type %s", copied.State, aws.ToString(copied.StatusMessage), aws.ToString(copied.ResourceType))
	}
	md, err := ec.GetRecoveryPointRestoreMetadata(ctx, &awsbackup.GetRecoveryPointRestoreMetadataInput{BackupVaultName: aws.String("Default"),
		RecoveryPointArn: copied.DestinationRecoveryPointArn})
	if err != nil || md.RestoreMetadata["Path"] != src {
		t.Fatalf("restore metadata of the copy: %v %v", md, err)
	}
	fromCopy := filepath.Join(base, "from-copy")
	rj := restored(t, ec, aws.ToString(copied.DestinationRecoveryPointArn), map[string]string{"TargetDirectory": fromCopy})
	if arn := aws.ToString(rj.CreatedResourceArn); arn[:len("arn:aws:elasticfilesystem:us-east-1:")] != "arn:aws:elasticfilesystem:us-east-1:" {
		t.Fatalf("created resource of the restore in us-east-1: %s", arn)
	}
	sameTrees(t, want, snapshot(t, fromCopy))

	// A locked vault, a point with a lifecycle.
	if _, err := e.c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String("ledger")}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.c.PutBackupVaultLockConfiguration(ctx, &awsbackup.PutBackupVaultLockConfigurationInput{BackupVaultName: aws.String("ledger"),
		MinRetentionDays: aws.Int64(7), MaxRetentionDays: aws.Int64(365)}); err != nil {
		t.Fatal(err)
	}
	_, lp := e.completed(reg.ARN, "ledger", &types.Lifecycle{MoveToColdStorageAfterDays: aws.Int64(1), DeleteAfterDays: aws.Int64(91)})
	_, err = e.c.DeleteRecoveryPoint(ctx, &awsbackup.DeleteRecoveryPointInput{BackupVaultName: aws.String("ledger"), RecoveryPointArn: aws.String(lp.ARN)})
	wantError(t, err, "InvalidRequestException", "vault lock of backup vault ledger")

	if n, err := west.Jobs.MovePoints(ctx, lp.CreationDate.Add(25*time.Hour)); err != nil || n != 1 {
		t.Fatalf("moved to cold storage: %d %v", n, err)
	}
	cold, err := west.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "ledger", lp.ARN)
	if err != nil || cold.StorageClass != backup.StorageCold {
		t.Fatalf("point after its move: %+v %v", cold, err)
	}
	fromCold := filepath.Join(base, "from-cold")
	restored(t, e.c, lp.ARN, map[string]string{"TargetDirectory": fromCold})
	sameTrees(t, want, snapshot(t, fromCold))

	if n, err := west.Jobs.ExpirePoints(ctx, lp.CalculatedLifecycle.DeleteAt.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("expired: %d %v", n, err)
	}
	_, err = e.c.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: aws.String("ledger"), RecoveryPointArn: aws.String(lp.ARN)})
	servertest.WantCode(t, err, "ResourceNotFoundException", 400)
}
