package backupapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// dirType is the resource type of dirProvider.
const dirType = "DIRECTORY"

// dirProvider is a second resource type, of its own ARN form, that keeps
// directories of files in memory: what a backup of something other than
// a bucket looks like to the job service. A directory's ARN is
// arn:aws:bulwark-test:REGION:ACCOUNT:directory/NAME.
type dirProvider struct {
	region string
	mu     sync.Mutex
	dirs   map[string]*directory // by name
}

type directory struct {
	account string
	tags    map[string]string
	files   map[string][]byte
}

func newDirProvider(region string) *dirProvider {
	return &dirProvider{region: region, dirs: map[string]*directory{}}
}

func (p *dirProvider) arn(account, name string) string {
	return "arn:aws:bulwark-test:" + p.region + ":" + account + ":directory/" + name
}

// put makes or replaces a directory.
func (p *dirProvider) put(account, name string, tags map[string]string, files map[string][]byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirs[name] = &directory{account: account, tags: tags, files: maps.Clone(files)}
}

// files returns a copy of a directory's files; nil when there is none.
func (p *dirProvider) files(name string) map[string][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if d := p.dirs[name]; d != nil {
		return maps.Clone(d.files)
	}
	return nil
}

func (*dirProvider) Type() string { return dirType }

func (p *dirProvider) Owns(arn string) bool {
	_, name, ok := strings.Cut(arn, ":directory/")
	return ok && strings.HasPrefix(arn, "arn:aws:bulwark-test:") && name != "" && !strings.Contains(name, "/")
}

func (p *dirProvider) Name(arn string) string {
	_, name, _ := strings.Cut(arn, ":directory/")
	return name
}

func (p *dirProvider) Describe(ctx context.Context, account, arn string) (*backup.Resource, error) {
	name := p.Name(arn)
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.dirs[name]
	switch {
	case d == nil:
		return nil, &backup.Error{Kind: backup.ErrNotFound, Message: "Directory " + name + " does not exist."}
	case d.account != account:
		return nil, &backup.Error{Kind: backup.ErrInvalidParameter, Message: "Directory " + name + " belongs to another account."}
	}
	return &backup.Resource{ARN: arn, Type: dirType, Name: name, Account: d.account, Tags: maps.Clone(d.tags)}, nil
}

func (p *dirProvider) List(ctx context.Context, account string) ([]*backup.Resource, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*backup.Resource
	for _, name := range slices.Sorted(maps.Keys(p.dirs)) {
		if d := p.dirs[name]; d.account == account {
			out = append(out, &backup.Resource{ARN: p.arn(account, name), Type: dirType, Name: name, Account: account, Tags: maps.Clone(d.tags)})
		}
	}
	return out, nil
}

// Backup puts every file; one whose SHA-256 the previous point recorded
// is put by reference.
func (p *dirProvider) Backup(ctx context.Context, run *backup.BackupRun) (backup.BackupResult, error) {
	files := p.files(run.Resource.Name)
	if files == nil {
		return backup.BackupResult{}, &backup.Error{Kind: backup.ErrNotFound, Message: "Directory " + run.Resource.Name + " was deleted during the backup."}
	}
	var total int64
	for _, b := range files {
		total += int64(len(b))
	}
	if err := run.Expect(ctx, int64(len(files)), total); err != nil {
		return backup.BackupResult{}, err
	}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		sum := sha256.Sum256(files[path])
		e := vault.Entry{Key: path, Size: int64(len(files[path])), ETag: hex.EncodeToString(sum[:])}
		if prev, ref, ok := run.Previous(path); ok && prev.ETag == e.ETag {
			if err := run.PutUnchanged(ctx, e, ref); err != nil {
				return backup.BackupResult{}, err
			}
			continue
		}
		if err := run.Put(ctx, e, bytes.NewReader(files[path])); err != nil {
			return backup.BackupResult{}, err
		}
	}
	return backup.BackupResult{}, nil
}

func (p *dirProvider) RestoreMetadata(rp *backup.RecoveryPoint) map[string]string {
	return map[string]string{"DirectoryName": p.Name(rp.ResourceARN)}
}

func (p *dirProvider) target(rp *backup.RecoveryPoint, md map[string]string) string {
	if name := md["DirectoryName"]; name != "" {
		return name
	}
	return p.Name(rp.ResourceARN)
}

func (p *dirProvider) CheckRestore(ctx context.Context, account string, rp *backup.RecoveryPoint, md map[string]string) (string, error) {
	name := p.target(rp, md)
	if _, err := p.Describe(ctx, account, p.arn(account, name)); err != nil && !errors.Is(err, backup.ErrNotFound) {
		return "", err
	}
	return p.arn(account, name), nil
}

// Restore replaces the target directory (made when missing) by the
// point's files.
func (p *dirProvider) Restore(ctx context.Context, run *backup.RestoreRun) error {
	files := map[string][]byte{}
	err := run.Entries(ctx, func(e vault.Entry, ref vault.ObjectRef) error {
		rd, err := run.Open(ctx, e, ref)
		if err != nil {
			return err
		}
		defer rd.Close()
		b, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		files[e.Key] = b
		return run.Restored(ctx, e)
	})
	if err != nil {
		return err
	}
	p.put(run.Account, p.target(run.Point, run.Metadata), nil, files)
	return nil
}

// TestSecondResourceType backs up, restores, copies and schedules a
// resource type other than S3 through the Backup API, with
// aws-sdk-go-v2: nothing in the job path assumes a bucket.
func TestSecondResourceType(t *testing.T) {
	ctx := context.Background()
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	dirs := newDirProvider("us-west-2")
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.BackupProviders = []backup.Provider{dirs}
		c.BackupClock = now
		c.BackupSchedulerInterval = 50 * time.Millisecond
	}})
	c := regionSDK(r, servertest.AccessKey, servertest.SecretKey)
	role := aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")
	docs := map[string][]byte{"a.txt": []byte("alpha"), "sub/b.txt": bytes.Repeat([]byte("bravo "), 10000), "empty": {}}
	dirs.put(servertest.AccountID, "docs", map[string]string{"team": "x"}, docs)
	docsARN := dirs.arn(servertest.AccountID, "docs")

	types_, err := c.GetSupportedResourceTypes(ctx, &awsbackup.GetSupportedResourceTypesInput{})
	if err != nil {
		t.Fatal(err)
	}
	// The region's own types (S3 first), then the configuration's.
	if rt := types_.ResourceTypes; len(rt) < 2 || rt[0] != "S3" || rt[len(rt)-1] != dirType || slices.Index(rt, dirType) != len(rt)-1 {
		t.Fatalf("supported resource types: %v", types_.ResourceTypes)
	}

	// An on-demand backup.
	start, err := c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String(docsARN), IamRoleArn: role})
	if err != nil {
		t.Fatal(err)
	}
	j := waitBackupJob(t, c, aws.ToString(start.BackupJobId))
	if j.State != types.BackupJobStateCompleted || aws.ToString(j.ResourceType) != dirType || aws.ToString(j.ResourceName) != "docs" ||
		aws.ToInt64(j.BackupSizeInBytes) != int64(len("alpha")+60000) {
		t.Fatalf("backup job: %s %s, type %s, name %s, %d bytes", j.State, aws.ToString(j.StatusMessage),
			aws.ToString(j.ResourceType), aws.ToString(j.ResourceName), aws.ToInt64(j.BackupSizeInBytes))
	}
	pointARN := aws.ToString(j.RecoveryPointArn)
	rp, err := c.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: &pointARN})
	if err != nil {
		t.Fatal(err)
	}
	if rp.Status != types.RecoveryPointStatusCompleted || aws.ToString(rp.ResourceType) != dirType || aws.ToString(rp.ResourceArn) != docsARN {
		t.Fatalf("recovery point: %s, type %s, resource %s", rp.Status, aws.ToString(rp.ResourceType), aws.ToString(rp.ResourceArn))
	}
	md, err := c.GetRecoveryPointRestoreMetadata(ctx, &awsbackup.GetRecoveryPointRestoreMetadataInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: &pointARN})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(md.ResourceType) != dirType || !reflect.DeepEqual(md.RestoreMetadata, map[string]string{"DirectoryName": "docs"}) {
		t.Fatalf("restore metadata: %s %v", aws.ToString(md.ResourceType), md.RestoreMetadata)
	}

	// The directory is damaged; a restore into another brings its files
	// back.
	dirs.put(servertest.AccountID, "docs", nil, map[string][]byte{"a.txt": []byte("overwritten")})
	restored := restoreDir(t, c, pointARN, "docs-restored")
	if aws.ToString(restored.CreatedResourceArn) != dirs.arn(servertest.AccountID, "docs-restored") || aws.ToString(restored.ResourceType) != dirType {
		t.Fatalf("restore job: created %s, type %s", aws.ToString(restored.CreatedResourceArn), aws.ToString(restored.ResourceType))
	}
	if got := dirs.files("docs-restored"); !reflect.DeepEqual(got, docs) {
		t.Fatalf("restored %d files, want %d", len(got), len(docs))
	}

	// A copy into another vault, restored from there.
	if _, err := c.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String("second")}); err != nil {
		t.Fatal(err)
	}
	cj, err := c.StartCopyJob(ctx, &awsbackup.StartCopyJobInput{RecoveryPointArn: &pointARN, SourceBackupVaultName: aws.String("Default"),
		DestinationBackupVaultArn: aws.String("arn:aws:backup:us-west-2:" + servertest.AccountID + ":backup-vault:second"), IamRoleArn: role})
	if err != nil {
		t.Fatal(err)
	}
	var copied *types.CopyJob
	waitUntil(t, "the copy job", func() bool {
		d, err := c.DescribeCopyJob(ctx, &awsbackup.DescribeCopyJobInput{CopyJobId: cj.CopyJobId})
		if err != nil {
			t.Fatal(err)
		}
		copied = d.CopyJob
		return copied.State == types.CopyJobStateCompleted || copied.State == types.CopyJobStateFailed
	})
	if copied.State != types.CopyJobStateCompleted || aws.ToString(copied.ResourceType) != dirType || aws.ToString(copied.ResourceName) != "docs" {
		t.Fatalf("copy job: %s %s, type %s", copied.State, aws.ToString(copied.StatusMessage), aws.ToString(copied.ResourceType))
	}
	restoreDir(t, c, aws.ToString(copied.DestinationRecoveryPointArn), "docs-from-copy")
	if got := dirs.files("docs-from-copy"); !reflect.DeepEqual(got, docs) {
		t.Fatalf("restored from the copy %d files, want %d", len(got), len(docs))
	}

	// Another account cannot back up the directory.
	other := regionSDK(r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	_, err = other.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"), ResourceArn: aws.String(docsARN),
		IamRoleArn: aws.String("arn:aws:iam::" + servertest.OtherAccountID + ":role/backup")})
	wantCode(t, err, "InvalidParameterValueException", 400)

	// A plan whose selection names one directory by ARN backs up that one
	// when its time comes.
	dirs.put(servertest.AccountID, "nightly", nil, map[string][]byte{"log": []byte("night")})
	nightlyARN := dirs.arn(servertest.AccountID, "nightly")
	plan, err := c.CreateBackupPlan(ctx, &awsbackup.CreateBackupPlanInput{BackupPlan: &types.BackupPlanInput{
		BackupPlanName: aws.String("dirs"),
		Rules: []types.BackupRuleInput{{RuleName: aws.String("daily"), TargetBackupVaultName: aws.String("Default"),
			ScheduleExpression: aws.String("cron(0 2 * * ? *)")}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateBackupSelection(ctx, &awsbackup.CreateBackupSelectionInput{BackupPlanId: plan.BackupPlanId,
		BackupSelection: &types.BackupSelection{SelectionName: aws.String("nightly"), IamRoleArn: role, Resources: []string{nightlyARN}}}); err != nil {
		t.Fatal(err)
	}
	clock.Store(day0.Add(2*time.Hour + 30*time.Second).UnixNano())
	var scheduled []types.BackupJob
	waitUntil(t, "the scheduled backup job", func() bool {
		out, err := c.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{ByResourceType: aws.String(dirType), ByResourceArn: aws.String(nightlyARN)})
		if err != nil {
			t.Fatal(err)
		}
		scheduled = out.BackupJobs
		return len(scheduled) == 1 && (scheduled[0].State == types.BackupJobStateCompleted || scheduled[0].State == types.BackupJobStateFailed)
	})
	if s := scheduled[0]; s.State != types.BackupJobStateCompleted || s.CreatedBy == nil || aws.ToString(s.CreatedBy.BackupPlanId) != aws.ToString(plan.BackupPlanId) {
		t.Fatalf("scheduled job: %s %s", s.State, aws.ToString(s.StatusMessage))
	}
	all, err := c.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{ByResourceType: aws.String(dirType)})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.BackupJobs) != 2 { // the on-demand one of docs, the plan's of nightly
		t.Fatalf("%d backup jobs of type %s, want 2", len(all.BackupJobs), dirType)
	}

	// Both directories are protected, by their type.
	prot, err := c.ListProtectedResources(ctx, &awsbackup.ListProtectedResourcesInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range prot.Results {
		if aws.ToString(p.ResourceType) != dirType {
			t.Fatalf("protected resource %s of type %s", aws.ToString(p.ResourceArn), aws.ToString(p.ResourceType))
		}
		names = append(names, aws.ToString(p.ResourceName))
	}
	if !reflect.DeepEqual(names, []string{"docs", "nightly"}) {
		t.Fatalf("protected resources: %v", names)
	}
}

func waitBackupJob(t *testing.T, c *awsbackup.Client, id string) *awsbackup.DescribeBackupJobOutput {
	t.Helper()
	var j *awsbackup.DescribeBackupJobOutput
	waitUntil(t, "backup job "+id, func() bool {
		var err error
		if j, err = c.DescribeBackupJob(context.Background(), &awsbackup.DescribeBackupJobInput{BackupJobId: &id}); err != nil {
			t.Fatal(err)
		}
		return j.State == types.BackupJobStateCompleted || j.State == types.BackupJobStateFailed || j.State == types.BackupJobStateAborted
	})
	return j
}

// restoreDir restores a point into the named directory and returns the
// completed job.
func restoreDir(t *testing.T, c *awsbackup.Client, pointARN, name string) *awsbackup.DescribeRestoreJobOutput {
	t.Helper()
	ctx := context.Background()
	start, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: &pointARN, ResourceType: aws.String(dirType),
		IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup"), Metadata: map[string]string{"DirectoryName": name}})
	if err != nil {
		t.Fatal(err)
	}
	var j *awsbackup.DescribeRestoreJobOutput
	waitUntil(t, "restore job", func() bool {
		if j, err = c.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId}); err != nil {
			t.Fatal(err)
		}
		return j.Status == types.RestoreJobStatusCompleted || j.Status == types.RestoreJobStatusFailed
	})
	if j.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore into %s: %s %s", name, j.Status, aws.ToString(j.StatusMessage))
	}
	return j
}

func waitUntil(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatalf("%s did not end", what)
}
