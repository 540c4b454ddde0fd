package objectstore

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/meta"
)

// MaxKeyLength is S3's limit on an object key, in bytes of UTF-8.
const MaxKeyLength = 1024

// MaxMetadataSize is S3's limit on user metadata: keys plus values, in bytes.
const MaxMetadataSize = 2048

// ValidateKey checks an object key: non-empty, valid UTF-8, at most 1,024
// bytes, and without NUL, which Bulwark uses as a separator in its indexes
// and which S3's XML listings cannot carry anyway.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty key", ErrInvalidKey)
	case len(key) > MaxKeyLength:
		return fmt.Errorf("%w: %d bytes", ErrKeyTooLong, len(key))
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidKey)
	case bytes.IndexByte([]byte(key), 0) >= 0:
		return fmt.Errorf("%w: contains NUL", ErrInvalidKey)
	}
	return nil
}

// PutInput describes a new object version.
type PutInput struct {
	Bucket, Key string
	Owner       string
	// Body yields the data. Size is its length, or -1 when unknown.
	Body io.Reader
	Size int64

	// ExpectedMD5 is the decoded Content-MD5, if the client sent one.
	ExpectedMD5 []byte
	// ChecksumAlgorithm names the additional checksum to compute and store.
	// ExpectedChecksum, evaluated once the body has been read (it may come
	// from a trailer), returns the client's value to verify, if any.
	ChecksumAlgorithm checksum.Algorithm
	ExpectedChecksum  func() (string, bool)

	ContentType        string
	ContentEncoding    string
	ContentDisposition string
	ContentLanguage    string
	CacheControl       string
	Expires            string
	Metadata           map[string]string
	Tags               map[string]string
	StorageClass       string

	// WriteCondition, when set, makes the write depend on the key's
	// current object.
	WriteCondition
}

// PutObject stores a new version of an object, following the bucket's
// versioning state: a new version ID when versioning is enabled, otherwise
// the null version, replacing the previous null version. When PutObject
// returns, data, metadata and the change record are durable.
func (s *Store) PutObject(ctx context.Context, in *PutInput) (*Version, error) {
	if err := ValidateKey(in.Key); err != nil {
		return nil, err
	}
	if err := validateMetadata(in.Metadata); err != nil {
		return nil, err
	}
	// Refuse before reading the body when the bucket is missing.
	if _, err := s.Bucket(ctx, in.Bucket); err != nil {
		return nil, err
	}
	if err := s.precheck(ctx, in.Bucket, in.Key, in.WriteCondition); err != nil {
		return nil, fmt.Errorf("put object %q: %w", in.Key, err)
	}
	release, err := s.space.Admit(max(in.Size, 0))
	if err != nil {
		return nil, fmt.Errorf("put object %q: %w", in.Key, err)
	}
	defer release()
	cr := checksum.NewReader(in.Body, checksum.ReaderOptions{
		WantMD5:      true,
		ExpectedMD5:  in.ExpectedMD5,
		Algorithm:    in.ChecksumAlgorithm,
		Expected:     in.ExpectedChecksum,
		ExpectedSize: in.Size,
	})
	v := &Version{
		Bucket: in.Bucket, Key: in.Key, Owner: in.Owner,
		StorageClass:       in.StorageClass,
		ContentType:        in.ContentType,
		ContentEncoding:    in.ContentEncoding,
		ContentDisposition: in.ContentDisposition,
		ContentLanguage:    in.ContentLanguage,
		CacheControl:       in.CacheControl,
		Expires:            in.Expires,
		Metadata:           in.Metadata,
		Tags:               in.Tags,
	}
	if err := s.writeData(ctx, v, cr, in.Size); err != nil {
		return nil, fmt.Errorf("put object %q: %w", in.Key, err)
	}
	v.Size = cr.Size()
	v.ETag = hex.EncodeToString(cr.MD5())
	if in.ChecksumAlgorithm != "" {
		v.ChecksumAlgorithm = string(in.ChecksumAlgorithm)
		v.Checksum = cr.Checksum()
	}
	if err := s.commitVersion(ctx, v, in.WriteCondition); err != nil {
		if v.BlobID != "" {
			s.dropUncommitted(ctx, err, []string{v.BlobID})
		}
		return nil, fmt.Errorf("put object %q: %w", in.Key, err)
	}
	return v, nil
}

func validateMetadata(m map[string]string) error {
	n := 0
	for k, v := range m {
		n += len(k) + len(v)
	}
	if n > MaxMetadataSize {
		return fmt.Errorf("%w: %d bytes of user metadata, limit %d", ErrMetadataTooLarge, n, MaxMetadataSize)
	}
	return nil
}

// writeData reads the whole body, keeping it inline when it fits and writing
// it to a new blob otherwise. It returns only after a clean EOF from r, which
// for a checksum.Reader means every digest matched.
func (s *Store) writeData(ctx context.Context, v *Version, r io.Reader, size int64) error {
	if size < 0 || size <= s.inline {
		limit := s.inline + 1
		if size >= 0 {
			limit = size + 1 // one more byte proves the body is not longer
		}
		buf := bytes.NewBuffer(make([]byte, 0, min(limit, s.inline+1)))
		if _, err := io.CopyN(buf, r, limit); err != nil && err != io.EOF {
			return err
		}
		if int64(buf.Len()) <= s.inline {
			// The body ended within the limit; CopyN saw the EOF, so any
			// verification error would have surfaced above.
			if buf.Len() > 0 {
				v.inline = buf.Bytes()
			}
			return nil
		}
		r = io.MultiReader(bytes.NewReader(buf.Bytes()), r)
	}
	v.BlobID = newBlobID()
	if _, err := s.blobs.Create(ctx, v.BlobID, r); err != nil {
		v.BlobID = ""
		return err
	}
	return nil
}

// commitVersion assigns v its version ID inside the transaction, so that
// IDs follow commit order, and records the version, its blob reference and
// its change record together, if cond holds in that transaction.
func (s *Store) commitVersion(ctx context.Context, v *Version, cond WriteCondition) error {
	var garbage []string
	err := s.update(ctx, func(tx meta.Tx) error {
		if err := cond.check(tx, v.Bucket, v.Key); err != nil {
			return err
		}
		var err error
		garbage, err = s.placeVersion(tx, v)
		return err
	})
	if err == nil {
		s.dropBlobs(ctx, garbage)
	}
	return err
}

// placeVersion makes v the newest version of its key inside tx, following
// the bucket's versioning state, and returns the blobs that became garbage.
func (s *Store) placeVersion(tx meta.Tx, v *Version) ([]string, error) {
	b, err := getBucket(tx, v.Bucket)
	if err != nil {
		return nil, err
	}
	v.id = s.ids.nextFor(tx, v.Bucket, v.Key, s.now())
	v.LastModified = v.id.time().UTC()
	v.Null = b.Versioning != VersioningEnabled
	v.BucketVersioned = b.Versioning != ""
	v.VersionID = v.id.String()
	var garbage []string
	if v.Null {
		v.VersionID = nullVersion
		if garbage, err = removeNullVersion(tx, v.Bucket, v.Key); err != nil {
			return nil, err
		}
	}
	kind := ChangePut
	if v.DeleteMarker {
		kind = ChangeDeleteMarker
	} else if b.Replication != nil && s.selects != nil && s.selects(b.Replication, v.Key, v.Tags) {
		v.ReplicationStatus = StatusPending
	}
	return garbage, insertVersion(tx, v, kind)
}

func insertVersion(tx meta.Tx, v *Version, kind ChangeKind) error {
	return insertVersionFrom(tx, v, kind, "")
}

// insertVersionFrom stores v and its change record, marked with the origin
// of the change.
func insertVersionFrom(tx meta.Tx, v *Version, kind ChangeKind, origin string) error {
	raw, err := encodeVersion(v)
	if err != nil {
		return err
	}
	vk := versionKey(v.Bucket, v.Key, v.id)
	if err := tx.Put(spaceVersions, vk, raw); err != nil {
		return err
	}
	for _, id := range v.blobIDs() {
		if err := tx.Put(spaceBlobRefs, []byte(id), vk); err != nil {
			return err
		}
	}
	return appendChange(tx, &Change{
		Bucket: v.Bucket, Key: v.Key, VersionID: v.VersionID,
		Kind: kind, Size: v.Size, Time: v.LastModified, Origin: origin,
	})
}

// removeNullVersion deletes the key's null version, if any, and returns the
// blobs to delete once the transaction has committed.
func removeNullVersion(tx meta.Tx, bucket, key string) ([]string, error) {
	old, err := findNull(tx, bucket, key)
	if err != nil || old == nil {
		return nil, err
	}
	return deleteVersionRecord(tx, old)
}

func deleteVersionRecord(tx meta.Tx, v *Version) ([]string, error) {
	if err := tx.Delete(spaceVersions, versionKey(v.Bucket, v.Key, v.id)); err != nil {
		return nil, err
	}
	ids := v.blobIDs()
	for _, id := range ids {
		if err := tx.Delete(spaceBlobRefs, []byte(id)); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// findNull scans the key's versions for the null version. Keys rarely hold
// many versions; a key with a very long history pays a longer scan here.
func findNull(tx meta.Tx, bucket, key string) (*Version, error) {
	p := keyPrefix(bucket, key)
	it := tx.Iter(spaceVersions)
	for k, val := it.Seek(p); k != nil && hasPrefix(k, p); k, val = it.Next() {
		if len(k) != len(p)+16 {
			continue
		}
		v, err := decodeVersion(bucket, k, val)
		if err != nil {
			return nil, err
		}
		if v.Null {
			return v, nil
		}
	}
	return nil, nil
}

// dropUncommitted deletes the blobs an Update that failed with err would
// have referenced. When the commit's outcome is unknown (the store lost
// the answer to a commit it may have made) they are left to the orphan
// sweeper, which deletes them only if no record names them: deleting them
// here could leave a committed version without its data.
func (s *Store) dropUncommitted(ctx context.Context, err error, ids []string) {
	if errors.Is(err, meta.ErrUnknownOutcome) {
		s.log.Warn("commit outcome unknown: blobs left to the orphan sweeper", "blobs", ids, "err", err)
		return
	}
	s.dropBlobs(ctx, ids)
}

// dropBlobs deletes blobs no record references any more. A failure leaves
// an orphan for the sweeper, never a dangling reference.
func (s *Store) dropBlobs(ctx context.Context, ids []string) {
	for _, id := range ids {
		if err := s.blobs.Delete(context.WithoutCancel(ctx), id); err != nil {
			s.log.Warn("delete blob", "blob", id, "err", err)
		}
	}
}

// resolve finds the version a read names: the latest when versionID is
// empty, else the named one.
func resolve(tx meta.Tx, bucket, key, vid string) (*Version, error) {
	b, err := getBucket(tx, bucket)
	if err != nil {
		return nil, err
	}
	v, err := resolveVersion(tx, bucket, key, vid)
	if v != nil {
		v.BucketVersioned = b.Versioning != ""
	}
	return v, err
}

func resolveVersion(tx meta.Tx, bucket, key, vid string) (*Version, error) {
	if vid == "" {
		p := keyPrefix(bucket, key)
		k, val := tx.Iter(spaceVersions).Seek(p)
		if k == nil || !hasPrefix(k, p) || len(k) != len(p)+16 {
			return nil, fmt.Errorf("%w: %s", ErrNoSuchKey, key)
		}
		v, err := decodeVersion(bucket, k, val)
		if err != nil {
			return nil, err
		}
		v.IsLatest = true
		if v.DeleteMarker {
			return nil, &DeleteMarkerError{Err: ErrNoSuchKey, VersionID: v.VersionID, LastModified: v.LastModified}
		}
		return v, nil
	}
	var v *Version
	if vid == nullVersion {
		var err error
		if v, err = findNull(tx, bucket, key); err != nil {
			return nil, err
		}
	} else {
		id, err := parseVersionID(vid)
		if err != nil {
			return nil, fmt.Errorf("%w: %q", ErrInvalidVersionID, vid)
		}
		if val := tx.Get(spaceVersions, versionKey(bucket, key, id)); val != nil {
			if v, err = decodeVersion(bucket, versionKey(bucket, key, id), val); err != nil {
				return nil, err
			}
		}
	}
	if v == nil {
		return nil, fmt.Errorf("%w: %s version %s", ErrNoSuchVersion, key, vid)
	}
	if v.DeleteMarker {
		return nil, &DeleteMarkerError{Err: ErrMethodNotAllowed, VersionID: v.VersionID, LastModified: v.LastModified}
	}
	v.IsLatest = isLatest(tx, v)
	return v, nil
}

func isLatest(tx meta.Tx, v *Version) bool {
	p := keyPrefix(v.Bucket, v.Key)
	k, _ := tx.Iter(spaceVersions).Seek(p)
	return k != nil && bytes.Equal(k, versionKey(v.Bucket, v.Key, v.id))
}

// HeadObject returns a version's metadata.
func (s *Store) HeadObject(ctx context.Context, bucket, key, versionID string) (*Version, error) {
	var v *Version
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		v, err = resolve(tx, bucket, key, versionID)
		return err
	})
	return v, err
}

// Body is an open object's data.
type Body = blob.Object

// GetObject returns a version's metadata and data. The caller closes the body.
func (s *Store) GetObject(ctx context.Context, bucket, key, versionID string) (*Version, Body, error) {
	// A concurrent overwrite of a null version can delete its blob between
	// reading the record and opening the blob; reading again resolves the
	// version that replaced it.
	for attempt := 0; ; attempt++ {
		v, err := s.HeadObject(ctx, bucket, key, versionID)
		if err != nil {
			return nil, nil, err
		}
		if v.Damaged != "" {
			return nil, nil, fmt.Errorf("get object %q version %s: %w (%s)", key, v.VersionID, ErrDamaged, v.Damaged)
		}
		if len(v.Parts) > 0 {
			return v, newPartsBody(ctx, s.blobs, v.Parts), nil
		}
		if v.BlobID == "" {
			return v, inlineBody{bytes.NewReader(v.inline)}, nil
		}
		body, err := s.blobs.Open(ctx, v.BlobID)
		if errors.Is(err, blob.ErrNotFound) && attempt < 3 {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("get object %q: %w", key, err)
		}
		return v, body, nil
	}
}

type inlineBody struct{ *bytes.Reader }

func (inlineBody) Close() error { return nil }

// DeleteResult says what DeleteObject did.
type DeleteResult struct {
	// VersionID is the version removed or the delete marker created; empty
	// when an unversioned bucket's object was deleted.
	VersionID    string
	DeleteMarker bool
}

// DeleteObject deletes as S3 does. Without a version ID: a versioned bucket
// gets a new delete marker; a suspended bucket gets a null delete marker that
// replaces the null version; an unversioned bucket loses the null version.
// With a version ID, that version (or delete marker) is removed for good; a
// well-formed ID that names nothing is not an error.
func (s *Store) DeleteObject(ctx context.Context, bucket, key, vid string) (*DeleteResult, error) {
	if err := ValidateKey(key); err != nil {
		return nil, err
	}
	var id versionID
	if vid != "" && vid != nullVersion {
		var err error
		if id, err = parseVersionID(vid); err != nil {
			return nil, fmt.Errorf("%w: %q", ErrInvalidVersionID, vid)
		}
	}
	var garbage []string
	var res DeleteResult
	err := s.update(ctx, func(tx meta.Tx) error {
		garbage, res = garbage[:0], DeleteResult{}
		b, err := getBucket(tx, bucket)
		if err != nil {
			return err
		}
		if vid != "" {
			return deleteVersion(tx, bucket, key, vid, id, s.now(), &res, &garbage)
		}
		switch b.Versioning {
		case VersioningEnabled, VersioningSuspended:
			dm := &Version{Bucket: bucket, Key: key, DeleteMarker: true, id: s.ids.nextFor(tx, bucket, key, s.now())}
			dm.LastModified = dm.id.time().UTC()
			dm.VersionID = dm.id.String()
			if b.Versioning == VersioningSuspended {
				dm.Null, dm.VersionID = true, nullVersion
				old, err := removeNullVersion(tx, bucket, key)
				if err != nil {
					return err
				}
				garbage = append(garbage, old...)
			}
			res = DeleteResult{VersionID: dm.VersionID, DeleteMarker: true}
			return insertVersion(tx, dm, ChangeDeleteMarker)
		default:
			return deleteVersion(tx, bucket, key, nullVersion, id, s.now(), &DeleteResult{}, &garbage)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("delete object %q: %w", key, err)
	}
	s.dropBlobs(ctx, garbage)
	return &res, nil
}

func deleteVersion(tx meta.Tx, bucket, key, vid string, id versionID, now time.Time, res *DeleteResult, garbage *[]string) error {
	var v *Version
	var err error
	if vid == nullVersion {
		v, err = findNull(tx, bucket, key)
	} else if val := tx.Get(spaceVersions, versionKey(bucket, key, id)); val != nil {
		v, err = decodeVersion(bucket, versionKey(bucket, key, id), val)
	}
	if err != nil || v == nil {
		res.VersionID = vid
		return err
	}
	old, err := deleteVersionRecord(tx, v)
	if err != nil {
		return err
	}
	*garbage = append(*garbage, old...)
	*res = DeleteResult{VersionID: v.VersionID, DeleteMarker: v.DeleteMarker}
	return appendChange(tx, &Change{
		Bucket: bucket, Key: key, VersionID: v.VersionID,
		Kind: ChangeDeleteVersion, Size: v.Size, Time: now.UTC(),
	})
}
