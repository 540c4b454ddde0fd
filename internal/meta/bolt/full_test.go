package bolt

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/headroom/headroomtest"
	"github.com/bulwark/bulwark/internal/meta"
)

// TestFullDiskCommitsWithinReserve fills a real tmpfs to its last byte
// under two stores: the one with room preallocated ahead of its file keeps
// committing (deletes, and new records as large as delete markers) while
// the reserve lasts; the other fails with ENOSPC as soon as it must grow.
// A failed commit changes nothing, and both stores work again once space
// returns, with every acknowledged write in them.
func TestFullDiskCommitsWithinReserve(t *testing.T) {
	dir := headroomtest.Mount(t, 8<<20)
	ctx := context.Background()
	value := make([]byte, 1000)
	put := func(s *Store, key string) error {
		return s.Update(ctx, func(tx meta.Tx) error { return tx.Put("v", []byte(key), value) })
	}
	reserved, err := Open(filepath.Join(dir, "reserved.db"))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := Open(filepath.Join(dir, "plain.db"))
	if err != nil {
		t.Fatal(err)
	}
	acked := map[*Store]map[string]bool{reserved: {}, plain: {}}
	for i := range 1000 {
		for s, keys := range acked {
			k := fmt.Sprintf("k%05d", i)
			if err := put(s, k); err != nil {
				t.Fatal(err)
			}
			keys[k] = true
		}
	}
	ahead, err := reserved.Preallocate(1 << 20)
	if err != nil || ahead < 1<<20 {
		t.Fatalf("Preallocate: %d bytes ahead, %v", ahead, err)
	}
	fill := headroomtest.Fill(t, dir)
	if free := headroomtest.Free(t, dir); free != 0 {
		t.Fatalf("%d bytes free after filling", free)
	}

	// Without a reserve, growth fails at once; nothing of it is kept.
	grew := 0
	for ; grew < 10000; grew++ {
		err = put(plain, fmt.Sprintf("new%05d", grew))
		if err != nil {
			break
		}
		acked[plain][fmt.Sprintf("new%05d", grew)] = true
	}
	if !headroom.NoSpace(err) {
		t.Fatalf("store without a reserve on a full disk: %d records, then %v; want ENOSPC", grew, err)
	}
	t.Logf("without a reserve: %d records of 1 KiB went into pages bbolt had freed, then %v", grew, err)

	// With one, deletes and records like delete markers commit.
	for i := 0; i < 1000; i += 2 {
		k := fmt.Sprintf("k%05d", i)
		if err := reserved.Update(ctx, func(tx meta.Tx) error { return tx.Delete("v", []byte(k)) }); err != nil {
			t.Fatalf("delete on a full disk with a reserve: %v", err)
		}
		delete(acked[reserved], k)
	}
	markers := 0
	for ; ; markers++ {
		k := fmt.Sprintf("m%05d", markers)
		if err = put(reserved, k); err != nil {
			break
		}
		acked[reserved][k] = true
	}
	if !headroom.NoSpace(err) {
		t.Fatalf("reserve used up: want ENOSPC, got %v", err)
	}
	if markers < 500 {
		t.Fatalf("only %d records of 1 KiB fitted in 1 MiB of reserve and the pages 500 deletes freed", markers)
	}
	t.Logf("with 1 MiB of reserve: 500 deletes, then %d records of 1 KiB", markers)

	// Space returns: both work again, with all they acknowledged.
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	for s := range acked {
		if err := put(s, "after"); err != nil {
			t.Fatalf("write once space is back: %v", err)
		}
		acked[s]["after"] = true
	}
	for s, keys := range acked {
		path := s.db.Path()
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		s2, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		err = s2.View(ctx, func(tx meta.Tx) error {
			it := tx.Iter("v")
			for k, _ := it.First(); k != nil; k, _ = it.Next() {
				if !keys[string(k)] {
					return fmt.Errorf("key %s was never acknowledged (or was deleted)", k)
				}
				n++
			}
			return nil
		})
		if err != nil || n != len(keys) {
			t.Fatalf("%s after reopening: %d of %d acknowledged keys, %v", filepath.Base(path), n, len(keys), err)
		}
		s2.Close()
	}
}
