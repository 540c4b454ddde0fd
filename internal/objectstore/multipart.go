package objectstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/checksum"
	"github.com/bulwark/bulwark/internal/meta"
)

// Multipart limits, as in S3.
const (
	MaxParts               = 10000
	MinPartSize            = 5 << 20
	MaxPartSize            = 5 << 30
	ChecksumTypeComposite  = "COMPOSITE"
	ChecksumTypeFullObject = "FULL_OBJECT"
)

// Keyspaces of multipart uploads. An upload's ID sorts by creation time, so
// uploads of one key list oldest first, as in S3.
const (
	spaceUploads   = "uploads"   // bucket \0 key \0 uploadID -> Upload JSON
	spaceParts     = "parts"     // uploadID | big-endian part number -> Part JSON
	spaceCompleted = "completed" // uploadID -> CompletedUpload JSON, for retried completes
)

// Upload is a multipart upload in progress.
type Upload struct {
	Bucket   string `json:"-"`
	Key      string `json:"-"`
	UploadID string `json:"-"`
	id       versionID

	Initiated         time.Time `json:"initiated"`
	Owner             string    `json:"owner,omitempty"`
	StorageClass      string    `json:"class,omitempty"`
	ChecksumAlgorithm string    `json:"ckalg,omitempty"`
	ChecksumType      string    `json:"cktype,omitempty"`
	// Template holds the content headers, metadata and tags of the object
	// the upload will become.
	Template *Version `json:"template"`
}

// Part is an uploaded part.
type Part struct {
	Number       int       `json:"n"`
	ETag         string    `json:"etag"`
	Size         int64     `json:"size"`
	BlobID       string    `json:"blob"`
	LastModified time.Time `json:"mtime"`
	Checksum     string    `json:"ck,omitempty"`
}

// CompletedUpload remembers a completed upload so that a retried
// CompleteMultipartUpload returns the same answer.
type CompletedUpload struct {
	Bucket       string    `json:"bucket"`
	Key          string    `json:"key"`
	VersionID    string    `json:"versionId"`
	ETag         string    `json:"etag"`
	Checksum     string    `json:"ck,omitempty"`
	ChecksumAlg  string    `json:"ckalg,omitempty"`
	ChecksumType string    `json:"cktype,omitempty"`
	Completed    time.Time `json:"completed"`
	Versioned    bool      `json:"versioned,omitempty"`
}

func uploadKey(bucket, key string, id versionID) []byte {
	// versionKey inverts the ID; inverting it first stores it as is, so
	// uploads of a key sort oldest first and splitVersionKey reads them.
	var inv versionID
	for i, c := range id {
		inv[i] = ^c
	}
	return versionKey(bucket, key, inv)
}

func partKey(id versionID, n int) []byte {
	return binary.BigEndian.AppendUint32(bytes.Clone(id[:]), uint32(n))
}

// UploadInput starts a multipart upload; Template carries the content
// headers, metadata, tags and storage class of the object to be.
type UploadInput struct {
	Bucket, Key       string
	Owner             string
	Template          Version
	ChecksumAlgorithm checksum.Algorithm
	ChecksumType      string
}

// CreateUpload starts a multipart upload.
func (s *Store) CreateUpload(ctx context.Context, in *UploadInput) (*Upload, error) {
	if err := ValidateKey(in.Key); err != nil {
		return nil, err
	}
	if err := validateMetadata(in.Template.Metadata); err != nil {
		return nil, err
	}
	ct := in.ChecksumType
	switch {
	case in.ChecksumAlgorithm == "" && ct != "":
		return nil, fmt.Errorf("%w: a checksum type needs a checksum algorithm", ErrInvalidRequest)
	case in.ChecksumAlgorithm != "" && ct == "":
		ct = ChecksumTypeComposite
		if in.ChecksumAlgorithm == checksum.CRC64NVME {
			ct = ChecksumTypeFullObject // the only type S3 allows for it
		}
	case ct == ChecksumTypeFullObject && !in.ChecksumAlgorithm.IsCRC():
		return nil, fmt.Errorf("%w: FULL_OBJECT checksums need a CRC algorithm, not %s", ErrInvalidRequest, in.ChecksumAlgorithm)
	case ct == ChecksumTypeComposite && in.ChecksumAlgorithm == checksum.CRC64NVME:
		return nil, fmt.Errorf("%w: CRC64NVME supports only the FULL_OBJECT checksum type", ErrInvalidRequest)
	case ct != "" && ct != ChecksumTypeComposite && ct != ChecksumTypeFullObject:
		return nil, fmt.Errorf("%w: checksum type %q", ErrInvalidRequest, ct)
	}
	// An upload is data on its way: refused at its start rather than at
	// its first part.
	release, err := s.space.Admit(0)
	if err != nil {
		return nil, fmt.Errorf("create multipart upload %q: %w", in.Key, err)
	}
	release()
	tmpl := in.Template
	u := &Upload{
		Bucket: in.Bucket, Key: in.Key, Owner: in.Owner, StorageClass: tmpl.StorageClass,
		ChecksumAlgorithm: string(in.ChecksumAlgorithm), ChecksumType: ct, Template: &tmpl,
	}
	err = s.update(ctx, func(tx meta.Tx) error {
		if _, err := getBucket(tx, in.Bucket); err != nil {
			return err
		}
		u.id = s.ids.next(s.now())
		u.UploadID, u.Initiated = u.id.String(), u.id.time().UTC()
		raw, err := json.Marshal(u)
		if err != nil {
			return err
		}
		return tx.Put(spaceUploads, uploadKey(in.Bucket, in.Key, u.id), raw)
	})
	if err != nil {
		return nil, fmt.Errorf("create multipart upload %q: %w", in.Key, err)
	}
	return u, nil
}

func getUpload(tx meta.Tx, bucket, key, uploadID string) (*Upload, error) {
	if _, err := getBucket(tx, bucket); err != nil {
		return nil, err
	}
	id, err := parseVersionID(uploadID)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchUpload, uploadID)
	}
	raw := tx.Get(spaceUploads, uploadKey(bucket, key, id))
	if raw == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchUpload, uploadID)
	}
	u := &Upload{}
	if err := json.Unmarshal(raw, u); err != nil {
		return nil, fmt.Errorf("decode upload %s: %w", uploadID, err)
	}
	u.Bucket, u.Key, u.UploadID, u.id = bucket, key, uploadID, id
	return u, nil
}

// GetUpload returns an upload in progress.
func (s *Store) GetUpload(ctx context.Context, bucket, key, uploadID string) (*Upload, error) {
	var u *Upload
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		u, err = getUpload(tx, bucket, key, uploadID)
		return err
	})
	return u, err
}

// PartInput is one part's data.
type PartInput struct {
	Bucket, Key, UploadID string
	Number                int
	Body                  io.Reader
	Size                  int64
	ExpectedMD5           []byte
	ChecksumAlgorithm     checksum.Algorithm
	ExpectedChecksum      func() (string, bool)
}

// UploadPart stores a part, replacing any earlier part with the same number.
// Part data is durable before the part is recorded, as for objects.
func (s *Store) UploadPart(ctx context.Context, in *PartInput) (*Part, error) {
	if in.Number < 1 || in.Number > MaxParts {
		return nil, fmt.Errorf("%w: part number must be an integer between 1 and %d, inclusive", ErrInvalidArgument, MaxParts)
	}
	u, err := s.GetUpload(ctx, in.Bucket, in.Key, in.UploadID)
	if err != nil {
		return nil, err
	}
	alg := checksum.Algorithm(u.ChecksumAlgorithm)
	if in.ChecksumAlgorithm != "" && alg != "" && in.ChecksumAlgorithm != alg {
		return nil, fmt.Errorf("%w: the upload was created with %s, the part sends %s", ErrInvalidRequest, alg, in.ChecksumAlgorithm)
	}
	if alg == "" {
		alg = in.ChecksumAlgorithm
	}
	release, err := s.space.Admit(max(in.Size, 0))
	if err != nil {
		return nil, fmt.Errorf("upload part %d: %w", in.Number, err)
	}
	defer release()
	cr := checksum.NewReader(in.Body, checksum.ReaderOptions{
		WantMD5: true, ExpectedMD5: in.ExpectedMD5, Algorithm: alg,
		Expected: in.ExpectedChecksum, ExpectedSize: in.Size,
	})
	p := &Part{Number: in.Number, BlobID: newBlobID()}
	if _, err := s.blobs.Create(ctx, p.BlobID, cr); err != nil {
		return nil, fmt.Errorf("upload part %d: %w", in.Number, err)
	}
	p.Size, p.ETag = cr.Size(), hex.EncodeToString(cr.MD5())
	if alg != "" {
		p.Checksum = cr.Checksum()
	}
	var garbage []string
	err = s.update(ctx, func(tx meta.Tx) error {
		garbage = garbage[:0]
		if _, err := getUpload(tx, in.Bucket, in.Key, in.UploadID); err != nil {
			return err
		}
		p.LastModified = s.now().UTC()
		pk := partKey(u.id, in.Number)
		if raw := tx.Get(spaceParts, pk); raw != nil {
			var old Part
			if err := json.Unmarshal(raw, &old); err != nil {
				return err
			}
			if err := tx.Delete(spaceBlobRefs, []byte(old.BlobID)); err != nil {
				return err
			}
			garbage = append(garbage, old.BlobID)
		}
		raw, err := json.Marshal(p)
		if err != nil {
			return err
		}
		if err := tx.Put(spaceParts, pk, raw); err != nil {
			return err
		}
		return tx.Put(spaceBlobRefs, []byte(p.BlobID), pk)
	})
	if err != nil {
		s.dropUncommitted(ctx, err, []string{p.BlobID})
		return nil, fmt.Errorf("upload part %d: %w", in.Number, err)
	}
	s.dropBlobs(ctx, garbage)
	return p, nil
}

func listParts(tx meta.Tx, id versionID, after, max int) ([]Part, bool, error) {
	var out []Part
	it := tx.Iter(spaceParts)
	prefix := id[:]
	for k, v := it.Seek(partKey(id, after+1)); k != nil && hasPrefix(k, prefix); k, v = it.Next() {
		if max >= 0 && len(out) == max {
			return out, true, nil
		}
		var p Part
		if err := json.Unmarshal(v, &p); err != nil {
			return nil, false, err
		}
		out = append(out, p)
	}
	return out, false, nil
}

// ListParts returns up to max parts numbered above after.
func (s *Store) ListParts(ctx context.Context, bucket, key, uploadID string, after, max int) (*Upload, []Part, bool, error) {
	var (
		u         *Upload
		parts     []Part
		truncated bool
	)
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		if u, err = getUpload(tx, bucket, key, uploadID); err != nil {
			return err
		}
		parts, truncated, err = listParts(tx, u.id, after, max)
		return err
	})
	return u, parts, truncated, err
}

// AbortUpload discards an upload and its parts.
func (s *Store) AbortUpload(ctx context.Context, bucket, key, uploadID string) error {
	var garbage []string
	err := s.update(ctx, func(tx meta.Tx) error {
		u, err := getUpload(tx, bucket, key, uploadID)
		if err != nil {
			return err
		}
		garbage, err = dropUpload(tx, u, nil)
		return err
	})
	if err != nil {
		return fmt.Errorf("abort multipart upload %s: %w", uploadID, err)
	}
	s.dropBlobs(ctx, garbage)
	return nil
}

// dropUpload deletes an upload's records, and the blob references of the
// parts not kept, returning those parts' blobs.
func dropUpload(tx meta.Tx, u *Upload, keep map[int]bool) ([]string, error) {
	parts, _, err := listParts(tx, u.id, 0, -1)
	if err != nil {
		return nil, err
	}
	var garbage []string
	for _, p := range parts {
		if err := tx.Delete(spaceParts, partKey(u.id, p.Number)); err != nil {
			return nil, err
		}
		if keep[p.Number] {
			continue
		}
		if err := tx.Delete(spaceBlobRefs, []byte(p.BlobID)); err != nil {
			return nil, err
		}
		garbage = append(garbage, p.BlobID)
	}
	return garbage, tx.Delete(spaceUploads, uploadKey(u.Bucket, u.Key, u.id))
}

// CompletedPart names a part in CompleteMultipartUpload.
type CompletedPart struct {
	Number   int
	ETag     string
	Checksum string // optional; verified when given
}

// CompleteInput completes an upload.
type CompleteInput struct {
	Bucket, Key, UploadID string
	Parts                 []CompletedPart
	// ExpectedChecksum is the whole object's checksum sent by the client
	// (x-amz-checksum-*), verified when set.
	ExpectedChecksum string
	// WriteCondition, when set, makes completing depend on the key's
	// current object. A retried complete of an upload already completed
	// returns the recorded result without evaluating it again.
	WriteCondition
}

// CompleteUpload assembles the listed parts into a new object version. The
// parts' blobs become the object's data without being copied. Completing an
// upload that was already completed returns the recorded result.
func (s *Store) CompleteUpload(ctx context.Context, in *CompleteInput) (*Version, error) {
	if len(in.Parts) == 0 {
		return nil, fmt.Errorf("%w: you must specify at least one part", ErrMalformedRequest)
	}
	for i := 1; i < len(in.Parts); i++ {
		if in.Parts[i].Number <= in.Parts[i-1].Number {
			return nil, ErrInvalidPartOrder
		}
	}
	var (
		v       *Version
		garbage []string
	)
	err := s.update(ctx, func(tx meta.Tx) error {
		garbage = garbage[:0]
		u, err := getUpload(tx, in.Bucket, in.Key, in.UploadID)
		if err != nil {
			if done := completedUpload(tx, in); done != nil {
				v = done
				return nil
			}
			return err
		}
		if err := in.check(tx, in.Bucket, in.Key); err != nil {
			return err
		}
		if v, err = assemble(tx, u, in); err != nil {
			return err
		}
		keep := map[int]bool{}
		for _, p := range v.Parts {
			keep[p.Number] = true
		}
		if garbage, err = dropUpload(tx, u, keep); err != nil {
			return err
		}
		old, err := s.placeVersion(tx, v)
		if err != nil {
			return err
		}
		garbage = append(garbage, old...)
		return recordCompleted(tx, u.id, v)
	})
	if err != nil {
		return nil, fmt.Errorf("complete multipart upload %s: %w", in.UploadID, err)
	}
	s.dropBlobs(ctx, garbage)
	return v, nil
}

// assemble checks the listed parts against the stored ones and builds the
// new version: size, ETag md5-of-part-md5s-N, and the object checksum.
func assemble(tx meta.Tx, u *Upload, in *CompleteInput) (*Version, error) {
	stored, _, err := listParts(tx, u.id, 0, -1)
	if err != nil {
		return nil, err
	}
	byNumber := make(map[int]Part, len(stored))
	for _, p := range stored {
		byNumber[p.Number] = p
	}
	v := *u.Template
	v.Bucket, v.Key, v.Owner = u.Bucket, u.Key, u.Owner
	v.ChecksumAlgorithm, v.ChecksumType = u.ChecksumAlgorithm, u.ChecksumType
	etags := md5.New()
	for i, cp := range in.Parts {
		p, ok := byNumber[cp.Number]
		if !ok || strings.Trim(cp.ETag, `"`) != p.ETag || (cp.Checksum != "" && cp.Checksum != p.Checksum) {
			return nil, fmt.Errorf("%w: part %d", ErrInvalidPart, cp.Number)
		}
		if i < len(in.Parts)-1 && p.Size < MinPartSize {
			return nil, fmt.Errorf("%w: part %d is %d bytes", ErrEntityTooSmall, p.Number, p.Size)
		}
		raw, _ := hex.DecodeString(p.ETag)
		etags.Write(raw)
		v.Size += p.Size
		v.Parts = append(v.Parts, PartRef{Number: p.Number, Size: p.Size, ETag: p.ETag, BlobID: p.BlobID, Checksum: p.Checksum})
	}
	v.ETag = fmt.Sprintf("%x-%d", etags.Sum(nil), len(in.Parts))
	if u.ChecksumAlgorithm != "" {
		if v.Checksum, err = objectChecksum(checksum.Algorithm(u.ChecksumAlgorithm), u.ChecksumType, v.Parts); err != nil {
			return nil, err
		}
		if in.ExpectedChecksum != "" && in.ExpectedChecksum != v.Checksum {
			return nil, fmt.Errorf("%w: the %s you specified did not match the calculated checksum", ErrChecksumMismatch, u.ChecksumAlgorithm)
		}
	}
	return &v, nil
}

// objectChecksum computes a multipart object's checksum as S3 does:
// COMPOSITE is the checksum of the parts' raw checksums with "-N";
// FULL_OBJECT combines the parts' CRCs into the CRC of the whole data.
func objectChecksum(alg checksum.Algorithm, typ string, parts []PartRef) (string, error) {
	var combined []byte
	h := alg.New()
	for _, p := range parts {
		raw, err := alg.Decode(p.Checksum)
		if err != nil {
			return "", fmt.Errorf("%w: part %d has no %s checksum", ErrInvalidPart, p.Number, alg)
		}
		if typ == ChecksumTypeFullObject {
			if combined == nil {
				combined = raw
			} else if combined, err = checksum.Combine(alg, combined, raw, p.Size); err != nil {
				return "", err
			}
			continue
		}
		h.Write(raw)
	}
	if typ == ChecksumTypeFullObject {
		return checksum.Encode(combined), nil
	}
	return fmt.Sprintf("%s-%d", checksum.Encode(h.Sum(nil)), len(parts)), nil
}

func recordCompleted(tx meta.Tx, id versionID, v *Version) error {
	raw, err := json.Marshal(CompletedUpload{
		Bucket: v.Bucket, Key: v.Key, VersionID: v.VersionID, ETag: v.ETag,
		Checksum: v.Checksum, ChecksumAlg: v.ChecksumAlgorithm, ChecksumType: v.ChecksumType,
		Completed: v.LastModified, Versioned: v.BucketVersioned,
	})
	if err != nil {
		return err
	}
	return tx.Put(spaceCompleted, id[:], raw)
}

// completedUpload answers a retried complete from the record of the first.
func completedUpload(tx meta.Tx, in *CompleteInput) *Version {
	id, err := parseVersionID(in.UploadID)
	if err != nil {
		return nil
	}
	raw := tx.Get(spaceCompleted, id[:])
	var c CompletedUpload
	if raw == nil || json.Unmarshal(raw, &c) != nil || c.Bucket != in.Bucket || c.Key != in.Key {
		return nil
	}
	return &Version{
		Bucket: c.Bucket, Key: c.Key, VersionID: c.VersionID, ETag: c.ETag, LastModified: c.Completed,
		Checksum: c.Checksum, ChecksumAlgorithm: c.ChecksumAlg, ChecksumType: c.ChecksumType,
		Null: c.VersionID == nullVersion, BucketVersioned: c.Versioned,
	}
}
