// Package efs backs up registered directories of the server's filesystem
// as resources of AWS type EFS (arn:aws:elasticfilesystem:...:file-system/fs-ID).
//
// A recovery point is the vault's ordinary entry list: one entry per
// directory, file, symbolic link, FIFO or device node of the tree, keyed by
// its slash-separated path relative to the registered directory (a
// directory's key ends in "/", the directory itself is "./"), with its
// data streamed into the vault for a regular file and none for the rest.
// Copies, cold storage, vault lock and transfers to other regions work on
// it unchanged, at chunk level. The entry's Metadata carries what a
// restore needs besides the data: type, permission bits, owner, the
// target of a link, a device number, the raw bytes of a name that is not
// UTF-8. A regular file whose size, modification time, inode and change
// time match the previous point's is added by reference, unread.
//
// A file is read between two stats of its open descriptor; one that
// changed while it was read is read again, and one that keeps changing is
// left out of the point and named in its PARTIAL status. The package
// records no instant of the tree as a whole: a tree whose files must agree
// with each other is quiesced by its pre-backup command. docs/design/directory-backup.md
// gives the reasons.
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
	"strings"

	"github.com/bulwark/bulwark/internal/backup"
)

// Keys of restore metadata, and of what a point records of its resource
// (RecoveryPoint.ResourceMetadata).
const (
	// MetaFileSystemID is the fs-ID of the backed-up directory's ARN.
	MetaFileSystemID = "file-system-id"
	// MetaPath is the backed-up directory's path. In restore metadata it
	// says where the point came from; it is never where it goes.
	MetaPath = "Path"
	// MetaTargetDirectory is where a restore writes: a directory that
	// does not exist (its parent must) or is empty.
	MetaTargetDirectory = "TargetDirectory"
	// MetaItemsToRestore is AWS's key for an item-level restore: a JSON
	// array of paths relative to the backed-up directory, each starting
	// with "/", whose subtrees alone are restored.
	MetaItemsToRestore = "itemsToRestore"
)

// Provider backs up and restores registered directories.
type Provider struct {
	backup.RegisteredBase
	scratch string // restore tests' directory (restoretest.go)
}

var (
	_ backup.Provider  = (*Provider)(nil)
	_ backup.Validator = (*Provider)(nil)
)

// New returns the provider of the region's registered directories and
// makes it the validator of their registrations.
func New(rs *backup.Resources) *Provider {
	p := &Provider{RegisteredBase: backup.NewRegisteredBase(rs, backup.TypeEFS)}
	rs.SetValidator(backup.TypeEFS, p)
	return p
}

// settingsOf a directory: its path and its two hooks.
var settingsOf = map[string]bool{backup.SettingPath: true, backup.SettingPreBackup: true, backup.SettingPostBackup: true}

// Validate checks a directory's registration: its Path is an absolute path
// to a directory the server can list, stored cleaned; its hooks, if any,
// have a shell to run them. It has no other settings and no password.
func (p *Provider) Validate(ctx context.Context, reg *backup.Registered, password string) error {
	if password != "" {
		return invalid("A directory has no password.")
	}
	for k := range reg.Settings {
		if !settingsOf[k] {
			return invalid("Setting %s does not apply to a directory: it has Path, %s and %s.", k, backup.SettingPreBackup, backup.SettingPostBackup)
		}
	}
	path := reg.Settings[backup.SettingPath]
	if path == "" {
		return &backup.Error{Kind: backup.ErrMissingParameter, Message: "Missing setting Path: the absolute path of the directory to back up."}
	}
	if !filepath.IsAbs(path) || strings.ContainsRune(path, 0) {
		return invalid("Path %q is not an absolute path.", path)
	}
	path = filepath.Clean(path)
	if err := p.Resources.CheckPath(reg.AccountID, "Path", path); err != nil {
		return err
	}
	if err := checkReadableDir(path); err != nil {
		return err
	}
	reg.Settings[backup.SettingPath] = path
	return backup.ValidateHooks(reg.Settings)
}

// checkReadableDir says, as a caller's mistake, why path is not a
// directory the server can list.
func checkReadableDir(path string) error {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return invalid("Directory %s does not exist.", path)
	case errors.Is(err, fs.ErrPermission):
		return invalid("Directory %s cannot be reached by the server (user %d): permission denied.", path, os.Geteuid())
	case err != nil:
		return invalid("Directory %s cannot be read: %v.", path, pathless(err))
	case !fi.IsDir():
		return invalid("Path %s is not a directory.", path)
	}
	f, err := os.Open(path)
	if err == nil {
		_, err = f.Readdirnames(1)
		f.Close()
	}
	if errors.Is(err, fs.ErrPermission) {
		return invalid("Directory %s cannot be read by the server (user %d): permission denied.", path, os.Geteuid())
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return invalid("Directory %s cannot be read: %v.", path, pathless(err))
	}
	return nil
}

// RestoreMetadata is the point's fs-ID and the path it was backed up
// from, as GetRecoveryPointRestoreMetadata shows them.
func (p *Provider) RestoreMetadata(rp *backup.RecoveryPoint) map[string]string {
	md := map[string]string{MetaFileSystemID: fileSystemID(rp.ResourceARN)}
	if path := rp.ResourceMetadata[MetaPath]; path != "" {
		md[MetaPath] = path
	}
	return md
}

// fileSystemID is the fs-ID an EFS ARN ends with.
func fileSystemID(arn string) string {
	return arn[strings.LastIndexByte(arn, '/')+1:]
}

// targetARN is the ARN a restore into dir reports as its created
// resource: an EFS ARN of the restoring region and account whose fs-ID is
// the start of the SHA-256 of the path. It names the directory; it is not
// registered (register the directory to back it up).
func (p *Provider) targetARN(account, dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return "arn:aws:elasticfilesystem:" + p.Resources.Region() + ":" + account + ":file-system/fs-" + hex.EncodeToString(sum[:])[:17]
}

func invalid(format string, args ...any) error {
	return &backup.Error{Kind: backup.ErrInvalidParameter, Message: fmt.Sprintf(format, args...)}
}

// failed is the error a job fails with, its message shown as the job's.
func failed(format string, args ...any) error {
	return &backup.Error{Kind: backup.ErrInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// pathless is err without the path and operation an *fs.PathError adds,
// for a message that names the path itself.
func pathless(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
