package vault

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup/vault/vaulttest"
)

// TestOpenStoredReadsPastTheCache damages the packs of a point the vault
// has just read, with the vault open: the cached handle still reads the
// point whole from its cache, the stored handle finds the damage.
func TestOpenStoredReadsPastTheCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v := openVault(t, dir)
	defer v.Close(ctx)
	objs := objects(0, 8)
	writePoint(t, v, "p", nil, objs)
	if err := v.Verify(ctx, "p"); err != nil { // the cache now holds the data
		t.Fatal(err)
	}
	began := time.Now()
	s, err := v.OpenStored(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("stored handle opened in %s", time.Since(began).Round(time.Millisecond))
	checkPoint(t, s, "p", objs)
	if err := s.Close(ctx); err != nil {
		t.Fatal(err)
	}
	vaulttest.DamagePacks(t, dir)
	if err := v.Verify(ctx, "p"); err != nil {
		t.Fatalf("the cached handle read the damaged point: %v (the cache no longer serves it, and this test shows nothing)", err)
	}
	s, err = v.OpenStored(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	err = s.Verify(ctx, "p")
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("verify through the stored handle: %v", err)
	}
	t.Logf("stored handle: %.200s", err)
	if entries, _ := filepath.Glob(filepath.Join(dir, "stored-*")); len(entries) != 0 {
		t.Fatalf("left behind: %v", entries)
	}
}
