package objectstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"

	"github.com/bulwark/bulwark/internal/checksum"
)

// MaxCopySize is S3's limit on a source copied in one request.
const MaxCopySize = 5 << 30

// CopyInput describes a copy of one version into a new version.
type CopyInput struct {
	SrcBucket, SrcKey string
	// SrcVersionID names the source version; empty means the latest.
	SrcVersionID string
	// Check, when set, sees the source version before any data is copied;
	// an error it returns ends the copy. Copy conditions go here.
	Check func(src *Version) error

	// Dst names the new version and its owner. Its Body, Size and expected
	// digests are ignored: the data is the source's.
	Dst PutInput
	// ReplaceMetadata takes content headers and user metadata from Dst
	// instead of the source; ReplaceTags takes Dst.Tags instead of the
	// source's tags. The storage class always comes from Dst, as in S3.
	ReplaceMetadata, ReplaceTags bool
}

// CopyObject copies a version's data into a new version, streaming it
// through the same write path as PutObject. The source's checksum
// algorithm is kept unless Dst names another, and the data is verified
// against the source's MD5 and checksum on the way. It returns the new
// version and the source.
func (s *Store) CopyObject(ctx context.Context, in *CopyInput) (dst, src *Version, err error) {
	src, body, err := s.GetObject(ctx, in.SrcBucket, in.SrcKey, in.SrcVersionID)
	if err != nil {
		var dm *DeleteMarkerError
		if errors.As(err, &dm) && errors.Is(err, ErrMethodNotAllowed) {
			return nil, nil, fmt.Errorf("copy %q version %s: %w", in.SrcKey, in.SrcVersionID, ErrCopyFromDeleteMarker)
		}
		return nil, nil, err
	}
	defer body.Close()
	if in.Check != nil {
		if err := in.Check(src); err != nil {
			return nil, src, err
		}
	}
	if src.Size > MaxCopySize {
		return nil, src, fmt.Errorf("%w: %d bytes, limit %d", ErrCopySourceTooLarge, src.Size, int64(MaxCopySize))
	}
	put := copyPutInput(in, src)
	if put.Bucket == src.Bucket && put.Key == src.Key && src.IsLatest &&
		!in.ReplaceMetadata && put.StorageClass == src.StorageClass {
		return nil, src, fmt.Errorf("copy %q: %w", src.Key, ErrCopyToItself)
	}
	put.Body, put.Size = body, src.Size
	v, err := s.PutObject(ctx, put)
	if errors.Is(err, checksum.ErrBadDigest) || errors.Is(err, checksum.ErrChecksumMismatch) {
		// The source's data no longer matches what was recorded for it:
		// damage in storage, not a fault of the request.
		return nil, src, fmt.Errorf("copy %q: source data does not match its digests: %v", src.Key, err)
	}
	if err != nil {
		return nil, src, err
	}
	return v, src, nil
}

// copyPutInput builds the PutInput of a copy from the request and the
// source, following the metadata and tagging directives.
func copyPutInput(in *CopyInput, src *Version) *PutInput {
	put := in.Dst
	put.ExpectedMD5, put.ExpectedChecksum = nil, nil
	if !in.ReplaceMetadata {
		put.ContentType = src.ContentType
		put.ContentEncoding = src.ContentEncoding
		put.ContentDisposition = src.ContentDisposition
		put.ContentLanguage = src.ContentLanguage
		put.CacheControl = src.CacheControl
		put.Expires = src.Expires
		put.Metadata = maps.Clone(src.Metadata)
	}
	if !in.ReplaceTags {
		put.Tags = maps.Clone(src.Tags)
	}
	if put.ChecksumAlgorithm == "" {
		put.ChecksumAlgorithm = checksum.Algorithm(src.ChecksumAlgorithm)
	}
	// A multipart source's ETag and checksum describe its parts, not the
	// whole; only a single-part source can be verified against them.
	if md5, err := hex.DecodeString(src.ETag); err == nil && len(md5) == 16 {
		put.ExpectedMD5 = md5
		if src.Checksum != "" && string(put.ChecksumAlgorithm) == src.ChecksumAlgorithm {
			want := src.Checksum
			put.ExpectedChecksum = func() (string, bool) { return want, true }
		}
	}
	return &put
}
