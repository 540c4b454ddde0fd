package backup

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// restoreTestInfix marks the buckets restore tests make; DeleteRestored
// deletes no other.
const restoreTestInfix = "-restore-test-"

// maxBucketName is S3's bound on a bucket name.
const maxBucketName = 63

// TestRestoreMetadata restores into a new bucket <bucket>-restore-test-<id>,
// the source's name cut so that the whole fits S3's 63 characters.
func (*S3Provider) TestRestoreMetadata(p *RecoveryPoint, id string) map[string]string {
	src, _ := bucketOfARN(p.ResourceARN)
	if n := maxBucketName - len(restoreTestInfix) - len(id); len(src) > n {
		src = strings.TrimRight(src[:n], "-.")
	}
	return map[string]string{"DestinationBucketName": src + restoreTestInfix + id, "NewBucket": "true"}
}

// ValidateRestore checks that every item the restore took is in the
// target bucket with the size and ETag of the point's entry.
func (p *S3Provider) ValidateRestore(ctx context.Context, run *RestoreRun) error {
	plan, err := parseRestoreMetadata(run.Point, run.Metadata)
	if err != nil {
		return err
	}
	entries := run.Entries
	if run.Point.IsContinuous() {
		entries = func(ctx context.Context, fn func(vault.Entry, vault.ObjectRef) error) error {
			return p.stateAt(ctx, run, fn)
		}
	}
	bad, first := 0, ""
	err = entries(ctx, func(e vault.Entry, _ vault.ObjectRef) error {
		if !plan.selects(e.Key) {
			return nil
		}
		cur, err := p.store.HeadObject(ctx, plan.bucket, e.Key, "")
		switch {
		case errors.Is(err, objectstore.ErrNoSuchKey):
			err = nil
			cur = nil
		case err != nil:
			return fmt.Errorf("validate %q: %w", e.Key, err)
		}
		if cur == nil || cur.DeleteMarker || cur.Size != e.Size || cur.ETag != e.ETag {
			bad++
			if first == "" {
				first = e.Key
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if bad > 0 {
		return errJob("%d restored objects are missing or differ from the recovery point in size or ETag, the first %q.", bad, first)
	}
	return nil
}

// DeleteRestored deletes a bucket a restore test made, every version in
// it first.
func (p *S3Provider) DeleteRestored(ctx context.Context, account, arn string) error {
	name, ok := bucketOfARN(arn)
	if !ok || !strings.Contains(name, restoreTestInfix) {
		return errJob("Bucket %s is not a restore test's bucket.", name)
	}
	if _, err := p.ownBucket(ctx, account, name); errors.Is(err, ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	for {
		page, err := p.store.ListVersions(ctx, name, objectstore.ListVersionsInput{MaxKeys: walkPage})
		if err != nil {
			return fmt.Errorf("list bucket %s: %w", name, err)
		}
		for _, v := range page.Versions {
			if _, err := p.store.DeleteObject(ctx, name, v.Key, v.VersionID); err != nil {
				return fmt.Errorf("delete %q of bucket %s: %w", v.Key, name, err)
			}
		}
		if !page.IsTruncated || len(page.Versions) == 0 {
			break
		}
	}
	if err := p.store.DeleteBucket(ctx, name); err != nil && !errors.Is(err, objectstore.ErrNoSuchBucket) {
		return fmt.Errorf("delete bucket %s: %w", name, err)
	}
	return nil
}
