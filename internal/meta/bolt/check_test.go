package bolt

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bulwark/bulwark/internal/meta"
)

// TestCheckSoundStore checks a store of many pages: sound. (A damaged
// page cannot be tested here: bbolt asserts on it, in goroutines of its
// own, as the file is opened.)
func TestCheckSoundStore(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx meta.Tx) error {
		for i := range 5000 {
			if err := tx.Put("space", []byte(fmt.Sprintf("key-%06d", i)), make([]byte, 100)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(ctx); err != nil {
		t.Fatalf("a sound store: %v", err)
	}
	s.Close()
}
