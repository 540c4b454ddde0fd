package backup_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestIncrementalStreamsPrevious backs a bucket up twice, with changes
// between, and checks that the second backup read the first point
// alongside the bucket, holding none of it in a map, and still copied
// only what changed.
func TestIncrementalStreamsPrevious(t *testing.T) {
	const n, size = 300, 512
	r := servertest.Start(t, servertest.Options{})
	st, svc := r.Store, r.Jobs
	fillMetered(t, st, "inc", n, size)
	first := meteredBackup(t, svc, "inc", "Default", nil)
	if first.BytesTransferred != n*size {
		t.Fatalf("first backup read %d bytes, want %d", first.BytesTransferred, n*size)
	}
	ctx := context.Background()
	// Changed, new (between, before and after the old keys), deleted.
	for _, k := range []string{"obj/00007", "obj/00150x", "a-first", "zz-last"} {
		if _, err := st.PutObject(ctx, &objectstore.PutInput{Bucket: "inc", Key: k, Owner: servertest.AccountID, Body: bytes.NewReader(make([]byte, size)), Size: size}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DeleteObject(ctx, "inc", "obj/00200", ""); err != nil {
		t.Fatal(err)
	}
	mapped := backup.PrevMapped()
	second := meteredBackup(t, svc, "inc", "Default", nil)
	if got := backup.PrevMapped() - mapped; got != 0 {
		t.Errorf("the second backup loaded %d entries of the first point into memory, want none", got)
	}
	if second.BytesTransferred != 4*size || second.Objects != n+2 {
		t.Errorf("second backup read %d bytes for %d objects, want %d bytes (the four changed) for %d", second.BytesTransferred, second.Objects, 4*size, n+2)
	}
}
