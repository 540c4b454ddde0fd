package efs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// Restore tests of directories (backup.RestoreTester): a test restores
// into a new directory <scratch>/<fs-ID>-restore-test-<id>, the scratch
// directory being Bulwark's own (SetScratchDir), which the host path
// policy does not apply to; it checks every item of the point there and
// deletes the directory when the test ends.

var _ backup.RestoreTester = (*Provider)(nil)

// scratchDirRE is the name of a restore test's directory.
var scratchDirRE = regexp.MustCompile(`^fs-[0-9a-f]+-restore-test-[0-9a-f]{8}$`)

// SetScratchDir sets the directory the restore tests write in, one of
// Bulwark's own (the region's data directory's); os.TempDir()'s
// bulwark-restore-tests when unset. It returns p.
func (p *Provider) SetScratchDir(dir string) *Provider {
	p.scratch = dir
	return p
}

func (p *Provider) scratchDir() string {
	if p.scratch == "" {
		return filepath.Join(os.TempDir(), "bulwark-restore-tests")
	}
	return p.scratch
}

// scratchTarget reports whether dir is a restore test's directory.
func (p *Provider) scratchTarget(dir string) bool {
	return filepath.IsAbs(dir) && filepath.Clean(dir) == dir && filepath.Dir(dir) == p.scratchDir() && scratchDirRE.MatchString(filepath.Base(dir))
}

// TestRestoreMetadata restores a test into a new directory of the
// scratch directory, which it makes.
func (p *Provider) TestRestoreMetadata(rp *backup.RecoveryPoint, id string) map[string]string {
	_ = os.MkdirAll(p.scratchDir(), 0o700) // a failure shows when the restore is checked
	return map[string]string{MetaTargetDirectory: filepath.Join(p.scratchDir(), fileSystemID(rp.ResourceARN)+"-restore-test-"+id)}
}

// ValidateRestore checks every item the restore took against the point:
// each file's size and SHA-256, each other item's type. Then the check's
// command runs with BULWARK_RESTORE_PATH set to the directory; a
// directory has no ValidationQuery.
func (p *Provider) ValidateRestore(ctx context.Context, run *backup.RestoreRun, check backup.RestoreCheck) (string, error) {
	if check.Query != "" {
		return "", failed("%s applies to databases; a directory is checked with %s.", backup.MetaValidationQuery, backup.MetaValidationCommand)
	}
	plan, err := p.plan(run.Point, run.Metadata)
	if err != nil {
		return "", err
	}
	files, items := 0, 0
	var size int64
	err = run.Entries(ctx, func(e vault.Entry, ref vault.ObjectRef) error {
		it, err := itemOf(e)
		if err != nil {
			return err
		}
		if !plan.selects(it.rel) {
			return nil
		}
		items++
		path := filepath.Join(plan.target, filepath.FromSlash(it.rel))
		if err := checkItem(path, it, e, ref); err != nil {
			return err
		}
		if it.kind == kindFile {
			files++
			size += e.Size
		}
		return ctx.Err()
	})
	if err != nil {
		return "", err
	}
	if err := backup.RunValidationCommand(ctx, run, check.Command, "BULWARK_RESTORE_PATH="+plan.target); err != nil {
		return "", err
	}
	return fmt.Sprintf("the %d items of the recovery point are in %s, its %d files (%d bytes) with their size and SHA-256.", items, plan.target, files, size), nil
}

// checkItem checks one restored item: its type, and a file's size and
// SHA-256.
func checkItem(path string, it item, e vault.Entry, ref vault.ObjectRef) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return failed("/%s of the recovery point is missing from the restored directory.", it.rel)
	}
	if err != nil {
		return failed("/%s cannot be read in the restored directory: %v.", it.rel, pathless(err))
	}
	want := map[string]fs.FileMode{kindFile: 0, kindDir: fs.ModeDir, kindSymlink: fs.ModeSymlink, kindFIFO: fs.ModeNamedPipe,
		kindChar: fs.ModeDevice | fs.ModeCharDevice, kindBlock: fs.ModeDevice}[it.kind]
	if fi.Mode().Type() != want {
		return failed("/%s is restored as %v; the recovery point has a %s.", it.rel, fi.Mode().Type(), it.kind)
	}
	if it.kind != kindFile {
		return nil
	}
	if fi.Size() != e.Size {
		return failed("/%s has %d bytes; the recovery point recorded %d.", it.rel, fi.Size(), e.Size)
	}
	f, err := os.Open(path)
	if err != nil {
		return failed("/%s cannot be read in the restored directory: %v.", it.rel, pathless(err))
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return failed("/%s has SHA-256 %s; the recovery point recorded %s.", it.rel, got, ref.SHA256)
	}
	return nil
}

// DeleteRestored removes a test's directory; it refuses one that is not a
// restore test's directory of the scratch directory.
func (p *Provider) DeleteRestored(_ context.Context, t backup.RestoreTestTarget) error {
	dir := t.Metadata[MetaTargetDirectory]
	if !p.scratchTarget(dir) {
		return invalid("%s is not the directory of a restore test.", dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("delete %s: %w", dir, err)
	}
	return nil
}
