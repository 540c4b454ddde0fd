// Package fs stores blobs as files under one directory.
//
// A blob is written straight to its final name with O_EXCL, fsynced, and then
// its directory is fsynced so the name itself survives a crash. Directory
// syncs are shared: every Create waiting on a directory is covered by one
// fsync that started after its file was linked. A crash mid-write leaves a
// partial file that no metadata references; the orphan sweeper removes it.
package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"github.com/bulwark/bulwark/internal/blob"
)

// Store is a filesystem blob.Store.
type Store struct {
	root   string
	shards sync.Map // shard name -> *dirSync, once the directory exists
	mkdir  sync.Mutex
	rootFS *dirSync
}

// Open opens (creating if needed) a blob store rooted at dir.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return &Store{root: dir, rootFS: &dirSync{path: dir}}, nil
}

// shard spreads blobs over up to 4096 directories by the tail of the ID, which
// is random for the IDs Bulwark generates.
func shard(id string) string {
	if len(id) < 3 {
		return "_" + id
	}
	return id[len(id)-3:]
}

func (s *Store) path(id string) string { return filepath.Join(s.root, shard(id), id) }

// dir returns the shard's directory syncer, creating the directory durably
// the first time.
func (s *Store) dir(id string) (*dirSync, error) {
	name := shard(id)
	if d, ok := s.shards.Load(name); ok {
		return d.(*dirSync), nil
	}
	s.mkdir.Lock()
	defer s.mkdir.Unlock()
	if d, ok := s.shards.Load(name); ok {
		return d.(*dirSync), nil
	}
	p := filepath.Join(s.root, name)
	err := os.Mkdir(p, 0o700)
	switch {
	case err == nil:
		if err := s.rootFS.sync(); err != nil {
			return nil, err
		}
	case errors.Is(err, fs.ErrExist):
	default:
		return nil, fmt.Errorf("create blob directory: %w", err)
	}
	d := &dirSync{path: p}
	s.shards.Store(name, d)
	return d, nil
}

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, id string, r io.Reader) (int64, error) {
	if err := blob.ValidateID(id); err != nil {
		return 0, err
	}
	d, err := s.dir(id)
	if err != nil {
		return 0, err
	}
	p := s.path(id)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return 0, fmt.Errorf("create blob %s: %w", id, blob.ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("create blob %s: %w", id, err)
	}
	n, err := io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = d.sync()
	}
	if err != nil {
		_ = os.Remove(p)
		return 0, fmt.Errorf("write blob %s: %w", id, err)
	}
	return n, nil
}

// ctxReader stops a long copy when the request that drives it goes away.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, id string) (blob.Object, error) {
	if err := blob.ValidateID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open blob %s: %w", id, blob.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat blob %s: %w", id, err)
	}
	return &object{File: f, size: st.Size()}, nil
}

type object struct {
	*os.File
	size int64
}

func (o *object) Size() int64 { return o.size }

// File exposes the open file so that HTTP responses can use sendfile.
func (o *object) OSFile() *os.File { return o.File }

// Delete implements blob.Store. The directory is not synced: a deletion lost
// in a crash leaves an orphan, which the sweeper collects.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := blob.ValidateID(id); err != nil {
		return err
	}
	err := os.Remove(s.path(id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	return nil
}

// Walk implements blob.Store.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	shards, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.root, sh.Name()))
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return err
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			if err := fn(blob.Info{ID: e.Name(), Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
				return err
			}
		}
	}
	return nil
}

// dirSync shares directory fsyncs between concurrent writers. A caller is
// covered only by a sync that starts after it asked, so a caller arriving
// while a sync runs waits for the next one.
type dirSync struct {
	path    string
	mu      sync.Mutex
	running bool
	waiting []chan error
}

func (d *dirSync) sync() error {
	ch := make(chan error, 1)
	d.mu.Lock()
	d.waiting = append(d.waiting, ch)
	if d.running {
		d.mu.Unlock()
		return <-ch
	}
	d.running = true
	for len(d.waiting) > 0 {
		batch := d.waiting
		d.waiting = nil
		d.mu.Unlock()
		err := fsyncDir(d.path)
		for _, c := range batch {
			c <- err
		}
		d.mu.Lock()
	}
	d.running = false
	d.mu.Unlock()
	return <-ch
}

func fsyncDir(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync directory: %w", err)
	}
	return nil
}
