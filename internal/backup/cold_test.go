package backup_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
)

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err == nil {
			n += info.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestColdStorage: a recovery point whose lifecycle says so moves to the
// vault's cold tier on its date, leaves the warm tier (whose collection
// reclaims its data), restores from the cold tier, and expires there with
// the tags its plan rule gave it.
func TestColdStorage(t *testing.T) {
	ctx := context.Background()
	start := time.Now().UTC().Add(time.Hour) // after the objects' writes
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	r := newTestRegion(t, now)
	want := fillCopyBucket(t, r.st, "src", 300)

	cold, del := int64(1), int64(91)
	j, err := r.svc.StartBackupJob(ctx, copyAcct, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::src",
		IAMRoleARN: "arn:aws:iam::" + copyAcct + ":role/backup", Lifecycle: &backup.Lifecycle{MoveToColdStorageAfterDays: &cold, DeleteAfterDays: &del},
		RecoveryPointTags: map[string]string{"team": "ledger"}})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "backup", func() bool {
		j, _ = r.svc.DescribeBackupJob(ctx, copyAcct, j.JobID)
		return j.State != backup.JobCreated && j.State != backup.JobRunning
	})
	if j.State != backup.JobCompleted {
		t.Fatalf("backup: %+v", j)
	}
	p, err := r.svc.DescribeRecoveryPoint(ctx, copyAcct, "Default", j.RecoveryPointARN)
	if err != nil || p.StorageClass != backup.StorageWarm || !p.CalculatedLifecycle.MoveToColdStorageAt.Equal(p.CreationDate.AddDate(0, 0, 1)) {
		t.Fatalf("point before its move: %+v, %v", p, err)
	}
	t.Logf("point: %d objects, %d bytes, %d new", p.Objects, p.BackupSizeInBytes, p.BytesNew)
	// The repositories, not kopia's caches beside them.
	warmDir := filepath.Join(r.dir, copyAcct, "Default", "repo")
	coldDir := filepath.Join(r.dir, copyAcct, "Default.cold", "repo")
	warmBefore := dirSize(t, warmDir)

	if tags, err := r.cat.ListTags(ctx, copyAcct, p.ARN); err != nil || tags["team"] != "ledger" {
		t.Fatalf("the rule's recovery point tags: %v, %v", tags, err)
	}
	if n, err := r.svc.MovePoints(ctx, now()); err != nil || n != 0 {
		t.Fatalf("move before the date: %d, %v", n, err)
	}
	clock.Add(int64(25 * time.Hour))
	if n, err := r.svc.MovePoints(ctx, now()); err != nil || n != 1 {
		t.Fatalf("move on the date: %d, %v", n, err)
	}
	if p, _ = r.svc.DescribeRecoveryPoint(ctx, copyAcct, "Default", j.RecoveryPointARN); p.StorageClass != backup.StorageCold {
		t.Fatalf("point after its move: %+v", p)
	}
	if err := r.svc.CollectVaults(ctx); err != nil {
		t.Fatal(err)
	}
	warmAfter, coldSize := dirSize(t, warmDir), dirSize(t, coldDir)
	t.Logf("warm tier %d → %d bytes, cold tier %d bytes", warmBefore, warmAfter, coldSize)
	if warmAfter > warmBefore/2 || coldSize < p.BytesNew/2 {
		t.Fatalf("the data did not move: warm %d → %d bytes, cold %d bytes", warmBefore, warmAfter, coldSize)
	}

	restoreInto(t, r.svc, p.ARN, "from-cold")
	if got := readBucket(t, r.st, "from-cold"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restore from cold storage differs: %d objects, want %d", len(got), len(want))
	}

	clock.Add(int64(91 * 24 * time.Hour))
	if n, err := r.svc.ExpirePoints(ctx, now()); err != nil || n != 1 {
		t.Fatalf("expire: %d, %v", n, err)
	}
	if _, err := r.svc.DescribeRecoveryPoint(ctx, copyAcct, "Default", p.ARN); err == nil {
		t.Fatal("the point is still there after its DeleteAt")
	}
	if _, err := r.cat.ListTags(ctx, copyAcct, p.ARN); err == nil {
		t.Fatal("the expired point's tags are still there")
	}
	if err := r.svc.CollectVaults(ctx); err != nil {
		t.Fatal(err)
	}
	if after := dirSize(t, coldDir); after > coldSize/2 {
		t.Fatalf("cold tier after the point expired: %d bytes, was %d", after, coldSize)
	}
}
