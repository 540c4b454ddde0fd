package cli_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/cli"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestAuditCommand runs bulwark audit against a region holding one bucket
// nothing protects: the table says so and exits 3; --json prints the same
// report; --require none and the bucket's bulwark:protect tag lower the
// bar to what is there, and the exit status follows.
func TestAuditCommand(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	versioned(t, c, "ledger", "us-west-2")
	env := ownerEnv(r.URL())

	code, stdout, stderr := runStdin(t, env, "", "audit")
	if code != cli.ExitUnprotected || !strings.Contains(stdout, "UNPROTECTED*") || !strings.Contains(stdout, "not-in-any-plan") ||
		!strings.Contains(stdout, "REGION-OUTAGE") || !strings.Contains(stdout, "Verdict: AT_RISK") {
		t.Fatalf("audit: exit %d\n%s\n%s", code, stdout, stderr)
	}

	code, stdout, stderr = runStdin(t, env, "", "audit", "--json", "--resource", "arn:aws:s3:::ledger")
	var rep adminapi.AuditReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || code != cli.ExitUnprotected {
		t.Fatalf("audit --json: exit %d, %v\n%s\n%s", code, err, stdout, stderr)
	}
	if rep.Verdict != audit.AtRisk || len(rep.Rows) != 1 || rep.Rows[0].Cells[0].Threat != audit.RegionOutage ||
		rep.Rows[0].Cells[0].Status != audit.Unprotected || !rep.Rows[0].Cells[0].Required {
		t.Fatalf("audit --json: %+v", rep)
	}

	if code, stdout, stderr = runStdin(t, env, "", "audit", "--require", "none"); code != 0 || !strings.Contains(stdout, "Verdict: PROTECTED") {
		t.Fatalf("audit --require none: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if code, _, stderr = runStdin(t, env, "", "audit", "--require", "meteor-strike"); code != 2 || !strings.Contains(stderr, "meteor-strike") {
		t.Fatalf("audit --require meteor-strike: exit %d\n%s", code, stderr)
	}
	_, err := c.PutBucketTagging(context.Background(), &s3.PutBucketTaggingInput{Bucket: aws.String("ledger"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String(audit.ProtectTag), Value: aws.String("none")}}}})
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr = runStdin(t, env, "", "audit"); code != 0 || !strings.Contains(stdout, "tag bulwark:protect") {
		t.Fatalf("audit of a bucket tagged %s=none: exit %d\n%s\n%s", audit.ProtectTag, code, stdout, stderr)
	}
	if code, stdout, stderr = runStdin(t, env, "", "audit", "cost"); code != 0 || !strings.Contains(stdout, "arn:aws:s3:::ledger") ||
		!strings.Contains(stdout, "crr-only") {
		t.Fatalf("audit cost: exit %d\n%s\n%s", code, stdout, stderr)
	}
}
