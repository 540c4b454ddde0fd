package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

const roleARN = "arn:aws:iam::" + servertest.AccountID + ":role/service-role/AWSBackupDefaultServiceRole"

func putObj(t *testing.T, st *objectstore.Store, bucket, key string, data []byte) {
	t.Helper()
	_, err := st.PutObject(context.Background(), &objectstore.PutInput{Bucket: bucket, Key: key, Owner: servertest.AccountID,
		Body: bytes.NewReader(data), Size: int64(len(data)), ContentType: "text/plain", Metadata: map[string]string{"n": key}})
	if err != nil {
		t.Fatal(err)
	}
}

// latest returns the bucket's current objects and their data.
func latest(t *testing.T, st *objectstore.Store, bucket string) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	cur := objectstore.VersionCursor{}
	for more := true; more; {
		var err error
		var keys []string
		cur, more, err = st.WalkVersions(ctx, bucket, cur, 1000, func(v *objectstore.Version) error {
			if v.IsLatest && !v.DeleteMarker {
				keys = append(keys, v.Key)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			v, body, err := st.GetObject(ctx, bucket, k, "")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(body)
			body.Close()
			if v.ContentType != "text/plain" || v.Metadata["n"] != k {
				t.Fatalf("%s/%s: content type %q metadata %v", bucket, k, v.ContentType, v.Metadata)
			}
			out[k] = string(b)
		}
	}
	return out
}

func waitBackup(t *testing.T, svc *backup.Service, id string) *backup.BackupJob {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j, err := svc.DescribeBackupJob(context.Background(), servertest.AccountID, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == backup.JobCompleted || j.State == backup.JobFailed {
			return j
		}
	}
	t.Fatalf("backup job %s did not end", id)
	return nil
}

func waitRestore(t *testing.T, svc *backup.Service, id string) *backup.RestoreJob {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j, err := svc.DescribeRestoreJob(context.Background(), servertest.AccountID, id)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == backup.RestoreCompleted || j.Status == backup.RestoreFailed {
			return j
		}
	}
	t.Fatalf("restore job %s did not end", id)
	return nil
}

func sameObjects(t *testing.T, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d objects, want %d", len(got), len(want))
	}
	for k, v := range want {
		if got[k] != v {
			t.Fatalf("object %s: %d bytes %q..., want %d bytes", k, len(got[k]), trunc(got[k]), len(v))
		}
	}
}

func trunc(s string) string { return s[:min(len(s), 16)] }

// TestBackupRestoreBucket backs up a bucket of 100 keys (some overwritten,
// some deleted), backs it up again unchanged, damages it, and restores the
// first point into a new bucket and into the bucket itself.
func TestBackupRestoreBucket(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	st, svc := r.Store, r.Jobs
	if err := st.CreateBucket(ctx, "src", servertest.AccountID, "us-west-2"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetVersioning(ctx, "src", objectstore.VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		putObj(t, st, "src", fmt.Sprintf("k/%03d", i), bytes.Repeat([]byte(fmt.Sprintf("object %d;", i)), 1+i*97))
	}
	for i := range 10 {
		putObj(t, st, "src", fmt.Sprintf("k/%03d", i), []byte(fmt.Sprintf("overwritten %d", i)))
	}
	for i := 10; i < 15; i++ {
		if _, err := st.DeleteObject(ctx, "src", fmt.Sprintf("k/%03d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	want := latest(t, st, "src")
	if len(want) != 95 {
		t.Fatalf("%d objects before the backup", len(want))
	}

	in := backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::src", IAMRoleARN: roleARN,
		IdempotencyToken: "tok-1", Lifecycle: &backup.Lifecycle{DeleteAfterDays: ptr(int64(35))}}
	j1, err := svc.StartBackupJob(ctx, servertest.AccountID, in)
	if err != nil {
		t.Fatal(err)
	}
	again, err := svc.StartBackupJob(ctx, servertest.AccountID, in)
	if err != nil || again.JobID != j1.JobID {
		t.Fatalf("same idempotency token: job %v, %v; want %s", again, err, j1.JobID)
	}
	in.IAMRoleARN += "-other"
	if _, err := svc.StartBackupJob(ctx, servertest.AccountID, in); err == nil {
		t.Fatal("same token, other input: accepted")
	}
	done := waitBackup(t, svc, j1.JobID)
	if done.State != backup.JobCompleted || done.Objects != 95 {
		t.Fatalf("first backup: %+v", done)
	}
	rp1, err := svc.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", j1.RecoveryPointARN)
	if err != nil {
		t.Fatal(err)
	}
	if rp1.Status != backup.PointCompleted || rp1.Origin != "on-demand" || rp1.CalculatedLifecycle == nil || rp1.CalculatedLifecycle.DeleteAt == nil {
		t.Fatalf("recovery point: %+v", rp1)
	}

	// A second backup of the unchanged bucket reads no object.
	j2, err := svc.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::src", IAMRoleARN: roleARN})
	if err != nil {
		t.Fatal(err)
	}
	done2 := waitBackup(t, svc, j2.JobID)
	rp2, err := svc.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", j2.RecoveryPointARN)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first backup: %d objects, %d bytes read, %d bytes logical, %d bytes new in the vault", done.Objects, done.BytesTransferred, rp1.BackupSizeInBytes, rp1.BytesNew)
	t.Logf("second backup (unchanged): %d bytes read, %d bytes new in the vault", done2.BytesTransferred, rp2.BytesNew)
	if done2.BytesTransferred != 0 || rp2.BytesNew > rp1.BytesNew/10 {
		t.Fatalf("unchanged bucket: read %d bytes, stored %d new", done2.BytesTransferred, rp2.BytesNew)
	}
	v, _ := r.Backup.DescribeVault(ctx, servertest.AccountID, "Default")
	if v.NumberOfRecoveryPoints != 2 {
		t.Fatalf("vault counts %d points", v.NumberOfRecoveryPoints)
	}

	// Damage the bucket after the backups.
	for i := 20; i < 25; i++ {
		if _, err := st.DeleteObject(ctx, "src", fmt.Sprintf("k/%03d", i), ""); err != nil {
			t.Fatal(err)
		}
	}
	for i := 30; i < 35; i++ {
		putObj(t, st, "src", fmt.Sprintf("k/%03d", i), []byte("corrupted"))
	}

	rj, err := svc.StartRestoreJob(ctx, servertest.AccountID, backup.StartRestoreJobInput{RecoveryPointARN: rp1.ARN, IAMRoleARN: roleARN,
		Metadata: map[string]string{"DestinationBucketName": "restored", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	if rj := waitRestore(t, svc, rj.JobID); rj.Status != backup.RestoreCompleted || rj.ObjectsRestored != 95 {
		t.Fatalf("restore to a new bucket: %+v", rj)
	}
	sameObjects(t, latest(t, st, "restored"), want)

	rj, err = svc.StartRestoreJob(ctx, servertest.AccountID, backup.StartRestoreJobInput{RecoveryPointARN: rp1.ARN, IAMRoleARN: roleARN})
	if err != nil {
		t.Fatal(err)
	}
	rj = waitRestore(t, svc, rj.JobID)
	if rj.Status != backup.RestoreCompleted || rj.ObjectsRestored != 10 || rj.ObjectsSkipped != 85 {
		t.Fatalf("restore in place: %+v", rj)
	}
	sameObjects(t, latest(t, st, "src"), want)
	// The corrupted versions are still there, below the restored ones.
	n := 0
	if _, _, err := st.WalkVersions(ctx, "src", objectstore.VersionCursor{Key: "k/030"}, 10, func(v *objectstore.Version) error {
		if v.Key == "k/030" {
			n++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("k/030 has %d versions, want 3", n)
	}
}

func ptr[T any](v T) *T { return &v }

// TestBackupMissingBucket: a job on a bucket that does not exist fails
// with a message that says so.
func TestBackupMissingBucket(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	j, err := r.Jobs.StartBackupJob(context.Background(), servertest.AccountID, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::nope", IAMRoleARN: roleARN})
	if err != nil {
		t.Fatal(err)
	}
	j = waitBackup(t, r.Jobs, j.JobID)
	if j.State != backup.JobFailed || !strings.Contains(j.StatusMessage, "Bucket nope does not exist") {
		t.Fatalf("job: %+v", j)
	}
}
