package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestBackupJobsCLI backs a bucket up and restores it into a new bucket
// with the aws CLI.
func TestBackupJobsCLI(t *testing.T) {
	bin := servertest.RequireTool(t, "aws")
	r := servertest.Start(t, servertest.Options{})
	ctx := context.Background()
	if err := r.Store.CreateBucket(ctx, "cli-src", servertest.AccountID, "us-west-2"); err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		putObj(t, r.Store, "cli-src", fmt.Sprintf("o%d", i), []byte(strings.Repeat("x", i*100)))
	}
	run := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--endpoint-url", r.URL(), "--region", "us-west-2", "--output", "json", "backup"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+servertest.AccessKey, "AWS_SECRET_ACCESS_KEY="+servertest.SecretKey,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("aws backup %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		m := map[string]any{}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("aws backup %s: %q: %v", args[0], out, err)
		}
		return m
	}
	poll := func(field, want string, args ...string) map[string]any {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			m := run(args...)
			if m[field] == want {
				return m
			}
			if m[field] == "FAILED" {
				t.Fatalf("%s: %v", args[0], m)
			}
		}
		t.Fatalf("%s never reached %s", args[0], want)
		return nil
	}
	start := run("start-backup-job", "--backup-vault-name", "Default", "--resource-arn", "arn:aws:s3:::cli-src",
		"--iam-role-arn", roleARN, "--lifecycle", "DeleteAfterDays=7")
	id, _ := start["BackupJobId"].(string)
	rpArn, _ := start["RecoveryPointArn"].(string)
	if id == "" || !strings.HasPrefix(rpArn, "arn:aws:backup:us-west-2:"+servertest.AccountID+":recovery-point:") {
		t.Fatalf("start-backup-job: %v", start)
	}
	job := poll("State", "COMPLETED", "describe-backup-job", "--backup-job-id", id)
	if job["ResourceArn"] != "arn:aws:s3:::cli-src" || job["BackupSizeInBytes"] != float64(4500) {
		t.Fatalf("describe-backup-job: %v", job)
	}
	if l := run("list-backup-jobs", "--by-state", "COMPLETED")["BackupJobs"].([]any); len(l) != 1 {
		t.Fatalf("list-backup-jobs: %v", l)
	}
	pts := run("list-recovery-points-by-backup-vault", "--backup-vault-name", "Default")["RecoveryPoints"].([]any)
	if len(pts) != 1 || pts[0].(map[string]any)["RecoveryPointArn"] != rpArn || pts[0].(map[string]any)["Status"] != "COMPLETED" {
		t.Fatalf("list-recovery-points-by-backup-vault: %v", pts)
	}
	if l := run("list-recovery-points-by-resource", "--resource-arn", "arn:aws:s3:::cli-src")["RecoveryPoints"].([]any); len(l) != 1 {
		t.Fatalf("list-recovery-points-by-resource: %v", l)
	}
	rp := run("describe-recovery-point", "--backup-vault-name", "Default", "--recovery-point-arn", rpArn)
	if rp["CalculatedLifecycle"] == nil || rp["ResourceType"] != "S3" {
		t.Fatalf("describe-recovery-point: %v", rp)
	}
	md := run("get-recovery-point-restore-metadata", "--backup-vault-name", "Default", "--recovery-point-arn", rpArn)
	if md["RestoreMetadata"].(map[string]any)["DestinationBucketName"] != "cli-src" {
		t.Fatalf("get-recovery-point-restore-metadata: %v", md)
	}
	rs := run("start-restore-job", "--recovery-point-arn", rpArn, "--iam-role-arn", roleARN,
		"--metadata", "DestinationBucketName=cli-dst,NewBucket=true")
	rid, _ := rs["RestoreJobId"].(string)
	rj := poll("Status", "COMPLETED", "describe-restore-job", "--restore-job-id", rid)
	if rj["CreatedResourceArn"] != "arn:aws:s3:::cli-dst" {
		t.Fatalf("describe-restore-job: %v", rj)
	}
	if l := run("list-restore-jobs")["RestoreJobs"].([]any); len(l) != 1 {
		t.Fatalf("list-restore-jobs: %v", l)
	}
	sameObjects(t, latest(t, r.Store, "cli-dst"), latest(t, r.Store, "cli-src"))
	b, err := r.Store.Bucket(ctx, "cli-dst")
	if err != nil || b.Versioning != objectstore.VersioningEnabled {
		t.Fatalf("restored bucket: %+v, %v", b, err)
	}
}
