package rds

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

var _ TestEngine = (*SQLite)(nil)

// scratchRoot is where the engine's restore tests write.
func (s *SQLite) scratchRoot() string { return s.cfg.ScratchDir }

// TestRestoreMetadata restores a test into a new file
// ScratchDir/restore-tests/<name>-restore-test-<id>.sqlite.
func (s *SQLite) TestRestoreMetadata(p *backup.RecoveryPoint, id string) map[string]string {
	dir := makeScratchDir(s.scratchRoot(), 0o700)
	src := p.ResourceMetadata[sqliteMetaPath]
	base, _ := restoredInstanceName(nil, strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)))
	name := scratchName(base, "-", id, 63)
	return map[string]string{sqliteMetaTargetPath: filepath.Join(dir, name+".sqlite"), metaInstanceID: name}
}

// ScratchPath reports whether path is a file of the engine's restore
// tests.
func (s *SQLite) ScratchPath(path string) bool {
	return inScratchDir(s.scratchRoot(), path) && strings.HasSuffix(path, ".sqlite")
}

// ValidateRestore checks the restored file: its size and SHA-256 are the
// point's, and SQLite's integrity check answers ok. Then the check's
// query runs in it, read-only, and its command with BULWARK_RESTORE_PATH
// set to the file.
func (s *SQLite) ValidateRestore(ctx context.Context, run *backup.RestoreRun, check backup.RestoreCheck) (string, error) {
	target := run.Metadata[sqliteMetaTargetPath]
	var entry *vault.Entry
	var ref vault.ObjectRef
	err := run.Entries(ctx, func(e vault.Entry, r vault.ObjectRef) error {
		if e.Key == sqliteKey {
			entry, ref = &e, r
		}
		return nil
	})
	if err != nil {
		return "", err
	}
	if entry == nil {
		return "", fmt.Errorf("recovery point %s has no %s", run.Point.ARN, sqliteKey)
	}
	if err := fileMatches(target, *entry, ref); err != nil {
		return "", err
	}
	prog, err := s.program()
	if err != nil {
		return "", err
	}
	uri := "file:" + (&url.URL{Path: target}).EscapedPath() + "?immutable=1"
	out, err := s.run(ctx, prog, "", []string{"-readonly", "-batch", uri}, "PRAGMA integrity_check;\n")
	if res := strings.TrimSpace(out); err != nil || res != "ok" {
		if err == nil {
			err = errors.New(headLine(res))
		}
		return "", &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored database failed SQLite's integrity check: %v", err)}
	}
	if check.Query != "" {
		out, err := s.run(ctx, prog, "", []string{"-readonly", "-batch", "-bail", "-separator", "\x1f", uri}, check.Query+"\n")
		if err != nil {
			return "", queryFailed(err)
		}
		if err := backup.CheckValidationQuery(firstRow(out, "\x1f")); err != nil {
			return "", err
		}
	}
	if err := backup.RunValidationCommand(ctx, run, check.Command, "BULWARK_RESTORE_PATH="+target); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s has the recovery point's %d bytes and SHA-256, and PRAGMA integrity_check answers ok.", target, entry.Size), nil
}

// firstRow is the first line of a program's output, split into columns.
func firstRow(out, sep string) [][]string {
	if strings.TrimSpace(out) == "" {
		return nil
	}
	line, _, _ := strings.Cut(out, "\n")
	return [][]string{strings.Split(line, sep)}
}

// DeleteRestored removes a test's file, and the journal or logs SQLite
// may have left beside it; it refuses a file that is not the engine's
// scratch file.
func (s *SQLite) DeleteRestored(_ context.Context, t backup.RestoreTestTarget) error {
	path := t.Metadata[sqliteMetaTargetPath]
	if !s.ScratchPath(path) {
		return badParam("%s is not the file of a restore test.", path)
	}
	for _, suffix := range []string{"-wal", "-shm", "-journal", ""} {
		if err := os.Remove(path + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete %s: %w", path+suffix, err)
		}
	}
	return nil
}
