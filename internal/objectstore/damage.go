package objectstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/meta"
)

// Stored data can rot where it lies: a flipped bit, a truncated or lost
// file. Every version records what its data must hash to (the MD5 that is
// its ETag, or each part's), so the data can be checked long after it was
// written (VerifyVersion), a version found damaged is marked so that reads
// refuse it rather than return wrong bytes (MarkDamaged), and its data can
// be replaced by a good copy, checked against the same MD5 before it is
// committed (RepairData).

// ErrDamaged is a read of a version whose stored data was found damaged
// and not repaired yet.
var ErrDamaged = errors.New("stored data is damaged")

// Damage kinds.
const (
	DamageCorrupt = "corrupt" // the data does not hash to what was recorded
	DamageMissing = "missing" // the data is gone, or shorter or longer than recorded
)

// DamageError says what is wrong with a version's data.
type DamageError struct {
	Kind string // DamageCorrupt or DamageMissing
	Part int    // the part (1-based) of a multipart object; 0 for the whole
	Why  string
}

func (e *DamageError) Error() string {
	if e.Part > 0 {
		return fmt.Sprintf("%s: part %d: %s", e.Kind, e.Part, e.Why)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Why)
}

// Pieces are the units a version's data is checked and repaired in: the
// whole object (part 0), or each part of a multipart object.
func (v *Version) pieces() []PartRef {
	if len(v.Parts) > 0 {
		return v.Parts
	}
	return []PartRef{{Number: 0, Size: v.Size, ETag: v.ETag, BlobID: v.BlobID}}
}

// HasData reports whether the version holds data to check: not a delete
// marker, not empty.
func (v *Version) HasData() bool { return !v.DeleteMarker && v.Size > 0 }

// VerifyVersion reads v's stored data and checks every piece's size and
// MD5 against the record. It returns a *DamageError when the data is
// damaged, another error when it could not be read (a cancelled context),
// nil when it is sound. pace, when set, is called with the bytes about to
// be read, to keep the reads under a rate.
func (s *Store) VerifyVersion(ctx context.Context, v *Version, pace func(n int) error) error {
	if !v.HasData() {
		return nil
	}
	if len(v.Parts) == 0 && v.BlobID == "" {
		if int64(len(v.inline)) != v.Size {
			return &DamageError{Kind: DamageMissing, Why: fmt.Sprintf("inline data is %d bytes, recorded %d", len(v.inline), v.Size)}
		}
		if sum := md5.Sum(v.inline); hex.EncodeToString(sum[:]) != v.ETag {
			return &DamageError{Kind: DamageCorrupt, Why: "inline data does not match its ETag"}
		}
		return nil
	}
	buf := make([]byte, 256<<10)
	for _, p := range v.pieces() {
		if err := s.verifyBlob(ctx, p, buf, pace); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) verifyBlob(ctx context.Context, p PartRef, buf []byte, pace func(int) error) error {
	o, err := s.blobs.Open(ctx, p.BlobID)
	if errors.Is(err, blob.ErrNotFound) {
		return &DamageError{Kind: DamageMissing, Part: p.Number, Why: "blob " + p.BlobID + " is gone"}
	}
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", p.BlobID, err)
	}
	defer o.Close()
	h := md5.New()
	var n int64
	for {
		if pace != nil {
			if err := pace(len(buf)); err != nil {
				return err
			}
		}
		m, err := o.Read(buf)
		h.Write(buf[:m])
		n += int64(m)
		if err == io.EOF {
			break
		}
		if err != nil {
			// An I/O error reading the file is damage too: the data
			// cannot be served.
			return &DamageError{Kind: DamageMissing, Part: p.Number, Why: fmt.Sprintf("blob %s: read: %v", p.BlobID, err)}
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if n != p.Size {
		return &DamageError{Kind: DamageMissing, Part: p.Number, Why: fmt.Sprintf("blob %s holds %d bytes, recorded %d", p.BlobID, n, p.Size)}
	}
	if hex.EncodeToString(h.Sum(nil)) != p.ETag {
		return &DamageError{Kind: DamageCorrupt, Part: p.Number, Why: fmt.Sprintf("blob %s does not match its MD5 %s", p.BlobID, p.ETag)}
	}
	return nil
}

// MarkDamaged records on a version that its data is damaged (why; ""
// clears the mark). Reads of a marked version answer ErrDamaged. The mark
// is the region's own finding, not a change of the object: it makes no
// change record and is never replicated.
func (s *Store) MarkDamaged(ctx context.Context, bucket, key, versionID, why string) error {
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		v, vk, err := versionTx(tx, bucket, key, versionID)
		if err != nil || v.Damaged == why {
			return err
		}
		v.Damaged = why
		enc, err := encodeVersion(v)
		if err != nil {
			return err
		}
		return tx.Put(spaceVersions, vk, enc)
	})
}

// versionTx reads a version record by ID ("null" included) inside tx.
func versionTx(tx meta.Tx, bucket, key, versionID string) (*Version, []byte, error) {
	id, err := findVersionID(tx, bucket, key, versionID)
	if err != nil {
		return nil, nil, err
	}
	vk := versionKey(bucket, key, id)
	raw := tx.Get(spaceVersions, vk)
	if raw == nil {
		return nil, nil, fmt.Errorf("%w: %s/%s %s", ErrNoSuchVersion, bucket, key, versionID)
	}
	v, err := decodeVersion(bucket, vk, raw)
	return v, vk, err
}

// RepairData replaces the stored data of one piece of a version (part,
// 0 for a single-part object) with what r yields, provided it has the
// recorded size and MD5: the new blob is made durable, then the record
// and the blob's reference are switched to it in one transaction, and the
// old blob is dropped. Nothing changes when the data does not match; the
// error then wraps ErrChecksumMismatch. It does not clear the damage mark:
// the caller verifies the whole version again first.
func (s *Store) RepairData(ctx context.Context, bucket, key, versionID string, part int, r io.Reader) error {
	var v *Version
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		v, _, err = versionTx(tx, bucket, key, versionID)
		return err
	})
	if err != nil {
		return err
	}
	var piece *PartRef
	for _, p := range v.pieces() {
		if p.Number == part {
			piece = &p
		}
	}
	if piece == nil || !v.HasData() {
		return fmt.Errorf("%w: %s/%s %s has no part %d", ErrInvalidArgument, bucket, key, versionID, part)
	}
	if piece.BlobID == "" {
		return s.repairInline(ctx, v, r)
	}
	h := md5.New()
	newID := newBlobID()
	n, err := s.blobs.Create(ctx, newID, io.TeeReader(io.LimitReader(r, piece.Size+1), h))
	if err != nil {
		return fmt.Errorf("repair %s/%s %s: %w", bucket, key, versionID, err)
	}
	if n != piece.Size || hex.EncodeToString(h.Sum(nil)) != piece.ETag {
		s.dropBlobs(ctx, []string{newID})
		return fmt.Errorf("repair %s/%s %s part %d: %w: the copy has %d bytes and another MD5", bucket, key, versionID, part, ErrChecksumMismatch, n)
	}
	var old string
	err = s.meta.Update(ctx, func(tx meta.Tx) error {
		cur, vk, err := versionTx(tx, bucket, key, versionID)
		if err != nil {
			return err
		}
		switch {
		case part == 0 && len(cur.Parts) == 0:
			old, cur.BlobID = cur.BlobID, newID
		case part > 0 && part <= len(cur.Parts) && cur.Parts[part-1].Number == part:
			old, cur.Parts[part-1].BlobID = cur.Parts[part-1].BlobID, newID
		default:
			return fmt.Errorf("%w: %s/%s %s changed while it was repaired", ErrInvalidRequest, bucket, key, versionID)
		}
		enc, err := encodeVersion(cur)
		if err != nil {
			return err
		}
		if err := tx.Put(spaceVersions, vk, enc); err != nil {
			return err
		}
		if err := tx.Delete(spaceBlobRefs, []byte(old)); err != nil {
			return err
		}
		return tx.Put(spaceBlobRefs, []byte(newID), vk)
	})
	if err != nil {
		s.dropUncommitted(ctx, err, []string{newID})
		return fmt.Errorf("repair %s/%s %s: %w", bucket, key, versionID, err)
	}
	s.dropBlobs(ctx, []string{old})
	return nil
}

// repairInline replaces the data of a version kept inline in its record.
func (s *Store) repairInline(ctx context.Context, v *Version, r io.Reader) error {
	data, err := io.ReadAll(io.LimitReader(r, v.Size+1))
	if err != nil {
		return err
	}
	if sum := md5.Sum(data); int64(len(data)) != v.Size || hex.EncodeToString(sum[:]) != v.ETag {
		return fmt.Errorf("repair %s/%s %s: %w", v.Bucket, v.Key, v.VersionID, ErrChecksumMismatch)
	}
	return s.meta.Update(ctx, func(tx meta.Tx) error {
		cur, vk, err := versionTx(tx, v.Bucket, v.Key, v.VersionID)
		if err != nil {
			return err
		}
		if cur.BlobID != "" || len(cur.Parts) > 0 || !bytes.Equal([]byte(cur.ETag), []byte(v.ETag)) {
			return fmt.Errorf("%w: %s/%s %s changed while it was repaired", ErrInvalidRequest, v.Bucket, v.Key, v.VersionID)
		}
		cur.inline = data
		enc, err := encodeVersion(cur)
		if err != nil {
			return err
		}
		return tx.Put(spaceVersions, vk, enc)
	})
}

// VersionRecord returns a version's record by ID, "null" included, delete
// markers and damaged versions too.
func (s *Store) VersionRecord(ctx context.Context, bucket, key, versionID string) (*Version, error) {
	var v *Version
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		v, _, err = versionTx(tx, bucket, key, versionID)
		return err
	})
	return v, err
}

// CheckMetadata checks the structure of the metadata store where the
// store can (meta.Checker); nil when it cannot.
func (s *Store) CheckMetadata(ctx context.Context) error {
	if c, ok := s.meta.(meta.Checker); ok {
		return c.Check(ctx)
	}
	return nil
}

// PieceReader returns the stored data of one piece of a version (part, 0
// for a single-part object), for another region repairing its copy.
func (s *Store) PieceReader(ctx context.Context, v *Version, part int) (io.ReadCloser, error) {
	for _, p := range v.pieces() {
		if p.Number != part {
			continue
		}
		if p.BlobID == "" {
			return io.NopCloser(bytes.NewReader(v.inline)), nil
		}
		o, err := s.blobs.Open(ctx, p.BlobID)
		if err != nil {
			return nil, fmt.Errorf("read %s/%s %s part %d: %w", v.Bucket, v.Key, v.VersionID, part, err)
		}
		return o, nil
	}
	return nil, fmt.Errorf("%w: %s/%s %s has no part %d", ErrInvalidArgument, v.Bucket, v.Key, v.VersionID, part)
}
