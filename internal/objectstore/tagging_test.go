package objectstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestTagRules(t *testing.T) {
	eleven := make([]Tag, 11)
	for i := range eleven {
		eleven[i] = Tag{Key: fmt.Sprint("k", i)}
	}
	for _, tc := range []struct {
		name string
		tags []Tag
		kind error
		text string
	}{
		{"eleven", eleven, ErrTooManyTags, "Object tags cannot be greater than 10"},
		{"long key", []Tag{{strings.Repeat("k", 129), ""}}, ErrInvalidTag, "The TagKey you have provided is too long, max 128"},
		{"long value", []Tag{{"k", strings.Repeat("v", 257)}}, ErrInvalidTag, "The TagValue you have provided is too long, max 256"},
		// 65 characters outside the BMP are 130 UTF-16 code units.
		{"long in utf-16", []Tag{{strings.Repeat("𠀀", 65), ""}}, ErrInvalidTag, "The TagKey you have provided is too long, max 128"},
		{"duplicate", []Tag{{"k", "1"}, {"k", "2"}}, ErrInvalidTag, "Cannot provide multiple Tags with the same key"},
		{"aws prefix", []Tag{{"aws:owner", "x"}}, ErrInvalidTag, "Your TagKey cannot be prefixed with aws:"},
		{"empty key", []Tag{{"", "x"}}, ErrInvalidTag, "The TagKey you have provided is invalid"},
		{"bad key char", []Tag{{"a*b", "x"}}, ErrInvalidTag, "The TagKey you have provided is invalid"},
		{"bad value char", []Tag{{"k", "{x}"}}, ErrInvalidTag, "The TagValue you have provided is invalid"},
	} {
		_, err := TagMap(tc.tags, MaxObjectTags)
		if !errors.Is(err, tc.kind) || err.Error() != tc.text {
			t.Errorf("%s: %v, want %v %q", tc.name, err, tc.kind, tc.text)
		}
	}
	ok := []Tag{{strings.Repeat("k", 128), strings.Repeat("v", 256)}, {"Ünïcødé key 1", ""}, {"a_b.c:d/e=f+g-h@i", "j k"}}
	for i := 3; i < MaxObjectTags; i++ {
		ok = append(ok, Tag{Key: fmt.Sprint("t", i), Value: "v"})
	}
	if m, err := TagMap(ok, MaxObjectTags); err != nil || len(m) != MaxObjectTags {
		t.Fatalf("valid tags: %v %v", m, err)
	}
	if err := ValidateTags(map[string]string{"k": "v"}, MaxBucketTags); err != nil {
		t.Fatal(err)
	}
}

func TestSetTags(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.CreateBucket(ctx, "bkt", "o", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "bkt", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	v1 := put(t, s, "bkt", "k", "first version, kept in a blob")
	v2 := put(t, s, "bkt", "k", "small")
	before, _ := s.FeedStats(ctx)

	// Tagging an old version rewrites it in place: same ID, same data.
	got, err := s.SetTags(ctx, "bkt", "k", v1.VersionID, map[string]string{"a": "1"})
	if err != nil || got.VersionID != v1.VersionID || got.IsLatest {
		t.Fatalf("tag old version: %+v %v", got, err)
	}
	if data, _ := read(t, s, "bkt", "k", v1.VersionID); data != "first version, kept in a blob" {
		t.Fatalf("old version data %q", data)
	}
	h, _ := s.HeadObject(ctx, "bkt", "k", v1.VersionID)
	if h.Tags["a"] != "1" || h.ETag != v1.ETag || h.BlobID != v1.BlobID {
		t.Fatalf("after tagging: %+v", h)
	}
	// The latest, inline version keeps its data too.
	if _, err := s.SetTags(ctx, "bkt", "k", "", map[string]string{"b": "2"}); err != nil {
		t.Fatal(err)
	}
	if data, _ := read(t, s, "bkt", "k", ""); data != "small" {
		t.Fatalf("latest data %q", data)
	}
	if _, err := s.SetTags(ctx, "bkt", "k", v2.VersionID, nil); err != nil {
		t.Fatal(err)
	}
	if h, _ := s.HeadObject(ctx, "bkt", "k", ""); h.Tags != nil {
		t.Fatalf("tags after removal: %v", h.Tags)
	}
	ch, _ := s.Changes(ctx, before.Last, 10)
	if len(ch) != 3 || ch[0].Kind != ChangeTags || ch[0].VersionID != v1.VersionID || ch[2].VersionID != v2.VersionID {
		t.Fatalf("changes: %+v", ch)
	}

	// Refusals: bad tags, a delete marker, no such key or version.
	if _, err := s.SetTags(ctx, "bkt", "k", "", map[string]string{"aws:x": "1"}); !errors.Is(err, ErrInvalidTag) {
		t.Fatalf("aws: tag: %v", err)
	}
	dm, _ := s.DeleteObject(ctx, "bkt", "k", "")
	if _, err := s.SetTags(ctx, "bkt", "k", dm.VersionID, nil); !errors.Is(err, ErrMethodNotAllowed) {
		t.Fatalf("tag a delete marker: %v", err)
	}
	if _, err := s.SetTags(ctx, "bkt", "k", "", nil); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("tag behind a delete marker: %v", err)
	}
	if _, err := s.SetTags(ctx, "bkt", "none", "", nil); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("tag missing key: %v", err)
	}
	if _, err := s.SetTags(ctx, "bkt", "k", "0036000000000000000000000A", nil); !errors.Is(err, ErrNoSuchVersion) {
		t.Fatalf("tag missing version: %v", err)
	}
	after, _ := s.FeedStats(ctx)
	if after.Last != before.Last+4 { // three tag changes and the marker
		t.Fatalf("refusals changed the feed: %d -> %d", before.Last, after.Last)
	}
}

func TestBucketTags(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.CreateBucket(ctx, "bkt", "o", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBucketTags(ctx, "bkt", map[string]string{"team": "storage"}); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Bucket(ctx, "bkt"); b.Tags["team"] != "storage" || b.Owner != "o" {
		t.Fatalf("bucket %+v", b)
	}
	many := map[string]string{}
	for i := range MaxBucketTags + 1 {
		many[fmt.Sprint("k", i)] = ""
	}
	if err := s.SetBucketTags(ctx, "bkt", many); !errors.Is(err, ErrTooManyTags) || err.Error() != "Bucket tag count cannot be greater than 50" {
		t.Fatalf("51 tags: %v", err)
	}
	if err := s.SetBucketTags(ctx, "bkt", nil); err != nil {
		t.Fatal(err)
	}
	if b, _ := s.Bucket(ctx, "bkt"); b.Tags != nil {
		t.Fatalf("tags after removal: %v", b.Tags)
	}
	if err := s.SetBucketTags(ctx, "missing", nil); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("missing bucket: %v", err)
	}
}
