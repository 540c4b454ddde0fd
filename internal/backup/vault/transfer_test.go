package vault

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// countingTarget counts what a transfer sends and can fail a call.
type countingTarget struct {
	Target
	chunks, bytes int64
	failPut       int // fail the nth PutChunks call (1-based); 0 never
	puts          int
}

var errCut = errors.New("link cut")

func (c *countingTarget) PutChunks(ctx context.Context, cs []ChunkData) error {
	c.puts++
	if c.puts == c.failPut {
		return errCut
	}
	for _, x := range cs {
		c.chunks++
		c.bytes += int64(len(x.Data))
	}
	return c.Target.PutChunks(ctx, cs)
}

// TestTransferSendsOnlyMissingChunks: a large object with a few bytes
// changed costs its changed chunks, not the object; a point whose data the
// destination holds from any source costs nothing; a transfer cut off half
// way leaves no point, and a retry completes it.
func TestTransferSendsOnlyMissingChunks(t *testing.T) {
	ctx := context.Background()
	src := openVault(t, t.TempDir())
	defer src.Close(ctx)
	dst := openVault(t, t.TempDir())
	defer dst.Close(ctx)

	big := make([]byte, 24<<20)
	r := rand.NewChaCha8([32]byte{1})
	_, _ = r.Read(big)
	put := func(v *Vault, id string, data []byte) {
		t.Helper()
		w, err := v.Begin(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, Entry{Key: "big.bin", VersionID: id}, bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, Entry{Key: "empty", VersionID: id}, bytes.NewReader(nil)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	transfer := func(from *Vault, id, newID string, failPut int) (*countingTarget, error) {
		t.Helper()
		w, err := dst.Begin(ctx, newID, map[string]string{"copy-of": id})
		if err != nil {
			t.Fatal(err)
		}
		ct := &countingTarget{Target: w, failPut: failPut}
		_, _, err = from.Transfer(ctx, id, ct, nil)
		return ct, err
	}

	put(src, "p1", big)
	first, err := transfer(src, "p1", "c1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if first.bytes != int64(len(big)) {
		t.Fatalf("first transfer sent %d bytes, want %d", first.bytes, len(big))
	}

	changed := bytes.Clone(big)
	copy(changed[20<<20:], "a few changed bytes in the middle")
	put(src, "p2", changed)
	second, err := transfer(src, "p2", "c2", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("24 MiB object, 33 bytes changed: sent %d bytes in %d chunks (%.1f %%)", second.bytes, second.chunks, pct(second.bytes, int64(len(big))))
	if second.bytes > int64(len(big))/2 {
		t.Errorf("changed object sent %d bytes of %d", second.bytes, len(big))
	}

	// Another vault of the deployment backed up the same data on its own:
	// the destination has it all already.
	other := openVault(t, t.TempDir())
	defer other.Close(ctx)
	put(other, "o1", changed)
	third, err := transfer(other, "o1", "c3", 0)
	if err != nil {
		t.Fatal(err)
	}
	if third.bytes != 0 {
		t.Errorf("data the destination holds was sent again: %d bytes", third.bytes)
	}

	for _, c := range []struct {
		id   string
		data []byte
	}{{"c1", big}, {"c2", changed}, {"c3", changed}} {
		if err := dst.Verify(ctx, c.id); err != nil {
			t.Fatal(err)
		}
		readBack(t, dst, c.id, "big.bin", c.data)
		readBack(t, dst, c.id, "empty", nil)
	}

	// A transfer cut off: the destination has no point, and the retry
	// completes it.
	fresh := make([]byte, 20<<20)
	_, _ = r.Read(fresh)
	put(src, "p3", fresh)
	if _, err := transfer(src, "p3", "c4", 2); !errors.Is(err, errCut) {
		t.Fatalf("cut transfer: %v", err)
	}
	if _, err := dst.Point(ctx, "c4"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a cut transfer left a point: %v", err)
	}
	if _, err := transfer(src, "p3", "c4", 0); err != nil {
		t.Fatal(err)
	}
	readBack(t, dst, "c4", "big.bin", fresh)
}

// TestTransferBetweenKeys: vaults of different deployment secrets name
// chunks differently; a transfer still copies everything right.
func TestTransferBetweenKeys(t *testing.T) {
	ctx := context.Background()
	src := openVault(t, t.TempDir())
	defer src.Close(ctx)
	dst, err := Open(ctx, t.TempDir(), []byte("another deployment's key"))
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close(ctx)
	objs := objects(0, 40)
	writePoint(t, src, "p1", nil, objs)
	if _, err := CopyPoint(ctx, src, dst, "p1", "c1", nil); err != nil {
		t.Fatal(err)
	}
	checkPoint(t, dst, "c1", objs)
	if err := dst.Verify(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
}

func readBack(t *testing.T, v *Vault, pointID, key string, want []byte) {
	t.Helper()
	ctx := context.Background()
	found := false
	err := v.Entries(ctx, pointID, func(e Entry, ref ObjectRef) error {
		if e.Key != key {
			return nil
		}
		found = true
		rd, err := v.Open(ctx, ref)
		if err != nil {
			return err
		}
		defer rd.Close()
		got, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s/%s: data differs (%d bytes, want %d)", pointID, key, len(got), len(want))
		}
		return nil
	})
	if err != nil || !found {
		t.Fatalf("%s/%s: found %v, %v", pointID, key, found, err)
	}
}
