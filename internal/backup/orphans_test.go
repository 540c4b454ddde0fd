package backup

import (
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/backup/vault"
)

// TestCollectDropsOrphans: a point a repository holds with no record that
// places it there (a crash between the repository's step and the
// catalog's) goes at the next collection; recorded points stay.
func TestCollectDropsOrphans(t *testing.T) {
	e := newLockEnv(t)
	grace := orphanGrace
	t.Cleanup(func() { orphanGrace = grace })
	orphanGrace = 0
	write := func(tier, id string) {
		t.Helper()
		v, err := e.svc.vault(ctx, acct, tier)
		if err != nil {
			t.Fatal(err)
		}
		w, err := v.Begin(ctx, id, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(ctx, vault.Entry{Key: "k"}, strings.NewReader("data of "+id)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}
	}
	kept := e.point(nil, StorageWarm)
	write("locked", kept.PointID)
	write("locked", "orphan")
	cold := e.point(nil, StorageCold)
	write("locked.cold", cold.PointID)
	write("locked", cold.PointID) // its warm copy, left by a failed delete

	e.svc.markDirty(acct, "locked")
	e.svc.markDirty(acct, "locked.cold")
	if err := e.svc.CollectVaults(ctx); err != nil {
		t.Fatal(err)
	}
	for tier, want := range map[string][]string{"locked": {kept.PointID}, "locked.cold": {cold.PointID}} {
		v, _ := e.svc.vault(ctx, acct, tier)
		ps, err := v.Points(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.ID)
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s holds %v, want %v", tier, got, want)
		}
	}
}
