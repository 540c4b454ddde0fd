package efs

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// restoreWorkers is how many files a restore writes at once: each ends
// with an fsync, which one writer would wait on in turn.
const restoreWorkers = 4

// tempPrefix starts the names of what a restore writes before it is
// whole: a file's temporary name, the staging directory of the tree.
const tempPrefix = ".bulwark-restore-"

// awsOnlyKeys are AWS's EFS restore metadata keys that mean nothing for a
// directory (encryption, performance, a new file system); they are
// accepted and left alone, so that metadata written for AWS works.
var awsOnlyKeys = map[string]bool{"Encrypted": true, "KmsKeyId": true, "PerformanceMode": true, "CreationToken": true, "newFileSystem": true}

// restorePlan is where a restore writes and what it selects.
type restorePlan struct {
	source string // the backed-up directory; "" when the point does not say
	target string
	items  []string // paths relative to the root; nil for all
}

// selects reports whether the item at rel is restored: it is one of the
// items, inside one, or a directory that leads to one (whose mode and
// times are restored too).
func (p *restorePlan) selects(rel string) bool {
	if p.items == nil || rel == "" {
		return true
	}
	for _, it := range p.items {
		if rel == it || strings.HasPrefix(rel, it+"/") || strings.HasPrefix(it, rel+"/") {
			return true
		}
	}
	return false
}

// plan reads a restore's metadata: TargetDirectory (default: a new
// directory beside the backed-up one, named after it and the point's
// creation time), itemsToRestore, and AWS's keys, which are ignored, as
// is Path (where the point came from) and file-system-id.
func (p *Provider) plan(rp *backup.RecoveryPoint, md map[string]string) (*restorePlan, error) {
	for k := range md {
		switch {
		case k == MetaTargetDirectory, k == MetaItemsToRestore, k == MetaPath, k == MetaFileSystemID, awsOnlyKeys[k]:
		default:
			return nil, invalid("Unknown restore metadata %q: a directory is restored with %s and %s.", k, MetaTargetDirectory, MetaItemsToRestore)
		}
	}
	plan := &restorePlan{source: rp.ResourceMetadata[MetaPath]}
	plan.target = md[MetaTargetDirectory]
	if plan.target == "" {
		if plan.source == "" || plan.source == "/" {
			return nil, &backup.Error{Kind: backup.ErrMissingParameter, Message: "Missing restore metadata TargetDirectory: the directory to restore into."}
		}
		plan.target = plan.source + "-restore-" + rp.CreationDate.UTC().Format("20060102T150405Z")
	}
	if !filepath.IsAbs(plan.target) || strings.ContainsRune(plan.target, 0) {
		return nil, invalid("TargetDirectory %q is not an absolute path.", plan.target)
	}
	plan.target = filepath.Clean(plan.target)
	if plan.target == filepath.Dir(plan.target) {
		return nil, invalid("TargetDirectory cannot be %s.", plan.target)
	}
	if s, ok := md[MetaItemsToRestore]; ok {
		items, err := parseItems(s)
		if err != nil {
			return nil, err
		}
		plan.items = items
	}
	return plan, nil
}

// parseItems reads itemsToRestore: a JSON array of one or more paths
// relative to the backed-up directory, each starting with "/". "/" is the
// whole tree.
func parseItems(s string) ([]string, error) {
	var raw []string
	if err := json.Unmarshal([]byte(s), &raw); err != nil || len(raw) == 0 {
		return nil, invalid(`%s must be a JSON array of paths inside the backed-up directory, each starting with "/", such as ["/docs","/a.txt"].`, MetaItemsToRestore)
	}
	var items []string
	for _, it := range raw {
		rel := strings.TrimPrefix(path.Clean(it), "/")
		if !strings.HasPrefix(it, "/") || strings.ContainsRune(it, 0) || slices.Contains(strings.Split(it, "/"), "..") {
			return nil, invalid(`Item %q of %s is not a path starting with "/" inside the backed-up directory.`, it, MetaItemsToRestore)
		}
		if rel == "" {
			return nil, nil // the whole tree
		}
		items = append(items, rel)
	}
	return items, nil
}

// checkTarget says, as a caller's mistake, why a restore cannot write
// into the plan's target: it must be an empty directory, or not exist in
// a directory that does. A restore never writes over files, so never
// over the backed-up directory while it holds any.
func checkTarget(plan *restorePlan) error {
	t := plan.target
	fi, err := os.Lstat(t)
	switch {
	case err == nil && fi.Mode()&fs.ModeSymlink != 0:
		return invalid("TargetDirectory %s is a symbolic link: name the directory it leads to.", t)
	case err == nil && !fi.IsDir():
		return invalid("TargetDirectory %s exists and is not a directory.", t)
	case err == nil:
		f, err := os.Open(t)
		if err != nil {
			return invalid("TargetDirectory %s cannot be read: %v.", t, pathless(err))
		}
		_, err = f.Readdirnames(1)
		f.Close()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return invalid("TargetDirectory %s cannot be read: %v.", t, pathless(err))
		}
		if within(t, plan.source) {
			return invalid("TargetDirectory %s is not empty and is the backed-up directory %s or inside it: a restore writes into a new or empty directory, never over files.", t, plan.source)
		}
		return invalid("TargetDirectory %s is not empty: a restore writes into a new or empty directory, never over files.", t)
	case !errors.Is(err, fs.ErrNotExist):
		return invalid("TargetDirectory %s cannot be used: %v.", t, pathless(err))
	}
	parent := filepath.Dir(t)
	fi, err = os.Stat(parent)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return invalid("The parent directory %s of TargetDirectory %s does not exist.", parent, t)
	case err != nil:
		return invalid("The parent directory %s of TargetDirectory %s cannot be used: %v.", parent, t, pathless(err))
	case !fi.IsDir():
		return invalid("The parent %s of TargetDirectory %s is not a directory.", parent, t)
	}
	return nil
}

// within reports whether dir is src or inside it, links resolved.
func within(dir, src string) bool {
	if src == "" {
		return false
	}
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	if s, err := filepath.EvalSymlinks(src); err == nil {
		src = s
	}
	return dir == src || strings.HasPrefix(dir, strings.TrimSuffix(src, "/")+"/")
}

// CheckRestore judges the restore's metadata and its target directory as
// they are now, and returns the ARN the restore reports as created (see
// targetARN).
func (p *Provider) CheckRestore(ctx context.Context, account string, rp *backup.RecoveryPoint, md map[string]string) (string, error) {
	plan, err := p.plan(rp, md)
	if err != nil {
		return "", err
	}
	if !(backup.IsRestoreTest(ctx) && p.scratchTarget(plan.target)) {
		if err := p.Resources.CheckPath(account, MetaTargetDirectory, plan.target); err != nil {
			return "", err
		}
	}
	if err := checkTarget(plan); err != nil {
		return "", err
	}
	return p.targetARN(account, plan.target), nil
}

// Restore writes the point's tree, or the items selected, into a staging
// directory beside the target, then renames it into place: a failed
// restore leaves nothing at the target, and the staging directory is
// removed. Each file is written under a temporary name and renamed once
// whole and checked. The directories' modes and times are set last,
// children before parents, since writing into a directory changes its
// time.
func (p *Provider) Restore(ctx context.Context, run *backup.RestoreRun) error {
	plan, err := p.plan(run.Point, run.Metadata)
	if err != nil {
		return err
	}
	if err := checkTarget(plan); err != nil { // again: it may have changed since the restore was asked for
		return err
	}
	r := &restorer{run: run, plan: plan, made: map[string]bool{"": true}}
	if plan.items != nil {
		if err := r.checkItems(ctx); err != nil {
			return err
		}
	}
	stage, err := os.MkdirTemp(filepath.Dir(plan.target), "."+filepath.Base(plan.target)+tempPrefix)
	if err != nil {
		return failed("Cannot write in %s: %v.", filepath.Dir(plan.target), pathless(err))
	}
	r.base = stage
	moved := false
	defer func() {
		if !moved {
			removeTree(stage)
		}
	}()
	if err := r.writeTree(ctx); err != nil {
		return err
	}
	if err := r.moveInto(plan.target); err != nil {
		return err
	}
	moved = true
	r.base = plan.target
	return r.setDirs()
}

// restorer is one restore's state.
type restorer struct {
	run  *backup.RestoreRun
	plan *restorePlan
	base string          // where the tree is being written
	made map[string]bool // directories written, by rel; only the walk's goroutine uses it
	dirs []item          // in the order written
}

func (r *restorer) abs(rel string) string { return filepath.Join(r.base, filepath.FromSlash(rel)) }

// checkItems fails unless every item of the plan is in the point, before
// anything is written.
func (r *restorer) checkItems(ctx context.Context) error {
	found := map[string]bool{}
	err := r.run.Entries(ctx, func(e vault.Entry, _ vault.ObjectRef) error {
		it, err := itemOf(e)
		if err != nil {
			return damaged(err)
		}
		found[it.rel] = true
		return nil
	})
	if err != nil {
		return err
	}
	for _, it := range r.plan.items {
		if !found[it] {
			return failed("Item /%s of %s is not in the recovery point.", it, MetaItemsToRestore)
		}
	}
	return nil
}

type fileJob struct {
	it  item
	e   vault.Entry
	ref vault.ObjectRef
}

// writeTree writes the selected items under r.base: directories and
// links as the entry list is read, files by restoreWorkers workers.
func (r *restorer) writeTree(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan fileJob)
	for range restoreWorkers {
		g.Go(func() error {
			buf := make([]byte, 1<<20)
			for j := range work {
				if err := r.writeFile(gctx, j, buf); err != nil {
					return err
				}
			}
			return nil
		})
	}
	err := r.run.Entries(gctx, func(e vault.Entry, ref vault.ObjectRef) error {
		it, err := itemOf(e)
		if err != nil {
			return damaged(err)
		}
		if !r.plan.selects(it.rel) {
			return nil
		}
		// An item goes only into a directory this restore made: never
		// through a link the point holds.
		if it.rel != "" && !r.made[parentOf(it.rel)] {
			return damaged(fmt.Errorf("entry %q: its directory is not before it", e.Key))
		}
		switch it.kind {
		case kindDir:
			return r.writeDir(gctx, it, e)
		case kindFile:
			select {
			case work <- fileJob{it, e, ref}:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		default:
			return r.writeSpecial(gctx, it, e)
		}
	})
	close(work)
	if werr := g.Wait(); werr != nil {
		return werr // the first failure; Entries then stopped for it
	}
	return err
}

func parentOf(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

func damaged(err error) error {
	return failed("The recovery point is damaged: %v.", err)
}

// writeDir makes a directory, private until its mode is set at the end.
func (r *restorer) writeDir(ctx context.Context, it item, e vault.Entry) error {
	if it.rel != "" {
		if err := os.Mkdir(r.abs(it.rel), 0o700); err != nil {
			return writeError(r.plan.target, it.rel, err)
		}
	}
	r.made[it.rel] = true
	r.dirs = append(r.dirs, it)
	return r.run.Restored(ctx, e)
}

// writeFile writes a file under a temporary name, holes where the data
// has 4 KiB blocks of zeros, and renames it once the vault's check of the
// data at its end has passed.
func (r *restorer) writeFile(ctx context.Context, j fileJob, buf []byte) error {
	dst := r.abs(j.it.rel)
	f, err := os.CreateTemp(filepath.Dir(dst), tempPrefix+"*")
	if err != nil {
		return writeError(r.plan.target, j.it.rel, err)
	}
	tmp, closed, renamed := f.Name(), false, false
	defer func() {
		if !closed {
			f.Close()
		}
		if !renamed {
			os.Remove(tmp)
		}
	}()
	rd, err := r.run.Open(ctx, j.e, j.ref)
	if err != nil {
		return err
	}
	defer rd.Close()
	sw := &sparseWriter{f: f}
	if _, err := io.CopyBuffer(sw, rd, buf); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("restore /%s: %w", j.it.rel, err)
	}
	if err := sw.finish(); err != nil {
		return writeError(r.plan.target, j.it.rel, err)
	}
	if err := r.finishFile(f, j.it); err != nil {
		return writeError(r.plan.target, j.it.rel, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return writeError(r.plan.target, j.it.rel, err)
	}
	if err := lchtimes(tmp, j.it.mtime); err != nil {
		return writeError(r.plan.target, j.it.rel, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return writeError(r.plan.target, j.it.rel, err)
	}
	renamed = true
	return r.run.Restored(ctx, j.e)
}

// finishFile gives a written file its owner (when the server may) and
// mode, in that order since a chown clears setuid, and makes it durable.
func (r *restorer) finishFile(f *os.File, it item) error {
	if canChown() {
		if err := f.Chown(it.uid, it.gid); err != nil {
			return err
		}
	}
	if err := fchmod(f, it.perm); err != nil {
		return err
	}
	return f.Sync()
}

// writeSpecial writes a link, FIFO or device node under a temporary
// name and renames it.
func (r *restorer) writeSpecial(ctx context.Context, it item, e vault.Entry) error {
	dst := r.abs(it.rel)
	tmp := filepath.Join(filepath.Dir(dst), tempPrefix+randomName())
	err := func() error {
		if it.kind == kindSymlink {
			if err := os.Symlink(it.target, tmp); err != nil {
				return err
			}
			if canChown() {
				if err := os.Lchown(tmp, it.uid, it.gid); err != nil {
					return err
				}
			}
		} else {
			if err := mknod(tmp, it.kind, it.perm, it.rdev); err != nil {
				return err
			}
			if canChown() {
				if err := os.Lchown(tmp, it.uid, it.gid); err != nil {
					return err
				}
			}
			if err := chmod(tmp, it.perm); err != nil {
				return err
			}
		}
		if err := lchtimes(tmp, it.mtime); err != nil {
			return err
		}
		return os.Rename(tmp, dst)
	}()
	if err != nil {
		os.Remove(tmp)
		return writeError(r.plan.target, it.rel, err)
	}
	return r.run.Restored(ctx, e)
}

// moveInto renames the staging directory to the target, which is missing
// or empty. Where the target cannot be replaced (a mount point), what the
// staging directory holds is moved into it instead, name by name, never
// over a name the target has meanwhile.
func (r *restorer) moveInto(target string) error {
	err := os.Rename(r.base, target)
	if err == nil {
		return nil
	}
	names, rerr := readNames(target)
	if rerr != nil {
		return failed("Cannot restore into %s: %v.", target, pathless(err))
	}
	if len(names) > 0 {
		return failed("TargetDirectory %s is no longer empty: something wrote into it while the restore ran.", target)
	}
	names, rerr = readNames(r.base)
	if rerr != nil {
		return failed("Cannot restore into %s: %v.", target, pathless(rerr))
	}
	for _, n := range names {
		dst := filepath.Join(target, n)
		if _, err := os.Lstat(dst); !errors.Is(err, fs.ErrNotExist) {
			return failed("TargetDirectory %s is no longer empty: something wrote into it while the restore ran.", target)
		}
		if err := os.Rename(filepath.Join(r.base, n), dst); err != nil {
			return failed("Cannot restore into %s: %v.", target, pathless(err))
		}
	}
	return os.Remove(r.base)
}

// setDirs gives the restored directories their owners, modes and times,
// children before their parents, and makes their names durable.
func (r *restorer) setDirs() error {
	for i := len(r.dirs) - 1; i >= 0; i-- {
		it := r.dirs[i]
		p := r.abs(it.rel)
		if d, err := os.Open(p); err == nil {
			err = d.Sync()
			d.Close()
			if err != nil {
				return writeError(r.plan.target, it.rel, err)
			}
		}
		if canChown() {
			if err := os.Lchown(p, it.uid, it.gid); err != nil {
				return writeError(r.plan.target, it.rel, err)
			}
		}
		if err := chmod(p, it.perm); err != nil {
			return writeError(r.plan.target, it.rel, err)
		}
		if err := lchtimes(p, it.mtime); err != nil {
			return writeError(r.plan.target, it.rel, err)
		}
	}
	if d, err := os.Open(filepath.Dir(r.plan.target)); err == nil {
		_ = d.Sync() // the target's own name
		d.Close()
	}
	return nil
}

// writeError is the error a restore fails with when an item cannot be
// written.
func writeError(target, rel string, err error) error {
	where := filepath.Join(target, filepath.FromSlash(rel))
	return failed("Cannot write %s: %v.", where, pathless(err))
}

// removeTree removes a staging directory, making its directories
// writable first (a restored one may not be yet).
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}

func randomName() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
