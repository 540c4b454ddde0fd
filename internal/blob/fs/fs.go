// Package fs stores blobs as files under one directory, which several
// processes may share (a shared NFS or CephFS mount).
//
// A blob is written to a temporary file of a unique name under .tmp,
// fsynced, and then hard-linked to its final name. link(2) fails if the
// name exists, on local filesystems and over NFS alike, so of two writers of
// one ID, in one process or in several, exactly one wins; and a blob is
// never seen under its name before it is complete. The shard directory is
// fsynced after the link, so the name itself survives a crash. Directory
// syncs are shared within a process: every Create waiting on a directory is
// covered by one fsync that started after its file was linked.
//
// A crash mid-write leaves only a temporary file, which a later Open or
// Walk removes once it is older than a day (a younger one may belong to a
// writer in another process). A crash between the link and the metadata
// commit leaves a blob no metadata names: the orphan sweeper removes it.
//
// The filesystem must support hard links and O_EXCL; a blob's modification
// time is that of its last write, which is after its Create started.
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
	"time"

	"github.com/bulwark/bulwark/internal/blob"
)

// tmpName is the directory of files being written. A dot is outside the
// ID alphabet, so it is never a shard.
const tmpName = ".tmp"

// staleTemp is the age at which a temporary file is taken for one a
// crashed writer left: no Create takes that long.
const staleTemp = 24 * time.Hour

// Store is a filesystem blob.Store.
type Store struct {
	root   string
	tmp    string
	shards sync.Map // shard name -> *dirSync, once the directory exists
	mkdir  sync.Mutex
	rootFS *dirSync
}

// Open opens (creating if needed) a blob store rooted at dir.
func Open(dir string) (*Store, error) {
	tmp := filepath.Join(dir, tmpName)
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return nil, fmt.Errorf("open blob store %q: %w", dir, err)
	}
	s := &Store{root: dir, tmp: tmp, rootFS: &dirSync{path: dir}}
	if err := s.RemoveTemps(staleTemp); err != nil {
		return nil, fmt.Errorf("open blob store %q: %w", dir, err)
	}
	return s, nil
}

// RemoveTemps removes the temporary files older than age that crashed
// writers left. A process that owns the store alone removes them all
// (age 0) when it opens it, before it writes.
func (s *Store) RemoveTemps(age time.Duration) error {
	entries, err := os.ReadDir(s.tmp)
	if err != nil {
		return fmt.Errorf("remove stale temporary files: %w", err)
	}
	cutoff := time.Now().Add(-age)
	for _, e := range entries {
		fi, err := e.Info()
		if err == nil && fi.ModTime().Before(cutoff) {
			err = os.Remove(filepath.Join(s.tmp, e.Name()))
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove stale temporary files: %w", err)
		}
	}
	return nil
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
	// Another process may have made the directory and not synced its
	// parent yet: the parent is synced either way, once per process.
	if err := os.Mkdir(p, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create blob directory: %w", err)
	}
	if err := s.rootFS.sync(); err != nil {
		return nil, err
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
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("create blob %s: %w", id, err)
	}
	d, err := s.dir(id)
	if err != nil {
		return 0, err
	}
	p := s.path(id)
	// Not relied on (link decides), but spares writing a blob bound to fail.
	if _, err := os.Lstat(p); err == nil {
		return 0, fmt.Errorf("create blob %s: %w", id, blob.ErrExists)
	}
	f, err := os.CreateTemp(s.tmp, id+"-*")
	if err != nil {
		return 0, fmt.Errorf("create blob %s: %w", id, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	n, err := io.Copy(f, blob.ContextReader(ctx, r))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("write blob %s: %w", id, err)
	}
	if err := link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return 0, fmt.Errorf("create blob %s: %w", id, blob.ErrExists)
		}
		return 0, fmt.Errorf("create blob %s: %w", id, err)
	}
	if err := d.sync(); err != nil {
		_ = os.Remove(p)
		return 0, fmt.Errorf("write blob %s: %w", id, err)
	}
	return n, nil
}

// link gives the file tmp the name p unless p exists. Over NFS, a link
// whose reply was lost is sent again and fails with EEXIST although the
// first one made the name: the name then points to tmp's file, which is
// how that case is told apart from a name another writer took.
func link(tmp, p string) error {
	err := os.Link(tmp, p)
	if errors.Is(err, fs.ErrExist) {
		a, aerr := os.Stat(tmp)
		b, berr := os.Stat(p)
		if aerr == nil && berr == nil && os.SameFile(a, b) {
			return nil
		}
	}
	return err
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, id string) (blob.Object, error) {
	if err := blob.ValidateID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, err)
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
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	err := os.Remove(s.path(id))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	return nil
}

// Walk implements blob.Store. It also removes temporary files that
// crashed writers left, so that the sweeper's walks reclaim them too.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	if err := s.RemoveTemps(staleTemp); err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	shards, err := os.ReadDir(s.root)
	if err != nil {
		return fmt.Errorf("walk blobs: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() || sh.Name() == tmpName {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		entries, err := os.ReadDir(filepath.Join(s.root, sh.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, e := range entries {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			// Names outside the ID alphabet are not blobs: an NFS client's
			// .nfs files of deleted blobs still open, for one.
			if blob.ValidateID(e.Name()) != nil {
				continue
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
