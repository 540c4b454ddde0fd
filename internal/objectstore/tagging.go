package objectstore

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"unicode"
	"unicode/utf16"

	"github.com/bulwark/bulwark/internal/meta"
)

// S3's limits on tags. Lengths count UTF-16 code units, because S3 keeps
// tags in UTF-16: a character outside the Basic Multilingual Plane counts
// twice.
const (
	MaxObjectTags     = 10
	MaxBucketTags     = 50
	MaxTagKeyLength   = 128
	MaxTagValueLength = 256
)

// Tag is one key-value pair as a client sent it, before duplicates are known.
type Tag struct{ Key, Value string }

// TagError refuses a tag set. Kind is ErrInvalidTag or ErrTooManyTags; the
// text is worded as S3 words it, because clients show it to people who
// compare it with S3's documentation.
type TagError struct {
	Kind   error
	Reason string
}

func (e *TagError) Error() string { return e.Reason }
func (e *TagError) Unwrap() error { return e.Kind }

func invalidTag(reason string) error { return &TagError{Kind: ErrInvalidTag, Reason: reason} }

// TagMap turns a list of tags into a tag set of at most limit tags,
// refusing duplicate keys and tags S3 would refuse.
func TagMap(tags []Tag, limit int) (map[string]string, error) {
	if err := checkTagCount(len(tags), limit); err != nil {
		return nil, err
	}
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		if err := checkTag(t.Key, t.Value); err != nil {
			return nil, err
		}
		if _, dup := m[t.Key]; dup {
			return nil, invalidTag("Cannot provide multiple Tags with the same key")
		}
		m[t.Key] = t.Value
	}
	return m, nil
}

// ValidateTags checks a tag set against S3's rules for a set of at most
// limit tags.
func ValidateTags(tags map[string]string, limit int) error {
	if err := checkTagCount(len(tags), limit); err != nil {
		return err
	}
	for k, v := range tags {
		if err := checkTag(k, v); err != nil {
			return err
		}
	}
	return nil
}

// checkTagCount refuses more than limit tags. S3 words the object and the
// bucket limit differently, and the limit tells which set is checked.
func checkTagCount(n, limit int) error {
	if n <= limit {
		return nil
	}
	if limit == MaxObjectTags {
		return &TagError{Kind: ErrTooManyTags, Reason: fmt.Sprintf("Object tags cannot be greater than %d", limit)}
	}
	return &TagError{Kind: ErrTooManyTags, Reason: fmt.Sprintf("Bucket tag count cannot be greater than %d", limit)}
}

func checkTag(k, v string) error {
	switch {
	case k == "" || !tagText(k):
		return invalidTag("The TagKey you have provided is invalid")
	case utf16Len(k) > MaxTagKeyLength:
		return invalidTag(fmt.Sprintf("The TagKey you have provided is too long, max %d", MaxTagKeyLength))
	case !tagText(v):
		return invalidTag("The TagValue you have provided is invalid")
	case utf16Len(v) > MaxTagValueLength:
		return invalidTag(fmt.Sprintf("The TagValue you have provided is too long, max %d", MaxTagValueLength))
	case strings.HasPrefix(k, "aws:"):
		// AWS assigns these itself.
		return invalidTag("Your TagKey cannot be prefixed with aws:")
	}
	return nil
}

// tagText reports whether s holds only what AWS allows in tags: Unicode
// letters, numbers and separators, and _ . : / = + - @.
func tagText(s string) bool {
	for _, r := range s {
		switch {
		case unicode.IsLetter(r), unicode.IsNumber(r), unicode.In(r, unicode.Z):
		case strings.ContainsRune("_.:/=+-@", r):
		default:
			return false
		}
	}
	return true
}

func utf16Len(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// SetTags replaces the tags of a version (the latest when versionID is
// empty); nil or empty tags remove them. The record is rewritten in place,
// keeping its version ID and data, and a ChangeTags record is appended in
// the same transaction. A refused tag set is returned as a *TagError.
func (s *Store) SetTags(ctx context.Context, bucket, key, versionID string, tags map[string]string) (*Version, error) {
	return s.setTags(ctx, bucket, key, versionID, tags, "")
}

func (s *Store) setTags(ctx context.Context, bucket, key, versionID string, tags map[string]string, origin string) (*Version, error) {
	if err := ValidateTags(tags, MaxObjectTags); err != nil {
		return nil, err
	}
	if len(tags) == 0 {
		tags = nil
	} else {
		tags = maps.Clone(tags)
	}
	var v *Version
	err := s.update(ctx, func(tx meta.Tx) error {
		var err error
		if v, err = resolve(tx, bucket, key, versionID); err != nil {
			return err
		}
		v.Tags = tags
		raw, err := encodeVersion(v)
		if err != nil {
			return err
		}
		if err := tx.Put(spaceVersions, versionKey(v.Bucket, v.Key, v.id), raw); err != nil {
			return err
		}
		return appendChange(tx, &Change{
			Bucket: bucket, Key: key, VersionID: v.VersionID,
			Kind: ChangeTags, Size: v.Size, Time: s.now().UTC(), Origin: origin,
		})
	})
	if err != nil {
		return nil, fmt.Errorf("set tags of %q: %w", key, err)
	}
	return v, nil
}

// SetBucketTags replaces a bucket's tags; nil or empty tags remove them.
// A refused tag set is returned as a *TagError.
func (s *Store) SetBucketTags(ctx context.Context, name string, tags map[string]string) error {
	if err := ValidateTags(tags, MaxBucketTags); err != nil {
		return err
	}
	if len(tags) == 0 {
		tags = nil
	} else {
		tags = maps.Clone(tags)
	}
	return s.update(ctx, func(tx meta.Tx) error {
		b, err := getBucket(tx, name)
		if err != nil {
			return err
		}
		b.Tags = tags
		return putBucket(tx, b)
	})
}
