package backup_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/blob"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// testRegion is what the backup service works over in a region: an
// object store, the catalog and the service, all on one metadata store in
// a temporary directory, closed at the end of the test.
type testRegion struct {
	dir string // the vault repositories: dir/ACCOUNT/VAULT
	st  *objectstore.Store
	cat *backup.Catalog
	svc *backup.Service
}

// regionOptions tune openTestRegion; zero values take the defaults.
type regionOptions struct {
	region string           // us-east-1
	now    func() time.Time // the clock of the store, catalog and service
	dir    string           // a temporary directory of the test
	// blobs wraps the object store's blob store (to hold reads, say).
	blobs func(blob.Store) blob.Store
	// configure edits the service's configuration before it opens.
	configure func(*backup.ServiceConfig)
}

// newTestRegion opens a region's stores and backup service; now is the
// clock of all three (nil: the real one).
func newTestRegion(t *testing.T, now func() time.Time) *testRegion {
	t.Helper()
	return openTestRegion(t, regionOptions{now: now})
}

// newTestRegionWith is newTestRegion for a named region, with configure
// (nil for none) given the service's configuration before it opens.
func newTestRegionWith(t *testing.T, region string, now func() time.Time, configure func(*backup.ServiceConfig)) *testRegion {
	t.Helper()
	return openTestRegion(t, regionOptions{region: region, now: now, configure: configure})
}

func openTestRegion(tb testing.TB, o regionOptions) *testRegion {
	tb.Helper()
	ctx := context.Background()
	if o.region == "" {
		o.region = "us-east-1"
	}
	if o.dir == "" {
		o.dir = tb.TempDir()
	}
	m, err := bolt.Open(filepath.Join(o.dir, "meta.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { m.Close() })
	var blobs blob.Store
	if blobs, err = blobfs.Open(filepath.Join(o.dir, "blobs")); err != nil {
		tb.Fatal(err)
	}
	if o.blobs != nil {
		blobs = o.blobs(blobs)
	}
	r := &testRegion{dir: filepath.Join(o.dir, "vaults"), st: objectstore.New(objectstore.Config{Region: o.region, Meta: m, Blobs: blobs, Now: o.now, InlineLimit: -1})}
	r.cat = backup.NewCatalog(m, o.region, o.now)
	providers, err := backup.NewRegistry(backup.NewS3Provider(r.st))
	if err != nil {
		tb.Fatal(err)
	}
	cfg := backup.ServiceConfig{Catalog: r.cat, Providers: providers, Dir: r.dir, Secret: []byte("secret")}
	if o.configure != nil {
		o.configure(&cfg)
	}
	if r.svc, err = backup.NewService(ctx, cfg); err != nil {
		tb.Fatal(err)
	}
	// Registered last, so it runs before the store closes.
	tb.Cleanup(func() { r.svc.Close(ctx) })
	return r
}
