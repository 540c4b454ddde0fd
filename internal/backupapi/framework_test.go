package backupapi_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// auditControls is a framework of every control Bulwark evaluates, with
// parameters as AWS's documentation writes them.
const auditControls = `[
 {"ControlName":"BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN","ControlScope":{"ComplianceResourceTypes":["S3"]}},
 {"ControlName":"BACKUP_PLAN_MIN_FREQUENCY_AND_MIN_RETENTION_CHECK","ControlInputParameters":[
   {"ParameterName":"requiredFrequencyUnit","ParameterValue":"hours"},{"ParameterName":"requiredFrequencyValue","ParameterValue":"12"},
   {"ParameterName":"requiredRetentionDays","ParameterValue":"7"}]},
 {"ControlName":"BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK","ControlInputParameters":[{"ParameterName":"requiredRetentionDays","ParameterValue":"7"}]},
 {"ControlName":"BACKUP_RECOVERY_POINT_ENCRYPTED"},
 {"ControlName":"BACKUP_RECOVERY_POINT_MANUAL_DELETION_DISABLED","ControlInputParameters":[{"ParameterName":"principalArnList","ParameterValue":"arn:aws:iam::111122223333:role/admin"}]},
 {"ControlName":"BACKUP_LAST_RECOVERY_POINT_CREATED","ControlInputParameters":[
   {"ParameterName":"recoveryPointAgeUnit","ParameterValue":"hours"},{"ParameterName":"recoveryPointAgeValue","ParameterValue":"24"}]},
 {"ControlName":"BACKUP_RESOURCES_PROTECTED_BY_CROSS_REGION","ControlInputParameters":[{"ParameterName":"crossRegionList","ParameterValue":"us-east-1"}]},
 {"ControlName":"BACKUP_RESOURCES_PROTECTED_BY_CROSS_ACCOUNT","ControlInputParameters":[{"ParameterName":"crossAccountList","ParameterValue":"444455556666"}]},
 {"ControlName":"BACKUP_RESOURCES_PROTECTED_BY_BACKUP_VAULT_LOCK","ControlInputParameters":[
   {"ParameterName":"minRetentionDays","ParameterValue":"1"},{"ParameterName":"maxRetentionDays","ParameterValue":"365"}]},
 {"ControlName":"RESTORE_TIME_FOR_RESOURCES_MEET_TARGET","ControlInputParameters":[{"ParameterName":"maxRestoreTime","ParameterValue":"60"}],
  "ControlScope":{"ComplianceResourceTypes":["S3"],"Tags":{"tier":"gold"}}}
]`

// waitReportJob polls a report job until it ends.
func waitReportJob(t *testing.T, a *servertest.CLI, id string) map[string]any {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		j, _ := a.Run("backup", "describe-report-job", "--report-job-id", id)["ReportJob"].(map[string]any)
		if s := j["Status"]; s == backup.ReportCompleted || s == backup.ReportFailed {
			return j
		}
	}
	t.Fatalf("report job %s did not end", id)
	return nil
}

// getObject reads an object with aws s3api get-object.
func getObject(t *testing.T, a *servertest.CLI, bucket, key string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "object")
	a.Run("s3api", "get-object", "--bucket", bucket, "--key", key, out)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// startReport starts a report job of a plan and waits for its end.
func startReport(t *testing.T, a *servertest.CLI, plan string) map[string]any {
	t.Helper()
	id, _ := a.Run("backup", "start-report-job", "--report-plan-name", plan)["ReportJobId"].(string)
	if id == "" {
		t.Fatal("start-report-job answered no ReportJobId")
	}
	return waitReportJob(t, a, id)
}

func TestCLIAuditManager(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	a := servertest.AWSCLI(t, r)
	region := r.Store.Region()
	for _, b := range []string{"audit-data", "audit-reports"} {
		if err := r.Store.CreateBucket(ctx, b, servertest.AccountID, region); err != nil {
			t.Fatal(err)
		}
	}
	job := sdkBackup(t, regionSDK(r, servertest.AccessKey, servertest.SecretKey), "audit-data", "Default")
	pv, err := r.Backup.CreatePlan(ctx, servertest.AccountID, backup.CreatePlanInput{Plan: backup.Plan{BackupPlanName: "daily",
		Rules: []backup.Rule{{RuleName: "daily", TargetBackupVaultName: "Default", ScheduleExpression: "cron(0 5 ? * * *)"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Backup.CreateSelection(ctx, servertest.AccountID, pv.BackupPlanID, backup.Selection{SelectionName: "data",
		IamRoleArn: "arn:aws:iam::" + servertest.AccountID + ":role/backup", Resources: []string{"arn:aws:s3:::audit-data"}}, ""); err != nil {
		t.Fatal(err)
	}

	created := a.Run("backup", "create-framework", "--framework-name", "bulwark_audit", "--framework-description", "Every control",
		"--framework-controls", auditControls, "--framework-tags", "team=storage", "--idempotency-token", "fw-1")
	wantKeys(t, "create-framework", created, "FrameworkArn", "FrameworkName")
	arn, _ := created["FrameworkArn"].(string)
	prefix := "arn:aws:backup:" + region + ":" + servertest.AccountID + ":framework:bulwark_audit-"
	if !strings.HasPrefix(arn, prefix) || len(arn) != len(prefix)+36 {
		t.Fatalf("framework ARN %q", arn)
	}
	again := a.Run("backup", "create-framework", "--framework-name", "bulwark_audit", "--framework-description", "Every control",
		"--framework-controls", auditControls, "--idempotency-token", "fw-1")
	if again["FrameworkArn"] != arn {
		t.Fatalf("retry of create-framework: %v", again)
	}
	a.Fail("AlreadyExistsException", "backup", "create-framework", "--framework-name", "bulwark_audit", "--framework-controls", auditControls)

	d := a.Run("backup", "describe-framework", "--framework-name", "bulwark_audit")
	wantKeys(t, "describe-framework", d, "CreationTime", "DeploymentStatus", "FrameworkArn", "FrameworkControls", "FrameworkDescription",
		"FrameworkName", "FrameworkStatus", "IdempotencyToken")
	var want any
	if err := json.Unmarshal([]byte(auditControls), &want); err != nil {
		t.Fatal(err)
	}
	if d["DeploymentStatus"] != "COMPLETED" || d["FrameworkStatus"] != "ACTIVE" || !reflect.DeepEqual(d["FrameworkControls"], want) {
		t.Fatalf("describe-framework: %v", d)
	}
	list, _ := a.Run("backup", "list-frameworks")["Frameworks"].([]any)
	if len(list) != 1 || field(list[0], "NumberOfControls") != float64(10) || field(list[0], "FrameworkArn") != arn {
		t.Fatalf("list-frameworks: %v", list)
	}
	if tags := a.Run("backup", "list-tags", "--resource-arn", arn); !reflect.DeepEqual(tags["Tags"], map[string]any{"team": "storage"}) {
		t.Fatalf("list-tags: %v", tags)
	}

	// Rejections of controls, with a message that names the fault.
	for _, c := range []struct{ controls, says string }{
		{`[{"ControlName":"BACKUP_EVERYTHING_IS_FINE"}]`, "Unknown control"},
		{`[{"ControlName":"BACKUP_RECOVERY_POINT_MINIMUM_RETENTION_CHECK","ControlInputParameters":[{"ParameterName":"requiredRetentionHours","ParameterValue":"7"}]}]`, "no parameter"},
		{`[{"ControlName":"BACKUP_LAST_RECOVERY_POINT_CREATED","ControlInputParameters":[{"ParameterName":"recoveryPointAgeUnit","ParameterValue":"fortnights"}]}]`, "recoveryPointAgeUnit"},
		{`[{"ControlName":"RESTORE_TIME_FOR_RESOURCES_MEET_TARGET"}]`, "maxRestoreTime"},
		{`[{"ControlName":"BACKUP_RESOURCES_PROTECTED_BY_BACKUP_PLAN","ControlScope":{"ComplianceResourceTypes":["EC2"]}}]`, "EC2"},
	} {
		if msg := a.Fail("InvalidParameterValueException", "backup", "create-framework", "--framework-name", "bad", "--framework-controls", c.controls); !strings.Contains(msg, c.says) {
			t.Fatalf("%s: message %q does not say %q", c.controls, msg, c.says)
		}
	}

	// A resource compliance report in both formats.
	a.Run("backup", "create-report-plan", "--report-plan-name", "compliance",
		"--report-delivery-channel", `{"S3BucketName":"audit-reports","S3KeyPrefix":"audit","Formats":["CSV","JSON"]}`,
		"--report-setting", `{"ReportTemplate":"RESOURCE_COMPLIANCE_REPORT","FrameworkArns":["`+arn+`"]}`)
	plan := a.Run("backup", "describe-report-plan", "--report-plan-name", "compliance")["ReportPlan"]
	if field(plan, "ReportSetting", "NumberOfFrameworks") != float64(1) || field(plan, "DeploymentStatus") != "COMPLETED" {
		t.Fatalf("describe-report-plan: %v", plan)
	}
	a.Fail("ConflictException", "backup", "delete-framework", "--framework-name", "bulwark_audit")
	j := startReport(t, a, "compliance")
	if j["Status"] != "COMPLETED" || field(j, "ReportDestination", "S3BucketName") != "audit-reports" || j["ReportTemplate"] != "RESOURCE_COMPLIANCE_REPORT" {
		t.Fatalf("report job: %v", j)
	}
	keys, _ := field(j, "ReportDestination", "S3Keys").([]any)
	day := time.Now().UTC().Format("2006/01/02")
	if len(keys) != 2 || !strings.HasPrefix(keys[0].(string), "audit/Backup/"+servertest.AccountID+"/"+region+"/") || !strings.HasSuffix(keys[1].(string), ".json") {
		t.Fatalf("report keys %v (today %s)", keys, day)
	}
	rows, err := csv.NewReader(bytes.NewReader(getObject(t, a, "audit-reports", keys[0].(string)))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	head := rows[0]
	col := func(name string) int {
		i := slices.Index(head, name)
		if i < 0 {
			t.Fatalf("no column %q in %v", name, head)
		}
		return i
	}
	verdict := func(control, resource string) string {
		for _, row := range rows[1:] {
			if row[col("Control Name")] == control && row[col("Resource ARN")] == resource {
				return row[col("Compliance Status")]
			}
		}
		return ""
	}
	for _, c := range []struct{ control, resource, want string }{
		{backup.ControlProtectedByPlan, "arn:aws:s3:::audit-data", "COMPLIANT"},
		{backup.ControlProtectedByPlan, "arn:aws:s3:::audit-reports", "NON_COMPLIANT"},
		{backup.ControlLastPointCreated, "arn:aws:s3:::audit-data", "COMPLIANT"},
		{backup.ControlLastPointCreated, "arn:aws:s3:::audit-reports", "NON_COMPLIANT"},
		{backup.ControlPointEncrypted, *job.RecoveryPointArn, "COMPLIANT"},
		{backup.ControlPointMinRetention, *job.RecoveryPointArn, "COMPLIANT"},
		{backup.ControlPlanFrequency, pv.BackupPlanARN, "NON_COMPLIANT"}, // daily, where 12 hours are required
		{backup.ControlManualDeletion, r.Backup.VaultARN(servertest.AccountID, "Default"), "NON_COMPLIANT"},
		{backup.ControlCrossRegion, "arn:aws:s3:::audit-data", "NON_COMPLIANT"},
		{backup.ControlRestoreTimeMeetsGoal, "arn:aws:s3:::audit-data", ""}, // out of scope: no tier=gold tag
	} {
		if got := verdict(c.control, c.resource); got != c.want {
			t.Errorf("%s on %s: %q, want %q", c.control, c.resource, got, c.want)
		}
	}
	for _, row := range rows[1:] {
		if row[col("Account ID")] != servertest.AccountID || row[col("Region")] != region || row[col("Framework Name")] != "bulwark_audit" ||
			!strings.Contains(row[col("Report Time Period")], " - ") {
			t.Fatalf("row %v", row)
		}
	}
	var doc struct{ ReportItems []map[string]string }
	if err := json.Unmarshal(getObject(t, a, "audit-reports", keys[1].(string)), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.ReportItems) != len(rows)-1 || doc.ReportItems[0]["controlName"] != rows[1][col("Control Name")] ||
		doc.ReportItems[0]["complianceStatus"] != rows[1][col("Compliance Status")] {
		t.Fatalf("JSON report %v, CSV %v", doc.ReportItems, rows)
	}

	// A backup job report names the job.
	a.Run("backup", "create-report-plan", "--report-plan-name", "jobs",
		"--report-delivery-channel", `{"S3BucketName":"audit-reports"}`, "--report-setting", `{"ReportTemplate":"BACKUP_JOB_REPORT"}`)
	j = startReport(t, a, "jobs")
	keys, _ = field(j, "ReportDestination", "S3Keys").([]any)
	if j["Status"] != "COMPLETED" || len(keys) != 1 || !strings.HasSuffix(keys[0].(string), ".csv") {
		t.Fatalf("backup job report: %v", j)
	}
	rows, err = csv.NewReader(bytes.NewReader(getObject(t, a, "audit-reports", keys[0].(string)))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || rows[1][slices.Index(rows[0], "Job ID")] != *job.BackupJobId || rows[1][slices.Index(rows[0], "Job Status")] != "COMPLETED" ||
		rows[1][slices.Index(rows[0], "Recovery Point ARN")] != *job.RecoveryPointArn {
		t.Fatalf("backup job report rows %v", rows)
	}

	// A report into a bucket that does not exist, or that the account may
	// not write into, fails with the reason.
	if err := r.Store.CreateBucket(ctx, "someone-elses", servertest.OtherAccountID, region); err != nil {
		t.Fatal(err)
	}
	for bucket, says := range map[string]string{"no-such-bucket": "does not exist", "someone-elses": "may not write"} {
		a.Run("backup", "create-report-plan", "--report-plan-name", "to_"+strings.ReplaceAll(bucket, "-", "_"),
			"--report-delivery-channel", `{"S3BucketName":"`+bucket+`"}`, "--report-setting", `{"ReportTemplate":"COPY_JOB_REPORT"}`)
		j := startReport(t, a, "to_"+strings.ReplaceAll(bucket, "-", "_"))
		if msg, _ := j["StatusMessage"].(string); j["Status"] != "FAILED" || !strings.Contains(msg, says) {
			t.Fatalf("report into %s: %v", bucket, j)
		}
	}
	a.Fail("InvalidParameterValueException", "backup", "create-report-plan", "--report-plan-name", "bad",
		"--report-delivery-channel", `{"S3BucketName":"audit-reports"}`, "--report-setting", `{"ReportTemplate":"BACKUP_JOB_REPORT","FrameworkArns":["`+arn+`"]}`)
	a.Fail("InvalidParameterValueException", "backup", "create-report-plan", "--report-plan-name", "bad",
		"--report-delivery-channel", `{"S3BucketName":"audit-reports"}`, "--report-setting", `{"ReportTemplate":"BACKUP_JOB_REPORT","Regions":["eu-west-3"]}`)

	listed, _ := a.Run("backup", "list-report-jobs", "--by-report-plan-name", "compliance")["ReportJobs"].([]any)
	if len(listed) != 1 || field(listed[0], "Status") != "COMPLETED" {
		t.Fatalf("list-report-jobs: %v", listed)
	}
	if plans, _ := a.Run("backup", "list-report-plans")["ReportPlans"].([]any); len(plans) != 4 {
		t.Fatalf("list-report-plans: %v", plans)
	}
	if last := field(a.Run("backup", "describe-report-plan", "--report-plan-name", "compliance")["ReportPlan"], "LastSuccessfulExecutionTime"); last == nil {
		t.Fatal("describe-report-plan: no LastSuccessfulExecutionTime after a report")
	}
	a.Run("backup", "update-framework", "--framework-name", "bulwark_audit", "--framework-description", "Fewer controls",
		"--framework-controls", `[{"ControlName":"BACKUP_RECOVERY_POINT_ENCRYPTED"}]`)
	if d := a.Run("backup", "describe-framework", "--framework-name", "bulwark_audit"); len(d["FrameworkControls"].([]any)) != 1 || d["FrameworkDescription"] != "Fewer controls" {
		t.Fatalf("after update-framework: %v", d)
	}
	a.Run("backup", "delete-report-plan", "--report-plan-name", "compliance")
	a.Fail("ResourceNotFoundException", "backup", "describe-report-plan", "--report-plan-name", "compliance")
	a.Run("backup", "delete-framework", "--framework-name", "bulwark_audit")
	a.Fail("ResourceNotFoundException", "backup", "describe-framework", "--framework-name", "bulwark_audit")
}
