package backupapi_test

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// lockRegion is a whole region (S3, Backup, IAM) whose backup clock the
// test moves: vault locks, lifecycles and expiry are days long. The root
// key of main_test.go is one of its keys, so that the aws CLI helper
// works against it too.
type lockRegion struct {
	t      *testing.T
	r      *servertest.Region
	offset atomic.Int64 // of the backup clock from the real one
	root   *awsbackup.Client
}

func newLockRegion(t *testing.T) *lockRegion {
	t.Helper()
	e := &lockRegion{t: t}
	e.r = servertest.Start(t, servertest.Options{Region: region, Configure: func(c *server.Config) {
		c.Keys = append(c.Keys, iam.RootKey(account, rootAccess, rootSecret))
		c.BackupClock = e.now
		// The test expires points itself, at the instants it picks.
		c.BackupSchedulerInterval = time.Hour
	}})
	e.root = e.client(rootAccess, rootSecret)
	return e
}

func (e *lockRegion) now() time.Time { return time.Now().Add(time.Duration(e.offset.Load())) }

// set moves the backup clock to t.
func (e *lockRegion) set(t time.Time) { e.offset.Store(int64(time.Until(t))) }

func (e *lockRegion) client(access, secret string) *awsbackup.Client {
	return awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(e.r.URL()), Region: region, RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(access, secret, "")})
}

// user creates an IAM user of the account with an inline policy and
// returns a client signing as it.
func (e *lockRegion) user(name, policy string) *awsbackup.Client {
	e.t.Helper()
	st := e.r.IAM
	if _, err := st.CreateUser(ctx, account, name, ""); err != nil {
		e.t.Fatal(err)
	}
	if err := st.PutInlinePolicy(ctx, iam.EntityUser, account, name, "p", policy); err != nil {
		e.t.Fatal(err)
	}
	k, err := st.CreateAccessKey(ctx, account, name)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.client(k.ID, k.Secret)
}

// vault creates a backup vault.
func (e *lockRegion) vault(name string) {
	e.t.Helper()
	if _, err := e.root.CreateBackupVault(ctx, &awsbackup.CreateBackupVaultInput{BackupVaultName: aws.String(name)}); err != nil {
		e.t.Fatal(err)
	}
}

// bucket creates a bucket holding one object.
func (e *lockRegion) bucket(name string) {
	e.t.Helper()
	c := servertest.NewClient(e.r.URL(), region, rootAccess, rootSecret, e.r.HTTPClient(e.t))
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		e.t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(name), Key: aws.String("ledger.csv"), Body: strings.NewReader("a,b\n1,2\n")}); err != nil {
		e.t.Fatal(err)
	}
}

// backup runs a backup job of the bucket into the vault to its end.
func (e *lockRegion) backup(vault, bucket string, l *types.Lifecycle) *awsbackup.DescribeBackupJobOutput {
	e.t.Helper()
	j, err := e.root.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String(vault),
		ResourceArn: aws.String("arn:aws:s3:::" + bucket), IamRoleArn: aws.String("arn:aws:iam::" + account + ":role/backup"), Lifecycle: l})
	if err != nil {
		e.t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		d, err := e.root.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: j.BackupJobId})
		if err != nil {
			e.t.Fatal(err)
		}
		if d.State == types.BackupJobStateCompleted || d.State == types.BackupJobStateFailed || time.Now().After(deadline) {
			return d
		}
	}
}

const (
	allowBackup = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"backup:*","Resource":"*"}]}`
	// allowBackupButUnlock may do all of AWS Backup but remove a lock.
	allowBackupButUnlock = `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"backup:*","Resource":"*"},
		{"Effect":"Deny","Action":"backup:DeleteBackupVaultLockConfiguration","Resource":"*"}]}`
)

// wantMessage fails unless err is code/400 and its message holds each of
// parts.
func wantMessage(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	wantCode(t, err, code, 400)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not say %q", err, p)
		}
	}
}

// A compliance-mode lock can change during its grace time and not after:
// from its LockDate on, neither PutBackupVaultLockConfiguration nor
// DeleteBackupVaultLockConfiguration nor DeleteBackupVault touches it.
func TestVaultLockCompliance(t *testing.T) {
	e := newLockRegion(t)
	c := e.root
	e.vault("ledger")
	vault := aws.String("ledger")
	put := func(min, max, changeable *int64) error {
		_, err := c.PutBackupVaultLockConfiguration(ctx, &awsbackup.PutBackupVaultLockConfigurationInput{BackupVaultName: vault,
			MinRetentionDays: min, MaxRetentionDays: max, ChangeableForDays: changeable})
		return err
	}
	for name, in := range map[string][3]*int64{
		"changeable for 2 days": {aws.Int64(7), aws.Int64(30), aws.Int64(2)},
		"minimum of 0 days":     {aws.Int64(0), nil, nil},
		"maximum of 36501 days": {nil, aws.Int64(36501), nil},
		"minimum above maximum": {aws.Int64(31), aws.Int64(30), nil},
	} {
		if err := put(in[0], in[1], in[2]); err == nil {
			t.Fatalf("%s accepted", name)
		} else {
			wantCode(t, err, "InvalidParameterValueException", 400)
		}
	}
	_, err := c.PutBackupVaultLockConfiguration(ctx, &awsbackup.PutBackupVaultLockConfigurationInput{BackupVaultName: aws.String("nope")})
	wantCode(t, err, "ResourceNotFoundException", 400)

	start := e.now()
	if err := put(aws.Int64(7), aws.Int64(30), aws.Int64(3)); err != nil {
		t.Fatal(err)
	}
	d, err := c.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: vault})
	if err != nil {
		t.Fatal(err)
	}
	if !aws.ToBool(d.Locked) || aws.ToInt64(d.MinRetentionDays) != 7 || aws.ToInt64(d.MaxRetentionDays) != 30 || d.LockDate == nil ||
		d.LockDate.Sub(start.AddDate(0, 0, 3)).Abs() > time.Minute {
		t.Fatalf("describe: locked %v min %v max %v lock date %v", aws.ToBool(d.Locked), d.MinRetentionDays, d.MaxRetentionDays, d.LockDate)
	}
	l, err := c.ListBackupVaults(ctx, &awsbackup.ListBackupVaultsInput{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range l.BackupVaultList {
		if locked := aws.ToString(v.BackupVaultName) == "ledger"; aws.ToBool(v.Locked) != locked || (v.LockDate != nil) != locked || (v.MinRetentionDays != nil) != locked {
			t.Fatalf("list: %s locked %v lock date %v min %v", aws.ToString(v.BackupVaultName), aws.ToBool(v.Locked), v.LockDate, v.MinRetentionDays)
		}
	}

	// Two days into the grace time the lock still changes; its LockDate
	// moves with ChangeableForDays.
	e.set(start.Add(48 * time.Hour))
	if err := put(aws.Int64(14), aws.Int64(30), aws.Int64(3)); err != nil {
		t.Fatalf("change in the grace time: %v", err)
	}
	d, _ = c.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: vault})
	lockDate := *d.LockDate
	if aws.ToInt64(d.MinRetentionDays) != 14 || lockDate.Sub(start.AddDate(0, 0, 5)).Abs() > time.Minute {
		t.Fatalf("after the change: min %v lock date %v", d.MinRetentionDays, lockDate)
	}

	e.set(lockDate.Add(time.Second))
	wantMessage(t, put(aws.Int64(1), nil, nil), "InvalidRequestException", "compliance mode", "immutable")
	_, err = c.DeleteBackupVaultLockConfiguration(ctx, &awsbackup.DeleteBackupVaultLockConfigurationInput{BackupVaultName: vault})
	wantMessage(t, err, "InvalidRequestException", "immutable")
	_, err = c.DeleteBackupVault(ctx, &awsbackup.DeleteBackupVaultInput{BackupVaultName: vault})
	wantMessage(t, err, "InvalidRequestException", "compliance mode")
	if d, _ = c.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: vault}); !aws.ToBool(d.Locked) || aws.ToInt64(d.MinRetentionDays) != 14 {
		t.Fatalf("immutable lock changed: locked %v min %v", aws.ToBool(d.Locked), d.MinRetentionDays)
	}
}

// A governance-mode lock is removed by a caller allowed
// backup:DeleteBackupVaultLockConfiguration, and only by one.
func TestVaultLockGovernance(t *testing.T) {
	e := newLockRegion(t)
	e.vault("ops")
	vault := aws.String("ops")
	if _, err := e.root.PutBackupVaultLockConfiguration(ctx, &awsbackup.PutBackupVaultLockConfigurationInput{BackupVaultName: vault,
		MinRetentionDays: aws.Int64(1)}); err != nil {
		t.Fatal(err)
	}
	d, err := e.root.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: vault})
	if err != nil || !aws.ToBool(d.Locked) || d.LockDate != nil || d.MaxRetentionDays != nil {
		t.Fatalf("governance lock: %+v %v", d, err)
	}
	operator := e.user("operator", allowBackupButUnlock)
	_, err = operator.DeleteBackupVaultLockConfiguration(ctx, &awsbackup.DeleteBackupVaultLockConfigurationInput{BackupVaultName: vault})
	wantCode(t, err, "AccessDeniedException", 403)

	// A year on, the lock still changes and goes.
	e.set(e.now().AddDate(1, 0, 0))
	admin := e.user("admin", allowBackup)
	if _, err := admin.PutBackupVaultLockConfiguration(ctx, &awsbackup.PutBackupVaultLockConfigurationInput{BackupVaultName: vault,
		MaxRetentionDays: aws.Int64(365)}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.DeleteBackupVaultLockConfiguration(ctx, &awsbackup.DeleteBackupVaultLockConfigurationInput{BackupVaultName: vault}); err != nil {
		t.Fatal(err)
	}
	d, _ = e.root.DescribeBackupVault(ctx, &awsbackup.DescribeBackupVaultInput{BackupVaultName: vault})
	if aws.ToBool(d.Locked) || d.MinRetentionDays != nil || d.MaxRetentionDays != nil {
		t.Fatalf("after delete: locked %v min %v max %v", aws.ToBool(d.Locked), d.MinRetentionDays, d.MaxRetentionDays)
	}
	_, err = admin.DeleteBackupVaultLockConfiguration(ctx, &awsbackup.DeleteBackupVaultLockConfigurationInput{BackupVaultName: vault})
	wantCode(t, err, "ResourceNotFoundException", 400)
}

// In a locked vault the root user and an IAM user allowed backup:* alike
// cannot delete a recovery point before its retention ends nor shorten
// it; lengthening is allowed; the lifecycle deletes the point at its
// DeleteAt. Jobs whose retention the lock does not allow fail.
func TestVaultLockRecoveryPoints(t *testing.T) {
	e := newLockRegion(t)
	c := e.root
	e.vault("ledger")
	e.bucket("ledger-data")
	vault := aws.String("ledger")
	job := e.backup("ledger", "ledger-data", &types.Lifecycle{DeleteAfterDays: aws.Int64(10)})
	if job.State != types.BackupJobStateCompleted {
		t.Fatalf("backup: %s %s", job.State, aws.ToString(job.StatusMessage))
	}
	point := job.RecoveryPointArn
	if _, err := c.PutBackupVaultLockConfiguration(ctx, &awsbackup.PutBackupVaultLockConfigurationInput{BackupVaultName: vault,
		MinRetentionDays: aws.Int64(7), MaxRetentionDays: aws.Int64(30)}); err != nil {
		t.Fatal(err)
	}
	p, err := c.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: vault, RecoveryPointArn: point})
	if err != nil {
		t.Fatal(err)
	}
	created, deleteAt := *p.CreationDate, *p.CalculatedLifecycle.DeleteAt
	day := deleteAt.UTC().Format("2006-01-02")

	user := e.user("backup-admin", allowBackup)
	for who, cl := range map[string]*awsbackup.Client{"root": c, "IAM user": user} {
		_, err := cl.DeleteRecoveryPoint(ctx, &awsbackup.DeleteRecoveryPointInput{BackupVaultName: vault, RecoveryPointArn: point})
		if err == nil {
			t.Fatalf("%s deleted a locked recovery point", who)
		}
		wantMessage(t, err, "InvalidRequestException", "vault lock of backup vault ledger", day)
	}

	update := func(cl *awsbackup.Client, l *types.Lifecycle) (*awsbackup.UpdateRecoveryPointLifecycleOutput, error) {
		return cl.UpdateRecoveryPointLifecycle(ctx, &awsbackup.UpdateRecoveryPointLifecycleInput{BackupVaultName: vault, RecoveryPointArn: point, Lifecycle: l})
	}
	for who, cl := range map[string]*awsbackup.Client{"root": c, "IAM user": user} {
		_, err := update(cl, &types.Lifecycle{DeleteAfterDays: aws.Int64(8)})
		if err == nil {
			t.Fatalf("%s shortened a locked recovery point's retention", who)
		}
		wantMessage(t, err, "InvalidRequestException", "forbids shortening")
	}
	_, err = update(c, &types.Lifecycle{DeleteAfterDays: aws.Int64(31)})
	wantMessage(t, err, "InvalidRequestException", "maximum retention of 30 days")
	_, err = update(c, &types.Lifecycle{MoveToColdStorageAfterDays: aws.Int64(1), DeleteAfterDays: aws.Int64(30)})
	wantMessage(t, err, "InvalidParameterValueException", "90 days")
	out, err := update(user, &types.Lifecycle{DeleteAfterDays: aws.Int64(20)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(out.RecoveryPointArn) != aws.ToString(point) || aws.ToString(out.BackupVaultArn) != "arn:aws:backup:"+region+":"+account+":backup-vault:ledger" ||
		aws.ToInt64(out.Lifecycle.DeleteAfterDays) != 20 || !out.CalculatedLifecycle.DeleteAt.Equal(created.AddDate(0, 0, 20)) {
		t.Fatalf("lengthen: %+v %+v", out.Lifecycle, out.CalculatedLifecycle)
	}
	p, _ = c.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: vault, RecoveryPointArn: point})
	deleteAt = *p.CalculatedLifecycle.DeleteAt
	if aws.ToInt64(p.Lifecycle.DeleteAfterDays) != 20 || !deleteAt.Equal(created.AddDate(0, 0, 20)) {
		t.Fatalf("described after update: %+v %+v", p.Lifecycle, p.CalculatedLifecycle)
	}

	// Jobs into the vault keep to the lock's bounds, or fail saying so.
	for _, tc := range []struct {
		l    *types.Lifecycle
		want string
	}{
		{&types.Lifecycle{DeleteAfterDays: aws.Int64(3)}, "shorter than the minimum retention of 7 days of the vault lock of backup vault ledger"},
		{&types.Lifecycle{DeleteAfterDays: aws.Int64(31)}, "longer than the maximum retention of 30 days of the vault lock of backup vault ledger"},
		{nil, "kept indefinitely"},
	} {
		j := e.backup("ledger", "ledger-data", tc.l)
		if j.State != types.BackupJobStateFailed || !strings.Contains(aws.ToString(j.StatusMessage), tc.want) || j.RecoveryPointArn != nil {
			t.Fatalf("job with %+v: %s %q point %v", tc.l, j.State, aws.ToString(j.StatusMessage), aws.ToString(j.RecoveryPointArn))
		}
	}
	if j := e.backup("ledger", "ledger-data", &types.Lifecycle{DeleteAfterDays: aws.Int64(7)}); j.State != types.BackupJobStateCompleted {
		t.Fatalf("job within the lock: %s %q", j.State, aws.ToString(j.StatusMessage))
	}

	// A minute before DeleteAt the point stays; at it the lifecycle
	// deletes it.
	e.set(deleteAt.Add(-time.Minute))
	_, err = c.DeleteRecoveryPoint(ctx, &awsbackup.DeleteRecoveryPointInput{BackupVaultName: vault, RecoveryPointArn: point})
	wantMessage(t, err, "InvalidRequestException", "vault lock")
	if n, err := e.r.Jobs.ExpirePoints(ctx, deleteAt); err != nil || n != 2 {
		t.Fatalf("expired at DeleteAt: %d %v", n, err)
	}
	_, err = c.DescribeRecoveryPoint(ctx, &awsbackup.DescribeRecoveryPointInput{BackupVaultName: vault, RecoveryPointArn: point})
	wantCode(t, err, "ResourceNotFoundException", 400)
}

// The README's commands, through the aws CLI.
func TestCLIVaultLock(t *testing.T) {
	e := newLockRegion(t)
	a := servertest.NewCLI(t, e.r.URL(), region, rootAccess, rootSecret)
	e.bucket("ledger-data")
	a.Run("backup", "create-backup-vault", "--backup-vault-name", "ledger")
	a.Fail("InvalidParameterValueException", "backup", "put-backup-vault-lock-configuration", "--backup-vault-name", "ledger",
		"--min-retention-days", "7", "--changeable-for-days", "1")
	a.Run("backup", "put-backup-vault-lock-configuration", "--backup-vault-name", "ledger",
		"--min-retention-days", "7", "--max-retention-days", "365", "--changeable-for-days", "3")
	d := a.Run("backup", "describe-backup-vault", "--backup-vault-name", "ledger")
	if d["Locked"] != true || d["MinRetentionDays"] != float64(7) || d["MaxRetentionDays"] != float64(365) || d["LockDate"] == nil {
		t.Fatalf("describe: %v", d)
	}
	job := e.backup("ledger", "ledger-data", &types.Lifecycle{DeleteAfterDays: aws.Int64(30)})
	point := aws.ToString(job.RecoveryPointArn)
	a.Fail("InvalidRequestException", "backup", "delete-recovery-point", "--backup-vault-name", "ledger", "--recovery-point-arn", point)
	a.Fail("InvalidRequestException", "backup", "update-recovery-point-lifecycle", "--backup-vault-name", "ledger",
		"--recovery-point-arn", point, "--lifecycle", "DeleteAfterDays=10")
	out := a.Run("backup", "update-recovery-point-lifecycle", "--backup-vault-name", "ledger",
		"--recovery-point-arn", point, "--lifecycle", "DeleteAfterDays=90")
	if out["RecoveryPointArn"] != point || field(out, "Lifecycle", "DeleteAfterDays") != float64(90) || field(out, "CalculatedLifecycle", "DeleteAt") == nil {
		t.Fatalf("update: %v", out)
	}
	a.Run("backup", "delete-backup-vault-lock-configuration", "--backup-vault-name", "ledger")
	if d := a.Run("backup", "describe-backup-vault", "--backup-vault-name", "ledger"); d["Locked"] != false {
		t.Fatalf("describe after delete: %v", d)
	}
}
