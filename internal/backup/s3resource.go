package backup

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// S3 is the resource type of the store's buckets, as AWS Backup names it.
const S3 = "S3"

// bucketARNPrefix starts the ARN of every bucket.
const bucketARNPrefix = "arn:aws:s3:::"

// walkPage is how many versions one read of the bucket's version order
// takes.
const walkPage = 1000

// restoreWorkers is how many objects a restore writes at once.
const restoreWorkers = 8

// BucketARN is the ARN of a bucket, the resource ARN of its backups.
func BucketARN(bucket string) string { return bucketARNPrefix + bucket }

// S3Provider backs up the buckets of the region's object store. A point is
// a bucket at an instant of its version history: for every key, the
// newest version no later than that instant, with its metadata, tags and
// checksums; a restore writes them back as new versions.
type S3Provider struct {
	store *objectstore.Store
}

// NewS3Provider returns the provider of store's buckets.
func NewS3Provider(store *objectstore.Store) *S3Provider { return &S3Provider{store: store} }

// Type is S3.
func (*S3Provider) Type() string { return S3 }

// Owns reports whether arn names a bucket (arn:aws:s3:::BUCKET; an
// object's ARN, with a key, is not one).
func (*S3Provider) Owns(arn string) bool {
	_, ok := bucketOfARN(arn)
	return ok
}

// Name is the bucket's name.
func (*S3Provider) Name(arn string) string {
	b, _ := bucketOfARN(arn)
	return b
}

func bucketOfARN(arn string) (string, bool) {
	b, ok := strings.CutPrefix(arn, bucketARNPrefix)
	return b, ok && b != "" && !strings.Contains(b, "/")
}

// Describe returns a bucket of account.
//
// A bucket of another account is refused with ErrInvalidParameter,
// InvalidParameterValueException on the wire: of the errors botocore's
// model declares for StartBackupJob and StartRestoreJob, it is the one for
// a parameter naming something the call cannot use, and it is what a
// resource ARN Bulwark cannot back up already gets. The model declares no
// AccessDeniedException for them, and it would suggest a policy could
// allow the call, which none can.
func (p *S3Provider) Describe(ctx context.Context, account, arn string) (*Resource, error) {
	name, _ := bucketOfARN(arn)
	b, err := p.ownBucket(ctx, account, name)
	if err != nil {
		return nil, err
	}
	return &Resource{ARN: arn, Type: S3, Name: b.Name, Account: b.Owner, Tags: b.Tags}, nil
}

// ownBucket returns a bucket of account: ErrNotFound when there is none,
// ErrInvalidParameter when it belongs to another account.
func (p *S3Provider) ownBucket(ctx context.Context, account, name string) (*objectstore.Bucket, error) {
	b, err := p.store.Bucket(ctx, name)
	if errors.Is(err, objectstore.ErrNoSuchBucket) {
		return nil, errorf(ErrNotFound, "Bucket %s does not exist.", name)
	}
	if err != nil {
		return nil, fmt.Errorf("look up bucket %q: %w", name, err)
	}
	if b.Owner != account {
		return nil, errorf(ErrInvalidParameter, "Bucket %s belongs to another account.", name)
	}
	return b, nil
}

// List returns the account's buckets of the region, with their tags.
func (p *S3Provider) List(ctx context.Context, account string) ([]*Resource, error) {
	bs, err := p.store.ListBuckets(ctx, account)
	if err != nil {
		return nil, err
	}
	var out []*Resource
	for _, b := range bs {
		if b.Region != "" && b.Region != p.store.Region() {
			continue
		}
		out = append(out, &Resource{ARN: BucketARN(b.Name), Type: S3, Name: b.Name, Account: b.Owner, Tags: b.Tags})
	}
	return out, nil
}

// Backup writes the bucket as it was at run.At. For every key it takes
// the newest version last modified no later than then; a key whose newest
// such version is a delete marker did not exist then. An object whose
// version ID and ETag match the previous point's is added by reference.
func (p *S3Provider) Backup(ctx context.Context, run *BackupRun) (BackupResult, error) {
	bucket := run.Resource.Name
	// What the bucket held at the job's instant is PercentDone's total.
	// The store keeps no usage counters, so a first walk counts it: it
	// reads version records only, no object data, which is a small part
	// of the copy's cost (and of an incremental one's, whose unchanged
	// objects are not read either).
	var objects, bytes int64
	err := p.walkAt(ctx, bucket, run.At, func(ver *objectstore.Version) error {
		objects++
		bytes += ver.Size
		return nil
	})
	if err != nil {
		return BackupResult{}, walkError(bucket, err)
	}
	if err := run.Expect(ctx, objects, bytes); err != nil {
		return BackupResult{}, err
	}
	var skipped int64
	err = p.walkAt(ctx, bucket, run.At, func(ver *objectstore.Version) error {
		e := entryOf(ver)
		if pe, ref, ok := run.Previous(ver.Key); ok && pe.VersionID == ver.VersionID && pe.ETag == ver.ETag {
			return run.PutUnchanged(ctx, e, ref)
		}
		_, body, err := p.store.GetObject(ctx, bucket, e.Key, e.VersionID)
		if errors.Is(err, objectstore.ErrNoSuchVersion) || errors.Is(err, objectstore.ErrNoSuchKey) {
			skipped++ // deleted for good while the job ran
			return nil
		}
		if err != nil {
			return err
		}
		defer body.Close()
		return run.Put(ctx, e, body)
	})
	if err != nil {
		return BackupResult{}, walkError(bucket, err)
	}
	var res BackupResult
	if skipped > 0 {
		res.Partial = fmt.Sprintf("%d objects were deleted permanently while the backup ran and are not in the recovery point.", skipped)
	}
	return res, nil
}

// walkAt calls fn with each key's newest version last modified no later
// than at, in key order, leaving out the keys whose such version is a
// delete marker: the bucket as it was at that instant.
func (p *S3Provider) walkAt(ctx context.Context, bucket string, at time.Time, fn func(*objectstore.Version) error) error {
	var cur string
	resolved := false
	cursor := objectstore.VersionCursor{}
	for more := true; more; {
		var err error
		cursor, more, err = p.store.WalkVersions(ctx, bucket, cursor, walkPage, func(ver *objectstore.Version) error {
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

// RestoreMetadata names the backed-up bucket as the destination, as AWS
// Backup does for S3.
func (*S3Provider) RestoreMetadata(p *RecoveryPoint) map[string]string {
	bucket, _ := bucketOfARN(p.ResourceARN)
	return map[string]string{"DestinationBucketName": bucket, "NewBucket": "false"}
}

// CheckRestore refuses metadata it cannot read and a destination bucket
// of another account. A bucket that does not exist passes: the job fails
// when it runs (or creates it, with NewBucket).
func (p *S3Provider) CheckRestore(ctx context.Context, account string, rp *RecoveryPoint, md map[string]string) (string, error) {
	plan, err := parseRestoreMetadata(rp, md)
	if err != nil {
		return "", err
	}
	if _, err := p.ownBucket(ctx, account, plan.bucket); err != nil && !errors.Is(err, ErrNotFound) {
		return "", err
	}
	return BucketARN(plan.bucket), nil
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
	src, ok := bucketOfARN(p.ResourceARN)
	if !ok {
		return nil, errorf(ErrInvalidParameter, "Invalid resource ARN %q: Bulwark backs up S3 buckets (arn:aws:s3:::BUCKET).", p.ResourceARN)
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

// Restore writes the point's objects into the plan's bucket, each as a
// new version. An object whose current version already has the backed-up
// data is left alone; so is one in a bucket without versioning, where a
// write would destroy the current object.
func (p *S3Provider) Restore(ctx context.Context, run *RestoreRun) error {
	plan, err := parseRestoreMetadata(run.Point, run.Metadata)
	if err != nil {
		return err
	}
	if plan.newBucket {
		err := p.store.CreateBucket(ctx, plan.bucket, run.Account, p.store.Region())
		if err != nil {
			return errJob("Bucket %s could not be created: %v.", plan.bucket, err)
		}
		if err := p.store.SetVersioning(ctx, plan.bucket, objectstore.VersioningEnabled); err != nil {
			return err
		}
	}
	b, err := p.ownBucket(ctx, run.Account, plan.bucket)
	if errors.Is(err, ErrNotFound) {
		return errJob("Bucket %s does not exist; set NewBucket to true to create it.", plan.bucket)
	}
	if err != nil {
		return err
	}
	versioned := b.Versioning == objectstore.VersioningEnabled
	// Objects are restored restoreWorkers at a time: each write ends with
	// an fsync, which one writer at a time would wait on in turn. A key
	// appears once in a point, so the order between keys does not matter.
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan restoreItem)
	for range restoreWorkers {
		g.Go(func() error {
			for it := range work {
				restored, err := p.restoreEntry(gctx, run, plan.bucket, versioned, it.e, it.ref)
				if err != nil {
					return err
				}
				if restored {
					err = run.Restored(gctx, it.e)
				} else {
					err = run.Skipped(gctx, it.e)
				}
				if err != nil {
					return err
				}
			}
			return nil
		})
	}
	entries := run.Entries
	if run.Point.IsContinuous() {
		entries = func(ctx context.Context, fn func(vault.Entry, vault.ObjectRef) error) error {
			return p.stateAt(ctx, run, fn)
		}
	}
	err = entries(gctx, func(e vault.Entry, ref vault.ObjectRef) error {
		if !plan.selects(e.Key) {
			return nil
		}
		select {
		case work <- restoreItem{e, ref}:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	})
	close(work)
	if werr := g.Wait(); werr != nil {
		return werr // the first failure; Entries then stopped for it
	}
	return err
}

type restoreItem struct {
	e   vault.Entry
	ref vault.ObjectRef
}

// restoreEntry restores one entry unless the bucket's current version has
// its data already, or the bucket is not versioned and has the key (a write
// would destroy the current object). It reports whether it wrote.
func (p *S3Provider) restoreEntry(ctx context.Context, run *RestoreRun, bucket string, versioned bool, e vault.Entry, ref vault.ObjectRef) (bool, error) {
	cur, err := p.store.HeadObject(ctx, bucket, e.Key, "")
	exists := err == nil && !cur.DeleteMarker
	if exists && (!versioned || cur.ETag == e.ETag && cur.Size == e.Size) {
		return false, nil
	}
	if err := p.restoreObject(ctx, run, bucket, e, ref); err != nil {
		return false, err
	}
	return true, nil
}

// restoreObject writes one entry as a new version, the run checking the
// vault's SHA-256 and size as it reads and the store the ETag (MD5) as it
// writes.
func (p *S3Provider) restoreObject(ctx context.Context, run *RestoreRun, bucket string, e vault.Entry, ref vault.ObjectRef) error {
	rd, err := run.Open(ctx, e, ref)
	if err != nil {
		return err
	}
	defer rd.Close()
	in := &objectstore.PutInput{
		Bucket: bucket, Key: e.Key, Owner: run.Account, Size: ref.Size, Body: rd,
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
	if _, err := p.store.PutObject(ctx, in); err != nil {
		return fmt.Errorf("restore %q: %w", e.Key, err)
	}
	return nil
}
