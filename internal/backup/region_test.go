package backup_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// testRegion is what the backup service works over in a region: an
// object store, the catalog and the service, all on one metadata store in
// a temporary directory, closed at the end of the test.
type testRegion struct {
	st  *objectstore.Store
	cat *backup.Catalog
	svc *backup.Service
}

// newTestRegion opens a region's stores and backup service; now is the
// clock of all three (nil: the real one).
func newTestRegion(t *testing.T, now func() time.Time) *testRegion {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	m, err := bolt.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	blobs, err := blobfs.Open(filepath.Join(dir, "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	r := &testRegion{st: objectstore.New(objectstore.Config{Region: "us-east-1", Meta: m, Blobs: blobs, Now: now, InlineLimit: -1})}
	r.cat = backup.NewCatalog(m, "us-east-1", now)
	r.svc, err = backup.NewService(ctx, backup.ServiceConfig{Catalog: r.cat, Store: r.st, Dir: filepath.Join(dir, "vaults"), Secret: []byte("secret")})
	if err != nil {
		t.Fatal(err)
	}
	// Registered last, so it runs before the store closes.
	t.Cleanup(func() { r.svc.Close(ctx) })
	return r
}
