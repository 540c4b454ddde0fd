package backupapi_test

import (
	"bytes"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// rtPlan is a restore testing plan as AWS's documentation writes one.
const rtPlan = `{"RestoreTestingPlanName":"daily_s3_test","ScheduleExpression":"cron(0 1 ? * * *)","StartWindowHours":3,` +
	`"RecoveryPointSelection":{"Algorithm":"LATEST_WITHIN_WINDOW","IncludeVaults":["*"],"RecoveryPointTypes":["SNAPSHOT"],"SelectionWindowDays":7}}`

const rtSelection = `{"RestoreTestingSelectionName":"all_buckets","ProtectedResourceType":"S3","ProtectedResourceArns":["*"],` +
	`"IamRoleArn":"arn:aws:iam::` + servertest.AccountID + `:role/restore","ValidationWindowHours":2,"RestoreMetadataOverrides":{"NewBucket":"true"}}`

func keys(m any) []string {
	mm, _ := m.(map[string]any)
	var out []string
	for k := range mm {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func wantKeys(t *testing.T, what string, m any, want ...string) {
	t.Helper()
	sort.Strings(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Fatalf("%s: members %v, want %v (%v)", what, got, want, m)
	}
}

func TestCLIRestoreTestingPlans(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	a := servertest.AWSCLI(t, r)
	created := a.Run("backup", "create-restore-testing-plan", "--restore-testing-plan", rtPlan, "--creator-request-id", "req-1", "--tags", "team=storage")
	wantKeys(t, "create", created, "CreationTime", "RestoreTestingPlanArn", "RestoreTestingPlanName")
	arn, _ := created["RestoreTestingPlanArn"].(string)
	prefix := "arn:aws:backup:" + r.Store.Region() + ":" + servertest.AccountID + ":restore-testing-plan:daily_s3_test-"
	if !strings.HasPrefix(arn, prefix) || len(arn) != len(prefix)+36 || created["RestoreTestingPlanName"] != "daily_s3_test" {
		t.Fatalf("create: %v", created)
	}
	// A retry of the same request answers the same plan.
	if again := a.Run("backup", "create-restore-testing-plan", "--restore-testing-plan", rtPlan, "--creator-request-id", "req-1"); again["RestoreTestingPlanArn"] != arn {
		t.Fatalf("retry: %v", again)
	}
	a.Fail("AlreadyExistsException", "backup", "create-restore-testing-plan", "--restore-testing-plan", rtPlan)

	got := a.Run("backup", "get-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")["RestoreTestingPlan"]
	wantKeys(t, "get", got, "CreationTime", "CreatorRequestId", "RecoveryPointSelection", "RestoreTestingPlanArn", "RestoreTestingPlanName",
		"ScheduleExpression", "ScheduleExpressionTimezone", "StartWindowHours")
	want := map[string]any{"Algorithm": "LATEST_WITHIN_WINDOW", "IncludeVaults": []any{"*"}, "RecoveryPointTypes": []any{"SNAPSHOT"}, "SelectionWindowDays": float64(7)}
	if !reflect.DeepEqual(field(got, "RecoveryPointSelection"), want) || field(got, "ScheduleExpressionTimezone") != "Etc/UTC" ||
		field(got, "StartWindowHours") != float64(3) || field(got, "CreatorRequestId") != "req-1" || field(got, "RestoreTestingPlanArn") != arn {
		t.Fatalf("get: %v", got)
	}
	if tags := a.Run("backup", "list-tags", "--resource-arn", arn); !reflect.DeepEqual(tags["Tags"], map[string]any{"team": "storage"}) {
		t.Fatalf("tags: %v", tags)
	}

	// An update changes what it names and keeps the rest.
	upd := a.Run("backup", "update-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-plan",
		`{"ScheduleExpression":"rate(12 hours)","RecoveryPointSelection":{"Algorithm":"RANDOM_WITHIN_WINDOW","ExcludeVaults":["arn:aws:backup:*:*:backup-vault:scratch-*"]}}`)
	wantKeys(t, "update", upd, "CreationTime", "RestoreTestingPlanArn", "RestoreTestingPlanName", "UpdateTime")
	got = a.Run("backup", "get-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")["RestoreTestingPlan"]
	want["Algorithm"], want["ExcludeVaults"] = "RANDOM_WITHIN_WINDOW", []any{"arn:aws:backup:*:*:backup-vault:scratch-*"}
	if !reflect.DeepEqual(field(got, "RecoveryPointSelection"), want) || field(got, "ScheduleExpression") != "rate(12 hours)" ||
		field(got, "StartWindowHours") != float64(3) || field(got, "LastUpdateTime") == nil {
		t.Fatalf("get after update: %v", got)
	}
	list := a.Run("backup", "list-restore-testing-plans")["RestoreTestingPlans"].([]any)
	if len(list) != 1 {
		t.Fatalf("list: %v", list)
	}
	wantKeys(t, "list member", list[0], "CreationTime", "LastUpdateTime", "RestoreTestingPlanArn", "RestoreTestingPlanName",
		"ScheduleExpression", "ScheduleExpressionTimezone", "StartWindowHours")

	// Selections.
	sc := a.Run("backup", "create-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection", rtSelection)
	wantKeys(t, "create selection", sc, "CreationTime", "RestoreTestingPlanArn", "RestoreTestingPlanName", "RestoreTestingSelectionName")
	if sc["RestoreTestingPlanArn"] != arn || sc["RestoreTestingSelectionName"] != "all_buckets" {
		t.Fatalf("create selection: %v", sc)
	}
	a.Fail("AlreadyExistsException", "backup", "create-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection", rtSelection)
	gs := a.Run("backup", "get-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection-name", "all_buckets")["RestoreTestingSelection"]
	wantKeys(t, "get selection", gs, "CreationTime", "IamRoleArn", "ProtectedResourceArns", "ProtectedResourceType", "RestoreMetadataOverrides",
		"RestoreTestingPlanName", "RestoreTestingSelectionName", "ValidationWindowHours")
	if !reflect.DeepEqual(field(gs, "ProtectedResourceArns"), []any{"*"}) || field(gs, "ValidationWindowHours") != float64(2) ||
		!reflect.DeepEqual(field(gs, "RestoreMetadataOverrides"), map[string]any{"NewBucket": "true"}) {
		t.Fatalf("get selection: %v", gs)
	}
	us := a.Run("backup", "update-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection-name", "all_buckets",
		"--restore-testing-selection", `{"ProtectedResourceConditions":{"StringEquals":[{"Key":"aws:ResourceTag/env","Value":"prod"}]},"ValidationWindowHours":0}`)
	wantKeys(t, "update selection", us, "CreationTime", "RestoreTestingPlanArn", "RestoreTestingPlanName", "RestoreTestingSelectionName", "UpdateTime")
	gs = a.Run("backup", "get-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection-name", "all_buckets")["RestoreTestingSelection"]
	if field(gs, "ProtectedResourceArns") != nil || field(gs, "ValidationWindowHours") != float64(0) ||
		!reflect.DeepEqual(field(gs, "ProtectedResourceConditions"), map[string]any{"StringEquals": []any{map[string]any{"Key": "aws:ResourceTag/env", "Value": "prod"}}}) {
		t.Fatalf("get selection after update: %v", gs)
	}
	ls := a.Run("backup", "list-restore-testing-selections", "--restore-testing-plan-name", "daily_s3_test")["RestoreTestingSelections"].([]any)
	if len(ls) != 1 {
		t.Fatalf("list selections: %v", ls)
	}
	wantKeys(t, "list selections member", ls[0], "CreationTime", "IamRoleArn", "ProtectedResourceType", "RestoreTestingPlanName", "RestoreTestingSelectionName", "ValidationWindowHours")

	a.Fail("InvalidRequestException", "backup", "delete-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")
	a.Run("backup", "delete-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection-name", "all_buckets")
	a.Fail("ResourceNotFoundException", "backup", "get-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection-name", "all_buckets")
	a.Run("backup", "delete-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")
	a.Fail("ResourceNotFoundException", "backup", "get-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")
	if l := a.Run("backup", "list-restore-testing-plans")["RestoreTestingPlans"].([]any); len(l) != 0 {
		t.Fatalf("list after delete: %v", l)
	}
}

func TestCLIRestoreTestingRejections(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	a := servertest.AWSCLI(t, r)
	for name, c := range map[string]struct{ old, new, code string }{
		"bad cron":            {`cron(0 1 ? * * *)`, `cron(0 1 * * * *)`, "InvalidParameterValueException"},
		"window days 0":       {`"SelectionWindowDays":7`, `"SelectionWindowDays":0`, "InvalidParameterValueException"},
		"window days 366":     {`"SelectionWindowDays":7`, `"SelectionWindowDays":366`, "InvalidParameterValueException"},
		"unknown algorithm":   {`LATEST_WITHIN_WINDOW`, `OLDEST_WITHIN_WINDOW`, "InvalidParameterValueException"},
		"name with a dash":    {`daily_s3_test`, `daily-s3-test`, "InvalidParameterValueException"},
		"start window 169":    {`"StartWindowHours":3`, `"StartWindowHours":169`, "InvalidParameterValueException"},
		"no included vaults":  {`"IncludeVaults":["*"],`, ``, "MissingParameterValueException"},
		"vault name, not ARN": {`"IncludeVaults":["*"]`, `"IncludeVaults":["Default"]`, "InvalidParameterValueException"},
	} {
		doc := strings.Replace(rtPlan, c.old, c.new, 1)
		if doc == rtPlan {
			t.Fatalf("%s: replacement did not apply", name)
		}
		a.Fail(c.code, "backup", "create-restore-testing-plan", "--restore-testing-plan", doc)
	}
	if l := a.Run("backup", "list-restore-testing-plans")["RestoreTestingPlans"].([]any); len(l) != 0 {
		t.Fatalf("rejected plans stored: %v", l)
	}
	a.Run("backup", "create-restore-testing-plan", "--restore-testing-plan", rtPlan)
	for name, c := range map[string]struct{ old, new, code string }{
		"ARNs and conditions": {`"ProtectedResourceArns":["*"]`, `"ProtectedResourceArns":["arn:aws:s3:::b"],"ProtectedResourceConditions":{"StringEquals":[{"Key":"aws:ResourceTag/env","Value":"prod"}]}`, "InvalidParameterValueException"},
		"unknown type":        {`"ProtectedResourceType":"S3"`, `"ProtectedResourceType":"DynamoDB"`, "InvalidParameterValueException"},
		"window 169 hours":    {`"ValidationWindowHours":2`, `"ValidationWindowHours":169`, "InvalidParameterValueException"},
		"not a role":          {`:role/restore`, `:user/restore`, "InvalidParameterValueException"},
	} {
		doc := strings.Replace(rtSelection, c.old, c.new, 1)
		if doc == rtSelection {
			t.Fatalf("%s: replacement did not apply", name)
		}
		a.Fail(c.code, "backup", "create-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection", doc)
	}
	a.Fail("ResourceNotFoundException", "backup", "create-restore-testing-selection", "--restore-testing-plan-name", "nope", "--restore-testing-selection", rtSelection)
	a.Fail("InvalidParameterValueException", "backup", "update-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test",
		"--restore-testing-plan", `{"ScheduleExpression":"rate(0 hours)"}`)
}

// TestCLIRestoreTestingCrossAccount: another account neither sees nor
// touches a plan, and has names of its own.
func TestCLIRestoreTestingCrossAccount(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	a := servertest.AWSCLI(t, r)
	b := a.As(servertest.OtherAccessKey, servertest.OtherSecretKey, "")
	arn := a.Run("backup", "create-restore-testing-plan", "--restore-testing-plan", rtPlan)["RestoreTestingPlanArn"].(string)
	a.Run("backup", "create-restore-testing-selection", "--restore-testing-plan-name", "daily_s3_test", "--restore-testing-selection", rtSelection)
	plan := []string{"--restore-testing-plan-name", "daily_s3_test"}
	b.Fail("ResourceNotFoundException", append([]string{"backup", "get-restore-testing-plan"}, plan...)...)
	b.Fail("ResourceNotFoundException", append([]string{"backup", "update-restore-testing-plan", "--restore-testing-plan", `{"StartWindowHours":5}`}, plan...)...)
	b.Fail("ResourceNotFoundException", append([]string{"backup", "list-restore-testing-selections"}, plan...)...)
	b.Fail("ResourceNotFoundException", append([]string{"backup", "get-restore-testing-selection", "--restore-testing-selection-name", "all_buckets"}, plan...)...)
	b.Fail("ResourceNotFoundException", append([]string{"backup", "delete-restore-testing-selection", "--restore-testing-selection-name", "all_buckets"}, plan...)...)
	b.Fail("ResourceNotFoundException", "backup", "list-tags", "--resource-arn", arn)
	if l := b.Run("backup", "list-restore-testing-plans")["RestoreTestingPlans"].([]any); len(l) != 0 {
		t.Fatalf("other account lists: %v", l)
	}
	mine := b.Run("backup", "create-restore-testing-plan", "--restore-testing-plan", rtPlan)["RestoreTestingPlanArn"].(string)
	if mine == arn || !strings.Contains(mine, ":"+servertest.OtherAccountID+":") {
		t.Fatalf("other account's plan %s", mine)
	}
	b.Run("backup", "delete-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")
	got := a.Run("backup", "get-restore-testing-plan", "--restore-testing-plan-name", "daily_s3_test")
	if field(got, "RestoreTestingPlan", "RestoreTestingPlanArn") != arn || field(got, "RestoreTestingPlan", "StartWindowHours") != float64(3) {
		t.Fatalf("plan after the other account's calls: %v", got)
	}
}

// TestCLIRestoreValidationResult restores a point, reads the metadata a
// restore test of it would use, and records a validation result that
// DescribeRestoreJob then shows.
func TestCLIRestoreValidationResult(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	a := servertest.AWSCLI(t, r)
	c := regionSDK(r, servertest.AccessKey, servertest.SecretKey)
	if err := r.Store.CreateBucket(ctx, "src", servertest.AccountID, r.Store.Region()); err != nil {
		t.Fatal(err)
	}
	data := []byte("restore test data")
	if _, err := r.Store.PutObject(ctx, &objectstore.PutInput{Bucket: "src", Key: "k", Owner: servertest.AccountID, Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	point := aws.ToString(sdkBackup(t, c, "src", "Default").RecoveryPointArn)

	md := a.Run("backup", "get-restore-testing-inferred-metadata", "--backup-vault-name", "Default", "--recovery-point-arn", point)
	if !reflect.DeepEqual(md, map[string]any{"InferredMetadata": map[string]any{"DestinationBucketName": "src", "NewBucket": "false"}}) {
		t.Fatalf("inferred metadata: %v", md)
	}
	a.Fail("ResourceNotFoundException", "backup", "get-restore-testing-inferred-metadata", "--backup-vault-name", "nope", "--recovery-point-arn", point)

	rs, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(point), IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup"),
		Metadata: map[string]string{"DestinationBucketName": "src-restored", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	id := aws.ToString(rs.RestoreJobId)
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		j, err := c.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: rs.RestoreJobId})
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == types.RestoreJobStatusCompleted {
			if j.ValidationStatus != "" || j.CreatedBy != nil {
				t.Fatalf("restore job not made by restore testing shows %q %+v", j.ValidationStatus, j.CreatedBy)
			}
			break
		}
		if j.Status == types.RestoreJobStatusFailed || time.Now().After(deadline) {
			t.Fatalf("restore: %s %s", j.Status, aws.ToString(j.StatusMessage))
		}
	}
	a.Fail("InvalidParameterValueException", "backup", "put-restore-validation-result", "--restore-job-id", id, "--validation-status", "PASSED")
	a.Fail("ResourceNotFoundException", "backup", "put-restore-validation-result", "--restore-job-id", "NOPE", "--validation-status", "SUCCESSFUL")
	a.As(servertest.OtherAccessKey, servertest.OtherSecretKey, "").Fail("ResourceNotFoundException", "backup", "put-restore-validation-result",
		"--restore-job-id", id, "--validation-status", "FAILED")
	a.Run("backup", "put-restore-validation-result", "--restore-job-id", id, "--validation-status", "SUCCESSFUL", "--validation-status-message", "all objects match")
	d := a.Run("backup", "describe-restore-job", "--restore-job-id", id)
	if d["ValidationStatus"] != "SUCCESSFUL" || d["ValidationStatusMessage"] != "all objects match" || d["Status"] != "COMPLETED" {
		t.Fatalf("describe: %v", d)
	}

	byRes := a.Run("backup", "list-restore-jobs-by-protected-resource", "--resource-arn", "arn:aws:s3:::src")["RestoreJobs"].([]any)
	if len(byRes) != 1 || field(byRes[0], "RestoreJobId") != id || field(byRes[0], "SourceResourceArn") != "arn:aws:s3:::src" ||
		field(byRes[0], "ValidationStatus") != "SUCCESSFUL" || field(byRes[0], "RecoveryPointCreationDate") == nil {
		t.Fatalf("by protected resource: %v", byRes)
	}
	if l := a.Run("backup", "list-restore-jobs-by-protected-resource", "--resource-arn", "arn:aws:s3:::src", "--by-status", "FAILED")["RestoreJobs"].([]any); len(l) != 0 {
		t.Fatalf("by protected resource, failed: %v", l)
	}
	if l := a.Run("backup", "list-restore-jobs-by-protected-resource", "--resource-arn", "arn:aws:s3:::other")["RestoreJobs"].([]any); len(l) != 0 {
		t.Fatalf("by another resource: %v", l)
	}
}

// TestSDKRestoreTesting reads the plans and selections through
// aws-sdk-go-v2, which decodes the answers by the model.
func TestSDKRestoreTesting(t *testing.T) {
	e := newEnv(t)
	c := e.sdk(rootAccess, rootSecret)
	created, err := c.CreateRestoreTestingPlan(ctx, &awsbackup.CreateRestoreTestingPlanInput{RestoreTestingPlan: &types.RestoreTestingPlanForCreate{
		RestoreTestingPlanName: aws.String("sdk_plan"), ScheduleExpression: aws.String("rate(1 day)"),
		RecoveryPointSelection: &types.RestoreTestingRecoveryPointSelection{Algorithm: types.RestoreTestingRecoveryPointSelectionAlgorithmRandomWithinWindow,
			IncludeVaults: []string{"*"}, RecoveryPointTypes: []types.RestoreTestingRecoveryPointType{types.RestoreTestingRecoveryPointTypeSnapshot}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if created.CreationTime == nil || time.Since(*created.CreationTime) > time.Minute {
		t.Fatalf("create: %+v", created)
	}
	got, err := c.GetRestoreTestingPlan(ctx, &awsbackup.GetRestoreTestingPlanInput{RestoreTestingPlanName: aws.String("sdk_plan")})
	if err != nil {
		t.Fatal(err)
	}
	p := got.RestoreTestingPlan
	if aws.ToString(p.RestoreTestingPlanArn) != aws.ToString(created.RestoreTestingPlanArn) || p.RecoveryPointSelection.SelectionWindowDays != 30 ||
		p.StartWindowHours != 24 || p.RecoveryPointSelection.Algorithm != types.RestoreTestingRecoveryPointSelectionAlgorithmRandomWithinWindow {
		t.Fatalf("get: %+v %+v", p, p.RecoveryPointSelection)
	}
	if _, err := c.CreateRestoreTestingSelection(ctx, &awsbackup.CreateRestoreTestingSelectionInput{RestoreTestingPlanName: aws.String("sdk_plan"),
		RestoreTestingSelection: &types.RestoreTestingSelectionForCreate{RestoreTestingSelectionName: aws.String("sel"), ProtectedResourceType: aws.String("S3"),
			ProtectedResourceArns: []string{"arn:aws:s3:::b"}, IamRoleArn: aws.String("arn:aws:iam::" + account + ":role/r")}}); err != nil {
		t.Fatal(err)
	}
	ls, err := c.ListRestoreTestingSelections(ctx, &awsbackup.ListRestoreTestingSelectionsInput{RestoreTestingPlanName: aws.String("sdk_plan"), MaxResults: aws.Int32(1)})
	if err != nil || len(ls.RestoreTestingSelections) != 1 || aws.ToString(ls.RestoreTestingSelections[0].RestoreTestingSelectionName) != "sel" {
		t.Fatalf("list selections: %+v, %v", ls, err)
	}
	_, err = c.DeleteRestoreTestingPlan(ctx, &awsbackup.DeleteRestoreTestingPlanInput{RestoreTestingPlanName: aws.String("sdk_plan")})
	wantCode(t, err, "InvalidRequestException", 400)
	if _, err := c.DeleteRestoreTestingSelection(ctx, &awsbackup.DeleteRestoreTestingSelectionInput{RestoreTestingPlanName: aws.String("sdk_plan"), RestoreTestingSelectionName: aws.String("sel")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteRestoreTestingPlan(ctx, &awsbackup.DeleteRestoreTestingPlanInput{RestoreTestingPlanName: aws.String("sdk_plan")}); err != nil {
		t.Fatal(err)
	}
	// Without a job service, the operations on jobs are not served.
	_, err = c.PutRestoreValidationResult(ctx, &awsbackup.PutRestoreValidationResultInput{RestoreJobId: aws.String("X"), ValidationStatus: types.RestoreValidationStatusSuccessful})
	if code, _ := apiCode(err); code == "" {
		t.Fatalf("validation result without a job service: %v", err)
	}
}
