//go:build linux

package efs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestDirectoryCLI runs the README's commands with the aws CLI: a backup
// of a registered directory, its restore metadata, a restore of two
// items into a new directory and one in full beside the source.
func TestDirectoryCLI(t *testing.T) {
	e := newEnv(t)
	a := servertest.AWSCLI(t, e.r)
	base := t.TempDir()
	src := filepath.Join(base, "docs")
	for _, d := range []string{"sub/dir", "other"} {
		if err := os.MkdirAll(filepath.Join(src, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"a.txt", "b.txt", "sub/dir/c.txt", "other/d.txt"} {
		if err := os.WriteFile(filepath.Join(src, f), []byte(f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want := snapshot(t, src)
	reg := e.register("docs", src, nil)

	job := a.Run("backup", "start-backup-job", "--backup-vault-name", "Default", "--resource-arn", reg.ARN, "--iam-role-arn", role)
	var d map[string]any
	waitUntil(t, "the backup job", func() bool {
		d = a.Run("backup", "describe-backup-job", "--backup-job-id", job["BackupJobId"].(string))
		return d["State"] == "COMPLETED" || d["State"] == "FAILED"
	})
	if d["State"] != "COMPLETED" || d["ResourceType"] != "EFS" {
		t.Fatalf("backup job: %v", d)
	}
	point := d["RecoveryPointArn"].(string)
	md := a.Run("backup", "get-recovery-point-restore-metadata", "--backup-vault-name", "Default", "--recovery-point-arn", point)
	if m := md["RestoreMetadata"].(map[string]any); m["Path"] != src || m["file-system-id"] == "" {
		t.Fatalf("restore metadata: %v", md)
	}

	restoreCLI := func(metadata string) {
		t.Helper()
		rj := a.Run("backup", "start-restore-job", "--recovery-point-arn", point, "--iam-role-arn", role, "--metadata", metadata)
		var r map[string]any
		waitUntil(t, "the restore job", func() bool {
			r = a.Run("backup", "describe-restore-job", "--restore-job-id", rj["RestoreJobId"].(string))
			return r["Status"] == "COMPLETED" || r["Status"] == "FAILED"
		})
		if r["Status"] != "COMPLETED" {
			t.Fatalf("restore with %s: %v", metadata, r)
		}
	}
	// As a shell passes "TargetDirectory=...,itemsToRestore='[\"/sub/dir\",\"/a.txt\"]'".
	items := filepath.Join(base, "docs-items")
	restoreCLI(`TargetDirectory=` + items + `,itemsToRestore='["/sub/dir","/a.txt"]'`)
	sameTrees(t, want, snapshot(t, items), "", "a.txt", "sub", "sub/dir", "sub/dir/c.txt")
	// In full, beside the source, with the JSON form.
	full := filepath.Join(base, "docs-restored")
	restoreCLI(`{"TargetDirectory":"` + full + `"}`)
	sameTrees(t, want, snapshot(t, full))
}
