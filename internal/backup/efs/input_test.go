//go:build linux

package efs_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/efs"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestDirectoryRegistration: a directory is registered only with an
// absolute path to a directory that exists, and nothing but its path and
// hooks; the path is kept cleaned.
func TestDirectoryRegistration(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		settings map[string]string
		kind     error
		want     string
	}{
		{map[string]string{backup.SettingPath: filepath.Join(dir, "nope")}, backup.ErrInvalidParameter, "Directory " + filepath.Join(dir, "nope") + " does not exist."},
		{map[string]string{backup.SettingPath: "srv/docs"}, backup.ErrInvalidParameter, `Path "srv/docs" is not an absolute path.`},
		{map[string]string{backup.SettingPath: file}, backup.ErrInvalidParameter, "Path " + file + " is not a directory."},
		{map[string]string{}, backup.ErrMissingParameter, "Missing setting Path"},
		{map[string]string{backup.SettingPath: dir, backup.SettingHost: "db"}, backup.ErrInvalidParameter, "Setting Host does not apply to a directory"},
	} {
		_, err := e.r.Resources.Register(ctx, servertest.AccountID, backup.Registration{Type: backup.TypeEFS, Name: "docs", Settings: tc.settings})
		var be *backup.Error
		if !errors.As(err, &be) || !errors.Is(err, tc.kind) || !strings.Contains(be.Message, tc.want) {
			t.Fatalf("register %v: %v, want %v %q", tc.settings, err, tc.kind, tc.want)
		}
	}
	_, err := e.r.Resources.Register(ctx, servertest.AccountID, backup.Registration{Type: backup.TypeEFS, Name: "docs",
		Settings: map[string]string{backup.SettingPath: dir}, Password: "x"})
	if !errors.Is(err, backup.ErrInvalidParameter) {
		t.Fatalf("register with a password: %v", err)
	}
	reg := e.register("docs", dir+"/./", nil)
	if reg.Settings[backup.SettingPath] != dir {
		t.Fatalf("path kept as %q", reg.Settings[backup.SettingPath])
	}
}

// TestDirectoryBadInput: what a backup or restore of a directory refuses,
// and how a job fails when the directory goes wrong after it was
// registered.
func TestDirectoryBadInput(t *testing.T) {
	e := newEnv(t)
	base := t.TempDir()
	src := filepath.Join(base, "docs")
	if err := os.MkdirAll(filepath.Join(src, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"a.txt", "sub/b.txt", "sub/c.txt"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	reg := e.register("docs", src, nil)

	// Another account can neither back it up nor see it.
	other := sdk(e.r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	_, err := other.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"), ResourceArn: aws.String(reg.ARN),
		IamRoleArn: aws.String("arn:aws:iam::" + servertest.OtherAccountID + ":role/backup")})
	wantError(t, err, "InvalidParameterValueException", "belongs to another account")

	// A file the server cannot read fails the job, naming it; one deleted
	// between the listing and the read is named in a PARTIAL point.
	restoreOpen := efs.SetOpen(func(path string) (*os.File, error) {
		switch filepath.Base(path) {
		case "b.txt":
			return nil, &fs.PathError{Op: "open", Path: path, Err: syscall.EACCES}
		}
		return efs.OpenFile(path)
	})
	j := e.backup(reg.ARN, "Default", nil)
	restoreOpen()
	if want := "Cannot read " + filepath.Join(src, "sub/b.txt") + ": permission denied"; j.State != types.BackupJobStateFailed ||
		!strings.HasPrefix(aws.ToString(j.StatusMessage), want) || j.RecoveryPointArn != nil {
		t.Fatalf("backup of an unreadable file: %s %q, want %q", j.State, aws.ToString(j.StatusMessage), want)
	}
	restoreOpen = efs.SetOpen(func(path string) (*os.File, error) {
		if filepath.Base(path) == "c.txt" {
			return nil, &fs.PathError{Op: "open", Path: path, Err: syscall.ENOENT}
		}
		return efs.OpenFile(path)
	})
	j, rp := e.completed(reg.ARN, "Default", nil)
	restoreOpen()
	if rp.Status != backup.PointPartial || !strings.Contains(rp.StatusMessage, "1 were deleted while the backup ran: /sub/c.txt") ||
		aws.ToString(j.StatusMessage) != rp.StatusMessage {
		t.Fatalf("backup of a file deleted meanwhile: %s %q, job %q", rp.Status, rp.StatusMessage, aws.ToString(j.StatusMessage))
	}
	_, rp = e.completed(reg.ARN, "Default", nil)
	point := aws.String(rp.ARN)

	// Restores refused when asked for.
	full := filepath.Join(base, "full")
	if err := os.Mkdir(full, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(full, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		md   map[string]string
		code string
		want string
	}{
		{map[string]string{"TargetDirectory": src}, "InvalidParameterValueException", "is not empty and is the backed-up directory " + src},
		{map[string]string{"TargetDirectory": filepath.Join(src, "sub")}, "InvalidParameterValueException", "or inside it"},
		{map[string]string{"TargetDirectory": full}, "InvalidParameterValueException", "TargetDirectory " + full + " is not empty"},
		{map[string]string{"TargetDirectory": filepath.Join(base, "no/such")}, "InvalidParameterValueException", "The parent directory " + filepath.Join(base, "no") + " of TargetDirectory"},
		{map[string]string{"TargetDirectory": filepath.Join(src, "a.txt")}, "InvalidParameterValueException", "exists and is not a directory"},
		{map[string]string{"TargetDirectory": "restored"}, "InvalidParameterValueException", "is not an absolute path"},
		{map[string]string{"TargetDirectory": "/"}, "InvalidParameterValueException", "cannot be /"},
		{map[string]string{"TargetDirectory": filepath.Join(base, "r"), "itemsToRestore": `["/a.txt"`}, "InvalidParameterValueException", "must be a JSON array"},
		{map[string]string{"TargetDirectory": filepath.Join(base, "r"), "itemsToRestore": `[]`}, "InvalidParameterValueException", "must be a JSON array"},
		{map[string]string{"TargetDirectory": filepath.Join(base, "r"), "itemsToRestore": `["a.txt"]`}, "InvalidParameterValueException", `Item "a.txt"`},
		{map[string]string{"TargetDirectory": filepath.Join(base, "r"), "itemsToRestore": `["/sub/../../etc"]`}, "InvalidParameterValueException", `Item "/sub/../../etc"`},
		{map[string]string{"TargetDirectory": filepath.Join(base, "r"), "targetDirectory": "/x"}, "InvalidParameterValueException", `Unknown restore metadata "targetDirectory"`},
	} {
		_, err := e.c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: point, IamRoleArn: aws.String(role), Metadata: tc.md})
		wantError(t, err, tc.code, tc.want)
	}
	if err := os.RemoveAll(full); err != nil {
		t.Fatal(err)
	}
	// AWS's own keys are accepted (and mean nothing here); an item not in
	// the point fails the job before anything is written.
	md := map[string]string{"TargetDirectory": full, "itemsToRestore": `["/sub/b.txt","/nope"]`, "newFileSystem": "true", "Encrypted": "false"}
	if rj := restore(t, e.c, *point, md); rj.Status != types.RestoreJobStatusFailed ||
		aws.ToString(rj.StatusMessage) != "Item /nope of itemsToRestore is not in the recovery point." {
		t.Fatalf("restore of a missing item: %s %q", rj.Status, aws.ToString(rj.StatusMessage))
	}
	if _, err := os.Lstat(full); !os.IsNotExist(err) {
		t.Fatalf("a failed restore left its target: %v", err)
	}
	leftovers(t, base)

	// The directory removed after its registration: the job fails saying
	// so.
	if err := os.RemoveAll(src); err != nil {
		t.Fatal(err)
	}
	j = e.backup(reg.ARN, "Default", nil)
	if want := "Directory " + src + ", registered as docs, does not exist any more."; j.State != types.BackupJobStateFailed ||
		aws.ToString(j.StatusMessage) != want {
		t.Fatalf("backup of a removed directory: %s %q, want %q", j.State, aws.ToString(j.StatusMessage), want)
	}
}
