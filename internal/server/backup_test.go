package server_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestBackupAPIOnRegionEndpoint sends the design article's backup plan to
// a region's endpoint with the aws CLI: the Backup API answers beside S3,
// IAM and STS on the same port.
func TestBackupAPIOnRegionEndpoint(t *testing.T) {
	bin := servertest.RequireTool(t, "aws")
	r := servertest.Start(t, servertest.Options{})
	run := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--endpoint-url", r.URL(), "--region", "us-west-2", "--output", "json"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+servertest.AccessKey, "AWS_SECRET_ACCESS_KEY="+servertest.SecretKey,
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=")
		out, err := cmd.Output()
		if err != nil {
			var stderr []byte
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = ee.Stderr
			}
			t.Fatalf("aws %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		res := map[string]any{}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("aws %s: %q: %v", strings.Join(args, " "), out, err)
		}
		return res
	}
	vaults := run("backup", "list-backup-vaults")["BackupVaultList"].([]any)
	if len(vaults) != 1 || vaults[0].(map[string]any)["BackupVaultName"] != "Default" {
		t.Fatalf("vaults: %v", vaults)
	}
	plan := run("backup", "create-backup-plan", "--backup-plan", `{"BackupPlanName":"s3-daily-backup","Rules":[{"RuleName":"daily-s3-backup","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"Lifecycle":{"DeleteAfterDays":30},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:`+servertest.AccountID+`:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`)
	id, _ := plan["BackupPlanId"].(string)
	got := run("backup", "get-backup-plan", "--backup-plan-id", id)["BackupPlan"].(map[string]any)
	if got["BackupPlanName"] != "s3-daily-backup" || got["Rules"].([]any)[0].(map[string]any)["ScheduleExpression"] != "cron(0 2 * * ? *)" {
		t.Fatalf("get-backup-plan: %v", got)
	}
}
