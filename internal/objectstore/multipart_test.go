package objectstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/checksum"
)

func uploadParts(t *testing.T, s *Store, bucket, key string, alg checksum.Algorithm, typ string, sizes ...int) (*Upload, []CompletedPart, []byte) {
	t.Helper()
	ctx := context.Background()
	u, err := s.CreateUpload(ctx, &UploadInput{Bucket: bucket, Key: key, Owner: "o", ChecksumAlgorithm: alg, ChecksumType: typ, Template: Version{ContentType: "text/x-parts", Metadata: map[string]string{"m": "1"}}})
	if err != nil {
		t.Fatal(err)
	}
	var all []byte
	var parts []CompletedPart
	for i, size := range sizes {
		data := bytes.Repeat([]byte{byte('a' + i)}, size)
		all = append(all, data...)
		p, err := s.UploadPart(ctx, &PartInput{Bucket: bucket, Key: key, UploadID: u.UploadID, Number: i + 1, Body: bytes.NewReader(data), Size: int64(size)})
		if err != nil {
			t.Fatal(err)
		}
		parts = append(parts, CompletedPart{Number: i + 1, ETag: `"` + p.ETag + `"`})
	}
	return u, parts, all
}

func TestMultipartAssemble(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	_ = s.CreateBucket(ctx, "mpb", "o", "us-west-2")
	_ = s.SetVersioning(ctx, "mpb", VersioningEnabled)
	u, parts, all := uploadParts(t, s, "mpb", "big", checksum.CRC32, ChecksumTypeFullObject, MinPartSize, MinPartSize, 1234)
	v, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "big", UploadID: u.UploadID, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	etags := md5.New()
	for i := range parts {
		sum := md5.Sum(all[i*MinPartSize : min((i+1)*MinPartSize, len(all))])
		etags.Write(sum[:])
	}
	if want := hex.EncodeToString(etags.Sum(nil)) + "-3"; v.ETag != want {
		t.Fatalf("etag %s, want %s", v.ETag, want)
	}
	if want := checksum.CRC32.Sum(all); v.Checksum != want {
		t.Fatalf("full-object crc32 %s, want %s", v.Checksum, want)
	}
	got, err := read(t, s, "mpb", "big", v.VersionID)
	if err != nil || got != string(all) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
	// Ranged reads across part boundaries.
	_, body, _ := s.GetObject(ctx, "mpb", "big", "")
	buf := make([]byte, 10)
	if _, err := body.ReadAt(buf, MinPartSize-5); err != nil || string(buf) != "aaaaabbbbb" {
		t.Fatalf("read across parts: %q %v", buf, err)
	}
	body.Close()
	// A retried complete answers the same.
	again, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "big", UploadID: u.UploadID, Parts: parts})
	if err != nil || again.VersionID != v.VersionID || again.ETag != v.ETag {
		t.Fatalf("retried complete: %+v %v", again, err)
	}
	if n := countBlobs(t, blobs); n != 3 {
		t.Fatalf("%d blobs for 3 parts", n)
	}
	if _, err := s.DeleteObject(ctx, "mpb", "big", v.VersionID); err != nil {
		t.Fatal(err)
	}
	if n := countBlobs(t, blobs); n != 0 {
		t.Fatalf("%d blobs after deleting the object", n)
	}
}

func TestMultipartErrors(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	_ = s.CreateBucket(ctx, "mpb", "o", "us-west-2")
	u, parts, _ := uploadParts(t, s, "mpb", "k", "", "", 100, 100)
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "k", UploadID: u.UploadID, Parts: parts}); !errors.Is(err, ErrEntityTooSmall) {
		t.Fatalf("small part: %v", err)
	}
	rev := []CompletedPart{parts[1], parts[0]}
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "k", UploadID: u.UploadID, Parts: rev}); !errors.Is(err, ErrInvalidPartOrder) {
		t.Fatalf("order: %v", err)
	}
	bad := []CompletedPart{{Number: 1, ETag: "nope"}}
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "k", UploadID: u.UploadID, Parts: bad}); !errors.Is(err, ErrInvalidPart) {
		t.Fatalf("etag: %v", err)
	}
	if _, err := s.UploadPart(ctx, &PartInput{Bucket: "mpb", Key: "k", UploadID: u.UploadID, Number: 10001, Body: bytes.NewReader(nil)}); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("part 10001: %v", err)
	}
	// Only the last part may be small: completing with just part 1 works.
	if _, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "k", UploadID: u.UploadID, Parts: parts[:1]}); err != nil {
		t.Fatal(err)
	}
	// The unused part's blob is gone; the object's remains.
	if n := countBlobs(t, blobs); n != 1 {
		t.Fatalf("%d blobs after completing with one of two parts", n)
	}
	if _, err := s.UploadPart(ctx, &PartInput{Bucket: "mpb", Key: "k", UploadID: u.UploadID, Number: 1, Body: bytes.NewReader(nil)}); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("part after complete: %v", err)
	}
}

func TestMultipartAbortListAndExpiry(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	now := time.Now()
	s.now = func() time.Time { return now }
	_ = s.CreateBucket(ctx, "mpb", "o", "us-west-2")
	for i := 0; i < 3; i++ {
		uploadParts(t, s, "mpb", fmt.Sprintf("dir/k%d", i), "", "", 10)
	}
	u, _, _ := uploadParts(t, s, "mpb", "top", checksum.SHA256, "", 10, 10)
	res, err := s.ListUploads(ctx, "mpb", ListUploadsInput{Delimiter: "/", MaxUploads: 1000})
	if err != nil || len(res.Uploads) != 1 || len(res.CommonPrefixes) != 1 || res.Uploads[0].UploadID != u.UploadID {
		t.Fatalf("list uploads: %+v %v", res, err)
	}
	_, ps, _, err := s.ListParts(ctx, "mpb", "top", u.UploadID, 1, 1000)
	if err != nil || len(ps) != 1 || ps[0].Number != 2 || ps[0].Checksum == "" {
		t.Fatalf("list parts after 1: %+v %v", ps, err)
	}
	if err := s.DeleteBucket(ctx, "mpb"); !errors.Is(err, ErrBucketNotEmpty) {
		t.Fatalf("delete bucket with uploads: %v", err)
	}
	if err := s.AbortUpload(ctx, "mpb", "top", u.UploadID); err != nil {
		t.Fatal(err)
	}
	if err := s.AbortUpload(ctx, "mpb", "top", u.UploadID); !errors.Is(err, ErrNoSuchUpload) {
		t.Fatalf("abort twice: %v", err)
	}
	now = now.Add(8 * 24 * time.Hour)
	n, err := s.AbortStaleUploads(ctx, 7*24*time.Hour)
	if err != nil || n != 3 {
		t.Fatalf("stale uploads aborted: %d %v", n, err)
	}
	if c := countBlobs(t, blobs); c != 0 {
		t.Fatalf("%d part blobs left", c)
	}
	if err := s.DeleteBucket(ctx, "mpb"); err != nil {
		t.Fatal(err)
	}
}

func TestCompositeChecksum(t *testing.T) {
	ctx := context.Background()
	s, _ := newStore(t)
	_ = s.CreateBucket(ctx, "mpb", "o", "us-west-2")
	u, parts, all := uploadParts(t, s, "mpb", "c", checksum.SHA256, "", MinPartSize, 10)
	v, err := s.CompleteUpload(ctx, &CompleteInput{Bucket: "mpb", Key: "c", UploadID: u.UploadID, Parts: parts})
	if err != nil {
		t.Fatal(err)
	}
	h := checksum.SHA256.New()
	for _, p := range [][]byte{all[:MinPartSize], all[MinPartSize:]} {
		sum := checksum.SHA256.New()
		sum.Write(p)
		h.Write(sum.Sum(nil))
	}
	if want := checksum.Encode(h.Sum(nil)) + "-2"; v.Checksum != want || v.ChecksumType != ChecksumTypeComposite {
		t.Fatalf("composite %s (%s), want %s", v.Checksum, v.ChecksumType, want)
	}
}
