package objectstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/meta"
)

// Replication statuses of a version, as S3's x-amz-replication-status
// shows them.
const (
	StatusPending   = "PENDING"
	StatusCompleted = "COMPLETED"
	StatusFailed    = "FAILED"
	StatusReplica   = "REPLICA"
)

// ErrReplicaNotVersioned refuses a replica for a bucket whose versioning is
// not Enabled: a replica keeps its source's version ID, which only a
// versioned bucket can hold.
var ErrReplicaNotVersioned = errors.New("destination bucket must have versioning enabled")

// ReplicaMeta is everything of a version that a replica keeps: the
// destination stores the same version ID, time, ETag, checksums, metadata,
// tags and part layout.
type ReplicaMeta struct {
	VersionID          string            `json:"versionId"`
	DeleteMarker       bool              `json:"deleteMarker,omitempty"`
	LastModified       time.Time         `json:"lastModified"`
	Size               int64             `json:"size"`
	ETag               string            `json:"etag,omitempty"`
	Owner              string            `json:"owner,omitempty"`
	StorageClass       string            `json:"storageClass,omitempty"`
	ContentType        string            `json:"contentType,omitempty"`
	ContentEncoding    string            `json:"contentEncoding,omitempty"`
	ContentDisposition string            `json:"contentDisposition,omitempty"`
	ContentLanguage    string            `json:"contentLanguage,omitempty"`
	CacheControl       string            `json:"cacheControl,omitempty"`
	Expires            string            `json:"expires,omitempty"`
	Metadata           map[string]string `json:"metadata,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`
	ChecksumAlgorithm  string            `json:"checksumAlgorithm,omitempty"`
	Checksum           string            `json:"checksum,omitempty"`
	ChecksumType       string            `json:"checksumType,omitempty"`
	Parts              []ReplicaPart     `json:"parts,omitempty"`
}

// ReplicaPart is one part of a multipart object, sent in order.
type ReplicaPart struct {
	Number   int    `json:"number"`
	Size     int64  `json:"size"`
	ETag     string `json:"etag"`
	Checksum string `json:"checksum,omitempty"`
}

// ReplicaMetaOf describes v for its replica.
func ReplicaMetaOf(v *Version) *ReplicaMeta {
	m := &ReplicaMeta{
		VersionID: v.VersionID, DeleteMarker: v.DeleteMarker, LastModified: v.LastModified,
		Size: v.Size, ETag: v.ETag, Owner: v.Owner, StorageClass: v.StorageClass,
		ContentType: v.ContentType, ContentEncoding: v.ContentEncoding,
		ContentDisposition: v.ContentDisposition, ContentLanguage: v.ContentLanguage,
		CacheControl: v.CacheControl, Expires: v.Expires,
		Metadata: v.Metadata, Tags: v.Tags,
		ChecksumAlgorithm: v.ChecksumAlgorithm, Checksum: v.Checksum, ChecksumType: v.ChecksumType,
	}
	for _, p := range v.Parts {
		m.Parts = append(m.Parts, ReplicaPart{Number: p.Number, Size: p.Size, ETag: p.ETag, Checksum: p.Checksum})
	}
	return m
}

// Version returns a version's record whatever it is, delete markers
// included, or an error wrapping ErrNoSuchVersion.
func (s *Store) Version(ctx context.Context, bucket, key, versionID string) (*Version, error) {
	id, err := parseVersionID(versionID)
	if err != nil {
		return nil, fmt.Errorf("%w: %q", ErrNoSuchVersion, versionID)
	}
	var v *Version
	err = s.meta.View(ctx, func(tx meta.Tx) error {
		vk := versionKey(bucket, key, id)
		raw := tx.Get(spaceVersions, vk)
		if raw == nil {
			return fmt.Errorf("%w: %s/%s %s", ErrNoSuchVersion, bucket, key, versionID)
		}
		v, err = decodeVersion(bucket, vk, raw)
		if err == nil {
			v.IsLatest = isLatest(tx, v)
		}
		return err
	})
	return v, err
}

// ApplyReplica stores a version written in another bucket, under the same
// version ID, with the same time, ETag, checksums, metadata, tags and part
// layout, and status REPLICA. body holds the data (the parts one after the
// other); every part's MD5 must match its ETag and the checksums must
// match, or nothing is stored. The key's latest version is decided by
// version order, so replicas may arrive in any order; a version already
// present is left as it is, so a replica sent twice is stored once.
// storageClass, when not empty, overrides the source's.
func (s *Store) ApplyReplica(ctx context.Context, bucket, key string, m *ReplicaMeta, body io.Reader, storageClass string) (*Version, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	id, err := parseVersionID(m.VersionID)
	if err != nil {
		return nil, fmt.Errorf("%w: replica version %q", ErrInvalidVersionID, m.VersionID)
	}
	if err := validateMetadata(m.Metadata); err != nil {
		return nil, err
	}
	checkBucket := func(tx meta.Tx) error {
		b, err := getBucket(tx, bucket)
		if err != nil {
			return err
		}
		if b.Versioning != VersioningEnabled {
			return fmt.Errorf("%w: %s", ErrReplicaNotVersioned, bucket)
		}
		return nil
	}
	var existing *Version
	err = s.meta.View(ctx, func(tx meta.Tx) error {
		if err := checkBucket(tx); err != nil {
			return err
		}
		vk := versionKey(bucket, key, id)
		if raw := tx.Get(spaceVersions, vk); raw != nil {
			existing, err = decodeVersion(bucket, vk, raw)
		}
		return err
	})
	if err != nil || existing != nil {
		return existing, err
	}
	v := &Version{
		Bucket: bucket, Key: key, VersionID: m.VersionID, id: id, BucketVersioned: true,
		DeleteMarker: m.DeleteMarker, LastModified: m.LastModified.UTC(),
		Owner: m.Owner, StorageClass: m.StorageClass,
		ContentType: m.ContentType, ContentEncoding: m.ContentEncoding,
		ContentDisposition: m.ContentDisposition, ContentLanguage: m.ContentLanguage,
		CacheControl: m.CacheControl, Expires: m.Expires,
		Metadata: m.Metadata, Tags: m.Tags,
		ChecksumAlgorithm: m.ChecksumAlgorithm, Checksum: m.Checksum, ChecksumType: m.ChecksumType,
		ReplicationStatus: StatusReplica,
	}
	if storageClass != "" {
		v.StorageClass = storageClass
	}
	if !m.DeleteMarker {
		// A delete marker is let in whatever the disk: it is a delete.
		release, err := s.space.Admit(m.Size)
		if err != nil {
			return nil, fmt.Errorf("replica of %q %s: %w", key, m.VersionID, err)
		}
		defer release()
		v.Size, v.ETag = m.Size, m.ETag
		if err := s.receiveReplicaData(ctx, v, m, body); err != nil {
			return nil, fmt.Errorf("replica of %q %s: %w", key, m.VersionID, err)
		}
	}
	var garbage []string
	err = s.update(ctx, func(tx meta.Tx) error {
		if err := checkBucket(tx); err != nil {
			return err
		}
		vk := versionKey(bucket, key, id)
		if raw := tx.Get(spaceVersions, vk); raw != nil {
			// Sent twice at once: keep the first.
			garbage = v.blobIDs()
			existing, err = decodeVersion(bucket, vk, raw)
			return err
		}
		kind := ChangePut
		if v.DeleteMarker {
			kind = ChangeDeleteMarker
		}
		return insertVersionFrom(tx, v, kind, OriginReplication)
	})
	if err != nil {
		s.dropUncommitted(ctx, err, v.blobIDs())
	} else {
		s.dropBlobs(ctx, garbage)
	}
	if err != nil {
		return nil, fmt.Errorf("replica of %q %s: %w", key, m.VersionID, err)
	}
	if existing != nil {
		return existing, nil
	}
	return v, nil
}

// receiveReplicaData reads a replica's data into inline storage or blobs,
// one per part for a multipart object, verifying every digest.
func (s *Store) receiveReplicaData(ctx context.Context, v *Version, m *ReplicaMeta, body io.Reader) error {
	alg := checksum.Algorithm(m.ChecksumAlgorithm)
	verify := func(size int64, etag, sum string) (*checksum.Reader, error) {
		md5, err := hex.DecodeString(etag)
		if err != nil || len(md5) != 16 {
			return nil, fmt.Errorf("%w: ETag %q is not an MD5", ErrInvalidArgument, etag)
		}
		opts := checksum.ReaderOptions{ExpectedMD5: md5, ExpectedSize: size}
		if sum != "" {
			opts.Algorithm = alg
			opts.Expected = func() (string, bool) { return sum, true }
		}
		return checksum.NewReader(io.LimitReader(body, size), opts), nil
	}
	if len(m.Parts) == 0 {
		sum := m.Checksum
		if m.ChecksumType == "COMPOSITE" {
			sum = ""
		}
		cr, err := verify(m.Size, m.ETag, sum)
		if err != nil {
			return err
		}
		return s.writeData(ctx, v, cr, m.Size)
	}
	var total int64
	for _, p := range m.Parts {
		cr, err := verify(p.Size, p.ETag, p.Checksum)
		if err != nil {
			s.dropBlobs(ctx, v.blobIDs())
			return err
		}
		ref := PartRef{Number: p.Number, Size: p.Size, ETag: p.ETag, Checksum: p.Checksum, BlobID: newBlobID()}
		if _, err := s.blobs.Create(ctx, ref.BlobID, cr); err != nil {
			s.dropBlobs(ctx, v.blobIDs())
			return fmt.Errorf("part %d: %w", p.Number, err)
		}
		v.Parts = append(v.Parts, ref)
		total += p.Size
	}
	if total != m.Size {
		s.dropBlobs(ctx, v.blobIDs())
		return fmt.Errorf("%w: parts hold %d bytes, object %d", ErrInvalidArgument, total, m.Size)
	}
	return nil
}

// ApplyReplicaTags sets the tags of a version as replication carries them
// from the other side of a rule. The change is marked as replication's, so
// it is never sent back.
func (s *Store) ApplyReplicaTags(ctx context.Context, bucket, key, versionID string, tags map[string]string) (*Version, error) {
	return s.setTags(ctx, bucket, key, versionID, tags, OriginReplication)
}

// SetReplicationStatus records a source version's replication status. A
// version deleted meanwhile is not an error; a replica's status is never
// changed.
func (s *Store) SetReplicationStatus(ctx context.Context, bucket, key, versionID, status string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		return SetReplicationStatusTx(tx, bucket, key, versionID, status)
	})
}

// SetReplicationStatusTx is SetReplicationStatus inside the caller's
// transaction, so replication can record a version's status and retire its
// task in one commit.
func SetReplicationStatusTx(tx meta.Tx, bucket, key, versionID, status string) error {
	id, err := parseVersionID(versionID)
	if err != nil {
		return nil // null versions carry no replication status
	}
	vk := versionKey(bucket, key, id)
	raw := tx.Get(spaceVersions, vk)
	if raw == nil {
		return nil
	}
	v, err := decodeVersion(bucket, vk, raw)
	if err != nil || v.ReplicationStatus == status || v.ReplicationStatus == StatusReplica {
		return err
	}
	v.ReplicationStatus = status
	enc, err := encodeVersion(v)
	if err != nil {
		return err
	}
	return tx.Put(spaceVersions, vk, enc)
}

// VersionCursor is a position in a bucket's version order: after Key's
// version VersionID ("" is before the key's first version).
type VersionCursor struct {
	Key, VersionID string
}

// WalkVersions calls fn for up to limit versions of bucket after cursor in
// key order, newest version first within a key, and returns the cursor
// after the last one seen, and whether the bucket has more.
func (s *Store) WalkVersions(ctx context.Context, bucket string, after VersionCursor, limit int, fn func(*Version) error) (VersionCursor, bool, error) {
	var out []*Version
	more := false
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		if _, err := getBucket(tx, bucket); err != nil {
			return err
		}
		out, more = out[:0], false
		start := bucketPrefix(bucket)
		if after.Key != "" {
			start = keyPrefix(bucket, after.Key)
			if after.VersionID != "" {
				id, err := findVersionID(tx, bucket, after.Key, after.VersionID)
				if err != nil {
					return err
				}
				start = append(versionKey(bucket, after.Key, id), 0)
			}
		}
		p := bucketPrefix(bucket)
		it := tx.Iter(spaceVersions)
		var latestKey string
		for k, val := it.Seek(start); k != nil && hasPrefix(k, p); k, val = it.Next() {
			if len(out) == limit {
				more = true
				break
			}
			v, err := decodeVersion(bucket, k, val)
			if err != nil {
				return err
			}
			if v.Key != latestKey {
				latestKey = v.Key
				v.IsLatest = isLatest(tx, v)
			}
			out = append(out, v)
		}
		return nil
	})
	if err != nil {
		return after, false, err
	}
	for _, v := range out {
		if err := fn(v); err != nil {
			return after, false, err
		}
		after = VersionCursor{Key: v.Key, VersionID: v.VersionID}
	}
	return after, more, nil
}

// findVersionID resolves a version ID string, "null" included, to its
// internal ID.
func findVersionID(tx meta.Tx, bucket, key, vid string) (versionID, error) {
	if vid != nullVersion {
		id, err := parseVersionID(vid)
		if err != nil {
			return id, fmt.Errorf("%w: %q", ErrInvalidVersionID, vid)
		}
		return id, nil
	}
	v, err := findNull(tx, bucket, key)
	if err != nil || v == nil {
		return versionID{}, fmt.Errorf("%w: null version of %q", ErrNoSuchVersion, key)
	}
	return v.id, nil
}
