package backup_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestProtectedResources backs up two buckets, one into two vaults, and
// restores one point: the protected resources are the buckets with
// points, each with its newest point, and the restore is its latest.
func TestProtectedResources(t *testing.T) {
	ctx := context.Background()
	r := servertest.Start(t, servertest.Options{})
	svc := r.Jobs
	const acct = servertest.AccountID
	if _, err := r.Backup.CreateVault(ctx, acct, backup.CreateVaultInput{Name: "second"}); err != nil {
		t.Fatal(err)
	}
	fillMetered(t, r.Store, "alpha", 3, 100)
	fillMetered(t, r.Store, "beta", 2, 100)
	fillMetered(t, r.Store, "unprotected", 1, 100)

	if got, err := svc.ListProtectedResources(ctx, acct, ""); err != nil || len(got) != 0 {
		t.Fatalf("before any backup: %v, %v", got, err)
	}
	a1 := meteredBackup(t, svc, "alpha", "Default", nil)
	b1 := meteredBackup(t, svc, "beta", "Default", nil)
	a2 := meteredBackup(t, svc, "alpha", "second", nil)

	all, err := svc.ListProtectedResources(ctx, acct, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ResourceARN != "arn:aws:s3:::alpha" || all[1].ResourceARN != "arn:aws:s3:::beta" {
		t.Fatalf("protected resources: %+v", all)
	}
	if a := all[0]; a.LastRecoveryPointARN != a2.RecoveryPointARN || a.LastBackupVaultName != "second" ||
		a.LastBackupVaultARN != r.Backup.VaultARN(acct, "second") || !a.LastBackupTime.Equal(a2.CreationDate) || a.ResourceType != "S3" {
		t.Fatalf("alpha: %+v, want its point %s in vault second", a, a2.RecoveryPointARN)
	}
	inDefault, err := svc.ListProtectedResources(ctx, acct, "Default")
	if err != nil {
		t.Fatal(err)
	}
	if len(inDefault) != 2 || inDefault[0].LastRecoveryPointARN != a1.RecoveryPointARN || inDefault[1].LastRecoveryPointARN != b1.RecoveryPointARN {
		t.Fatalf("protected in Default: %+v", inDefault)
	}
	if _, err := svc.ListProtectedResources(ctx, acct, "nope"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("unknown vault: %v", err)
	}
	if got, err := svc.ListProtectedResources(ctx, servertest.OtherAccountID, ""); err != nil || len(got) != 0 {
		t.Fatalf("another account sees %v, %v", got, err)
	}

	d, err := svc.DescribeProtectedResource(ctx, acct, "arn:aws:s3:::alpha")
	if err != nil || d.LastRecoveryPointARN != a2.RecoveryPointARN || d.LatestRestore != nil {
		t.Fatalf("describe before a restore: %+v, %v", d, err)
	}
	rj := meteredRestore(t, svc, a1.RecoveryPointARN, "alpha-restored")
	d, err = svc.DescribeProtectedResource(ctx, acct, "arn:aws:s3:::alpha")
	if err != nil {
		t.Fatal(err)
	}
	if lr := d.LatestRestore; lr == nil || !lr.JobCreationDate.Equal(rj.CreationDate) || !lr.RecoveryPointCreationDate.Equal(a1.CreationDate) ||
		lr.ExecutionTime != rj.CompletionDate.Sub(rj.CreationDate) {
		t.Fatalf("latest restore: %+v, want that of job %+v", d.LatestRestore, rj)
	}
	if d, err := svc.DescribeProtectedResource(ctx, acct, "arn:aws:s3:::beta"); err != nil || d.LatestRestore != nil {
		t.Fatalf("beta was never restored: %+v, %v", d, err)
	}
	for _, arn := range []string{"arn:aws:s3:::unprotected", "arn:aws:s3:::missing"} {
		if _, err := svc.DescribeProtectedResource(ctx, acct, arn); !errors.Is(err, backup.ErrNotFound) {
			t.Fatalf("describe %s: %v, want not found", arn, err)
		}
	}
	if _, err := svc.DescribeProtectedResource(ctx, servertest.OtherAccountID, "arn:aws:s3:::alpha"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("another account describes alpha: %v", err)
	}

	// A resource whose only point is deleted is no longer protected.
	if err := svc.DeleteRecoveryPoint(ctx, acct, b1.VaultName, b1.RecoveryPointARN); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.DescribeProtectedResource(ctx, acct, "arn:aws:s3:::beta"); !errors.Is(err, backup.ErrNotFound) {
		t.Fatalf("beta without points: %v", err)
	}
}
