// Package mem is an in-memory blob.Store for tests of the layers above blob.
// One Store shared by several users stands for storage shared by several
// processes.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
)

// Store keeps blobs in a map.
type Store struct {
	mu    sync.Mutex
	blobs map[string]entry
}

type entry struct {
	data []byte
	mod  time.Time
}

// New returns an empty store.
func New() *Store { return &Store{blobs: map[string]entry{}} }

// Create implements blob.Store. The blob is added to the map only once r
// is read to its end, so it is never seen incomplete.
func (s *Store) Create(ctx context.Context, id string, r io.Reader) (int64, error) {
	if err := blob.ValidateID(id); err != nil {
		return 0, err
	}
	start := time.Now()
	data, err := io.ReadAll(blob.ContextReader(ctx, r))
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return 0, fmt.Errorf("write blob %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.blobs[id]; ok {
		return 0, fmt.Errorf("create blob %s: %w", id, blob.ErrExists)
	}
	s.blobs[id] = entry{data: data, mod: start}
	return int64(len(data)), nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, id string) (blob.Object, error) {
	if err := blob.ValidateID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.blobs[id]
	if !ok {
		return nil, fmt.Errorf("open blob %s: %w", id, blob.ErrNotFound)
	}
	return object{bytes.NewReader(e.data)}, nil
}

type object struct{ *bytes.Reader }

func (object) Close() error { return nil }

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := blob.ValidateID(id); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.blobs, id)
	return nil
}

// Walk implements blob.Store.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	s.mu.Lock()
	infos := make([]blob.Info, 0, len(s.blobs))
	for id, e := range s.blobs {
		infos = append(infos, blob.Info{ID: id, Size: int64(len(e.data)), ModTime: e.mod})
	}
	s.mu.Unlock()
	for _, in := range infos {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		if err := fn(in); err != nil {
			return err
		}
	}
	return nil
}
