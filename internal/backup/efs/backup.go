package efs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// changeAttempts is how many times a file that changes while it is read
// is read; after the last, it is left out of the point and named.
const changeAttempts = 5

// firstRetry is the wait before the second read of a file that changed;
// each next wait doubles it.
const firstRetry = 50 * time.Millisecond

// maxNamed is how many paths a PARTIAL status names of each kind.
const maxNamed = 20

var errChanged = errors.New("changed while it was read")

// openHook, when set, opens the files a backup reads in place of
// openFile: tests make reads fail with it.
var openHook atomic.Pointer[func(string) (*os.File, error)]

// Backup runs the directory's pre-backup command, writes the tree into the
// point, and runs its post-backup command (backup.Hooks.Around says what
// happens when one fails). The point records the directory's path and
// fs-ID, which its restores read.
func (p *Provider) Backup(ctx context.Context, run *backup.BackupRun) (backup.BackupResult, error) {
	reg, err := p.Registration(ctx, run)
	if err != nil {
		return backup.BackupResult{}, err
	}
	root := reg.Settings[backup.SettingPath]
	res := backup.BackupResult{Metadata: map[string]string{MetaPath: root, MetaFileSystemID: fileSystemID(reg.ARN)}}
	hooks := backup.HooksOf(reg, "BULWARK_PATH="+root)
	err = hooks.Around(ctx, func(ctx context.Context) error {
		var err error
		res.Partial, err = p.backupTree(ctx, run, root)
		return err
	})
	return res, err
}

// backupTree writes the tree under root into the point and returns what
// the point lacks, "" when nothing.
func (p *Provider) backupTree(ctx context.Context, run *backup.BackupRun, root string) (string, error) {
	// The root is followed if it is a link: the registration names the
	// directory, whatever path leads to it.
	st, err := stat(root)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", failed("Directory %s, registered as %s, does not exist any more.", root, run.Resource.Name)
	case err != nil:
		return "", failed("Directory %s cannot be read: %v.", root, pathless(err))
	case st.kind != kindDir:
		return "", failed("Path %s, registered as %s, is not a directory any more.", root, run.Resource.Name)
	}
	// What the tree holds is PercentDone's total. The count is a walk of
	// stats only, far cheaper than the read that follows; a tree that
	// changes meanwhile makes it approximate, which is all it is for.
	var items, bytes int64
	_ = walkTree(ctx, root, st, func(rel string, st fileStat, err error) error {
		if err == nil {
			items++
			if st.kind == kindFile {
				bytes += st.size
			}
		}
		return ctx.Err()
	})
	if err := ctx.Err(); err != nil {
		return "", err
	}
	if err := run.Expect(ctx, items, bytes); err != nil {
		return "", err
	}
	w := &treeWriter{ctx: ctx, run: run, root: root}
	if err := walkTree(ctx, root, st, w.visit); err != nil {
		return "", err
	}
	return w.partial(), nil
}

// visitFunc is called by walkTree for each item, and again for a
// directory whose listing failed, with err set; an item that could not be
// stat'ed comes with err set and a zero stat. An error it returns stops
// the walk.
type visitFunc func(rel string, st fileStat, err error) error

// walkTree calls visit for the directory root (rel "", stat st) and every
// item under it, a directory before what it holds, the names of a
// directory in byte order. It does not follow links, and goes on into
// filesystems mounted under root.
func walkTree(ctx context.Context, root string, st fileStat, visit visitFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return walkDir(ctx, root, "", st, visit)
}

func walkDir(ctx context.Context, root, rel string, st fileStat, visit visitFunc) error {
	if err := visit(rel, st, nil); err != nil || st.kind != kindDir {
		return err
	}
	names, err := readNames(filepath.Join(root, rel))
	if err != nil {
		return visit(rel, st, err)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		child := name
		if rel != "" {
			child = rel + "/" + name
		}
		cst, err := lstat(filepath.Join(root, child))
		if err != nil {
			if err := visit(child, fileStat{}, err); err != nil {
				return err
			}
			continue
		}
		if err := walkDir(ctx, root, child, cst, visit); err != nil {
			return err
		}
	}
	return nil
}

// readNames lists a directory, sorted.
func readNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	return names, nil
}

// treeWriter puts the items of a walk into the point.
type treeWriter struct {
	ctx      context.Context // the job's; the walk checks it between items
	run      *backup.BackupRun
	root     string
	vanished []string // deleted between the listing of their directory and their read
	changing []string // changed at every read
}

func (w *treeWriter) visit(rel string, st fileStat, err error) error {
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			w.vanished = append(w.vanished, rel)
			return nil
		}
		return readError(filepath.Join(w.root, rel), err)
	}
	return w.put(w.ctx, rel, st)
}

// put writes one item, st being what the walk saw of it.
func (w *treeWriter) put(ctx context.Context, rel string, st fileStat) error {
	path := filepath.Join(w.root, rel)
	switch st.kind {
	case kindFile:
		return w.putFile(ctx, rel, path)
	case kindSocket:
		return nil
	case kindSymlink:
		target, err := os.Readlink(path)
		if errors.Is(err, fs.ErrNotExist) {
			w.vanished = append(w.vanished, rel)
			return nil
		}
		if errors.Is(err, syscall.EINVAL) { // no longer a link
			w.changing = append(w.changing, rel)
			return nil
		}
		if err != nil {
			return readError(path, err)
		}
		e := entryOf(rel, st)
		setTarget(&e, target)
		return w.putEmpty(ctx, e)
	default:
		return w.putEmpty(ctx, entryOf(rel, st))
	}
}

// putEmpty puts an item that has no data: a directory, a link, a special
// file. It costs nothing when the previous point has the key.
func (w *treeWriter) putEmpty(ctx context.Context, e vault.Entry) error {
	if prev, ref, ok := w.run.Previous(e.Key); ok && prev.Size == 0 {
		return w.run.PutUnchanged(ctx, e, ref)
	}
	return w.run.Put(ctx, e, strings.NewReader(""))
}

// putFile puts a regular file, read again while it changes, and left out
// (named as changing) when it changes at every read.
func (w *treeWriter) putFile(ctx context.Context, rel, path string) error {
	wait := firstRetry
	for attempt := 0; attempt < changeAttempts; attempt++ {
		if attempt > 0 {
			select {
			case <-time.After(wait):
			case <-ctx.Done():
				return ctx.Err()
			}
			wait *= 2
		}
		racy, err := w.tryFile(ctx, rel, path)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, errChanged):
			wait = max(wait, racy)
			continue
		case errors.Is(err, fs.ErrNotExist):
			w.vanished = append(w.vanished, rel)
			return nil
		default:
			return err
		}
	}
	w.changing = append(w.changing, rel)
	return nil
}

// tryFile reads a file once into the point. It fails with errChanged when
// the file changed between the stat before the read and the one after, or
// may have without the stats showing it: when its change time is too
// close to now, a write in the same tick of the filesystem's clock would
// leave the times as they were. The duration is then how long to wait for
// that to be over.
func (w *treeWriter) tryFile(ctx context.Context, rel, path string) (time.Duration, error) {
	now := time.Now().UnixNano()
	open := openFile
	if h := openHook.Load(); h != nil {
		open = *h
	}
	f, err := open(path)
	if err != nil {
		if errors.Is(err, errChanged) || errors.Is(err, fs.ErrNotExist) {
			return 0, err
		}
		return 0, readError(path, err)
	}
	defer f.Close()
	st, err := fstat(f)
	if err != nil {
		return 0, readError(path, err)
	}
	if st.kind != kindFile {
		return 0, errChanged
	}
	if d := racyFor(now, st); d > 0 {
		return d, errChanged
	}
	e := entryOf(rel, st)
	if prev, ref, ok := w.run.Previous(e.Key); ok && (prev.Size == 0 && e.Size == 0 ||
		prev.Size == e.Size && prev.LastModified == e.LastModified && prev.VersionID == e.VersionID) {
		return 0, w.run.PutUnchanged(ctx, e, ref)
	}
	r := &stableReader{f: f, st: st}
	err = w.run.Put(ctx, e, r)
	if r.changed {
		return 0, errChanged
	}
	if r.err != nil {
		return 0, readError(path, r.err)
	}
	return 0, err
}

// racyFor returns how long to wait before a read of a file whose stat is
// st, taken at now, can tell any later write from the state it shows: 0
// when it can now. A filesystem's clock ticks coarsely (a jiffy, a
// second), so a write in the tick of the last change leaves ctime as it
// was. A ctime far ahead of now is a clock that differs (a network
// filesystem's server), where only the stats can tell.
func racyFor(now int64, st fileStat) time.Duration {
	window := 50 * time.Millisecond
	if st.ctime%int64(time.Second) == 0 {
		window = 2 * time.Second // a filesystem that keeps whole seconds
	}
	age := time.Duration(now - st.ctime)
	if age >= window || age < -window {
		return 0
	}
	return window - age
}

// stableReader reads a file for the vault and fails the read that reaches
// its end when the file changed since st: then the vault's Put fails and
// the entry is not written.
type stableReader struct {
	f       *os.File
	st      fileStat
	n       int64
	changed bool
	err     error // a read error of the file, not of the vault
}

func (r *stableReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.n += int64(n)
	if r.n > r.st.size {
		r.changed = true
		return n, errChanged
	}
	if errors.Is(err, io.EOF) {
		st, serr := fstat(r.f)
		if serr != nil {
			r.err = serr
			return n, serr
		}
		if r.n != r.st.size || !sameFile(st, r.st) {
			r.changed = true
			return n, errChanged
		}
		return n, io.EOF
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// readError is the error a job fails with when an item cannot be read:
// the point would lack it, and nothing says a backup may.
func readError(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return failed("Cannot read %s: permission denied (the server runs as user %d).", path, os.Geteuid())
	}
	return failed("Cannot read %s: %v.", path, pathless(err))
}

// partial says what the point lacks; "" when nothing.
func (w *treeWriter) partial() string {
	var parts []string
	if len(w.changing) > 0 {
		parts = append(parts, fmt.Sprintf("%d changed at each of %d reads and are not in the recovery point: %s", len(w.changing), changeAttempts, names(w.changing)))
	}
	if len(w.vanished) > 0 {
		parts = append(parts, fmt.Sprintf("%d were deleted while the backup ran: %s", len(w.vanished), names(w.vanished)))
	}
	if len(parts) == 0 {
		return ""
	}
	return "Of the directory's items, " + strings.Join(parts, "; ") + "."
}

func names(rels []string) string {
	shown := rels[:min(len(rels), maxNamed)]
	q := make([]string, len(shown))
	for i, r := range shown {
		q[i] = "/" + strings.ToValidUTF8(r, "\uFFFD")
	}
	s := strings.Join(q, ", ")
	if len(rels) > len(shown) {
		s += fmt.Sprintf(" and %d more", len(rels)-len(shown))
	}
	return s
}
