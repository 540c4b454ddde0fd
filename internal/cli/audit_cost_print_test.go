package cli

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/audit"
)

// TestPrintCost checks the table a person reads: the configured cost, the
// deduplication saving apart, and each option with what it leaves open.
func TestPrintCost(t *testing.T) {
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	rep := audit.PriceUsage([]audit.Usage{{
		ARN: "arn:aws:s3:::media", Type: "S3", Replicable: true, SourceBytes: 10 * audit.GB,
		Replicated: true, ReplicationRequests: 40_000, RequestsSince: now.Add(-audit.Month / 10), ReplicaBytes: 10 * audit.GB,
	}, {
		ARN: "arn:aws:rds:us-west-2:111122223333:db:orders", Type: "RDS", SourceBytes: 4 * audit.GB,
		BackedUp: true, WarmBytes: audit.GB, LogicalBytes: 3 * audit.GB,
	}}, audit.DefaultPrices, now)
	var b bytes.Buffer
	printCost(&b, rep)
	out := strings.Join(strings.Fields(b.String()), " ")
	for _, want := range []string{
		"replication $0.005 per 1,000 requests, replica storage $0.023 per GB-month, backup $0.05 per GB-month warm and $0.01 cold",
		"arn:aws:s3:::media S3 $2.23 $2.23 $0.00 40000 in 73h0m0s (400000) 10.00 GB 0.00 GB 0.00 GB 0.00 GB ($0.00)",
		"RDS $0.05 $0.00 $0.05 - 0.00 GB 1.00 GB 0.00 GB 2.00 GB ($0.10)", // 3 GB of points in 1 GB stored
		"Configured, all resources: $2.28 a month.",
		"arn:aws:s3:::media configured $2.23 region-outage accidental-deletion, corruption, credential-loss",
		"arn:aws:s3:::media backup-only $1.00* region-outage, accidental-deletion, corruption credential-loss",
		"arn:aws:s3:::media both $3.23* region-outage, accidental-deletion, corruption credential-loss",
		"db:orders crr-only n/a nothing replication covers buckets only",
		"db:orders configured $0.05 accidental-deletion, corruption region-outage, credential-loss",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}
