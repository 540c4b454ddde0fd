package objectstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/checksum"
)

func TestCopyObject(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	for _, b := range []string{"src", "dst"} {
		if err := s.CreateBucket(ctx, b, "o", "us-west-2"); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetVersioning(ctx, "src", VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	data := "copied data, long enough for a blob"
	v1, err := s.PutObject(ctx, &PutInput{
		Bucket: "src", Key: "k", Body: strings.NewReader(data), Size: int64(len(data)),
		ContentType: "text/plain", Metadata: map[string]string{"m": "1"}, Tags: map[string]string{"t": "1"},
		ChecksumAlgorithm: checksum.SHA256, StorageClass: "STANDARD_IA",
	})
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "src", "k", "newer")

	// A named old version, metadata and tags copied, checksum kept, storage
	// class from the request.
	dst, src, err := s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", SrcVersionID: v1.VersionID, Dst: PutInput{Bucket: "dst", Key: "c", Owner: "o2"}})
	if err != nil {
		t.Fatal(err)
	}
	if src.VersionID != v1.VersionID || dst.ETag != v1.ETag || dst.ContentType != "text/plain" || dst.Metadata["m"] != "1" ||
		dst.Tags["t"] != "1" || dst.ChecksumAlgorithm != "SHA256" || dst.Checksum != v1.Checksum || dst.StorageClass != "" || dst.Owner != "o2" {
		t.Fatalf("copy: %+v", dst)
	}
	if got, _ := read(t, s, "dst", "c", ""); got != data {
		t.Fatalf("copied data %q", got)
	}

	// Replacing metadata and tags; another checksum algorithm.
	dst, _, err = s.CopyObject(ctx, &CopyInput{
		SrcBucket: "src", SrcKey: "k", SrcVersionID: v1.VersionID, ReplaceMetadata: true, ReplaceTags: true,
		Dst: PutInput{Bucket: "dst", Key: "r", ContentType: "app/x", Tags: map[string]string{"n": "2"}, ChecksumAlgorithm: checksum.CRC32},
	})
	if err != nil || dst.ContentType != "app/x" || dst.Metadata != nil || dst.Tags["n"] != "2" || len(dst.Tags) != 1 || dst.ChecksumAlgorithm != "CRC32" {
		t.Fatalf("replace: %+v %v", dst, err)
	}

	// Onto itself: refused unless something changes.
	_, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", Dst: PutInput{Bucket: "src", Key: "k"}})
	if !errors.Is(err, ErrCopyToItself) {
		t.Fatalf("copy onto itself: %v", err)
	}
	if _, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", ReplaceMetadata: true, Dst: PutInput{Bucket: "src", Key: "k"}}); err != nil {
		t.Fatalf("copy onto itself with new metadata: %v", err)
	}
	// Restoring an old version onto its own key is a change.
	if _, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", SrcVersionID: v1.VersionID, Dst: PutInput{Bucket: "src", Key: "k"}}); err != nil {
		t.Fatalf("restore old version: %v", err)
	}
	if got, _ := read(t, s, "src", "k", ""); got != data {
		t.Fatalf("restored %q", got)
	}

	// A failing check stops the copy before anything is written.
	stop := errors.New("stop")
	if _, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", Check: func(*Version) error { return stop }, Dst: PutInput{Bucket: "dst", Key: "x"}}); err != stop {
		t.Fatalf("check: %v", err)
	}
	if _, err := s.HeadObject(ctx, "dst", "x", ""); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("copy went ahead: %v", err)
	}

	// Delete markers: named, a refusal of its own; latest, no such key.
	dm, _ := s.DeleteObject(ctx, "src", "k", "")
	if _, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", SrcVersionID: dm.VersionID, Dst: PutInput{Bucket: "dst", Key: "x"}}); !errors.Is(err, ErrCopyFromDeleteMarker) {
		t.Fatalf("copy of a named marker: %v", err)
	}
	if _, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "k", Dst: PutInput{Bucket: "dst", Key: "x"}}); !errors.Is(err, ErrNoSuchKey) {
		t.Fatalf("copy behind a marker: %v", err)
	}
	put(t, s, "src", "live", "live")
	if _, _, err = s.CopyObject(ctx, &CopyInput{SrcBucket: "src", SrcKey: "live", Dst: PutInput{Bucket: "nobucket", Key: "x"}}); !errors.Is(err, ErrNoSuchBucket) {
		t.Fatalf("copy to a missing bucket: %v", err)
	}
}
