package backupapi_test

import (
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"
)

func TestSDK(t *testing.T) {
	e := newEnv(t)
	c := e.sdk(rootAccess, rootSecret)
	if _, err := c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String("sdk-vault")}); err != nil {
		t.Fatal(err)
	}
	_, err := c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String("sdk-vault")})
	wantCode(t, err, "AlreadyExistsException", 400)
	_, err = c.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException", 400)

	plan := &types.BackupPlanInput{
		BackupPlanName: aws.String("sdk-plan"),
		Rules: []types.BackupRuleInput{{
			RuleName:              aws.String("hourly"),
			TargetBackupVaultName: aws.String("sdk-vault"),
			ScheduleExpression:    aws.String("rate(1 hour)"),
			Lifecycle:             &types.Lifecycle{MoveToColdStorageAfterDays: aws.Int64(7), DeleteAfterDays: aws.Int64(97)},
		}},
	}
	created, err := c.CreateBackupPlan(ctx, &awsbackup.CreateBackupPlanInput{BackupPlan: plan, BackupPlanTags: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.GetBackupPlan(ctx, &awsbackup.GetBackupPlanInput{BackupPlanId: created.BackupPlanId})
	if err != nil {
		t.Fatal(err)
	}
	r := got.BackupPlan.Rules[0]
	if aws.ToString(got.VersionId) != aws.ToString(created.VersionId) || aws.ToInt64(r.StartWindowMinutes) != 480 ||
		aws.ToInt64(r.Lifecycle.DeleteAfterDays) != 97 || got.CreationDate == nil || got.CreationDate.IsZero() {
		t.Fatalf("get: %+v / %+v", got, r)
	}
	tags, err := c.ListTags(ctx, &awsbackup.ListTagsInput{ResourceArn: created.BackupPlanArn})
	if err != nil || tags.Tags["k"] != "v" {
		t.Fatalf("tags %v %v", tags, err)
	}
	plan.Rules[0].Lifecycle.DeleteAfterDays = aws.Int64(30)
	_, err = c.UpdateBackupPlan(ctx, &awsbackup.UpdateBackupPlanInput{BackupPlanId: created.BackupPlanId, BackupPlan: plan})
	wantCode(t, err, "InvalidParameterValueException", 400)

	for i := range 3 {
		if _, err := c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String("page-" + string(rune('a'+i)))}); err != nil {
			t.Fatal(err)
		}
	}
	var names []string
	p := awsbackup.NewListBackupVaultsPaginator(c, &awsbackup.ListBackupVaultsInput{MaxResults: aws.Int32(2)})
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range pg.BackupVaultList {
			names = append(names, aws.ToString(v.BackupVaultName))
		}
	}
	if len(names) != 5 || names[0] != "Default" || names[4] != "sdk-vault" {
		t.Fatalf("paged vaults %v", names)
	}

	// A signature by an unknown key is refused with the code the SDK knows.
	_, err = e.sdk("AKIAUNKNOWNKEY000001", "x").ListBackupVaults(ctx, &awsbackup.ListBackupVaultsInput{})
	wantCode(t, err, "UnrecognizedClientException", 403)
}
