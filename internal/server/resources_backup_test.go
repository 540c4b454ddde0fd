package server_test

import (
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestRegisteredResourceThroughBackupAPI registers two directories and
// follows one through the aws CLI's backup commands, unchanged: EFS is a
// supported type, a registered resource is protected only once backed up
// (start-backup-job by its ARN), and a plan's selection by tag assigns the
// tagged one, not the other.
func TestRegisteredResourceThroughBackupAPI(t *testing.T) {
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}})
	aws := servertest.AWSCLI(t, r)
	root := &creds{ak: servertest.AccessKey, sk: servertest.SecretKey}

	dir := t.TempDir()
	mustDo(t, os.MkdirAll(filepath.Join(dir, "sub"), 0o755))
	mustDo(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alpha"), 0o644))
	mustDo(t, os.WriteFile(filepath.Join(dir, "sub", "b.txt"), []byte("bravo bravo"), 0o644))
	nightly := registerDir(t, r, root, "nightly", dir, map[string]string{"backup": "daily"}).ResourceArn
	scratch := registerDir(t, r, root, "scratch", t.TempDir(), nil).ResourceArn

	types := aws.Run("backup", "get-supported-resource-types")["ResourceTypes"].([]any)
	if !slices.Contains(types, any("EFS")) || !slices.Contains(types, any("RDS")) {
		t.Fatalf("supported resource types: %v", types)
	}
	protected := func() []string {
		var arns []string
		for _, p := range aws.Run("backup", "list-protected-resources")["Results"].([]any) {
			p := p.(map[string]any)
			if p["ResourceType"] != "EFS" {
				t.Fatalf("protected resource of type %v", p["ResourceType"])
			}
			arns = append(arns, p["ResourceArn"].(string))
		}
		return arns
	}
	if got := protected(); len(got) != 0 {
		t.Fatalf("protected before any backup: %v", got)
	}

	job := aws.Run("backup", "start-backup-job", "--backup-vault-name", "Default", "--resource-arn", nightly, "--iam-role-arn", roleARN)
	id, _ := job["BackupJobId"].(string)
	var d map[string]any
	waitFor(t, "the backup job", func() bool {
		d = aws.Run("backup", "describe-backup-job", "--backup-job-id", id)
		return d["State"] == "COMPLETED" || d["State"] == "FAILED"
	})
	if d["State"] != "COMPLETED" || d["ResourceType"] != "EFS" || d["ResourceArn"] != nightly || d["BackupSizeInBytes"] != float64(len("alpha")+len("bravo bravo")) {
		t.Fatalf("backup job: %v", d)
	}
	if got := protected(); !slices.Equal(got, []string{nightly}) {
		t.Fatalf("protected after the backup: %v, want %s", got, nightly)
	}
	// The Backup API's tags are those of vaults, plans and points, as
	// AWS's: a registration's are set when it is registered.
	aws.Fail("ResourceNotFoundException", "backup", "list-tags", "--resource-arn", nightly)

	// A plan selecting by tag: at 02:00 it backs up nightly, not scratch.
	plan := aws.Run("backup", "create-backup-plan", "--backup-plan",
		`{"BackupPlanName":"dirs","Rules":[{"RuleName":"daily","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)"}]}`)
	aws.Run("backup", "create-backup-selection", "--backup-plan-id", plan["BackupPlanId"].(string), "--backup-selection",
		`{"SelectionName":"tagged","IamRoleArn":"`+roleARN+`","ListOfTags":[{"ConditionType":"STRINGEQUALS","ConditionKey":"backup","ConditionValue":"daily"}]}`)
	clock.Store(day0.Add(2*time.Hour + 30*time.Second).UnixNano())
	var jobs []any
	waitFor(t, "the plan's backup job", func() bool {
		jobs = aws.Run("backup", "list-backup-jobs", "--by-resource-type", "EFS")["BackupJobs"].([]any)
		return len(jobs) == 2 && jobs[0].(map[string]any)["State"] == "COMPLETED" && jobs[1].(map[string]any)["State"] == "COMPLETED"
	})
	for _, j := range jobs {
		if j := j.(map[string]any); j["ResourceArn"] != nightly {
			t.Fatalf("backup job of %v", j["ResourceArn"])
		}
	}
	time.Sleep(200 * time.Millisecond) // passes of the scheduler: still none of scratch
	if l := aws.Run("backup", "list-backup-jobs", "--by-resource-arn", scratch)["BackupJobs"].([]any); len(l) != 0 {
		t.Fatalf("backup jobs of the untagged directory: %v", l)
	}
}
