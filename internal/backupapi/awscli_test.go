package backupapi_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// cli is the aws CLI aimed at the env's handler, as the root user.
func (e *env) cli() *servertest.CLI {
	return servertest.NewCLI(e.t, e.url, region, rootAccess, rootSecret)
}

func field(m any, path ...string) any {
	v := m
	for _, p := range path {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

// articlePlan is the design article's plan, verbatim.
const articlePlan = `{"BackupPlanName":"s3-daily-backup","Rules":[{"RuleName":"daily-s3-backup","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"Lifecycle":{"DeleteAfterDays":30},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:` + account + `:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`

func TestCLIVaults(t *testing.T) {
	e := newEnv(t)
	a := e.cli()
	out := a.Run("backup", "create-backup-vault", "--backup-vault-name", "v1", "--backup-vault-tags", "team=a")
	arn := "arn:aws:backup:us-east-1:" + account + ":backup-vault:v1"
	if out["BackupVaultArn"] != arn || out["BackupVaultName"] != "v1" || out["CreationDate"] == nil {
		t.Fatalf("create: %v", out)
	}
	a.Fail("AlreadyExistsException", "backup", "create-backup-vault", "--backup-vault-name", "v1")
	a.Fail("InvalidParameterValueException", "backup", "create-backup-vault", "--backup-vault-name", "bad.name")
	d := a.Run("backup", "describe-backup-vault", "--backup-vault-name", "v1")
	if d["BackupVaultArn"] != arn || d["NumberOfRecoveryPoints"] != float64(0) || d["Locked"] != false ||
		!strings.HasPrefix(d["EncryptionKeyArn"].(string), "arn:aws:kms:us-east-1:"+account+":key/") {
		t.Fatalf("describe: %v", d)
	}
	a.Fail("ResourceNotFoundException", "backup", "describe-backup-vault", "--backup-vault-name", "nope")
	l := a.Run("backup", "list-backup-vaults")
	list := l["BackupVaultList"].([]any)
	if len(list) != 2 || field(list[0], "BackupVaultName") != "Default" || field(list[1], "BackupVaultName") != "v1" {
		t.Fatalf("list: %v", l)
	}
	tags := a.Run("backup", "list-tags", "--resource-arn", arn)
	if !reflect.DeepEqual(tags["Tags"], map[string]any{"team": "a"}) {
		t.Fatalf("tags: %v", tags)
	}
	a.Run("backup", "tag-resource", "--resource-arn", arn, "--tags", "env=prod")
	a.Run("backup", "untag-resource", "--resource-arn", arn, "--tag-key-list", "team")
	tags = a.Run("backup", "list-tags", "--resource-arn", arn)
	if !reflect.DeepEqual(tags["Tags"], map[string]any{"env": "prod"}) {
		t.Fatalf("tags after tag/untag: %v", tags)
	}
	a.Fail("InvalidRequestException", "backup", "delete-backup-vault", "--backup-vault-name", "Default")
	a.Run("backup", "delete-backup-vault", "--backup-vault-name", "v1")
	a.Fail("ResourceNotFoundException", "backup", "delete-backup-vault", "--backup-vault-name", "v1")
	rt := a.Run("backup", "get-supported-resource-types")
	if !reflect.DeepEqual(rt["ResourceTypes"], []any{"S3"}) {
		t.Fatalf("resource types: %v", rt)
	}
	stderr := a.Fail("NotImplementedException", "backup", "list-legal-holds")
	if !strings.Contains(stderr, "ListLegalHolds") {
		t.Fatalf("unimplemented operation not named: %s", stderr)
	}
}

func TestCLIPlanArticle(t *testing.T) {
	e := newEnv(t)
	a := e.cli()
	created := a.Run("backup", "create-backup-plan", "--backup-plan", articlePlan)
	id, _ := created["BackupPlanId"].(string)
	v1, _ := created["VersionId"].(string)
	if id == "" || v1 == "" || created["BackupPlanArn"] != "arn:aws:backup:us-east-1:"+account+":backup-plan:"+id {
		t.Fatalf("create: %v", created)
	}
	got := a.Run("backup", "get-backup-plan", "--backup-plan-id", id)
	if got["VersionId"] != v1 || got["BackupPlanId"] != id || got["BackupPlanArn"] != created["BackupPlanArn"] {
		t.Fatalf("get: %v", got)
	}
	plan := got["BackupPlan"]
	rule := field(plan, "Rules").([]any)[0]
	for _, c := range []struct {
		got  any
		want any
	}{
		{field(plan, "BackupPlanName"), "s3-daily-backup"},
		{field(rule, "RuleName"), "daily-s3-backup"},
		{field(rule, "TargetBackupVaultName"), "Default"},
		{field(rule, "ScheduleExpression"), "cron(0 2 * * ? *)"},
		{field(rule, "ScheduleExpressionTimezone"), "Etc/UTC"},
		{field(rule, "StartWindowMinutes"), float64(60)},
		{field(rule, "CompletionWindowMinutes"), float64(180)},
		{field(rule, "Lifecycle", "DeleteAfterDays"), float64(30)},
		{field(field(rule, "CopyActions").([]any)[0], "DestinationBackupVaultArn"), "arn:aws:backup:us-east-1:" + account + ":backup-vault:Default"},
		{field(field(rule, "CopyActions").([]any)[0], "Lifecycle", "DeleteAfterDays"), float64(90)},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("got %v, want %v", c.got, c.want)
		}
	}
	if field(rule, "RuleId") == nil {
		t.Error("rule has no RuleId")
	}

	updated := a.Run("backup", "update-backup-plan", "--backup-plan-id", id, "--backup-plan",
		strings.Replace(articlePlan, "cron(0 2 * * ? *)", "cron(0 3 * * ? *)", 1))
	v2, _ := updated["VersionId"].(string)
	if v2 == "" || v2 == v1 {
		t.Fatalf("update kept version %s: %v", v1, updated)
	}
	versions := a.Run("backup", "list-backup-plan-versions", "--backup-plan-id", id)["BackupPlanVersionsList"].([]any)
	if len(versions) != 2 || field(versions[0], "VersionId") != v2 || field(versions[1], "VersionId") != v1 {
		t.Fatalf("versions: %v", versions)
	}
	old := a.Run("backup", "get-backup-plan", "--backup-plan-id", id, "--version-id", v1)
	if field(old["BackupPlan"].(map[string]any)["Rules"].([]any)[0], "ScheduleExpression") != "cron(0 2 * * ? *)" {
		t.Fatalf("old version: %v", old)
	}

	sel := `{"SelectionName":"source-bucket","IamRoleArn":"arn:aws:iam::` + account + `:role/service-role/AWSBackupDefaultServiceRole","Resources":["arn:aws:s3:::source-bucket-name"]}`
	s := a.Run("backup", "create-backup-selection", "--backup-plan-id", id, "--backup-selection", sel)
	sid, _ := s["SelectionId"].(string)
	if sid == "" || s["BackupPlanId"] != id {
		t.Fatalf("selection: %v", s)
	}
	gs := a.Run("backup", "get-backup-selection", "--backup-plan-id", id, "--selection-id", sid)
	if !reflect.DeepEqual(field(gs, "BackupSelection", "Resources"), []any{"arn:aws:s3:::source-bucket-name"}) {
		t.Fatalf("get selection: %v", gs)
	}
	ls := a.Run("backup", "list-backup-selections", "--backup-plan-id", id)["BackupSelectionsList"].([]any)
	if len(ls) != 1 || field(ls[0], "SelectionId") != sid {
		t.Fatalf("list selections: %v", ls)
	}
	a.Fail("InvalidRequestException", "backup", "delete-backup-plan", "--backup-plan-id", id)
	a.Run("backup", "delete-backup-selection", "--backup-plan-id", id, "--selection-id", sid)
	del := a.Run("backup", "delete-backup-plan", "--backup-plan-id", id)
	if del["DeletionDate"] == nil || del["BackupPlanId"] != id {
		t.Fatalf("delete: %v", del)
	}
	if l := a.Run("backup", "list-backup-plans")["BackupPlansList"].([]any); len(l) != 0 {
		t.Fatalf("deleted plan listed: %v", l)
	}
	if l := a.Run("backup", "list-backup-plans", "--include-deleted")["BackupPlansList"].([]any); len(l) != 1 {
		t.Fatalf("deleted plan not listed with --include-deleted: %v", l)
	}
}

func TestCLIPlanRejections(t *testing.T) {
	e := newEnv(t)
	a := e.cli()
	// Bad JSON never leaves the CLI; the service sees it through
	// GetBackupPlanFromJSON.
	if _, _, ok := a.Exec("backup", "create-backup-plan", "--backup-plan", `{"BackupPlanName":`); ok {
		t.Fatal("bad JSON accepted")
	}
	a.Fail("InvalidParameterValueException", "backup", "get-backup-plan-from-json", "--backup-plan-template-json", `{"BackupPlanName":`)
	for name, c := range map[string]struct{ old, new, code string }{
		"unknown vault":      {`"TargetBackupVaultName":"Default"`, `"TargetBackupVaultName":"nope"`, "InvalidParameterValueException"},
		"both day fields":    {`cron(0 2 * * ? *)`, `cron(0 2 * * * *)`, "InvalidParameterValueException"},
		"start window 30":    {`"StartWindowMinutes":60`, `"StartWindowMinutes":30`, "InvalidParameterValueException"},
		"cold before delete": {`"Lifecycle":{"DeleteAfterDays":30}`, `"Lifecycle":{"MoveToColdStorageAfterDays":10,"DeleteAfterDays":30}`, "InvalidParameterValueException"},
	} {
		doc := strings.Replace(articlePlan, c.old, c.new, 1)
		if doc == articlePlan {
			t.Fatalf("%s: replacement did not apply", name)
		}
		a.Fail(c.code, "backup", "create-backup-plan", "--backup-plan", doc)
	}
	if l := a.Run("backup", "list-backup-plans", "--include-deleted")["BackupPlansList"].([]any); len(l) != 0 {
		t.Fatalf("rejected plans stored: %v", l)
	}
	fromJSON := a.Run("backup", "get-backup-plan-from-json", "--backup-plan-template-json", articlePlan)
	if field(fromJSON, "BackupPlan", "BackupPlanName") != "s3-daily-backup" {
		t.Fatalf("from JSON: %v", fromJSON)
	}
	a.Fail("ResourceNotFoundException", "backup", "get-backup-plan", "--backup-plan-id", "no-such-plan")
}
