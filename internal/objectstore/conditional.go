package objectstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/bulwark/bulwark/internal/meta"
)

// WriteCondition makes a write depend on the key's current object: its
// latest version, unless that is a delete marker. It is evaluated inside
// the transaction that installs the new version, so of two writers racing
// under the same condition at most one can see it hold.
type WriteCondition struct {
	// IfMatch, when set, is the ETag the current object must have (quoted
	// or not); "*" accepts any current object. A key without a current
	// object fails with ErrNoSuchKey.
	IfMatch string
	// IfNoneMatch requires that the key have no current object; otherwise
	// the write fails with ErrPreconditionFailed.
	IfNoneMatch bool
}

func (c WriteCondition) isSet() bool { return c.IfMatch != "" || c.IfNoneMatch }

// check evaluates c against the key's current object as tx sees it.
func (c WriteCondition) check(tx meta.Tx, bucket, key string) error {
	if !c.isSet() {
		return nil
	}
	cur, err := currentObject(tx, bucket, key)
	if err != nil {
		return err
	}
	if c.IfMatch != "" {
		if cur == nil {
			return fmt.Errorf("%w: %s has no current object for If-Match", ErrNoSuchKey, key)
		}
		if want := strings.Trim(c.IfMatch, `"`); want != "*" && want != cur.ETag {
			return fmt.Errorf("%w: %s has ETag %s, not %s", ErrPreconditionFailed, key, cur.ETag, want)
		}
	}
	if c.IfNoneMatch && cur != nil {
		return fmt.Errorf("%w: %s already exists", ErrPreconditionFailed, key)
	}
	return nil
}

// precheck evaluates c before any data is written, so that a write bound to
// fail is refused before its body is read. It decides nothing: the key can
// change before the write commits, and only the check inside the committing
// transaction counts.
func (s *Store) precheck(ctx context.Context, bucket, key string, c WriteCondition) error {
	if !c.isSet() {
		return nil
	}
	return s.meta.View(ctx, func(tx meta.Tx) error { return c.check(tx, bucket, key) })
}

// currentObject returns the key's latest version, or nil when the key has
// no versions or its latest version is a delete marker.
func currentObject(tx meta.Tx, bucket, key string) (*Version, error) {
	p := keyPrefix(bucket, key)
	k, val := tx.Iter(spaceVersions).Seek(p)
	if k == nil || !hasPrefix(k, p) || len(k) != len(p)+16 {
		return nil, nil
	}
	v, err := decodeVersion(bucket, k, val)
	if err != nil || v.DeleteMarker {
		return nil, err
	}
	return v, nil
}
