package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// TestBackupIsPointInTime backs a bucket up as of an instant T that lies
// before later overwrites, deletes and new keys: the restore shows the
// bucket as it was at T.
func TestBackupIsPointInTime(t *testing.T) {
	ctx := context.Background()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }
	tick := func() { clock.Add(int64(time.Second)) }
	r := newTestRegion(t, now)
	st, svc := r.st, r.svc
	const acct = "111122223333"
	if err := st.CreateBucket(ctx, "bkt", acct, "us-east-1"); err != nil {
		t.Fatal(err)
	}
	if err := st.SetVersioning(ctx, "bkt", objectstore.VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	put := func(k, data string) {
		tick()
		if _, err := st.PutObject(ctx, &objectstore.PutInput{Bucket: "bkt", Key: k, Owner: acct, Body: bytes.NewReader([]byte(data)), Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}
	del := func(k string) {
		tick()
		if _, err := st.DeleteObject(ctx, "bkt", k, ""); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{}
	for i := range 30 {
		k := fmt.Sprintf("k%02d", i)
		put(k, "v1 of "+k)
		want[k] = "v1 of " + k
	}
	del("k00")
	delete(want, "k00")
	tick()
	at := clock.Load() // T
	for i := 1; i < 6; i++ {
		put(fmt.Sprintf("k%02d", i), "after T")
	}
	for i := 6; i < 11; i++ {
		del(fmt.Sprintf("k%02d", i))
	}
	put("k00", "back after T")
	put("new", "after T")

	// The job starts at T, as if everything after it happened while it ran.
	end := clock.Load()
	clock.Store(at)
	j, err := svc.StartBackupJob(ctx, acct, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::bkt", IAMRoleARN: "arn:aws:iam::" + acct + ":role/r"})
	if err != nil {
		t.Fatal(err)
	}
	for {
		j, err = svc.DescribeBackupJob(ctx, acct, j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if j.State == backup.JobCompleted || j.State == backup.JobFailed {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	clock.Store(end)
	if j.State != backup.JobCompleted || j.Objects != int64(len(want)) {
		t.Fatalf("job: %+v", j)
	}
	rj, err := svc.StartRestoreJob(ctx, acct, backup.StartRestoreJobInput{RecoveryPointARN: j.RecoveryPointARN, Metadata: map[string]string{"DestinationBucketName": "rst", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	for {
		rj, err = svc.DescribeRestoreJob(ctx, acct, rj.JobID)
		if err != nil {
			t.Fatal(err)
		}
		if rj.Status == backup.RestoreCompleted || rj.Status == backup.RestoreFailed {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rj.Status != backup.RestoreCompleted {
		t.Fatalf("restore: %+v", rj)
	}
	got := map[string]string{}
	if _, _, err := st.WalkVersions(ctx, "rst", objectstore.VersionCursor{}, 1000, func(v *objectstore.Version) error {
		if !v.IsLatest || v.DeleteMarker {
			return nil
		}
		_, body, err := st.GetObject(ctx, "rst", v.Key, v.VersionID)
		if err != nil {
			return err
		}
		defer body.Close()
		b, err := io.ReadAll(body)
		got[v.Key] = string(b)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restored %v\nwant %v", got, want)
	}
}
