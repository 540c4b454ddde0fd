package rds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
)

// Restore tests of databases (backup.RestoreTester). Each engine restores
// a test into a scratch target of its own: a file (SQLite) or a data
// directory (PostgreSQL) under a restore-tests directory of the engine's
// scratch directory (for PostgreSQL, one out of the region's data
// directory when the server's user cannot enter that: see
// postgres_restoretest.go), a database named <source>_restore_test_<id>
// on the source's server (MySQL). A target is deleted only when it has the form
// of one: a file or directory of that restore-tests directory whose name
// ends with restoreTestSuffix, a database whose name does.

// TestEngine is an engine whose databases restore testing can test.
type TestEngine interface {
	// TestRestoreMetadata, ValidateRestore and DeleteRestored are the
	// provider's (backup.RestoreTester), for points of this engine.
	TestRestoreMetadata(p *backup.RecoveryPoint, id string) map[string]string
	ValidateRestore(ctx context.Context, run *backup.RestoreRun, check backup.RestoreCheck) (string, error)
	DeleteRestored(ctx context.Context, t backup.RestoreTestTarget) error
	// ScratchPath reports whether path is a scratch target of the
	// engine's: a restore test may write there whatever the host path
	// policy says, as it is Bulwark's own place.
	ScratchPath(path string) bool
}

var _ backup.RestoreTester = (*Provider)(nil)

// restoreTestsDir is the directory of an engine's scratch directory that
// holds the targets of its restore tests.
const restoreTestsDir = "restore-tests"

// scratchNameRE is the name of a scratch target: restore-test- or
// _restore_test_ and the test's id, with an extension for a file.
var scratchNameRE = regexp.MustCompile(`(^|[-_])restore[-_]test[-_][0-9a-f]{8}(\.sqlite)?$`)

// scratchName is base and the test's id, cut so that it has at most max
// characters: base-restore-test-id (sep "-") or base_restore_test_id
// (sep "_").
func scratchName(base, sep, id string, max int) string {
	suffix := sep + "restore" + sep + "test" + sep + id
	if n := max - len(suffix); len(base) > n {
		base = base[:n]
	}
	base = strings.TrimRight(base, "-_")
	if base == "" {
		return strings.TrimPrefix(suffix, sep)
	}
	return base + suffix
}

// inScratchDir reports whether path is a scratch target right under
// root's restore-tests directory.
func inScratchDir(root, path string) bool {
	return root != "" && filepath.IsAbs(path) && filepath.Clean(path) == path &&
		filepath.Dir(path) == filepath.Join(root, restoreTestsDir) && scratchNameRE.MatchString(filepath.Base(path))
}

// testEngine is the point's engine as a TestEngine.
func (p *Provider) testEngine(name string) (TestEngine, error) {
	e, err := p.engine(name)
	if err != nil {
		return nil, err
	}
	te, ok := e.(TestEngine)
	if !ok {
		return nil, badParam("Databases of engine %s have no restore tests.", name)
	}
	return te, nil
}

// TestRestoreMetadata is the engine's, with the point's engine named. A
// point whose engine has no restore tests gets only its engine: the
// restore is then refused by CheckRestore, and the test not started.
func (p *Provider) TestRestoreMetadata(rp *backup.RecoveryPoint, id string) map[string]string {
	md := map[string]string{}
	if e, err := p.testEngine(rp.ResourceMetadata[MetaEngine]); err == nil {
		md = e.TestRestoreMetadata(rp, id)
	}
	md[MetaEngine] = rp.ResourceMetadata[MetaEngine]
	return md
}

// ValidateRestore is the engine's.
func (p *Provider) ValidateRestore(ctx context.Context, run *backup.RestoreRun, check backup.RestoreCheck) (string, error) {
	e, err := p.testEngine(run.Point.ResourceMetadata[MetaEngine])
	if err != nil {
		return "", err
	}
	return e.ValidateRestore(ctx, run, check)
}

// DeleteRestored is the engine's that the test's metadata names.
func (p *Provider) DeleteRestored(ctx context.Context, t backup.RestoreTestTarget) error {
	e, err := p.testEngine(t.Metadata[MetaEngine])
	if err != nil {
		return err
	}
	return e.DeleteRestored(ctx, t)
}

// scratchPath reports whether a restore's host path is the scratch target
// of a restore test, which the host path policy does not apply to.
func (p *Provider) scratchPath(ctx context.Context, md map[string]string, path string) bool {
	if !backup.IsRestoreTest(ctx) {
		return false
	}
	e, err := p.testEngine(md[MetaEngine])
	return err == nil && e.ScratchPath(path)
}

// makeScratchDir makes root's restore-tests directory, mode perm.
func makeScratchDir(root string, perm os.FileMode) string {
	dir := filepath.Join(root, restoreTestsDir)
	_ = os.MkdirAll(dir, perm) // a failure shows when the restore is checked
	return dir
}

// fileMatches checks a restored file against its entry in the point: its
// size and SHA-256.
func fileMatches(path string, e vault.Entry, ref vault.ObjectRef) error {
	f, err := os.Open(path)
	if err != nil {
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored file %s cannot be read: %v.", path, err)}
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if n != ref.Size || n != e.Size {
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored file %s has %d bytes; the recovery point recorded %d.", path, n, e.Size)}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("The restored file %s has SHA-256 %s; the recovery point recorded %s.", path, got, ref.SHA256)}
	}
	return nil
}

// queryFailed is the error of a ValidationQuery the database refused.
func queryFailed(err error) error {
	return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf("%s failed: %v", backup.MetaValidationQuery, err)}
}
