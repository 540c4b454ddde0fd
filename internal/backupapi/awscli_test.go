package backupapi_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

type awsCLI struct {
	t        *testing.T
	bin      string
	endpoint string
	home     string
}

func (e *env) cli() *awsCLI {
	return &awsCLI{t: e.t, bin: servertest.RequireTool(e.t, "aws"), endpoint: e.url, home: e.t.TempDir()}
}

// exec runs an aws command as the root user and returns its output, its
// stderr and whether it succeeded.
func (a *awsCLI) exec(args ...string) (map[string]any, string, bool) {
	a.t.Helper()
	cmd := exec.Command(a.bin, append([]string{"--endpoint-url", a.endpoint, "--output", "json"}, args...)...)
	cmd.Env = append(os.Environ(),
		"AWS_ACCESS_KEY_ID="+rootAccess,
		"AWS_SECRET_ACCESS_KEY="+rootSecret,
		"AWS_SESSION_TOKEN=",
		"AWS_DEFAULT_REGION="+region,
		"AWS_CONFIG_FILE="+filepath.Join(a.home, "config"),
		"AWS_SHARED_CREDENTIALS_FILE="+filepath.Join(a.home, "credentials"),
		"AWS_PAGER=",
		"AWS_MAX_ATTEMPTS=1",
	)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, stderr.String(), false
	}
	res := map[string]any{}
	if len(strings.TrimSpace(string(out))) > 0 {
		if err := json.Unmarshal(out, &res); err != nil {
			a.t.Fatalf("aws %s: output %q: %v", strings.Join(args, " "), out, err)
		}
	}
	return res, "", true
}

func (a *awsCLI) run(args ...string) map[string]any {
	a.t.Helper()
	res, stderr, ok := a.exec(args...)
	if !ok {
		a.t.Fatalf("aws %s: %s", strings.Join(args, " "), stderr)
	}
	return res
}

// fail runs an aws command that must fail with code.
func (a *awsCLI) fail(code string, args ...string) string {
	a.t.Helper()
	_, stderr, ok := a.exec(args...)
	if ok || !strings.Contains(stderr, "("+code+")") {
		a.t.Fatalf("aws %s: want %s, got ok=%v %s", strings.Join(args, " "), code, ok, stderr)
	}
	return stderr
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
	out := a.run("backup", "create-backup-vault", "--backup-vault-name", "v1", "--backup-vault-tags", "team=a")
	arn := "arn:aws:backup:us-east-1:" + account + ":backup-vault:v1"
	if out["BackupVaultArn"] != arn || out["BackupVaultName"] != "v1" || out["CreationDate"] == nil {
		t.Fatalf("create: %v", out)
	}
	a.fail("AlreadyExistsException", "backup", "create-backup-vault", "--backup-vault-name", "v1")
	a.fail("InvalidParameterValueException", "backup", "create-backup-vault", "--backup-vault-name", "bad.name")
	d := a.run("backup", "describe-backup-vault", "--backup-vault-name", "v1")
	if d["BackupVaultArn"] != arn || d["NumberOfRecoveryPoints"] != float64(0) || d["Locked"] != false ||
		!strings.HasPrefix(d["EncryptionKeyArn"].(string), "arn:aws:kms:us-east-1:"+account+":key/") {
		t.Fatalf("describe: %v", d)
	}
	a.fail("ResourceNotFoundException", "backup", "describe-backup-vault", "--backup-vault-name", "nope")
	l := a.run("backup", "list-backup-vaults")
	list := l["BackupVaultList"].([]any)
	if len(list) != 2 || field(list[0], "BackupVaultName") != "Default" || field(list[1], "BackupVaultName") != "v1" {
		t.Fatalf("list: %v", l)
	}
	tags := a.run("backup", "list-tags", "--resource-arn", arn)
	if !reflect.DeepEqual(tags["Tags"], map[string]any{"team": "a"}) {
		t.Fatalf("tags: %v", tags)
	}
	a.run("backup", "tag-resource", "--resource-arn", arn, "--tags", "env=prod")
	a.run("backup", "untag-resource", "--resource-arn", arn, "--tag-key-list", "team")
	tags = a.run("backup", "list-tags", "--resource-arn", arn)
	if !reflect.DeepEqual(tags["Tags"], map[string]any{"env": "prod"}) {
		t.Fatalf("tags after tag/untag: %v", tags)
	}
	a.fail("InvalidRequestException", "backup", "delete-backup-vault", "--backup-vault-name", "Default")
	a.run("backup", "delete-backup-vault", "--backup-vault-name", "v1")
	a.fail("ResourceNotFoundException", "backup", "delete-backup-vault", "--backup-vault-name", "v1")
	rt := a.run("backup", "get-supported-resource-types")
	if !reflect.DeepEqual(rt["ResourceTypes"], []any{"S3"}) {
		t.Fatalf("resource types: %v", rt)
	}
	stderr := a.fail("NotImplementedException", "backup", "list-frameworks")
	if !strings.Contains(stderr, "ListFrameworks") {
		t.Fatalf("unimplemented operation not named: %s", stderr)
	}
}

func TestCLIPlanArticle(t *testing.T) {
	e := newEnv(t)
	a := e.cli()
	created := a.run("backup", "create-backup-plan", "--backup-plan", articlePlan)
	id, _ := created["BackupPlanId"].(string)
	v1, _ := created["VersionId"].(string)
	if id == "" || v1 == "" || created["BackupPlanArn"] != "arn:aws:backup:us-east-1:"+account+":backup-plan:"+id {
		t.Fatalf("create: %v", created)
	}
	got := a.run("backup", "get-backup-plan", "--backup-plan-id", id)
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

	updated := a.run("backup", "update-backup-plan", "--backup-plan-id", id, "--backup-plan",
		strings.Replace(articlePlan, "cron(0 2 * * ? *)", "cron(0 3 * * ? *)", 1))
	v2, _ := updated["VersionId"].(string)
	if v2 == "" || v2 == v1 {
		t.Fatalf("update kept version %s: %v", v1, updated)
	}
	versions := a.run("backup", "list-backup-plan-versions", "--backup-plan-id", id)["BackupPlanVersionsList"].([]any)
	if len(versions) != 2 || field(versions[0], "VersionId") != v2 || field(versions[1], "VersionId") != v1 {
		t.Fatalf("versions: %v", versions)
	}
	old := a.run("backup", "get-backup-plan", "--backup-plan-id", id, "--version-id", v1)
	if field(old["BackupPlan"].(map[string]any)["Rules"].([]any)[0], "ScheduleExpression") != "cron(0 2 * * ? *)" {
		t.Fatalf("old version: %v", old)
	}

	sel := `{"SelectionName":"source-bucket","IamRoleArn":"arn:aws:iam::` + account + `:role/service-role/AWSBackupDefaultServiceRole","Resources":["arn:aws:s3:::source-bucket-name"]}`
	s := a.run("backup", "create-backup-selection", "--backup-plan-id", id, "--backup-selection", sel)
	sid, _ := s["SelectionId"].(string)
	if sid == "" || s["BackupPlanId"] != id {
		t.Fatalf("selection: %v", s)
	}
	gs := a.run("backup", "get-backup-selection", "--backup-plan-id", id, "--selection-id", sid)
	if !reflect.DeepEqual(field(gs, "BackupSelection", "Resources"), []any{"arn:aws:s3:::source-bucket-name"}) {
		t.Fatalf("get selection: %v", gs)
	}
	ls := a.run("backup", "list-backup-selections", "--backup-plan-id", id)["BackupSelectionsList"].([]any)
	if len(ls) != 1 || field(ls[0], "SelectionId") != sid {
		t.Fatalf("list selections: %v", ls)
	}
	a.fail("InvalidRequestException", "backup", "delete-backup-plan", "--backup-plan-id", id)
	a.run("backup", "delete-backup-selection", "--backup-plan-id", id, "--selection-id", sid)
	del := a.run("backup", "delete-backup-plan", "--backup-plan-id", id)
	if del["DeletionDate"] == nil || del["BackupPlanId"] != id {
		t.Fatalf("delete: %v", del)
	}
	if l := a.run("backup", "list-backup-plans")["BackupPlansList"].([]any); len(l) != 0 {
		t.Fatalf("deleted plan listed: %v", l)
	}
	if l := a.run("backup", "list-backup-plans", "--include-deleted")["BackupPlansList"].([]any); len(l) != 1 {
		t.Fatalf("deleted plan not listed with --include-deleted: %v", l)
	}
}

func TestCLIPlanRejections(t *testing.T) {
	e := newEnv(t)
	a := e.cli()
	// Bad JSON never leaves the CLI; the service sees it through
	// GetBackupPlanFromJSON.
	if _, _, ok := a.exec("backup", "create-backup-plan", "--backup-plan", `{"BackupPlanName":`); ok {
		t.Fatal("bad JSON accepted")
	}
	a.fail("InvalidParameterValueException", "backup", "get-backup-plan-from-json", "--backup-plan-template-json", `{"BackupPlanName":`)
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
		a.fail(c.code, "backup", "create-backup-plan", "--backup-plan", doc)
	}
	if l := a.run("backup", "list-backup-plans", "--include-deleted")["BackupPlansList"].([]any); len(l) != 0 {
		t.Fatalf("rejected plans stored: %v", l)
	}
	fromJSON := a.run("backup", "get-backup-plan-from-json", "--backup-plan-template-json", articlePlan)
	if field(fromJSON, "BackupPlan", "BackupPlanName") != "s3-daily-backup" {
		t.Fatalf("from JSON: %v", fromJSON)
	}
	a.fail("ResourceNotFoundException", "backup", "get-backup-plan", "--backup-plan-id", "no-such-plan")
}
