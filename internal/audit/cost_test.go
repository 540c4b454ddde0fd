package audit

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// TestPriceUsage prices a workload whose figures can be worked out by
// hand: 40,000 replication requests in a tenth of a month, 10 GB of
// replicas, 20 GB warm and 50 GB cold in vaults for 100 GB of points.
func TestPriceUsage(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	bucket := Usage{
		ARN: "arn:aws:s3:::media", Type: "S3", Replicable: true, SourceBytes: 10 * GB,
		Replicated: true, ReplicationRequests: 40_000, RequestsSince: now.Add(-Month / 10),
		ReplicaBytes: 10 * GB, BackedUp: true, CrossRegionCopy: true,
		WarmBytes: 20 * GB, ColdBytes: 50 * GB, LogicalBytes: 100 * GB,
	}
	db := Usage{ARN: "arn:aws:rds:us-west-2:111122223333:db:orders", Type: "RDS", SourceBytes: 4 * GB}
	rep := PriceUsage([]Usage{db, bucket}, DefaultPrices, now)
	if len(rep.Resources) != 2 || rep.Resources[0].Usage.ARN != db.ARN {
		t.Fatalf("resources %+v, want them by ARN", rep.Resources)
	}
	b, d := rep.Resources[1], rep.Resources[0]
	// 400,000 requests a month × $0.005/1000 = $2.00; 10 GB × $0.023 = $0.23.
	// 20 GB × $0.05 = $1.00 warm; 50 GB × $0.01 = $0.50 cold.
	for _, c := range []struct {
		what      string
		got, want float64
	}{
		{"requests per month", b.RequestsPerMonth, 400_000},
		{"replication", b.Configured.Replication, 2.23},
		{"backup", b.Configured.Backup, 1.50},
		{"total", b.Configured.Total, 3.73},
		{"dedup saved", b.DedupSaved, 1.50}, // 30 GB at the warm price
		{"report total", rep.Total, 3.73},   // the database has nothing configured
	} {
		if !near(c.got, c.want) {
			t.Errorf("%s: %v, want %v", c.what, c.got, c.want)
		}
	}
	if b.DedupSavedBytes != 30*GB {
		t.Errorf("dedup saved %d bytes, want 30 GB", b.DedupSavedBytes)
	}
	want := map[Option]float64{OptionCRROnly: 2.23, OptionBackupOnly: 1.50, OptionBoth: 3.73}
	for _, w := range b.WhatIf {
		if !near(w.Total, want[w.Option]) || w.Estimated {
			t.Errorf("what-if %s: %v (estimated %v), want %v measured", w.Option, w.Total, w.Estimated, want[w.Option])
		}
	}
	if got := b.WhatIf[0].LeavesOut; !slices.Equal(got, []Threat{AccidentalDeletion, Corruption, CredentialLoss}) {
		t.Errorf("crr-only leaves out %v", got)
	}
	if got := b.WhatIf[1].Protects; !slices.Equal(got, []Threat{RegionOutage, AccidentalDeletion, Corruption}) {
		t.Errorf("backup-only with a cross-region copy protects against %v", got)
	}
	if got := b.WhatIf[1].LeavesOut; !slices.Equal(got, []Threat{CredentialLoss}) {
		t.Errorf("backup-only with a cross-region copy leaves out %v", got)
	}

	// The database has neither: backup is priced from its size (one full
	// point and its copy: 2 × 4 GB × $0.05 = $0.40); replication does not
	// apply to it.
	if d.Configured.Total != 0 || !slices.Equal(d.Configured.LeavesOut, Threats) {
		t.Errorf("database configured %+v, want nothing and every threat left out", d.Configured)
	}
	if w := d.WhatIf[1]; !near(w.Total, 0.40) || !w.Estimated {
		t.Errorf("database backup-only %+v, want an estimated $0.40", w)
	}
	if w := d.WhatIf[0]; w.Available || w.Total != 0 || !strings.Contains(w.Note, "buckets only") {
		t.Errorf("database crr-only %+v, want unavailable", w)
	}
}

func TestReadPrices(t *testing.T) {
	p, err := ReadPrices(strings.NewReader(`{"backupWarmPerGBMonth": 0.004, "currency": "EUR"}`), DefaultPrices)
	if err != nil {
		t.Fatal(err)
	}
	if p.BackupWarmPerGBMonth != 0.004 || p.Currency != "EUR" || p.BackupColdPerGBMonth != DefaultPrices.BackupColdPerGBMonth {
		t.Fatalf("prices %+v", p)
	}
	for _, bad := range []string{`{"backupWarmPerGBMonth": -1}`, `{"warm": 1}`, `{`, `[]`} {
		if _, err := ReadPrices(strings.NewReader(bad), DefaultPrices); err == nil {
			t.Errorf("prices %s accepted", bad)
		}
	}
}
