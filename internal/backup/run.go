package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault"
)

// BackupRun is one backup job as its provider sees it: the resource, the
// instant the point shows it at, and the point being written. Its Put
// methods count the job's progress and save it now and then; they may not
// be called concurrently (the vault's writer takes one item at a time).
type BackupRun struct {
	// Resource is the resource backed up, as Describe returned it when the
	// job started.
	Resource *Resource
	// At is the instant the point shows the resource at: the end of the
	// millisecond the job started in.
	At time.Time
	// Continuous is set when the point is a base of a continuous point,
	// whose stream (ContinuousProvider.Stream) is running already.
	Continuous bool

	s        *Service
	j        *BackupJob
	w        *vault.Writer
	prev     *previousPoint
	ctx      context.Context
	lastSave time.Time
}

// Expect records what the resource holds at the run's instant, counted
// before the copy starts: the totals of the job's PercentDone.
func (r *BackupRun) Expect(ctx context.Context, items, bytes int64) error {
	r.j.ExpectedObjects, r.j.ExpectedBytes = items, bytes
	return r.s.saveJob(ctx, r.j)
}

// Previous returns what the newest usable point of the same resource in
// the vault holds under key, for an incremental backup. Its Metadata,
// Tags and Checksums are not kept: a provider compares what identifies
// the data (a version ID and ETag, a size and modification time).
//
// Asked in key order, it reads the previous point alongside, holding one
// of its entries in memory; asked out of order, it loads the point whole.
// A point that cannot be read answers nothing: the item is then copied
// in full, which costs time, never correctness.
func (r *BackupRun) Previous(key string) (vault.Entry, vault.ObjectRef, bool) {
	p, ok, err := r.prev.lookup(r.ctx, key)
	if err != nil {
		return vault.Entry{}, vault.ObjectRef{}, false
	}
	return p.e, p.ref, ok
}

// Put stores one item, its data streamed from body, once the disk has room
// for e.Size bytes.
func (r *BackupRun) Put(ctx context.Context, e vault.Entry, body io.Reader) error {
	// Deduplication and compression make the vault take less than the
	// item's size, never more (but for a little framing): asking for its
	// size is asking for the most it can take.
	release, err := r.s.space.Admit(e.Size)
	if err != nil {
		return err
	}
	defer release()
	if err := r.w.Put(ctx, e, body); err != nil {
		return err
	}
	r.j.BytesTransferred += e.Size
	return r.count(ctx, e)
}

// PutUnchanged adds an item whose data a previous point of the vault holds
// as ref, without reading or writing it.
func (r *BackupRun) PutUnchanged(ctx context.Context, e vault.Entry, ref vault.ObjectRef) error {
	if err := r.w.PutUnchanged(ctx, e, ref); err != nil {
		return err
	}
	return r.count(ctx, e)
}

func (r *BackupRun) count(ctx context.Context, e vault.Entry) error {
	r.j.Objects++
	r.j.BackupSizeInBytes += e.Size
	if time.Since(r.lastSave) >= progressEvery {
		r.lastSave = time.Now()
		return r.s.saveJob(ctx, r.j)
	}
	return nil
}

// previous opens the latest usable recovery point of the same resource
// in the vault, for an incremental backup; nil when there is none.
func (s *Service) previous(ctx context.Context, v *vault.Vault, j *BackupJob) (*previousPoint, error) {
	ps, err := s.ListRecoveryPoints(ctx, j.AccountID, j.VaultName, j.ResourceARN)
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, p := range ps {
		if p.Status == PointCompleted || p.Status == PointPartial {
			ids = append(ids, p.PointID)
		}
	}
	return openPrevious(ctx, v, ids)
}

// backupResource has the job's provider write the resource as it was at
// instant at into a new point of the job's vault, and records the point.
func (s *Service) backupResource(ctx context.Context, p Provider, j *BackupJob, pointID string, at time.Time) (*RecoveryPoint, error) {
	// The job's times are kept to the millisecond; a provider's items may
	// carry nanoseconds. The point is the resource at the end of at's
	// millisecond, so that a write acknowledged just before the job
	// started, in the same millisecond, is in it.
	if j.Continuous {
		// A base meets its log, whose instants are the source's own: the
		// wall clock's, not the catalog's (which tests move).
		at = time.Now().UTC()
	}
	at = at.Truncate(time.Millisecond).Add(time.Millisecond - time.Nanosecond)
	// Checked again as the job runs: the resource may have been deleted,
	// or deleted and made again by another account, since it was asked for.
	res, err := p.Describe(ctx, j.AccountID, j.ResourceARN)
	if err != nil {
		return nil, err
	}
	defer s.jobRunning(kindBackup)()
	// Refused before the vault is touched when the disk is low already.
	release, err := s.space.Admit(0)
	if err != nil {
		return nil, err
	}
	release()
	v, err := s.vault(ctx, j.AccountID, j.VaultName)
	if err != nil {
		return nil, fmt.Errorf("open vault %s: %w", j.VaultName, err)
	}
	prev, err := s.previous(ctx, v, j)
	if err != nil {
		return nil, err
	}
	defer prev.close()
	contID := ""
	if j.Continuous {
		// A base is a piece of the continuous point pointID names.
		contID, pointID = pointID, strings.TrimPrefix(pointID, ContinuousPrefix)+".base-"+strings.ToLower(j.JobID)
	}
	w, err := v.Begin(ctx, pointID, map[string]string{"resource": j.ResourceARN})
	if err != nil {
		return nil, err
	}
	committed := false
	defer func() {
		if !committed {
			_ = w.Abort(context.WithoutCancel(ctx))
		}
	}()
	run := &BackupRun{Resource: res, At: at, Continuous: j.Continuous, s: s, j: j, w: w, prev: prev, ctx: ctx, lastSave: time.Now()}
	result, err := p.Backup(ctx, run)
	if err != nil {
		return nil, err
	}
	pt, err := w.Commit(ctx)
	if err != nil {
		return nil, err
	}
	committed = true
	if j.Continuous {
		return s.addBase(ctx, &RecoveryPoint{AccountID: j.AccountID, VaultName: j.VaultName, PointID: contID, ARN: j.RecoveryPointARN}, j, pt, result, at)
	}
	done := s.cat.clock()
	rp := &RecoveryPoint{
		AccountID: j.AccountID, ARN: j.RecoveryPointARN, VaultName: j.VaultName, VaultARN: j.VaultARN,
		ResourceARN: j.ResourceARN, ResourceType: j.ResourceType, IAMRoleARN: j.IAMRoleARN, BackupJobID: j.JobID,
		CreationDate: j.CreationDate, CompletionDate: &done, Status: PointCompleted,
		BackupSizeInBytes: pt.Bytes, BytesNew: pt.BytesNew, Objects: pt.Entries,
		Lifecycle: j.Lifecycle, CalculatedLifecycle: calculate(j.Lifecycle, j.CreationDate),
		Origin: "on-demand", CreatedBy: j.CreatedBy, StorageClass: StorageWarm, PointID: pointID,
	}
	if j.CreatedBy != nil {
		rp.Origin = "plan"
	}
	if vv, err := s.cat.DescribeVault(ctx, j.AccountID, j.VaultName); err == nil {
		rp.EncryptionKeyARN = vv.EncryptionKeyARN
	}
	rp.ResourceMetadata = result.Metadata
	if result.Partial != "" {
		rp.Status, rp.StatusMessage = PointPartial, result.Partial
	}
	if err := s.recordPoint(ctx, rp); err != nil {
		return nil, err
	}
	if len(j.RecoveryPointTags) > 0 {
		// The plan rule's tags; the point is there with or without them.
		if err := s.cat.TagResource(ctx, j.AccountID, rp.ARN, j.RecoveryPointTags); err != nil {
			s.log.Warn("tag recovery point", "point", rp.ARN, "err", err)
		}
	}
	return rp, nil
}

// RestoreRun is one restore job as its provider sees it: the point, the
// restore's metadata, and the point's items to read. Its methods may be
// called from several goroutines at once.
type RestoreRun struct {
	Account  string
	Point    *RecoveryPoint
	Metadata map[string]string
	// RestoreTime is the instant a continuous point is restored to; zero
	// for a snapshot point.
	RestoreTime time.Time

	pieces []*RestorePiece

	s        *Service
	v        *vault.Vault
	mu       sync.Mutex // guards j's counters and lastSave
	j        *RestoreJob
	lastSave time.Time
}

// Entries calls fn for every item of the point, in the order they were
// put, streaming the entry list; an error from fn stops the walk and is
// returned.
func (r *RestoreRun) Entries(ctx context.Context, fn func(vault.Entry, vault.ObjectRef) error) error {
	return r.v.Entries(ctx, r.Point.PointID, fn)
}

// Open returns a reader of an item's data whose read that reaches the end
// fails, with vault.ErrCorrupt, unless the data has the size and SHA-256
// the vault recorded: a provider that writes only what reads to the end
// never restores damaged data.
func (r *RestoreRun) Open(ctx context.Context, e vault.Entry, ref vault.ObjectRef) (io.ReadCloser, error) {
	rd, err := r.v.Open(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("restore %q: %w", e.Key, err)
	}
	return &verifyReader{r: rd, c: rd, h: sha256.New(), want: ref.SHA256, size: ref.Size, key: e.Key}, nil
}

// Restored counts an item written to the target; Skipped one left alone
// (the target has it already).
func (r *RestoreRun) Restored(ctx context.Context, e vault.Entry) error {
	return r.count(ctx, func() { r.j.ObjectsRestored++; r.j.BytesRestored += e.Size })
}

// Skipped counts an item the restore left alone.
func (r *RestoreRun) Skipped(ctx context.Context, e vault.Entry) error {
	return r.count(ctx, func() { r.j.ObjectsSkipped++ })
}

func (r *RestoreRun) count(ctx context.Context, add func()) error {
	r.mu.Lock()
	add()
	if time.Since(r.lastSave) < progressEvery {
		r.mu.Unlock()
		return nil
	}
	r.lastSave = time.Now()
	snapshot := *r.j
	r.mu.Unlock()
	return r.s.saveRestore(ctx, &snapshot)
}

// restorePoint has the point's provider restore it as the job's metadata
// says.
func (s *Service) restorePoint(ctx context.Context, p Provider, j *RestoreJob, rp *RecoveryPoint, md map[string]string) error {
	v, err := s.pointVault(ctx, rp)
	if err != nil {
		return fmt.Errorf("open vault %s: %w", rp.VaultName, err)
	}
	if j.RestoreTestingPlanARN != "" {
		stored, err := restoreTestVault(ctx, v)
		if err != nil {
			return err
		}
		defer stored.Close(context.WithoutCancel(ctx)) //nolint:errcheck // read-only
		v = stored
	}
	run := &RestoreRun{Account: j.AccountID, Point: rp, Metadata: md, s: s, v: v, j: j, lastSave: time.Now()}
	if rp.IsContinuous() {
		t, _, err := s.restoreTime(ctx, rp, md)
		if err != nil {
			return err
		}
		pieces, st, err := s.pieces(ctx, rp)
		if err != nil {
			return err
		}
		sortPieces(pieces)
		chosen, err := piecesFor(pieces, st, t)
		if err != nil {
			return errJob("Cannot restore %s to %s: %v.", rp.ARN, t.Format(time.RFC3339Nano), err)
		}
		run.RestoreTime = t
		for _, p := range chosen {
			run.pieces = append(run.pieces, &RestorePiece{Piece: *p, run: run})
		}
	}
	defer s.jobRunning(kindRestore)()
	began := time.Now()
	err = p.Restore(ctx, run)
	run.mu.Lock() // the provider's goroutines are done; this orders their counts before the caller's read
	run.mu.Unlock()
	if err == nil && j.RestoreTestingPlanARN != "" {
		s.validateRestoreTest(ctx, p, run, time.Since(began))
	}
	return err
}

// verifyReader fails the read that reaches the end of data whose size or
// SHA-256 is not what the vault recorded, so that the target never commits
// it.
type verifyReader struct {
	r    io.Reader
	c    io.Closer
	h    hash.Hash
	n    int64
	want string
	size int64
	key  string
}

func (r *verifyReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	if errors.Is(err, io.EOF) {
		if r.n != r.size {
			return n, fmt.Errorf("object %q: read %d bytes from the vault, expected %d: %w", r.key, r.n, r.size, vault.ErrCorrupt)
		}
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.want {
			return n, fmt.Errorf("object %q: SHA-256 %s, the vault recorded %s: %w", r.key, got, r.want, vault.ErrCorrupt)
		}
	}
	return n, err
}

func (r *verifyReader) Close() error { return r.c.Close() }
