package backup

import (
	"errors"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// These tests sit inside the package: a point in cold storage can only be
// made directly by writing its record.

// lockEnv is a catalog and job service on a clock the test moves, over an
// object store without buckets: a job is refused or fails before it reads
// one.
type lockEnv struct {
	t     *testing.T
	clock atomic.Int64
	cat   *Catalog
	svc   *Service
}

func (e *lockEnv) now() time.Time          { return time.Unix(0, e.clock.Load()).UTC() }
func (e *lockEnv) advance(d time.Duration) { e.clock.Add(int64(d)) }

func newLockEnv(t *testing.T) *lockEnv {
	t.Helper()
	e := &lockEnv{t: t}
	e.clock.Store(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	dir := t.TempDir()
	m, err := bolt.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	blobs, err := blobfs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	st := objectstore.New(objectstore.Config{Region: "us-east-1", Meta: m, Blobs: blobs, Now: e.now, InlineLimit: -1})
	e.cat = NewCatalog(m, "us-east-1", e.now)
	if e.svc, err = NewService(ctx, ServiceConfig{Catalog: e.cat, Providers: mustRegistry(t, NewS3Provider(st)), Dir: filepath.Join(dir, "vaults"), Secret: []byte("secret")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.svc.Close(ctx) })
	if _, err := e.cat.CreateVault(ctx, acct, CreateVaultInput{Name: "locked"}); err != nil {
		t.Fatal(err)
	}
	return e
}

// point records a completed recovery point in the vault "locked", created
// now, with lifecycle l.
func (e *lockEnv) point(l *Lifecycle, class string) *RecoveryPoint {
	e.t.Helper()
	id := newUUID()
	now := e.cat.clock()
	rp := &RecoveryPoint{
		AccountID: acct, ARN: e.cat.RecoveryPointARN(acct, id), VaultName: "locked", VaultARN: e.cat.VaultARN(acct, "locked"),
		ResourceARN: "arn:aws:s3:::bkt", ResourceType: "S3", CreationDate: now, CompletionDate: &now, Status: PointCompleted,
		Lifecycle: l, CalculatedLifecycle: calculate(l, now), Origin: "on-demand", StorageClass: class, PointID: id,
	}
	if err := e.svc.recordPoint(ctx, rp); err != nil {
		e.t.Fatal(err)
	}
	return rp
}

func days(n int64) *int64 { return &n }

func mustRegistry(t *testing.T, ps ...Provider) *Registry {
	t.Helper()
	r, err := NewRegistry(ps...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// wantMsg fails unless err is a catalog *Error of kind whose message
// holds each of parts.
func wantMsg(t *testing.T, err, kind error, parts ...string) {
	t.Helper()
	var be *Error
	if !errors.As(err, &be) || !errors.Is(err, kind) {
		t.Fatalf("got %v, want a %v", err, kind)
	}
	for _, p := range parts {
		if !strings.Contains(be.Message, p) {
			t.Fatalf("message %q does not say %q", be.Message, p)
		}
	}
}

func TestVaultLockValidation(t *testing.T) {
	e := newLockEnv(t)
	for name, in := range map[string]VaultLockInput{
		"min 0":             {MinRetentionDays: days(0)},
		"max 36501":         {MaxRetentionDays: days(36501)},
		"max 0":             {MaxRetentionDays: days(0)},
		"min above max":     {MinRetentionDays: days(30), MaxRetentionDays: days(7)},
		"changeable 2 days": {ChangeableForDays: days(2)},
		"changeable 36501":  {ChangeableForDays: days(36501)},
		"min 36501":         {MinRetentionDays: days(36501)},
	} {
		_, err := e.cat.PutVaultLock(ctx, acct, "locked", in)
		var be *Error
		if !errors.As(err, &be) || be.Kind != ErrInvalidParameter {
			t.Errorf("%s: %v, want ErrInvalidParameter", name, err)
		}
	}
	if _, err := e.cat.PutVaultLock(ctx, acct, "nope", VaultLockInput{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lock of a missing vault: %v", err)
	}
	if v, _ := e.cat.DescribeVault(ctx, acct, "locked"); v.Locked {
		t.Fatal("refused configurations locked the vault")
	}
	wantMsg(t, e.cat.DeleteVaultLock(ctx, acct, "locked"), ErrNotFound, "no vault lock")
}

// A governance-mode lock changes and goes at any time; a compliance-mode
// lock does until its LockDate, and from it on nothing changes it and its
// vault stays.
func TestVaultLockModes(t *testing.T) {
	e := newLockEnv(t)
	v, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(7), MaxRetentionDays: days(30)})
	if err != nil || !v.Locked || v.LockDate != nil || *v.MinRetentionDays != 7 || *v.MaxRetentionDays != 30 {
		t.Fatalf("governance lock: %+v %v", v, err)
	}
	e.advance(400 * 24 * time.Hour)
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(1)}); err != nil {
		t.Fatalf("change a governance lock a year on: %v", err)
	}
	if err := e.cat.DeleteVaultLock(ctx, acct, "locked"); err != nil {
		t.Fatal(err)
	}
	if d, _ := e.cat.DescribeVault(ctx, acct, "locked"); d.Locked || d.MinRetentionDays != nil || d.LockDate != nil {
		t.Fatalf("after delete: %+v", d)
	}

	put := e.now()
	v, err = e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(7), ChangeableForDays: days(3)})
	if err != nil || v.LockDate == nil || !v.LockDate.Equal(put.AddDate(0, 0, 3)) {
		t.Fatalf("compliance lock: %+v %v", v, err)
	}
	// The grace time: the lock still changes (its LockDate with it).
	e.advance(48 * time.Hour)
	if v, err = e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(10), ChangeableForDays: days(3)}); err != nil {
		t.Fatal(err)
	}
	lockDate := *v.LockDate
	e.clock.Store(lockDate.Add(-time.Millisecond).UnixNano())
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(10), ChangeableForDays: days(3)}); err != nil {
		t.Fatalf("a millisecond before the lock date: %v", err)
	}
	v, _ = e.cat.DescribeVault(ctx, acct, "locked")
	e.clock.Store(v.LockDate.UnixNano())
	wantMsg(t, ignore(e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(1)})), ErrInvalidRequest, "compliance mode", "immutable")
	wantMsg(t, e.cat.DeleteVaultLock(ctx, acct, "locked"), ErrInvalidRequest, "immutable")
	wantMsg(t, e.cat.DeleteVault(ctx, acct, "locked"), ErrInvalidRequest, "compliance mode")
	if d, _ := e.cat.DescribeVault(ctx, acct, "locked"); !d.Locked || *d.MinRetentionDays != 10 {
		t.Fatalf("immutable lock changed: %+v", d)
	}

	// An empty vault under a governance lock is deleted as any.
	if _, err := e.cat.CreateVault(ctx, acct, CreateVaultInput{Name: "gov"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.PutVaultLock(ctx, acct, "gov", VaultLockInput{}); err != nil {
		t.Fatal(err)
	}
	if err := e.cat.DeleteVault(ctx, acct, "gov"); err != nil {
		t.Fatalf("delete an empty vault under a governance lock: %v", err)
	}
}

func ignore[T any](_ T, err error) error { return err }

func TestCheckLockRetention(t *testing.T) {
	e := newLockEnv(t)
	created := e.now()
	check := func(l *Lifecycle) error { return e.cat.CheckLockRetention(ctx, acct, "locked", l, created) }
	if err := check(&Lifecycle{DeleteAfterDays: days(1)}); err != nil {
		t.Fatalf("unlocked vault: %v", err)
	}
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(7), MaxRetentionDays: days(30)}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		l     *Lifecycle
		parts []string // nil: allowed
	}{
		{&Lifecycle{DeleteAfterDays: days(6)}, []string{"6 days", "minimum retention of 7 days", "backup vault locked", created.AddDate(0, 0, 6).Format(time.RFC3339)}},
		{&Lifecycle{DeleteAfterDays: days(7)}, nil},
		{&Lifecycle{DeleteAfterDays: days(30)}, nil},
		{&Lifecycle{DeleteAfterDays: days(31)}, []string{"maximum retention of 30 days"}},
		{nil, []string{"indefinitely", "maximum retention of 30 days"}},
		{&Lifecycle{MoveToColdStorageAfterDays: days(1)}, []string{"no DeleteAfterDays"}},
	} {
		err := check(c.l)
		if c.parts == nil {
			if err != nil {
				t.Errorf("%+v: %v", c.l, err)
			}
			continue
		}
		wantMsg(t, err, ErrInvalidRequest, c.parts...)
	}
	// Without a maximum, keeping a point forever is within the lock.
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(7)}); err != nil {
		t.Fatal(err)
	}
	if err := check(nil); err != nil {
		t.Fatalf("indefinite retention under a minimum only: %v", err)
	}
	wantMsg(t, e.cat.CheckLockRetention(ctx, acct, "nope", nil, created), ErrNotFound)
}

// A backup job whose lifecycle the vault lock does not allow ends FAILED,
// saying why, before it reads anything (this service has no object store
// to read), and leaves no recovery point.
func TestBackupJobOutsideLockFails(t *testing.T) {
	e := newLockEnv(t)
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(7)}); err != nil {
		t.Fatal(err)
	}
	j, err := e.svc.StartBackupJob(ctx, acct, StartBackupJobInput{VaultName: "locked", ResourceARN: "arn:aws:s3:::bkt",
		IAMRoleARN: "arn:aws:iam::" + acct + ":role/backup", Lifecycle: &Lifecycle{DeleteAfterDays: days(1)}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); j.State != JobFailed && j.State != JobCompleted && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if j, err = e.svc.DescribeBackupJob(ctx, acct, j.JobID); err != nil {
			t.Fatal(err)
		}
	}
	if j.State != JobFailed || !strings.Contains(j.StatusMessage, "minimum retention of 7 days of the vault lock of backup vault locked") || j.RecoveryPointARN != "" {
		t.Fatalf("job: %s %q point %q", j.State, j.StatusMessage, j.RecoveryPointARN)
	}
	if ps, _ := e.svc.ListRecoveryPoints(ctx, acct, "locked", ""); len(ps) != 0 {
		t.Fatalf("points: %d", len(ps))
	}
}

// In a locked vault no one deletes a point before its DeleteAt, and a
// point without one stays while the lock does; from DeleteAt on a point
// goes, by hand or by the lifecycle.
func TestLockedPointDeletion(t *testing.T) {
	e := newLockEnv(t)
	kept := e.point(&Lifecycle{DeleteAfterDays: days(10)}, StorageWarm)
	forever := e.point(nil, StorageWarm)
	expiring := e.point(&Lifecycle{DeleteAfterDays: days(10)}, StorageWarm)
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{}); err != nil {
		t.Fatal(err)
	}
	deleteAt := *kept.CalculatedLifecycle.DeleteAt
	wantMsg(t, e.svc.DeleteRecoveryPoint(ctx, acct, "locked", kept.ARN), ErrInvalidRequest,
		"vault lock of backup vault locked", deleteAt.Format(time.RFC3339))
	wantMsg(t, e.svc.DeleteRecoveryPoint(ctx, acct, "locked", forever.ARN), ErrInvalidRequest, "no retention end")

	e.clock.Store(deleteAt.Add(-time.Second).UnixNano())
	wantMsg(t, e.svc.DeleteRecoveryPoint(ctx, acct, "locked", kept.ARN), ErrInvalidRequest, "before its retention ends")
	if n, err := e.svc.ExpirePoints(ctx, e.now()); err != nil || n != 0 {
		t.Fatalf("expired before DeleteAt: %d %v", n, err)
	}
	// From DeleteAt on, retention has ended: a point goes by hand as by
	// the lifecycle.
	e.clock.Store(deleteAt.UnixNano())
	if err := e.svc.DeleteRecoveryPoint(ctx, acct, "locked", kept.ARN); err != nil {
		t.Fatalf("delete at DeleteAt: %v", err)
	}
	if n, err := e.svc.ExpirePoints(ctx, e.now()); err != nil || n != 1 {
		t.Fatalf("expired at DeleteAt: %d %v", n, err)
	}
	if _, err := e.svc.DescribeRecoveryPoint(ctx, acct, "locked", expiring.ARN); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expired point: %v", err)
	}

	e.advance(10 * 365 * 24 * time.Hour)
	wantMsg(t, e.svc.DeleteRecoveryPoint(ctx, acct, "locked", forever.ARN), ErrInvalidRequest, "no retention end")
	if err := e.cat.DeleteVaultLock(ctx, acct, "locked"); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.DeleteRecoveryPoint(ctx, acct, "locked", forever.ARN); err != nil {
		t.Fatalf("delete once the governance lock is gone: %v", err)
	}
	if v, _ := e.cat.DescribeVault(ctx, acct, "locked"); v.NumberOfRecoveryPoints != 0 {
		t.Fatalf("points counted: %d", v.NumberOfRecoveryPoints)
	}
}

func TestUpdateRecoveryPointLifecycle(t *testing.T) {
	e := newLockEnv(t)
	update := func(rp *RecoveryPoint, l *Lifecycle) (*RecoveryPoint, error) {
		return e.svc.UpdateRecoveryPointLifecycle(ctx, acct, "locked", rp.ARN, l)
	}
	rp := e.point(&Lifecycle{DeleteAfterDays: days(30)}, StorageWarm)
	created := rp.CreationDate
	e.advance(24 * time.Hour)

	// Unlocked: any valid lifecycle, dated from the point's creation.
	got, err := update(rp, &Lifecycle{DeleteAfterDays: days(5)})
	if err != nil || !got.CalculatedLifecycle.DeleteAt.Equal(created.AddDate(0, 0, 5)) || *got.Lifecycle.DeleteAfterDays != 5 {
		t.Fatalf("shorten, unlocked: %+v %v", got, err)
	}
	wantMsg(t, ignore(update(rp, &Lifecycle{MoveToColdStorageAfterDays: days(10), DeleteAfterDays: days(99)})), ErrInvalidParameter, "90 days")
	got, err = update(rp, &Lifecycle{MoveToColdStorageAfterDays: days(10), DeleteAfterDays: days(100)})
	if err != nil || !got.CalculatedLifecycle.MoveToColdStorageAt.Equal(created.AddDate(0, 0, 10)) {
		t.Fatalf("cold after 10, delete after 100: %+v %v", got, err)
	}
	wantMsg(t, ignore(e.svc.UpdateRecoveryPointLifecycle(ctx, acct, "locked", rp.ARN+"x", nil)), ErrNotFound)
	wantMsg(t, ignore(e.svc.UpdateRecoveryPointLifecycle(ctx, acct, "Default", rp.ARN, nil)), ErrNotFound)

	// In cold storage, MoveToColdStorageAfterDays stays.
	cold := e.point(&Lifecycle{MoveToColdStorageAfterDays: days(1), DeleteAfterDays: days(100)}, StorageCold)
	wantMsg(t, ignore(update(cold, &Lifecycle{MoveToColdStorageAfterDays: days(2), DeleteAfterDays: days(100)})), ErrInvalidRequest, "cold storage")
	wantMsg(t, ignore(update(cold, &Lifecycle{DeleteAfterDays: days(100)})), ErrInvalidRequest, "cold storage")
	if _, err := update(cold, &Lifecycle{MoveToColdStorageAfterDays: days(1), DeleteAfterDays: days(200)}); err != nil {
		t.Fatalf("longer retention of a cold point: %v", err)
	}

	// Locked: within the bounds, never shorter.
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{MinRetentionDays: days(7), MaxRetentionDays: days(365)}); err != nil {
		t.Fatal(err)
	}
	wantMsg(t, ignore(update(rp, &Lifecycle{MoveToColdStorageAfterDays: days(10), DeleteAfterDays: days(99)})), ErrInvalidParameter)
	wantMsg(t, ignore(update(rp, &Lifecycle{DeleteAfterDays: days(50)})), ErrInvalidRequest, "forbids shortening", "vault lock of backup vault locked")
	wantMsg(t, ignore(update(rp, &Lifecycle{DeleteAfterDays: days(366)})), ErrInvalidRequest, "maximum retention of 365 days")
	wantMsg(t, ignore(update(rp, nil)), ErrInvalidRequest, "indefinitely")
	got, err = update(rp, &Lifecycle{DeleteAfterDays: days(300)})
	if err != nil || !got.CalculatedLifecycle.DeleteAt.Equal(created.AddDate(0, 0, 300)) || got.CalculatedLifecycle.MoveToColdStorageAt != nil {
		t.Fatalf("lengthen, locked: %+v %v", got, err)
	}
	if d, _ := e.svc.DescribeRecoveryPoint(ctx, acct, "locked", rp.ARN); !d.CalculatedLifecycle.DeleteAt.Equal(*got.CalculatedLifecycle.DeleteAt) {
		t.Fatalf("stored: %+v", d.CalculatedLifecycle)
	}

	// A point kept forever keeps that: any DeleteAt would shorten it.
	if _, err := e.cat.PutVaultLock(ctx, acct, "locked", VaultLockInput{}); err != nil {
		t.Fatal(err)
	}
	forever := e.point(nil, StorageWarm)
	wantMsg(t, ignore(update(forever, &Lifecycle{DeleteAfterDays: days(36500)})), ErrInvalidRequest, "kept indefinitely")
	if _, err := update(forever, &Lifecycle{}); err != nil {
		t.Fatalf("keep forever: %v", err)
	}
}
