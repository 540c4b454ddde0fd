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

var _ RestoreTester = (*S3Provider)(nil)

// ValidateRestore checks that every item the restore took is in the
// target bucket with the size and ETag of the point's entry, then runs
// the check's command with BULWARK_RESTORE_BUCKET, the scratch bucket's
// name, in its environment. A bucket has no ValidationQuery.
func (p *S3Provider) ValidateRestore(ctx context.Context, run *RestoreRun, check RestoreCheck) (string, error) {
	if check.Query != "" {
		return "", errJob("%s applies to databases; a bucket is checked with %s.", MetaValidationQuery, MetaValidationCommand)
	}
	plan, err := parseRestoreMetadata(run.Point, run.Metadata)
	if err != nil {
		return "", err
	}
	entries := run.Entries
	if run.Point.IsContinuous() {
		entries = func(ctx context.Context, fn func(vault.Entry, vault.ObjectRef) error) error {
			return p.stateAt(ctx, run, fn)
		}
	}
	n, bad, first := 0, 0, ""
	err = entries(ctx, func(e vault.Entry, _ vault.ObjectRef) error {
		if !plan.selects(e.Key) {
			return nil
		}
		n++
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
		return "", err
	}
	if bad > 0 {
		return "", errJob("%d restored objects are missing or differ from the recovery point in size or ETag, the first %q.", bad, first)
	}
	if err := RunValidationCommand(ctx, run, check.Command, "BULWARK_RESTORE_BUCKET="+plan.bucket); err != nil {
		return "", err
	}
	return fmt.Sprintf("all %d objects of the recovery point are in bucket %s with their size and ETag.", n, plan.bucket), nil
}

// DeleteRestored deletes a bucket a restore test made, every version in
// it first.
func (p *S3Provider) DeleteRestored(ctx context.Context, t RestoreTestTarget) error {
	account := t.Account
	name, ok := bucketOfARN(t.ARN)
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
