package backup_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// A running job stopped with StopBackupJob ends ABORTED and keeps no
// recovery point; an ended job cannot be stopped.
func TestStopBackupJob(t *testing.T) {
	ctx := context.Background()
	r := newTestRegion(t, nil)
	st, svc := r.st, r.svc
	const acct = "111122223333"
	if err := st.CreateBucket(ctx, "big", acct, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	// Incompressible data enough for the job to be still running when
	// it is stopped.
	for i := range 200 {
		data := make([]byte, 1<<20)
		_, _ = rand.Read(data)
		if _, err := st.PutObject(ctx, &objectstore.PutInput{Bucket: "big", Key: fmt.Sprintf("o%03d", i), Owner: acct, Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}
	j, err := svc.StartBackupJob(ctx, acct, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::big", IAMRoleARN: "arn:aws:iam::" + acct + ":role/backup"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		d, err := svc.DescribeBackupJob(ctx, acct, j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if d.State == backup.JobRunning {
			break
		}
		if d.State != backup.JobCreated {
			t.Fatalf("job %s before it could be stopped: the test proves nothing", d.State)
		}
		time.Sleep(time.Millisecond)
	}
	if err := svc.StopBackupJob(ctx, acct, j.JobID); err != nil {
		t.Fatal(err)
	}
	var d *backup.BackupJob
	deadline := time.Now().Add(20 * time.Second)
	for {
		if d, err = svc.DescribeBackupJob(ctx, acct, j.JobID); err != nil {
			t.Fatal(err)
		}
		if d.State != backup.JobRunning && d.State != backup.JobCreated || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if d.State != backup.JobAborted || d.StatusMessage == "" || d.RecoveryPointARN != "" {
		t.Fatalf("stopped job: %s %q point %q, want ABORTED with a reason and no recovery point", d.State, d.StatusMessage, d.RecoveryPointARN)
	}
	points, err := svc.ListRecoveryPoints(ctx, acct, "Default", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(points) != 0 {
		t.Fatalf("recovery points after a stopped job: %d", len(points))
	}
	var be *backup.Error
	if err := svc.StopBackupJob(ctx, acct, j.JobID); !errors.As(err, &be) || be.Kind != backup.ErrInvalidRequest {
		t.Fatalf("stopping an ended job: %v", err)
	}
}
