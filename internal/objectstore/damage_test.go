package objectstore

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
)

// TestDamageAndRepair checks a null version kept inline and one in a
// blob: damage is found, a marked version is not read, a wrong copy is
// refused and a right one repairs it.
func TestDamageAndRepair(t *testing.T) {
	ctx := context.Background()
	s, blobs := newStore(t)
	if err := s.CreateBucket(ctx, "bkt", "111122223333", "us-west-2"); err != nil {
		t.Fatal(err)
	}
	inline := put(t, s, "bkt", "tiny", "1234") // unversioned: the null version, inline
	big := put(t, s, "bkt", "big", strings.Repeat("data", 100))
	for _, v := range []*Version{inline, big} {
		rec, err := s.VersionRecord(ctx, "bkt", v.Key, v.VersionID)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.VerifyVersion(ctx, rec, nil); err != nil {
			t.Fatalf("%s sound: %v", v.Key, err)
		}
	}

	// Rot the inline data inside its record, and lose the blob.
	err := s.meta.Update(ctx, func(tx meta.Tx) error {
		rec, vk, err := versionTx(tx, "bkt", "tiny", "null")
		if err != nil {
			return err
		}
		rec.inline = []byte("12X4")
		enc, _ := encodeVersion(rec)
		return tx.Put(spaceVersions, vk, enc)
	})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := s.VersionRecord(ctx, "bkt", "big", big.VersionID)
	if err := blobs.Delete(ctx, rec.BlobID); err != nil {
		t.Fatal(err)
	}
	for key, kind := range map[string]string{"tiny": DamageCorrupt, "big": DamageMissing} {
		rec, _ := s.VersionRecord(ctx, "bkt", key, "null")
		var d *DamageError
		if err := s.VerifyVersion(ctx, rec, nil); !errors.As(err, &d) || d.Kind != kind {
			t.Fatalf("%s: %v, want %s", key, err, kind)
		}
		if err := s.MarkDamaged(ctx, "bkt", key, "null", d.Error()); err != nil {
			t.Fatal(err)
		}
		if _, err := read(t, s, "bkt", key, ""); !errors.Is(err, ErrDamaged) {
			t.Fatalf("read of damaged %s: %v", key, err)
		}
		if err := s.RepairData(ctx, "bkt", key, "null", 0, strings.NewReader("wrong")); !errors.Is(err, ErrChecksumMismatch) {
			t.Fatalf("repair of %s with wrong data: %v", key, err)
		}
	}
	blobsBefore := countBlobs(t, blobs)
	if err := s.RepairData(ctx, "bkt", "tiny", "null", 0, strings.NewReader("1234")); err != nil {
		t.Fatal(err)
	}
	if err := s.RepairData(ctx, "bkt", "big", "null", 0, strings.NewReader(strings.Repeat("data", 100))); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"tiny": "1234", "big": strings.Repeat("data", 100)} {
		rec, _ := s.VersionRecord(ctx, "bkt", key, "null")
		if err := s.VerifyVersion(ctx, rec, nil); err != nil {
			t.Fatalf("%s after the repair: %v", key, err)
		}
		if err := s.MarkDamaged(ctx, "bkt", key, "null", ""); err != nil {
			t.Fatal(err)
		}
		if got, err := read(t, s, "bkt", key, ""); err != nil || got != want {
			t.Fatalf("%s after the repair: %q %v", key, got, err)
		}
	}
	if n := countBlobs(t, blobs); n != blobsBefore+1 {
		t.Fatalf("blobs: %d, want %d (the repaired one)", n, blobsBefore+1)
	}
	if n, err := s.SweepOrphans(ctx, 0); err != nil || n != 0 {
		t.Fatalf("the repair left %d orphans (%v)", n, err)
	}
}
