//go:build linux

package efs_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
)

// TestDirectoryBackupHooks: the pre-backup command runs before the walk
// (the marker it writes is in the point) and the post-backup command after
// it (the marker is gone), both with the resource's ARN and path in their
// environment. A pre-backup command that fails fails the job with the end
// of its standard error, and the post-backup command still runs, told the
// backup failed; a post-backup command that fails fails a job whose
// backup went well.
func TestDirectoryBackupHooks(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	logs := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	post := `rm "$BULWARK_PATH/.marker" && echo "$BULWARK_BACKUP_STATUS" >> ` + logs + `/post.log`
	reg := e.register("hooked", src, map[string]string{
		backup.SettingPreBackup:  `printf '%s %s' "$BULWARK_RESOURCE_ARN" "$BULWARK_PATH" > "$BULWARK_PATH/.marker"`,
		backup.SettingPostBackup: post,
	})
	_, rp := e.completed(reg.ARN, "Default", nil)
	if _, err := os.Stat(filepath.Join(src, ".marker")); !os.IsNotExist(err) {
		t.Fatalf("the post-backup command did not remove the marker: %v", err)
	}
	target := filepath.Join(t.TempDir(), "r")
	restored(t, e.c, rp.ARN, map[string]string{"TargetDirectory": target})
	if b, err := os.ReadFile(filepath.Join(target, ".marker")); err != nil || string(b) != reg.ARN+" "+src {
		t.Fatalf("marker in the point: %q %v", b, err)
	}
	wantLog(t, filepath.Join(logs, "post.log"), "COMPLETED\n")

	// A pre-backup command that fails.
	failing := e.register("failing", src, map[string]string{
		backup.SettingPreBackup:  `echo "starting" >&2; echo "cannot lock the database" >&2; exit 3`,
		backup.SettingPostBackup: `echo "$BULWARK_BACKUP_STATUS" >> ` + logs + `/failing.log`,
	})
	j := e.backup(failing.ARN, "Default", nil)
	if j.State != types.BackupJobStateFailed || aws.ToString(j.StatusMessage) != "PreBackupCommand failed (exit status 3): starting | cannot lock the database" ||
		j.RecoveryPointArn != nil {
		t.Fatalf("job with a failing pre-backup command: %s %q", j.State, aws.ToString(j.StatusMessage))
	}
	wantLog(t, filepath.Join(logs, "failing.log"), "FAILED\n")

	// A post-backup command that fails, after a backup that went well.
	unfreeze := e.register("unfreeze", src, map[string]string{backup.SettingPostBackup: `echo "unfreeze failed" >&2; exit 1`})
	j = e.backup(unfreeze.ARN, "Default", nil)
	if j.State != types.BackupJobStateFailed || !strings.Contains(aws.ToString(j.StatusMessage), "PostBackupCommand failed (exit status 1): unfreeze failed") {
		t.Fatalf("job with a failing post-backup command: %s %q", j.State, aws.ToString(j.StatusMessage))
	}

	// Both: the message says both.
	both := e.register("both", src, map[string]string{backup.SettingPreBackup: `exit 2`, backup.SettingPostBackup: `echo "also" >&2; exit 4`})
	j = e.backup(both.ARN, "Default", nil)
	if want := "PreBackupCommand failed (exit status 2); then PostBackupCommand failed (exit status 4): also"; aws.ToString(j.StatusMessage) != want {
		t.Fatalf("job whose both commands fail: %s %q, want %q", j.State, aws.ToString(j.StatusMessage), want)
	}
}

func wantLog(t *testing.T, path, want string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil || string(b) != want {
		t.Fatalf("%s: %q %v, want %q", filepath.Base(path), b, err, want)
	}
}
