package server_test

import (
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestAuditCostWorkload prices a known workload: 15 objects of 64 KiB
// replicated to another region, a backup of the first 10 moved to the cold
// tier, and a backup of all 15 kept warm (deduplicated against the
// first). The usage the regions report is exactly the workload, and the
// cost is the price table applied to it.
func TestAuditCostWorkload(t *testing.T) {
	const size = 64 << 10
	d := startAuditDeployment(t, nil)
	wc := d.west.Client(t)
	versionedBucket(t, wc, "media", "us-west-2")
	versionedBucket(t, wc, "media-replica", "us-east-1")
	replicateAll(t, wc, "media", "media-replica")
	putN := func(from, to int) {
		for i := from; i < to; i++ {
			data := make([]byte, size) // random: neither compressed nor deduplicated
			_, _ = rand.Read(data)
			putObject(t, wc, "media", fmt.Sprintf("clip-%02d", i), string(data))
		}
		waitReplicated(t, wc, "media-replica", fmt.Sprintf("clip-%02d", to-1))
	}
	ctx := context.Background()
	backupNow := func(l *backup.Lifecycle) *backup.RecoveryPoint {
		j, err := d.west.Jobs.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{VaultName: "Default",
			ResourceARN: "arn:aws:s3:::media", IAMRoleARN: "arn:aws:iam::" + servertest.AccountID + ":role/backup", Lifecycle: l})
		mustDo(t, err)
		var rp *backup.RecoveryPoint
		waitFor(t, "backup job "+j.JobID, func() bool {
			j, err := d.west.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID)
			mustDo(t, err)
			if j.State == backup.JobCompleted {
				rp, err = d.west.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", j.RecoveryPointARN)
				mustDo(t, err)
			}
			return rp != nil
		})
		return rp
	}

	putN(0, 10)
	cold := backupNow(&backup.Lifecycle{MoveToColdStorageAfterDays: ptr[int64](1), DeleteAfterDays: ptr[int64](120)})
	d.at(d.now().Add(49 * time.Hour))
	waitFor(t, "the first point in the cold tier", func() bool {
		p, err := d.west.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", cold.ARN)
		mustDo(t, err)
		cold = p
		return p.StorageClass == "COLD"
	})
	putN(10, 15)
	warm := backupNow(nil)

	ad := newAdmin(t, d.west, servertest.AccessKey, servertest.SecretKey)
	ad.base = "/_bulwark/v1/"
	rep := &audit.CostReport{}
	ad.ok("POST", "audit/cost", []byte(`{"replicationPer1000Requests": 5, "replicaStoragePerGBMonth": 1,
		"backupWarmPerGBMonth": 2, "backupColdPerGBMonth": 1}`), rep)
	var got *audit.ResourceCost
	for i := range rep.Resources {
		switch rep.Resources[i].Usage.ARN {
		case "arn:aws:s3:::media":
			got = &rep.Resources[i]
		case "arn:aws:s3:::media-replica":
			t.Errorf("a bucket holding only replicas is priced apart from its source: %+v", rep.Resources[i])
		}
	}
	if got == nil {
		t.Fatalf("no cost for the bucket: %+v", rep)
	}
	u := got.Usage
	if u.ReplicationRequests != 15 || u.ReplicaBytes != 15*size || u.SourceBytes != 15*size || !u.Replicated || !u.BackedUp || u.CrossRegionCopy {
		t.Errorf("usage %+v: want 15 requests, 15 × 64 KiB replicated and held, backed up in its own region", u)
	}
	if u.ColdBytes != cold.BytesNew || u.WarmBytes != warm.BytesNew || u.LogicalBytes != 25*size {
		t.Errorf("backup usage %+v: want cold %d and warm %d held for 25 × 64 KiB of points", u, cold.BytesNew, warm.BytesNew)
	}
	// The second point holds only the 5 new objects: the first 10 were
	// in the vault already.
	if got.DedupSavedBytes < 9*size || u.WarmBytes < 5*size || u.ColdBytes < 10*size {
		t.Errorf("deduplication saved %d bytes, want about 10 objects' worth", got.DedupSavedBytes)
	}
	t.Logf("usage %+v; %.0f requests a month; configured %+v; dedup saved %d bytes", u, got.RequestsPerMonth, got.Configured, got.DedupSavedBytes)
	perMonth := 15 * float64(audit.Month) / float64(rep.At.Sub(u.RequestsSince))
	want := map[string][2]float64{
		"requests per month": {got.RequestsPerMonth, perMonth},
		"replication":        {got.Configured.Replication, 5*perMonth/1000 + 1*float64(15*size)/audit.GB},
		"backup":             {got.Configured.Backup, 2*float64(warm.BytesNew)/audit.GB + 1*float64(cold.BytesNew)/audit.GB},
		"dedup saved":        {got.DedupSaved, 2 * float64(25*size-warm.BytesNew-cold.BytesNew) / audit.GB},
	}
	for what, v := range want {
		if math.Abs(v[0]-v[1]) > 1e-9*math.Max(1, v[1]) {
			t.Errorf("%s: %v, want %v", what, v[0], v[1])
		}
	}
	if rep.Prices.BackupWarmPerGBMonth != 2 || rep.Prices.Currency != "USD" {
		t.Errorf("prices %+v: want the posted ones over the defaults", rep.Prices)
	}
}
