package objectstore

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/bulwark/bulwark/internal/meta"
)

// ErrReplicationNeedsVersioning is a replication configuration set on a
// bucket whose versioning is not Enabled.
var ErrReplicationNeedsVersioning = errors.New("replication needs versioning enabled on the bucket")

// SetBucketReplication replaces a bucket's replication configuration; nil
// or empty cfg removes it. cfg is the configuration's canonical JSON: the
// replication package defines and validates it before calling. Versioning
// is checked again inside the transaction, so a configuration is never
// stored on a bucket whose versioning is not Enabled at that moment.
func (s *Store) SetBucketReplication(ctx context.Context, name string, cfg []byte) error {
	if len(cfg) == 0 {
		cfg = nil
	} else {
		if !json.Valid(cfg) {
			return fmt.Errorf("%w: replication configuration is not JSON", ErrInvalidArgument)
		}
		cfg = bytes.Clone(cfg)
	}
	return s.update(ctx, func(tx meta.Tx) error {
		b, err := getBucket(tx, name)
		if err != nil {
			return err
		}
		if cfg != nil && b.Versioning != VersioningEnabled {
			return fmt.Errorf("%w: %s", ErrReplicationNeedsVersioning, name)
		}
		b.Replication = cfg
		if err := putBucket(tx, b); err != nil {
			return err
		}
		return appendChange(tx, &Change{Bucket: name, Kind: ChangeReplicationConfig, Time: s.now().UTC()})
	})
}

// BucketReplication returns a bucket's replication configuration as stored
// by SetBucketReplication, or nil when it has none.
func (s *Store) BucketReplication(ctx context.Context, name string) ([]byte, error) {
	b, err := s.Bucket(ctx, name)
	if err != nil {
		return nil, err
	}
	return b.Replication, nil
}

// SetBucketPolicy replaces a bucket's policy; nil removes it. The IAM
// package validates the document before.
func (s *Store) SetBucketPolicy(ctx context.Context, name string, doc []byte) error {
	if len(doc) == 0 {
		doc = nil
	} else {
		doc = bytes.Clone(doc)
	}
	return s.update(ctx, func(tx meta.Tx) error {
		b, err := getBucket(tx, name)
		if err != nil {
			return err
		}
		b.Policy = doc
		return putBucket(tx, b)
	})
}
