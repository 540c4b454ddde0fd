// Package blobtest is the conformance suite every blob.Store passes.
package blobtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/bulwark/bulwark/internal/blob"
)

// Run runs the suite against stores made by newStore.
func Run(t *testing.T, newStore func(t *testing.T) blob.Store) {
	ctx := context.Background()
	t.Run("CreateOpen", func(t *testing.T) {
		s := newStore(t)
		data := bytes.Repeat([]byte("0123456789"), 100_000)
		n, err := s.Create(ctx, "abc-DEF_123", bytes.NewReader(data))
		if err != nil || n != int64(len(data)) {
			t.Fatalf("create: n=%d err=%v", n, err)
		}
		o, err := s.Open(ctx, "abc-DEF_123")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if o.Size() != int64(len(data)) {
			t.Fatalf("size %d", o.Size())
		}
		got, _ := io.ReadAll(o)
		if !bytes.Equal(got, data) {
			t.Fatal("content differs")
		}
		part := make([]byte, 10)
		if _, err := o.ReadAt(part, 15); err != nil || string(part) != "5678901234" {
			t.Fatalf("ReadAt: %q %v", part, err)
		}
	})
	t.Run("WriteOnce", func(t *testing.T) {
		s := newStore(t)
		if _, err := s.Create(ctx, "once", bytes.NewReader([]byte("a"))); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Create(ctx, "once", bytes.NewReader([]byte("b"))); !errors.Is(err, blob.ErrExists) {
			t.Fatalf("second create: %v, want ErrExists", err)
		}
	})
	t.Run("FailedWriteLeavesNothing", func(t *testing.T) {
		s := newStore(t)
		r := io.MultiReader(bytes.NewReader([]byte("partial")), errReader{})
		if _, err := s.Create(ctx, "broken", r); err == nil {
			t.Fatal("create from failing reader succeeded")
		}
		if _, err := s.Open(ctx, "broken"); !errors.Is(err, blob.ErrNotFound) {
			t.Fatalf("open after failed create: %v", err)
		}
		count := 0
		_ = s.Walk(ctx, func(blob.Info) error { count++; return nil })
		if count != 0 {
			t.Fatalf("failed create left %d blobs", count)
		}
	})
	t.Run("HostileIDs", func(t *testing.T) {
		s := newStore(t)
		for _, id := range []string{"", "../x", "a/b", ".", "..", "a b", string(bytes.Repeat([]byte("a"), 129)), "é"} {
			if _, err := s.Create(ctx, id, bytes.NewReader(nil)); !errors.Is(err, blob.ErrInvalidID) {
				t.Errorf("create %q: %v, want ErrInvalidID", id, err)
			}
		}
	})
	t.Run("DeleteWalk", func(t *testing.T) {
		s := newStore(t)
		var wg sync.WaitGroup
		for i := 0; i < 50; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Create(ctx, fmt.Sprintf("blob%04d", i), bytes.NewReader([]byte{byte(i)})); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		for i := 0; i < 50; i += 2 {
			if err := s.Delete(ctx, fmt.Sprintf("blob%04d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Delete(ctx, "never-there"); err != nil {
			t.Fatalf("delete missing: %v", err)
		}
		seen := map[string]bool{}
		if err := s.Walk(ctx, func(in blob.Info) error { seen[in.ID] = true; return nil }); err != nil {
			t.Fatal(err)
		}
		if len(seen) != 25 || !seen["blob0001"] || seen["blob0000"] {
			t.Fatalf("walk saw %d blobs: %v", len(seen), seen)
		}
	})
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("client went away") }
