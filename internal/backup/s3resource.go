package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// walkPage is how many versions one read of the bucket's version order
// takes.
const walkPage = 1000

// bucketOfARN returns the bucket an S3 resource ARN names.
func bucketOfARN(arn string) (string, error) {
	b, ok := strings.CutPrefix(arn, "arn:aws:s3:::")
	if !ok || b == "" || strings.Contains(b, "/") {
		return "", errorf(ErrInvalidParameter, "Invalid resource ARN %q: Bulwark backs up S3 buckets (arn:aws:s3:::BUCKET).", arn)
	}
	return b, nil
}

// checkOwnBucket refuses a bucket that exists and belongs to another
// account than the one starting a job on it. A backup reads, and a restore
// writes, the buckets of the job's own account only: AWS Backup protects
// the resources of the account that calls it, and reaches another
// account's only through copies into that account's vaults. The refusal
// comes when the job is asked for, so that no job is created to fail.
//
// Its kind is ErrInvalidParameter, InvalidParameterValueException on the
// wire: of the errors botocore's model declares for StartBackupJob and
// StartRestoreJob, it is the one for a parameter naming something the call
// cannot use, and it is what a resource ARN Bulwark cannot back up already
// gets. The model declares no AccessDeniedException for them, and it would
// suggest a policy could allow the call, which none can.
//
// A bucket that does not exist passes: the job fails when it runs, as it
// does for a bucket deleted after the job started.
func (s *Service) checkOwnBucket(ctx context.Context, account, bucket string) error {
	b, err := s.store.Bucket(ctx, bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look up bucket %q: %w", bucket, err)
	}
	if b.Owner != account {
		return errorf(ErrInvalidParameter, "Bucket %s belongs to another account.", bucket)
	}
	return nil
}

// prevObject is what an earlier point holds of a key.
type prevObject struct {
	versionID, etag string
	ref             vault.ObjectRef
}

// previous loads the entries of the latest usable recovery point of the
// same resource in the vault, for an incremental backup.
func (s *Service) previous(ctx context.Context, v *vault.Vault, j *BackupJob) (map[string]prevObject, error) {
	ps, err := s.ListRecoveryPoints(ctx, j.AccountID, j.VaultName, j.ResourceARN)
	if err != nil {
		return nil, err
	}
	m := map[string]prevObject{}
	for _, p := range ps {
		if p.Status != PointCompleted && p.Status != PointPartial {
			continue
		}
		err := v.Entries(ctx, p.PointID, func(e vault.Entry, ref vault.ObjectRef) error {
			m[e.Key] = prevObject{versionID: e.VersionID, etag: e.ETag, ref: ref}
			return nil
		})
		if errors.Is(err, vault.ErrNotFound) {
			continue // deleted from the vault meanwhile
		}
		return m, err
	}
	return m, nil
}

// backupBucket writes the bucket as it was at instant at into a new point
// of the job's vault and records the point. For every key it takes the
// newest version last modified no later than at; a key whose newest such
// version is a delete marker did not exist then.
func (s *Service) backupBucket(ctx context.Context, j *BackupJob, pointID string, at time.Time) (*RecoveryPoint, error) {
	// The job's times are kept to the millisecond; versions carry
	// nanoseconds. The point is the bucket at the end of at's millisecond,
	// so that a write acknowledged just before the job started, in the
	// same millisecond, is in it.
	at = at.Truncate(time.Millisecond).Add(time.Millisecond - time.Nanosecond)
	bucket, err := bucketOfARN(j.ResourceARN)
	if err != nil {
		return nil, err
	}
	b, err := s.store.Bucket(ctx, bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return nil, errJob("Bucket %s does not exist.", bucket)
	}
	if err != nil {
		return nil, err
	}
	if b.Owner != j.AccountID {
		return nil, errJob("Bucket %s belongs to another account.", bucket)
	}
	defer s.jobRunning(kindBackup)()
	// What the bucket held at the job's instant is PercentDone's total.
	// The store keeps no usage counters, so a first walk counts it: it
	// reads version records only, no object data, which is a small part
	// of the copy's cost (and of an incremental one's, whose unchanged
	// objects are not read either).
	err = s.walkAt(ctx, bucket, at, func(ver *objectstore.Version) error {
		j.ExpectedObjects++
		j.ExpectedBytes += ver.Size
		return nil
	})
	if err != nil {
		return nil, walkError(bucket, err)
	}
	if err := s.saveJob(ctx, j); err != nil {
		return nil, err
	}
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
	lastSave := time.Now()
	var skipped int64
	err = s.walkAt(ctx, bucket, at, func(ver *objectstore.Version) error {
		e := entryOf(ver)
		if p, ok := prev[ver.Key]; ok && p.versionID == ver.VersionID && p.etag == ver.ETag {
			if err := w.PutUnchanged(ctx, e, p.ref); err != nil {
				return err
			}
		} else {
			n, err := s.putObject(ctx, w, bucket, e)
			if errors.Is(err, objectstore.ErrNoSuchVersion) || errors.Is(err, objectstore.ErrNoSuchKey) {
				skipped++ // deleted for good while the job ran
				return nil
			}
			if err != nil {
				return err
			}
			j.BytesTransferred += n
		}
		j.Objects++
		j.BackupSizeInBytes += e.Size
		if time.Since(lastSave) >= progressEvery {
			lastSave = time.Now()
			return s.saveJob(ctx, j)
		}
		return nil
	})
	if err != nil {
		return nil, walkError(bucket, err)
	}
	pt, err := w.Commit(ctx)
	if err != nil {
		return nil, err
	}
	committed = true
	done := s.cat.clock()
	rp := &RecoveryPoint{
		AccountID: j.AccountID, ARN: j.RecoveryPointARN, VaultName: j.VaultName, VaultARN: j.VaultARN,
		ResourceARN: j.ResourceARN, ResourceType: "S3", IAMRoleARN: j.IAMRoleARN, BackupJobID: j.JobID,
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
	if skipped > 0 {
		rp.Status = PointPartial
		rp.StatusMessage = fmt.Sprintf("%d objects were deleted permanently while the backup ran and are not in the recovery point.", skipped)
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

// walkAt calls fn with each key's newest version last modified no later
// than at, in key order, leaving out the keys whose such version is a
// delete marker: the bucket as it was at that instant.
func (s *Service) walkAt(ctx context.Context, bucket string, at time.Time, fn func(*objectstore.Version) error) error {
	var cur string
	resolved := false
	cursor := objectstore.VersionCursor{}
	for more := true; more; {
		var err error
		cursor, more, err = s.store.WalkVersions(ctx, bucket, cursor, walkPage, func(ver *objectstore.Version) error {
			if ver.Key != cur {
				cur, resolved = ver.Key, false
			}
			if resolved || ver.LastModified.After(at) {
				return nil
			}
			resolved = true
			if ver.DeleteMarker {
				return nil
			}
			return fn(ver)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// walkError is what a backup's walk of bucket ends with.
func walkError(bucket string, err error) error {
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return errJob("Bucket %s was deleted during the backup.", bucket)
	}
	return err
}

// PercentDone is how far a job has come, from 0 to 100: the mean of its
// shares of the objects and of the bytes the bucket held at its instant.
// Both shares count objects unchanged since the previous point, which the
// job records without reading. Only a completed job is at 100; a failed
// or stopped one stays where it stopped.
func (j *BackupJob) PercentDone() float64 {
	if j.State == JobCompleted {
		return 100
	}
	if j.ExpectedObjects <= 0 {
		return 0 // not counted yet
	}
	share := min(float64(j.Objects)/float64(j.ExpectedObjects), 1)
	if j.ExpectedBytes > 0 {
		share = (share + min(float64(j.BackupSizeInBytes)/float64(j.ExpectedBytes), 1)) / 2
	}
	return min(100*share, 99.9)
}

func entryOf(ver *objectstore.Version) vault.Entry {
	e := vault.Entry{
		Key: ver.Key, VersionID: ver.VersionID, Size: ver.Size, ETag: ver.ETag, ContentType: ver.ContentType,
		LastModified: ver.LastModified.UnixNano(), Metadata: ver.Metadata, Tags: ver.Tags,
	}
	if ver.ChecksumAlgorithm != "" && ver.Checksum != "" {
		e.Checksums = map[string]string{ver.ChecksumAlgorithm: ver.Checksum}
	}
	return e
}

// putObject copies one version's data into the point and returns the bytes
// read.
func (s *Service) putObject(ctx context.Context, w *vault.Writer, bucket string, e vault.Entry) (int64, error) {
	// Deduplication and compression make the vault take less than the
	// object's size, never more (but for a little framing): asking for
	// its size is asking for the most it can take.
	release, err := s.space.Admit(e.Size)
	if err != nil {
		return 0, err
	}
	defer release()
	_, body, err := s.store.GetObject(ctx, bucket, e.Key, e.VersionID)
	if err != nil {
		return 0, err
	}
	defer body.Close()
	if err := w.Put(ctx, e, body); err != nil {
		return 0, err
	}
	return e.Size, nil
}

// restorePlan is a restore's destination and selection of keys.
type restorePlan struct {
	bucket    string
	newBucket bool
	items     []string // keys, or prefixes ending in "/"; empty means all
}

func (p *restorePlan) selects(k string) bool {
	if len(p.items) == 0 {
		return true
	}
	for _, it := range p.items {
		if k == it || strings.HasSuffix(it, "/") && strings.HasPrefix(k, it) {
			return true
		}
	}
	return false
}

// parseRestoreMetadata reads AWS Backup's S3 restore metadata:
// DestinationBucketName (default the backed-up bucket), NewBucket
// ("true" creates it) and ItemsToRestore (a JSON array of up to five S3
// URIs, s3://BUCKET/KEY, or keys; one ending in "/" is a prefix).
func parseRestoreMetadata(p *RecoveryPoint, md map[string]string) (*restorePlan, error) {
	src, err := bucketOfARN(p.ResourceARN)
	if err != nil {
		return nil, err
	}
	plan := &restorePlan{bucket: src}
	if b := md["DestinationBucketName"]; b != "" {
		plan.bucket = b
	}
	if err := objectstore.ValidateBucketName(plan.bucket); err != nil {
		return nil, errorf(ErrInvalidParameter, "Invalid DestinationBucketName %q.", plan.bucket)
	}
	switch strings.ToLower(md["NewBucket"]) {
	case "", "false":
	case "true":
		plan.newBucket = true
	default:
		return nil, errorf(ErrInvalidParameter, "NewBucket must be true or false, not %q.", md["NewBucket"])
	}
	if s := md["ItemsToRestore"]; s != "" {
		var items []string
		if err := json.Unmarshal([]byte(s), &items); err != nil || len(items) == 0 || len(items) > 5 {
			return nil, errorf(ErrInvalidParameter, "ItemsToRestore must be a JSON array of one to five S3 URIs.")
		}
		for _, it := range items {
			if rest, ok := strings.CutPrefix(it, "s3://"); ok {
				b, k, _ := strings.Cut(rest, "/")
				if b != src || k == "" {
					return nil, errorf(ErrInvalidParameter, "Item %q is not an object of bucket %s.", it, src)
				}
				it = k
			}
			plan.items = append(plan.items, it)
		}
	}
	return plan, nil
}

// restoreBucket writes the point's objects into the plan's bucket, each as
// a new version. An object whose current version already has the backed-up
// data is left alone; so is one in a bucket without versioning, where a
// write would destroy the current object.
func (s *Service) restoreBucket(ctx context.Context, j *RestoreJob, p *RecoveryPoint, plan *restorePlan) error {
	if plan.newBucket {
		err := s.store.CreateBucket(ctx, plan.bucket, j.AccountID, s.store.Region())
		if err != nil {
			return errJob("Bucket %s could not be created: %v.", plan.bucket, err)
		}
		if err := s.store.SetVersioning(ctx, plan.bucket, objectstore.VersioningEnabled); err != nil {
			return err
		}
	}
	b, err := s.store.Bucket(ctx, plan.bucket)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return errJob("Bucket %s does not exist; set NewBucket to true to create it.", plan.bucket)
	}
	if err != nil {
		return err
	}
	if b.Owner != j.AccountID {
		return errJob("Bucket %s belongs to another account.", plan.bucket)
	}
	versioned := b.Versioning == objectstore.VersioningEnabled
	defer s.jobRunning(kindRestore)()
	v, err := s.pointVault(ctx, p)
	if err != nil {
		return fmt.Errorf("open vault %s: %w", p.VaultName, err)
	}
	// Objects are restored restoreWorkers at a time: each write ends with
	// an fsync, which one writer at a time would wait on in turn. A key
	// appears once in a point, so the order between keys does not matter.
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan restoreItem)
	var mu sync.Mutex // guards j's counters
	for range restoreWorkers {
		g.Go(func() error {
			for it := range work {
				restored, err := s.restoreEntry(gctx, v, plan, versioned, j.AccountID, it.e, it.ref)
				if err != nil {
					return err
				}
				mu.Lock()
				if restored {
					j.ObjectsRestored++
					j.BytesRestored += it.e.Size
				} else {
					j.ObjectsSkipped++
				}
				mu.Unlock()
			}
			return nil
		})
	}
	lastSave := time.Now()
	err = v.Entries(gctx, p.PointID, func(e vault.Entry, ref vault.ObjectRef) error {
		if !plan.selects(e.Key) {
			return nil
		}
		select {
		case work <- restoreItem{e, ref}:
		case <-gctx.Done():
			return gctx.Err()
		}
		if time.Since(lastSave) >= progressEvery {
			lastSave = time.Now()
			mu.Lock()
			snapshot := *j
			mu.Unlock()
			return s.saveRestore(ctx, &snapshot)
		}
		return nil
	})
	close(work)
	if werr := g.Wait(); werr != nil {
		return werr // the first failure; Entries then stopped for it
	}
	return err
}

// restoreWorkers is how many objects a restore writes at once.
const restoreWorkers = 8

type restoreItem struct {
	e   vault.Entry
	ref vault.ObjectRef
}

// restoreEntry restores one entry unless the bucket's current version has
// its data already, or the bucket is not versioned and has the key (a write
// would destroy the current object). It reports whether it wrote.
func (s *Service) restoreEntry(ctx context.Context, v *vault.Vault, plan *restorePlan, versioned bool, owner string, e vault.Entry, ref vault.ObjectRef) (bool, error) {
	cur, err := s.store.HeadObject(ctx, plan.bucket, e.Key, "")
	exists := err == nil && !cur.DeleteMarker
	if exists && (!versioned || cur.ETag == e.ETag && cur.Size == e.Size) {
		return false, nil
	}
	if err := s.restoreObject(ctx, v, plan.bucket, owner, e, ref); err != nil {
		return false, err
	}
	return true, nil
}

// restoreObject writes one entry as a new version, checking the vault's
// SHA-256 and size as it reads and the ETag (MD5) as the store writes.
func (s *Service) restoreObject(ctx context.Context, v *vault.Vault, bucket, owner string, e vault.Entry, ref vault.ObjectRef) error {
	rd, err := v.Open(ctx, ref)
	if err != nil {
		return fmt.Errorf("restore %q: %w", e.Key, err)
	}
	defer rd.Close()
	in := &objectstore.PutInput{
		Bucket: bucket, Key: e.Key, Owner: owner, Size: ref.Size,
		Body:        &verifyReader{r: rd, h: sha256.New(), want: ref.SHA256, size: ref.Size, key: e.Key},
		ContentType: e.ContentType, Metadata: e.Metadata, Tags: e.Tags,
	}
	singlePart := !strings.Contains(e.ETag, "-")
	if md5, err := hex.DecodeString(e.ETag); err == nil && len(md5) == 16 {
		in.ExpectedMD5 = md5
	}
	for alg, sum := range e.Checksums {
		a, err := checksum.ParseAlgorithm(alg)
		if err != nil || !singlePart {
			continue
		}
		in.ChecksumAlgorithm = a
		in.ExpectedChecksum = func() (string, bool) { return sum, true }
	}
	if _, err := s.store.PutObject(ctx, in); err != nil {
		return fmt.Errorf("restore %q: %w", e.Key, err)
	}
	return nil
}

// verifyReader fails the read that reaches the end of data whose size or
// SHA-256 is not what the vault recorded, so that the store never commits
// the version.
type verifyReader struct {
	r    io.Reader
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
