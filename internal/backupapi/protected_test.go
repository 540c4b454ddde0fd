package backupapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// regionSDK returns a Backup client of a region under test, as key.
func regionSDK(r *servertest.Region, access, secret string) *awsbackup.Client {
	return awsbackup.NewFromConfig(aws.Config{
		Region:       r.Store.Region(),
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		BaseEndpoint: aws.String(r.URL()),
	})
}

// sdkBackup backs bucket up into vault through the API and returns the
// completed job.
func sdkBackup(t *testing.T, c *awsbackup.Client, bucket, vault string) *awsbackup.DescribeBackupJobOutput {
	t.Helper()
	start, err := c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String(vault),
		ResourceArn: aws.String("arn:aws:s3:::" + bucket), IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		j, err := c.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: start.BackupJobId})
		if err != nil {
			t.Fatal(err)
		}
		switch j.State {
		case types.BackupJobStateCompleted:
			return j
		case types.BackupJobStateFailed, types.BackupJobStateAborted:
			t.Fatalf("backup of %s: %s %s", bucket, j.State, aws.ToString(j.StatusMessage))
		}
	}
	t.Fatalf("backup of %s did not end", bucket)
	return nil
}

// listProtected lists the protected resources of a vault ("" for all of
// them), a page of one at a time.
func listProtected(t *testing.T, c *awsbackup.Client, vault string) []types.ProtectedResource {
	t.Helper()
	if vault == "" {
		return allPages(t, awsbackup.NewListProtectedResourcesPaginator(c, &awsbackup.ListProtectedResourcesInput{MaxResults: aws.Int32(1)}),
			func(o *awsbackup.ListProtectedResourcesOutput) []types.ProtectedResource { return o.Results })
	}
	return allPages(t, awsbackup.NewListProtectedResourcesByBackupVaultPaginator(c, &awsbackup.ListProtectedResourcesByBackupVaultInput{BackupVaultName: &vault, MaxResults: aws.Int32(1)}),
		func(o *awsbackup.ListProtectedResourcesByBackupVaultOutput) []types.ProtectedResource {
			return o.Results
		})
}

func allPages[O, T any](t *testing.T, p interface {
	HasMorePages() bool
	NextPage(context.Context, ...func(*awsbackup.Options)) (O, error)
}, items func(O) []T) []T {
	t.Helper()
	var out []T
	for p.HasMorePages() {
		pg, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, items(pg)...)
	}
	return out
}

// TestProtectedResourcesSDK lists and describes protected resources with
// aws-sdk-go-v2 against a region: a bucket is protected once it has a
// recovery point, and its latest restore shows.
func TestProtectedResourcesSDK(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := regionSDK(r, servertest.AccessKey, servertest.SecretKey)
	for _, b := range []string{"one", "two"} {
		if err := r.Store.CreateBucket(context.Background(), b, servertest.AccountID, r.Store.Region()); err != nil {
			t.Fatal(err)
		}
		data := []byte("data of " + b)
		if _, err := r.Store.PutObject(ctx, &objectstore.PutInput{Bucket: b, Key: "k", Owner: servertest.AccountID, Body: bytes.NewReader(data), Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String("empty")}); err != nil {
		t.Fatal(err)
	}
	if got := listProtected(t, c, ""); len(got) != 0 {
		t.Fatalf("protected before any backup: %+v", got)
	}

	j1 := sdkBackup(t, c, "one", "Default")
	if aws.ToString(j1.PercentDone) != "100.0" || aws.ToInt64(j1.BackupSizeInBytes) != int64(len("data of one")) {
		t.Fatalf("completed job: PercentDone %q, size %d", aws.ToString(j1.PercentDone), aws.ToInt64(j1.BackupSizeInBytes))
	}
	sdkBackup(t, c, "two", "Default")
	j3 := sdkBackup(t, c, "one", "Default")

	got := listProtected(t, c, "")
	if len(got) != 2 {
		t.Fatalf("protected: %+v", got)
	}
	one := got[0]
	if aws.ToString(one.ResourceArn) != "arn:aws:s3:::one" || aws.ToString(one.ResourceType) != "S3" || aws.ToString(one.ResourceName) != "one" ||
		aws.ToString(one.LastRecoveryPointArn) != aws.ToString(j3.RecoveryPointArn) || aws.ToString(one.LastBackupVaultArn) != aws.ToString(j3.BackupVaultArn) ||
		!aws.ToTime(one.LastBackupTime).Equal(aws.ToTime(j3.CreationDate)) {
		t.Fatalf("resource one: %+v, want the point of job %+v", one, j3)
	}
	if aws.ToString(got[1].ResourceArn) != "arn:aws:s3:::two" {
		t.Fatalf("second resource: %+v", got[1])
	}
	if got := listProtected(t, c, "Default"); len(got) != 2 {
		t.Fatalf("protected in Default: %+v", got)
	}
	if got := listProtected(t, c, "empty"); len(got) != 0 {
		t.Fatalf("protected in an empty vault: %+v", got)
	}
	_, err := c.ListProtectedResourcesByBackupVault(ctx, &awsbackup.ListProtectedResourcesByBackupVaultInput{BackupVaultName: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException", 400)
	_, err = c.ListProtectedResourcesByBackupVault(ctx, &awsbackup.ListProtectedResourcesByBackupVaultInput{BackupVaultName: aws.String("Default"),
		BackupVaultAccountId: aws.String(servertest.OtherAccountID)})
	wantCode(t, err, "ResourceNotFoundException", 400)

	d, err := c.DescribeProtectedResource(ctx, &awsbackup.DescribeProtectedResourceInput{ResourceArn: aws.String("arn:aws:s3:::one")})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(d.LastRecoveryPointArn) != aws.ToString(j3.RecoveryPointArn) || d.LatestRestoreJobCreationDate != nil || d.LatestRestoreExecutionTimeMinutes != nil {
		t.Fatalf("describe before a restore: %+v", d)
	}
	rs, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: j1.RecoveryPointArn, IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup"),
		Metadata: map[string]string{"DestinationBucketName": "one-restored", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	var rj *awsbackup.DescribeRestoreJobOutput
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if rj, err = c.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: rs.RestoreJobId}); err != nil {
			t.Fatal(err)
		}
		if rj.Status == types.RestoreJobStatusCompleted {
			break
		}
		if rj.Status == types.RestoreJobStatusFailed || time.Now().After(deadline) {
			t.Fatalf("restore: %s %s", rj.Status, aws.ToString(rj.StatusMessage))
		}
	}
	d, err = c.DescribeProtectedResource(ctx, &awsbackup.DescribeProtectedResourceInput{ResourceArn: aws.String("arn:aws:s3:::one")})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToTime(d.LatestRestoreJobCreationDate).Equal(aws.ToTime(rj.CreationDate)) || aws.ToInt64(d.LatestRestoreExecutionTimeMinutes) != 0 ||
		!aws.ToTime(d.LatestRestoreRecoveryPointCreationDate).Equal(aws.ToTime(j1.CreationDate)) {
		t.Fatalf("describe after a restore of the first point: %+v", d)
	}

	_, err = c.DescribeProtectedResource(ctx, &awsbackup.DescribeProtectedResourceInput{ResourceArn: aws.String("arn:aws:s3:::one-restored")})
	wantCode(t, err, "ResourceNotFoundException", 400)
	// Another account has no protected resources, and cannot see these.
	other := regionSDK(r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	if got := listProtected(t, other, ""); len(got) != 0 {
		t.Fatalf("another account lists %+v", got)
	}
	_, err = other.DescribeProtectedResource(ctx, &awsbackup.DescribeProtectedResourceInput{ResourceArn: aws.String("arn:aws:s3:::one")})
	wantCode(t, err, "ResourceNotFoundException", 400)
}

// TestProtectedResourcesAWSCLI calls the three operations with the aws
// CLI, which keeps the trailing slash of the model's list URIs.
func TestProtectedResourcesAWSCLI(t *testing.T) {
	bin := servertest.RequireTool(t, "aws")
	r := servertest.Start(t, servertest.Options{})
	if err := r.Store.CreateBucket(ctx, "cli-one", servertest.AccountID, r.Store.Region()); err != nil {
		t.Fatal(err)
	}
	j := sdkBackup(t, regionSDK(r, servertest.AccessKey, servertest.SecretKey), "cli-one", "Default")
	run := func(args ...string) map[string]any {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"--endpoint-url", r.URL(), "--region", r.Store.Region(), "--output", "json", "backup"}, args...)...)
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+servertest.AccessKey, "AWS_SECRET_ACCESS_KEY="+servertest.SecretKey, "AWS_SESSION_TOKEN=",
			"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "AWS_PAGER=", "AWS_MAX_ATTEMPTS=1")
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
	point := aws.ToString(j.RecoveryPointArn)
	for _, args := range [][]string{
		{"list-protected-resources"},
		{"list-protected-resources-by-backup-vault", "--backup-vault-name", "Default"},
	} {
		res, _ := run(args...)["Results"].([]any)
		if len(res) != 1 || res[0].(map[string]any)["LastRecoveryPointArn"] != point {
			t.Fatalf("%s: %v", args[0], res)
		}
	}
	d := run("describe-protected-resource", "--resource-arn", "arn:aws:s3:::cli-one")
	if d["ResourceName"] != "cli-one" || d["LastRecoveryPointArn"] != point || d["LastBackupTime"] == nil {
		t.Fatalf("describe-protected-resource: %v", d)
	}
}
