package fs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/blob/blobtest"
)

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// TestShared runs two stores over one directory, as two processes over a
// shared mount do.
func TestShared(t *testing.T) {
	blobtest.RunShared(t, func(t *testing.T) (blob.Store, blob.Store) {
		dir := t.TempDir()
		a, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		b, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		return a, b
	})
}

// TestStaleTemps checks that a temporary file a crashed writer left is
// never a blob, and is removed by a walk once older than a day, while one
// that may belong to a writer in another process is kept.
func TestStaleTemps(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, tmpName, "abc-123")
	fresh := filepath.Join(dir, tmpName, "abc-456")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("half a blob"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-staleTemp - time.Minute)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.Walk(ctx, func(blob.Info) error { n++; return nil }); err != nil || n != 0 {
		t.Fatalf("walk: %d blobs, %v", n, err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stale temporary file: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temporary file: %v", err)
	}
	if _, err := s.Open(ctx, "abc-456"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open of a temporary file's name: %v", err)
	}
}
