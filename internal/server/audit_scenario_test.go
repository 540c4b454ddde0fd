package server_test

import (
	"context"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// auditDeployment is two regions whose backup clock (which the audit
// reads too) runs at the wall clock's pace plus an offset the test moves.
type auditDeployment struct {
	west, east *servertest.Region
	offset     atomic.Int64
}

func startAuditDeployment(t *testing.T, configure func(*server.Config)) *auditDeployment {
	d := &auditDeployment{}
	now := func() time.Time { return time.Now().Add(time.Duration(d.offset.Load())) }
	rs := servertest.StartRegionsWith(t, func(c *server.Config) {
		c.BackupClock = now
		c.BackupSchedulerInterval = 50 * time.Millisecond
		if configure != nil {
			configure(c)
		}
	}, "us-west-2", "us-east-1")
	d.west, d.east = rs[0], rs[1]
	return d
}

func (d *auditDeployment) now() time.Time { return time.Now().Add(time.Duration(d.offset.Load())) }

// at moves the backup clock so that it reads t now.
func (d *auditDeployment) at(t time.Time) { d.offset.Store(int64(time.Until(t))) }

// audit asks region r for the audit with query q.
func audited(t *testing.T, r *servertest.Region, q url.Values) *adminapi.AuditReport {
	t.Helper()
	ad := newAdmin(t, r, servertest.AccessKey, servertest.SecretKey)
	ad.base = "/_bulwark/v1/"
	path := "audit"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	rep := &adminapi.AuditReport{}
	ad.ok("GET", path, nil, rep)
	return rep
}

func rowOf(t *testing.T, rep *adminapi.AuditReport, arn string) audit.Row {
	t.Helper()
	for _, r := range rep.Rows {
		if r.ARN == arn {
			return r
		}
	}
	t.Fatalf("no row for %s in %+v", arn, rep.Rows)
	return audit.Row{}
}

func cellOf(t *testing.T, rep *adminapi.AuditReport, arn string, threat audit.Threat) audit.Cell {
	t.Helper()
	for _, c := range rowOf(t, rep, arn).Cells {
		if c.Threat == threat {
			return c
		}
	}
	t.Fatalf("no %s cell for %s", threat, arn)
	return audit.Cell{}
}

func hasFlag(r audit.Row, code string) bool {
	for _, f := range r.Flags {
		if f.Code == code {
			return true
		}
	}
	return false
}

// waitReplicated waits until key of src is readable in dst.
func waitReplicated(t *testing.T, c *s3.Client, dst, key string) {
	t.Helper()
	waitFor(t, "the replica of "+key, func() bool {
		_, err := c.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String(dst), Key: aws.String(key)})
		return err == nil
	})
}

// plan creates a backup plan in r selecting arns.
func plan(t *testing.T, r *servertest.Region, doc string, arns ...string) *backup.PlanVersion {
	t.Helper()
	p, err := backup.PlanFromJSON(doc)
	mustDo(t, err)
	pv, err := r.Backup.CreatePlan(context.Background(), servertest.AccountID, backup.CreatePlanInput{Plan: *p})
	mustDo(t, err)
	_, err = r.Backup.CreateSelection(context.Background(), servertest.AccountID, pv.BackupPlanID, backup.Selection{SelectionName: "sel",
		IamRoleArn: "arn:aws:iam::" + servertest.AccountID + ":role/backup", Resources: arns}, "")
	mustDo(t, err)
	return pv
}

// points lists r's completed recovery points of arn.
func points(t *testing.T, r *servertest.Region, arn string) []*backup.RecoveryPoint {
	t.Helper()
	ps, err := r.Jobs.ListRecoveryPoints(context.Background(), servertest.AccountID, "", arn)
	mustDo(t, err)
	var out []*backup.RecoveryPoint
	for _, p := range ps {
		if p.Status == backup.PointCompleted {
			out = append(out, p)
		}
	}
	return out
}

// TestAuditMechanisms audits three buckets of one deployment: one only
// replicated to another region, one only backed up in its own region,
// and one with both, its backups copied to the other region and
// restore-tested. Each is protected against what its mechanisms count
// against, and only that.
func TestAuditMechanisms(t *testing.T) {
	d := startAuditDeployment(t, nil)
	wc := d.west.Client(t)
	for _, b := range []struct{ name, region string }{{"repl-only", "us-west-2"}, {"repl-only-replica", "us-east-1"},
		{"backup-only", "us-west-2"}, {"both", "us-west-2"}, {"both-replica", "us-east-1"}} {
		versionedBucket(t, wc, b.name, b.region)
	}
	replicateAll(t, wc, "repl-only", "repl-only-replica")
	replicateAll(t, wc, "both", "both-replica")
	for _, b := range []string{"repl-only", "backup-only", "both"} {
		putObject(t, wc, b, "ledger.csv", "row 1\n")
	}
	waitReplicated(t, wc, "repl-only-replica", "ledger.csv")
	waitReplicated(t, wc, "both-replica", "ledger.csv")

	// Hourly plans: one in the region only, one copied to us-east-1.
	t0 := d.now()
	plan(t, d.west, `{"BackupPlanName":"local","Rules":[{"RuleName":"hourly","TargetBackupVaultName":"Default","ScheduleExpression":"rate(1 hour)","Lifecycle":{"DeleteAfterDays":30}}]}`,
		"arn:aws:s3:::backup-only")
	plan(t, d.west, `{"BackupPlanName":"dr","Rules":[{"RuleName":"hourly","TargetBackupVaultName":"Default","ScheduleExpression":"rate(1 hour)","Lifecycle":{"DeleteAfterDays":30},
		"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:`+servertest.AccountID+`:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`,
		"arn:aws:s3:::both")
	d.at(t0.Add(61 * time.Minute))
	waitFor(t, "the scheduled backups and the copy", func() bool {
		return len(points(t, d.west, "arn:aws:s3:::backup-only")) > 0 && len(points(t, d.west, "arn:aws:s3:::both")) > 0 &&
			len(points(t, d.east, "arn:aws:s3:::both")) > 0
	})

	// A restore test of "both" at the top of the next hour.
	ctx := context.Background()
	_, err := d.west.Backup.CreateRestoreTestingPlan(ctx, servertest.AccountID, backup.CreateRestoreTestingPlanInput{Plan: backup.RestoreTestingPlanInput{
		RestoreTestingPlanName: "hourly", ScheduleExpression: "cron(0 * ? * * *)", StartWindowHours: ptr[int64](1),
		RecoveryPointSelection: &backup.RecoveryPointSelection{Algorithm: backup.AlgorithmLatestWithinWindow, IncludeVaults: []string{"*"},
			RecoveryPointTypes: []string{backup.RecoveryPointTypeSnapshot}}}})
	mustDo(t, err)
	_, _, err = d.west.Backup.CreateRestoreTestingSelection(ctx, servertest.AccountID, "hourly", backup.RestoreTestingSelection{
		RestoreTestingSelectionName: "both", ProtectedResourceType: "S3", ProtectedResourceArns: []string{"arn:aws:s3:::both"},
		IamRoleArn: "arn:aws:iam::" + servertest.AccountID + ":role/restore"}, "")
	mustDo(t, err)
	d.at(d.now().Truncate(time.Hour).Add(time.Hour + 2*time.Minute))
	waitFor(t, "the restore test", func() bool {
		rs, err := d.west.Jobs.ListRestoreJobs(ctx, servertest.AccountID, backup.JobFilter{})
		mustDo(t, err)
		return len(rs) > 0 && rs[0].ValidationStatus == backup.ValidationSuccessful
	})

	rep := audited(t, d.west, nil)
	if n := len(rep.Regions); n != 2 || !rep.Regions[0].Reached || !rep.Regions[1].Reached {
		t.Fatalf("regions: %+v", rep.Regions)
	}
	// Only replication: a region outage is survived, with the lag as the
	// RPO; deletions and corruption are replicated faithfully.
	ro := cellOf(t, rep, "arn:aws:s3:::repl-only", audit.RegionOutage)
	if ro.Status != audit.Protected || ro.RPO == nil || ro.RTO == nil || *ro.RTO != 0 || !strings.Contains(strings.Join(ro.By, ";"), "replication rule all to repl-only-replica (us-east-1)") {
		t.Errorf("repl-only, region outage: %+v", ro)
	}
	for _, th := range []audit.Threat{audit.AccidentalDeletion, audit.Corruption} {
		if c := cellOf(t, rep, "arn:aws:s3:::repl-only", th); c.Status != audit.Unprotected || !strings.Contains(c.Note, "replication copies deletes and overwrites") {
			t.Errorf("repl-only, %s: %+v", th, c)
		}
	}
	if r := rowOf(t, rep, "arn:aws:s3:::repl-only"); !hasFlag(r, audit.FlagNoPlan) {
		t.Errorf("repl-only flags: %+v", r.Flags)
	}
	// Only a backup in its own region: the reverse.
	for _, th := range []audit.Threat{audit.AccidentalDeletion, audit.Corruption} {
		if c := cellOf(t, rep, "arn:aws:s3:::backup-only", th); c.Status != audit.Protected || c.RPO == nil || *c.RPO <= 0 {
			t.Errorf("backup-only, %s: %+v", th, c)
		}
	}
	if c := cellOf(t, rep, "arn:aws:s3:::backup-only", audit.RegionOutage); c.Status != audit.Unprotected {
		t.Errorf("backup-only, region outage: %+v", c)
	}
	if r := rowOf(t, rep, "arn:aws:s3:::backup-only"); !hasFlag(r, audit.FlagNeverTested) {
		t.Errorf("backup-only flags: %+v", r.Flags)
	}
	// Both, copied and restore-tested: every threat but credential loss,
	// with the restore test's duration as the RTO.
	for _, th := range []audit.Threat{audit.RegionOutage, audit.AccidentalDeletion, audit.Corruption} {
		c := cellOf(t, rep, "arn:aws:s3:::both", th)
		if c.Status != audit.Protected || c.RPO == nil || c.RTO == nil {
			t.Errorf("both, %s: %+v", th, c)
		}
		if th != audit.RegionOutage && !strings.Contains(c.Note, "restore test") {
			t.Errorf("both, %s: RTO not from the restore test: %+v", th, c)
		}
	}
	if c := cellOf(t, rep, "arn:aws:s3:::both", audit.CredentialLoss); c.Status != audit.Unprotected {
		t.Errorf("both, credential loss: %+v", c)
	}
	if r := rowOf(t, rep, "arn:aws:s3:::both"); hasFlag(r, audit.FlagNeverTested) || hasFlag(r, audit.FlagCopyNeverCompleted) {
		t.Errorf("both flags: %+v", r.Flags)
	}
	// Replicas require nothing by default, restore tests' scratch buckets
	// are not resources, and the deployment as a whole is at risk.
	if r := rowOf(t, rep, "arn:aws:s3:::both-replica"); len(r.Required) != 0 || len(r.ReplicaOf) != 1 {
		t.Errorf("replica row: %+v", r)
	}
	for _, r := range rep.Rows {
		if strings.Contains(r.Name, "-restore-test-") {
			t.Errorf("scratch bucket audited: %+v", r)
		}
	}
	if rep.Verdict != audit.AtRisk {
		t.Errorf("verdict %s", rep.Verdict)
	}
	if one := audited(t, d.west, url.Values{"resource": {"arn:aws:s3:::both"}}); one.Verdict != audit.Protected || len(one.Rows) != 1 {
		t.Errorf("audit of both alone: %s, %d rows", one.Verdict, len(one.Rows))
	}
}

// TestAuditReplicationFailed suspends versioning on a replication
// destination: every new version fails to replicate. Under the 15-minute
// threshold the audit flags it; 20 minutes on, the bucket is AT_RISK
// against a region outage, with the reason.
func TestAuditReplicationFailed(t *testing.T) {
	d := startAuditDeployment(t, func(c *server.Config) { c.Replication.FailedRetry = time.Hour })
	wc := d.west.Client(t)
	versionedBucket(t, wc, "src", "us-west-2")
	versionedBucket(t, wc, "dst", "us-east-1")
	replicateAll(t, wc, "src", "dst")
	_, err := wc.PutBucketVersioning(context.Background(), &s3.PutBucketVersioningInput{Bucket: aws.String("dst"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}})
	mustDo(t, err)
	putObject(t, wc, "src", "k", "v")
	waitFor(t, "the replication failure", func() bool {
		ps, err := d.west.Replication.Posture(context.Background(), "src")
		mustDo(t, err)
		return len(ps) == 1 && ps[0].FailedOps > 0
	})

	rep := audited(t, d.west, nil)
	c := cellOf(t, rep, "arn:aws:s3:::src", audit.RegionOutage)
	if c.Status != audit.Protected || !hasFlag(rowOf(t, rep, "arn:aws:s3:::src"), audit.FlagReplicationFailing) {
		t.Fatalf("a fresh failure: %+v, flags %+v", c, rowOf(t, rep, "arn:aws:s3:::src").Flags)
	}

	d.offset.Add(int64(20 * time.Minute))
	rep = audited(t, d.west, nil)
	c = cellOf(t, rep, "arn:aws:s3:::src", audit.RegionOutage)
	if c.Status != audit.AtRisk || !strings.Contains(c.Note, "replication FAILED for 20m") || !strings.Contains(strings.ToLower(c.Note), "versioning") || c.RPO == nil || *c.RPO < audit.Duration(20*time.Minute) {
		t.Fatalf("failing for 20 minutes: %+v", c)
	}
	r := rowOf(t, rep, "arn:aws:s3:::src")
	if !hasFlag(r, audit.FlagReplicationFailed) {
		t.Fatalf("flags: %+v", r.Flags)
	}
	if rep.Verdict != audit.AtRisk {
		t.Fatalf("verdict %s", rep.Verdict)
	}
}

// TestAuditRegionDown closes the region that holds a bucket's replica:
// the audit still answers from the surviving region, names the one it
// could not reach, and marks the region-outage protection that depends on
// it UNKNOWN while the backup in the surviving region stays PROTECTED.
func TestAuditRegionDown(t *testing.T) {
	d := startAuditDeployment(t, nil)
	wc := d.west.Client(t)
	versionedBucket(t, wc, "src", "us-west-2")
	versionedBucket(t, wc, "dst", "us-east-1")
	replicateAll(t, wc, "src", "dst")
	putObject(t, wc, "src", "k", "v")
	waitReplicated(t, wc, "dst", "k")
	ctx := context.Background()
	j, err := d.west.Jobs.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::src",
		IAMRoleARN: "arn:aws:iam::" + servertest.AccountID + ":role/backup"})
	mustDo(t, err)
	waitFor(t, "the backup", func() bool {
		j, err = d.west.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID)
		mustDo(t, err)
		return j.State == backup.JobCompleted
	})
	if c := cellOf(t, audited(t, d.west, nil), "arn:aws:s3:::src", audit.RegionOutage); c.Status != audit.Protected {
		t.Fatalf("before the outage: %+v", c)
	}

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	mustDo(t, d.east.Close(cctx))
	rep := audited(t, d.west, nil)
	var east audit.RegionState
	for _, s := range rep.Regions {
		if s.Region == "us-east-1" {
			east = s
		}
	}
	if east.Reached || east.Error == "" || !strings.Contains(east.CannotSee, "replicas and backup copies held there") {
		t.Fatalf("us-east-1: %+v", east)
	}
	if c := cellOf(t, rep, "arn:aws:s3:::src", audit.RegionOutage); c.Status != audit.Unknown || !strings.Contains(c.Note, "us-east-1 did not answer") {
		t.Fatalf("region outage with us-east-1 down: %+v", c)
	}
	if c := cellOf(t, rep, "arn:aws:s3:::src", audit.AccidentalDeletion); c.Status != audit.Protected {
		t.Fatalf("accidental deletion with us-east-1 down: %+v", c)
	}
	for _, r := range rep.Rows {
		if r.Name == "dst" {
			t.Fatalf("a bucket of the region that is down audited: %+v", r)
		}
	}
	if rep.Verdict != audit.Unknown {
		t.Fatalf("verdict %s", rep.Verdict)
	}
}

// TestAuditCredentialLoss copies a bucket's backup into a vault of the
// other region under a compliance-mode vault lock. While the lock can
// still be removed (its grace time) nothing survives the account's
// credentials; once it is fixed, the copy does, and the bucket is
// protected against every threat.
func TestAuditCredentialLoss(t *testing.T) {
	d := startAuditDeployment(t, nil)
	wc := d.west.Client(t)
	ctx := context.Background()
	versionedBucket(t, wc, "vaulted", "us-west-2")
	putObject(t, wc, "vaulted", "ledger.csv", "row 1\n")
	_, err := d.east.Backup.CreateVault(ctx, servertest.AccountID, backup.CreateVaultInput{Name: "locked"})
	mustDo(t, err)
	_, err = d.east.Backup.PutVaultLock(ctx, servertest.AccountID, "locked", backup.VaultLockInput{
		MinRetentionDays: ptr[int64](7), ChangeableForDays: ptr[int64](3)})
	mustDo(t, err)

	role := "arn:aws:iam::" + servertest.AccountID + ":role/backup"
	j, err := d.west.Jobs.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{VaultName: "Default",
		ResourceARN: "arn:aws:s3:::vaulted", IAMRoleARN: role, Lifecycle: &backup.Lifecycle{DeleteAfterDays: ptr[int64](35)}})
	mustDo(t, err)
	waitFor(t, "the backup", func() bool {
		j, err := d.west.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID)
		mustDo(t, err)
		return j.State == backup.JobCompleted
	})
	j, err = d.west.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID)
	mustDo(t, err)
	cj, err := d.west.Jobs.StartCopyJob(ctx, servertest.AccountID, backup.StartCopyJobInput{RecoveryPointARN: j.RecoveryPointARN,
		SourceVaultName: "Default", DestinationVaultARN: "arn:aws:backup:us-east-1:" + servertest.AccountID + ":backup-vault:locked",
		IAMRoleARN: role, Lifecycle: &backup.Lifecycle{DeleteAfterDays: ptr[int64](35)}})
	mustDo(t, err)
	waitFor(t, "the copy", func() bool {
		cj, err := d.west.Jobs.DescribeCopyJob(ctx, servertest.AccountID, cj.CopyJobID)
		mustDo(t, err)
		return cj.State == backup.CopyCompleted
	})

	arn := "arn:aws:s3:::vaulted"
	all := url.Values{"resource": {arn}, "require": {"all"}}
	if c := cellOf(t, audited(t, d.west, all), arn, audit.CredentialLoss); c.Status != audit.Unprotected {
		t.Errorf("credential loss while the lock can still be removed: %+v", c)
	}
	d.at(d.now().Add(3*24*time.Hour + time.Minute))
	rep := audited(t, d.west, all)
	c := cellOf(t, rep, arn, audit.CredentialLoss)
	if c.Status != audit.Protected || c.RPO == nil || time.Duration(*c.RPO) < 3*24*time.Hour || !strings.Contains(strings.Join(c.By, ";"), "backup-vault:locked") {
		t.Errorf("credential loss under a fixed compliance lock: %+v", c)
	}
	for _, th := range []audit.Threat{audit.RegionOutage, audit.AccidentalDeletion, audit.Corruption} {
		if c := cellOf(t, rep, arn, th); c.Status != audit.Protected {
			t.Errorf("%s: %+v", th, c)
		}
	}
}
