package backup_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// flakyRemote carries copies to another region's service in this process,
// failing as a region that is down would: BeginCopy fails while down is
// set, and the nth PutEntries of a transfer fails once.
type flakyRemote struct {
	to       *backup.Service
	down     atomic.Bool
	begins   atomic.Int64
	cutAfter atomic.Int64 // fail the PutEntries call with this number once; 0 never
}

func (f *flakyRemote) BeginCopy(ctx context.Context, region string, in backup.CopyIn) (vault.Target, *backup.RecoveryPoint, error) {
	f.begins.Add(1)
	if f.down.Load() {
		return nil, nil, errors.New("dial tcp 127.0.0.1:1: connect: connection refused")
	}
	t, done, err := f.to.BeginCopyIn(ctx, in)
	if t == nil {
		return t, done, err
	}
	return &cutTarget{Target: t, f: f}, nil, nil
}

type cutTarget struct {
	vault.Target
	f     *flakyRemote
	calls int64
}

func (c *cutTarget) PutEntries(ctx context.Context, es []vault.TransferEntry) error {
	c.calls++
	if n := c.f.cutAfter.Load(); n != 0 && c.calls == n && c.f.cutAfter.CompareAndSwap(n, 0) {
		return errors.New("connection reset by peer")
	}
	return c.Target.PutEntries(ctx, es)
}

const copyAcct = "111122223333"

func fillCopyBucket(t *testing.T, st *objectstore.Store, bucket string, n int) map[string]string {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateBucket(ctx, bucket, copyAcct, st.Region()); err != nil {
		t.Fatal(err)
	}
	if err := st.SetVersioning(ctx, bucket, objectstore.VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	rng := rand.NewChaCha8([32]byte{byte(n)})
	for i := range n {
		k := fmt.Sprintf("obj/%04d", i)
		b := make([]byte, 2<<10+i*37)
		_, _ = rng.Read(b)
		data := string(b)
		if _, err := st.PutObject(ctx, &objectstore.PutInput{Bucket: bucket, Key: k, Owner: copyAcct, Body: strings.NewReader(data), Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		want[k] = data
	}
	return want
}

func readBucket(t *testing.T, st *objectstore.Store, bucket string) map[string]string {
	t.Helper()
	ctx := context.Background()
	got := map[string]string{}
	if _, _, err := st.WalkVersions(ctx, bucket, objectstore.VersionCursor{}, 100000, func(v *objectstore.Version) error {
		if !v.IsLatest || v.DeleteMarker {
			return nil
		}
		_, body, err := st.GetObject(ctx, bucket, v.Key, v.VersionID)
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
	return got
}

// poll calls fn until it says done, failing the test after a minute.
func poll(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after a minute", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func backupNow(t *testing.T, svc *backup.Service, bucket string) *backup.BackupJob {
	t.Helper()
	ctx := context.Background()
	j, err := svc.StartBackupJob(ctx, copyAcct, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::" + bucket, IAMRoleARN: "arn:aws:iam::" + copyAcct + ":role/backup"})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "backup job", func() bool {
		j, err = svc.DescribeBackupJob(ctx, copyAcct, j.JobID)
		return err != nil || (j.State != backup.JobCreated && j.State != backup.JobRunning)
	})
	if err != nil || j.State != backup.JobCompleted {
		t.Fatalf("backup job: %+v, %v", j, err)
	}
	return j
}

func waitCopy(t *testing.T, svc *backup.Service, id string) *backup.CopyJob {
	t.Helper()
	var j *backup.CopyJob
	var err error
	poll(t, "copy job "+id, func() bool {
		j, err = svc.DescribeCopyJob(context.Background(), copyAcct, id)
		return err != nil || j.State == backup.CopyCompleted || j.State == backup.CopyFailed
	})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func restoreInto(t *testing.T, svc *backup.Service, pointARN, bucket string) {
	t.Helper()
	ctx := context.Background()
	rj, err := svc.StartRestoreJob(ctx, copyAcct, backup.StartRestoreJobInput{RecoveryPointARN: pointARN, Metadata: map[string]string{"DestinationBucketName": bucket, "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "restore job", func() bool {
		rj, err = svc.DescribeRestoreJob(ctx, copyAcct, rj.JobID)
		return err != nil || rj.Status == backup.RestoreCompleted || rj.Status == backup.RestoreFailed
	})
	if err != nil || rj.Status != backup.RestoreCompleted {
		t.Fatalf("restore: %+v, %v", rj, err)
	}
}

// TestCopyJobs copies a recovery point into another vault of the region
// and into another region whose link fails — down at first, then cut in
// the middle of the transfer — and restores from both copies.
func TestCopyJobs(t *testing.T) {
	ctx := context.Background()
	start := time.Date(2026, 3, 1, 2, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()).UTC() }

	east := newTestRegionWith(t, "us-east-1", now, nil)
	remote := &flakyRemote{to: east.svc}
	west := newTestRegionWith(t, "us-west-2", now, func(c *backup.ServiceConfig) {
		c.Remote, c.RemoteRegions, c.CopyRetryMax = remote, []string{"us-east-1"}, 20*time.Millisecond
	})
	want := fillCopyBucket(t, west.st, "src", 600)
	j := backupNow(t, west.svc, "src")

	// Within the region.
	if _, err := west.cat.CreateVault(ctx, copyAcct, backup.CreateVaultInput{Name: "Other"}); err != nil {
		t.Fatal(err)
	}
	local, err := west.svc.StartCopyJob(ctx, copyAcct, backup.StartCopyJobInput{RecoveryPointARN: j.RecoveryPointARN, SourceVaultName: "Default",
		DestinationVaultARN: west.cat.VaultARN(copyAcct, "Other"), IAMRoleARN: j.IAMRoleARN})
	if err != nil {
		t.Fatal(err)
	}
	if local = waitCopy(t, west.svc, local.CopyJobID); local.State != backup.CopyCompleted {
		t.Fatalf("local copy: %+v", local)
	}
	restoreInto(t, west.svc, local.DestinationRecoveryPointARN, "from-local-copy")
	if got := readBucket(t, west.st, "from-local-copy"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restore of the local copy differs: %d objects, want %d", len(got), len(want))
	}

	// A retried call with the same token is the same job; another request
	// with it is refused.
	tokenIn := backup.StartCopyJobInput{RecoveryPointARN: j.RecoveryPointARN, SourceVaultName: "Default",
		DestinationVaultARN: west.cat.VaultARN(copyAcct, "Other"), IAMRoleARN: j.IAMRoleARN, IdempotencyToken: "tok"}
	first, err := west.svc.StartCopyJob(ctx, copyAcct, tokenIn)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := west.svc.StartCopyJob(ctx, copyAcct, tokenIn); err != nil || again.CopyJobID != first.CopyJobID {
		t.Fatalf("same token: %+v, %v; want job %s", again, err, first.CopyJobID)
	}
	tokenIn.DestinationVaultARN = "arn:aws:backup:us-east-1:" + copyAcct + ":backup-vault:Default"
	if _, err := west.svc.StartCopyJob(ctx, copyAcct, tokenIn); !errors.Is(err, backup.ErrInvalidRequest) {
		t.Fatalf("same token, another destination: %v", err)
	}
	waitCopy(t, west.svc, first.CopyJobID)

	// Into the other region, down at first.
	remote.down.Store(true)
	days := int64(90)
	cj, err := west.svc.StartCopyJob(ctx, copyAcct, backup.StartCopyJobInput{RecoveryPointARN: j.RecoveryPointARN, SourceVaultName: "Default",
		DestinationVaultARN: "arn:aws:backup:us-east-1:" + copyAcct + ":backup-vault:Default", IAMRoleARN: j.IAMRoleARN,
		Lifecycle: &backup.Lifecycle{DeleteAfterDays: &days}})
	if err != nil {
		t.Fatal(err)
	}
	poll(t, "copy attempts while the region is down", func() bool { return remote.begins.Load() >= 3 })
	if d, _ := west.svc.DescribeCopyJob(ctx, copyAcct, cj.CopyJobID); d.State != backup.CopyRunning || !strings.Contains(d.StatusMessage, "connection refused") {
		t.Fatalf("copy job while the destination is down: %s %q", d.State, d.StatusMessage)
	}
	remote.cutAfter.Store(2) // the link drops in the middle of the transfer
	remote.down.Store(false)
	cj = waitCopy(t, west.svc, cj.CopyJobID)
	if cj.State != backup.CopyCompleted || cj.Attempts < 4 {
		t.Fatalf("copy job: %+v", cj)
	}
	ps, err := east.svc.ListRecoveryPoints(ctx, copyAcct, "Default", "")
	if err != nil || len(ps) != 1 {
		t.Fatalf("east points: %v, %v", ps, err)
	}
	cp := ps[0]
	src, _ := west.svc.DescribeRecoveryPoint(ctx, copyAcct, "Default", j.RecoveryPointARN)
	if cp.ARN != cj.DestinationRecoveryPointARN || cp.SourceRecoveryPointARN != j.RecoveryPointARN || cp.Origin != "copy" ||
		cp.CalculatedLifecycle == nil || !cp.CalculatedLifecycle.DeleteAt.Equal(src.CreationDate.AddDate(0, 0, 90)) || cp.Objects != int64(len(want)) {
		t.Fatalf("copy's record: %+v (lifecycle %+v)", cp, cp.CalculatedLifecycle)
	}
	restoreInto(t, east.svc, cp.ARN, "from-remote-copy")
	if got := readBucket(t, east.st, "from-remote-copy"); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("restore of the copy in the other region differs: %d objects, want %d", len(got), len(want))
	}

	// The next point of an unchanged bucket sends nothing.
	clock.Add(int64(24 * time.Hour))
	j2 := backupNow(t, west.svc, "src")
	cj2, err := west.svc.StartCopyJob(ctx, copyAcct, backup.StartCopyJobInput{RecoveryPointARN: j2.RecoveryPointARN, SourceVaultName: "Default",
		DestinationVaultARN: "arn:aws:backup:us-east-1:" + copyAcct + ":backup-vault:Default", IAMRoleARN: j.IAMRoleARN})
	if err != nil {
		t.Fatal(err)
	}
	if cj2 = waitCopy(t, west.svc, cj2.CopyJobID); cj2.State != backup.CopyCompleted || cj2.BytesTransferred != 0 {
		t.Fatalf("copy of an unchanged bucket: %s, sent %d bytes", cj2.State, cj2.BytesTransferred)
	}
	t.Logf("first copy sent %d bytes of %d; second sent %d", cj.BytesTransferred, cj.BackupSizeInBytes, cj2.BytesTransferred)

	// A destination vault that does not exist fails the job at once.
	begins := remote.begins.Load()
	bad, err := west.svc.StartCopyJob(ctx, copyAcct, backup.StartCopyJobInput{RecoveryPointARN: j.RecoveryPointARN, SourceVaultName: "Default",
		DestinationVaultARN: "arn:aws:backup:us-east-1:" + copyAcct + ":backup-vault:Nowhere", IAMRoleARN: j.IAMRoleARN})
	if err != nil {
		t.Fatal(err)
	}
	if bad = waitCopy(t, west.svc, bad.CopyJobID); bad.State != backup.CopyFailed || !strings.Contains(bad.StatusMessage, "Nowhere") || remote.begins.Load() != begins+1 {
		t.Fatalf("copy into a missing vault: %+v", bad)
	}

	// Requests refused outright.
	for name, in := range map[string]backup.StartCopyJobInput{
		"other account":   {DestinationVaultARN: "arn:aws:backup:us-east-1:444455556666:backup-vault:Default"},
		"unknown region":  {DestinationVaultARN: "arn:aws:backup:eu-west-9:" + copyAcct + ":backup-vault:Default"},
		"same vault":      {DestinationVaultARN: west.cat.VaultARN(copyAcct, "Default")},
		"not an ARN":      {DestinationVaultARN: "Default"},
		"unknown point":   {DestinationVaultARN: west.cat.VaultARN(copyAcct, "Other"), RecoveryPointARN: west.cat.RecoveryPointARN(copyAcct, "nope")},
		"no role":         {DestinationVaultARN: west.cat.VaultARN(copyAcct, "Other"), IAMRoleARN: "-"},
		"bad lifecycle":   {DestinationVaultARN: west.cat.VaultARN(copyAcct, "Other"), Lifecycle: &backup.Lifecycle{DeleteAfterDays: new(int64)}},
		"no source vault": {DestinationVaultARN: west.cat.VaultARN(copyAcct, "Other"), SourceVaultName: "-"},
	} {
		if in.RecoveryPointARN == "" {
			in.RecoveryPointARN = j.RecoveryPointARN
		}
		if in.SourceVaultName == "" {
			in.SourceVaultName = "Default"
		} else if in.SourceVaultName == "-" {
			in.SourceVaultName = ""
		}
		if in.IAMRoleARN == "" {
			in.IAMRoleARN = j.IAMRoleARN
		} else if in.IAMRoleARN == "-" {
			in.IAMRoleARN = ""
		}
		var be *backup.Error
		if _, err := west.svc.StartCopyJob(ctx, copyAcct, in); !errors.As(err, &be) {
			t.Errorf("%s: %v, want a caller's error", name, err)
		}
	}
}
