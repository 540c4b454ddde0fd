package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta/bolt"
)

func newStore(t *testing.T) (*Store, blob.Store) {
	t.Helper()
	dir := t.TempDir()
	m, err := bolt.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	b, err := blobfs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	// A small inline limit so tests cover both the inline and blob paths.
	return New(Config{Region: "us-west-2", Meta: m, Blobs: b, InlineLimit: 8}), b
}

func put(t *testing.T, s *Store, bucket, key, data string) *Version {
	t.Helper()
	v, err := s.PutObject(context.Background(), &PutInput{Bucket: bucket, Key: key, Body: strings.NewReader(data), Size: int64(len(data))})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return v
}

func read(t *testing.T, s *Store, bucket, key, vid string) (string, error) {
	t.Helper()
	_, body, err := s.GetObject(context.Background(), bucket, key, vid)
	if err != nil {
		return "", err
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	return string(b), err
}

func countBlobs(t *testing.T, b blob.Store) int {
	n := 0
	_ = b.Walk(context.Background(), func(blob.Info) error { n++; return nil })
	return n
}

func TestVersioningTransitions(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	if err := s.CreateBucket(ctx, "bk1", "owner", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	// Unversioned: overwrites replace the null version and its blob.
	v1 := put(t, s, "bk1", "k", "first version, long enough for a blob")
	v2 := put(t, s, "bk1", "k", "second version, long enough for a blob")
	if v1.VersionID != "null" || v2.VersionID != "null" {
		t.Fatalf("unversioned ids %q %q", v1.VersionID, v2.VersionID)
	}
	if n := countBlobs(t, blobs); n != 1 {
		t.Fatalf("%d blobs after overwrite, want 1", n)
	}
	// Enabled: new IDs; the null version stays.
	if err := s.SetVersioning(ctx, "bk1", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	v3 := put(t, s, "bk1", "k", "third")
	if v3.VersionID == "null" {
		t.Fatal("enabled bucket wrote a null version")
	}
	if got, _ := read(t, s, "bk1", "k", "null"); got != "second version, long enough for a blob" {
		t.Fatalf("null version reads %q", got)
	}
	dr, err := s.DeleteObject(ctx, "bk1", "k", "")
	if err != nil || !dr.DeleteMarker || dr.VersionID == "" {
		t.Fatalf("delete: %+v %v", dr, err)
	}
	_, err = read(t, s, "bk1", "k", "")
	var dm *DeleteMarkerError
	if !errors.As(err, &dm) || !errors.Is(err, ErrNoSuchKey) || dm.VersionID != dr.VersionID {
		t.Fatalf("get after delete: %v", err)
	}
	if _, err := read(t, s, "bk1", "k", dr.VersionID); !errors.Is(err, ErrMethodNotAllowed) {
		t.Fatalf("get of the marker by id: %v", err)
	}
	if got, _ := read(t, s, "bk1", "k", v3.VersionID); got != "third" {
		t.Fatalf("old version reads %q", got)
	}
	// Suspended: a put replaces the null version, not the versioned ones.
	if err := s.SetVersioning(ctx, "bk1", VersioningSuspended); err != nil {
		t.Fatal(err)
	}
	put(t, s, "bk1", "k", "fourth, suspended, stored as a blob")
	lv, err := s.ListVersions(ctx, "bk1", ListVersionsInput{MaxKeys: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, v := range lv.Versions {
		ids = append(ids, fmt.Sprintf("%s:%v:%v", v.VersionID, v.DeleteMarker, v.IsLatest))
	}
	want := fmt.Sprintf("[null:false:true %s:true:false %s:false:false]", dr.VersionID, v3.VersionID)
	if fmt.Sprint(ids) != want {
		t.Fatalf("versions %v, want %v", ids, want)
	}
	// Deleting by version ID removes for good, delete markers included.
	for _, id := range []string{dr.VersionID, v3.VersionID, "null"} {
		if _, err := s.DeleteObject(ctx, "bk1", "k", id); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteBucket(ctx, "bk1"); err != nil {
		t.Fatalf("delete emptied bucket: %v", err)
	}
	if n := countBlobs(t, blobs); n != 0 {
		t.Fatalf("%d blobs left", n)
	}
	st, _ := s.FeedStats(ctx)
	if st.Length != 8 {
		t.Fatalf("feed length %d, want 8 (4 puts, 1 marker, 3 version deletes)", st.Length)
	}
	ch, _ := s.Changes(ctx, 0, 100)
	if ch[3].Kind != ChangeDeleteMarker || ch[0].Kind != ChangePut || ch[7].Kind != ChangeDeleteVersion {
		t.Fatalf("change kinds: %+v", ch)
	}
}

func TestListDelimiterAndPaging(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	if err := s.CreateBucket(ctx, "bkt", "o", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetVersioning(ctx, "bkt", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a", "a/1", "a/2", "b/x/1", "c", "d/1", "e"}
	for _, k := range keys {
		put(t, s, "bkt", k, k)
		put(t, s, "bkt", k, k+"-2")
	}
	if _, err := s.DeleteObject(ctx, "bkt", "c", ""); err != nil {
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		r, err := s.ListObjects(ctx, "bkt", ListInput{Delimiter: "/", After: after, MaxKeys: 2})
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range r.Objects {
			got = append(got, o.Key)
		}
		got = append(got, r.CommonPrefixes...)
		if !r.IsTruncated {
			break
		}
		after = r.Next
	}
	if fmt.Sprint(got) != "[a a/ b/ d/ e]" {
		t.Fatalf("paged listing %v", got)
	}
	var vs []string
	km, vm := "", ""
	for {
		r, err := s.ListVersions(ctx, "bkt", ListVersionsInput{Prefix: "a", KeyMarker: km, VersionIDMarker: vm, MaxKeys: 3})
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range r.Versions {
			vs = append(vs, fmt.Sprintf("%s:%v", v.Key, v.IsLatest))
		}
		if !r.IsTruncated {
			break
		}
		km, vm = r.NextKeyMarker, r.NextVersionIDMarker
	}
	if fmt.Sprint(vs) != "[a:true a:false a/1:true a/1:false a/2:true a/2:false]" {
		t.Fatalf("paged versions %v", vs)
	}
}

func TestVersionIDsSortByTime(t *testing.T) {
	g := newIDGen("us-west-2")
	now := time.Now()
	prev := g.next(now).String()
	for i := 0; i < 1000; i++ {
		// The clock stepping back must not break ordering.
		id := g.next(now.Add(-time.Duration(i) * time.Millisecond)).String()
		if id <= prev {
			t.Fatalf("id %s not after %s", id, prev)
		}
		if _, err := parseVersionID(id); err != nil {
			t.Fatal(err)
		}
		prev = id
	}
	if _, err := parseVersionID("../../etc"); err == nil {
		t.Fatal("bad id parsed")
	}
}

func TestOrphanSweep(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	_ = s.CreateBucket(ctx, "bkt", "o", "us-west-2")
	put(t, s, "bkt", "kept", "referenced data in a blob")
	if _, err := blobs.Create(ctx, "ORPHAN", strings.NewReader("left by a crash")); err != nil {
		t.Fatal(err)
	}
	n, err := s.SweepOrphans(ctx, 0)
	if err != nil || n != 1 {
		t.Fatalf("swept %d, %v", n, err)
	}
	if got, _ := read(t, s, "bkt", "kept", ""); got != "referenced data in a blob" {
		t.Fatal("sweeper removed a referenced blob")
	}
}

func TestBucketRules(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, bad := range []string{"ab", "Upper", "a..b", "-ab", "192.168.1.1", "xn--abc", "abc-s3alias", strings.Repeat("a", 64)} {
		if err := s.CreateBucket(ctx, bad, "o", ""); !errors.Is(err, ErrInvalidBucketName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	if err := s.CreateBucket(ctx, "elsewhere", "o", "eu-west-1"); !errors.Is(err, ErrWrongRegion) {
		t.Fatalf("other region: %v", err)
	}
	_ = s.CreateBucket(ctx, "mine", "o", "us-west-2")
	if err := s.CreateBucket(ctx, "mine", "o", "us-west-2"); !errors.Is(err, ErrBucketOwnedByYou) {
		t.Fatalf("again: %v", err)
	}
	if err := s.CreateBucket(ctx, "mine", "other", "us-west-2"); !errors.Is(err, ErrBucketExists) {
		t.Fatalf("other owner: %v", err)
	}
	put(t, s, "mine", "x", "y")
	if err := s.DeleteBucket(ctx, "mine"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete non-empty: %v", err)
	}
}

// TestVersionIDsOrderedAcrossGateways writes one key through two stores
// over one metadata store, as two gateways of a region do, the second
// with a clock a second behind: each write is still the key's newest
// version, with an ID above the one before.
func TestVersionIDsOrderedAcrossGateways(t *testing.T) {
	ctx := context.Background()
	a, b := newStore(t)
	behind := New(Config{Region: "us-west-2", Meta: a.meta, Blobs: b, InlineLimit: 8,
		Now: func() time.Time { return time.Now().Add(-time.Second) }})
	_ = a.CreateBucket(ctx, "bkt", "o", "us-west-2")
	if err := a.SetVersioning(ctx, "bkt", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	prev := ""
	for i := range 6 {
		s := a
		if i%2 == 1 {
			s = behind
		}
		data := fmt.Sprintf("write %d", i)
		v := put(t, s, "bkt", "k", data)
		if v.VersionID <= prev {
			t.Fatalf("write %d: version %s not above %s", i, v.VersionID, prev)
		}
		prev = v.VersionID
		if got, err := read(t, a, "bkt", "k", ""); err != nil || got != data {
			t.Fatalf("after write %d the key reads %q, %v", i, got, err)
		}
	}
}
