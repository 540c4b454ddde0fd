package audit

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2025, 3, 10, 12, 0, 0, 0, time.UTC)

func days(n int64) *int64 { return &n }

func cellFor(t *testing.T, rep *Report, arn string, th Threat) Cell {
	t.Helper()
	for _, r := range rep.Rows {
		for _, c := range r.Cells {
			if r.ARN == arn && c.Threat == th {
				return c
			}
		}
	}
	t.Fatalf("no %s cell for %s", th, arn)
	return Cell{}
}

func flagged(rep *Report, arn, code string) bool {
	for _, r := range rep.Rows {
		for _, f := range r.Flags {
			if r.ARN == arn && f.Code == code {
				return true
			}
		}
	}
	return false
}

// TestAssessBackups checks, at an injected now, what the scenario tests
// cannot reach quickly: a compliance lock past its grace time covers
// credential loss, a missed daily backup makes the point AT_RISK, a copy
// action with no copy is AT_RISK against a region outage, a short
// retention and a failed restore test are flagged, and a plan selecting
// nothing is the deployment's flag.
func TestAssessBackups(t *testing.T) {
	const db = "arn:aws:rds:us-west-2:111122223333:db:orders"
	west := "arn:aws:backup:us-west-2:111122223333:backup-vault:"
	lockDate := t0.Add(-24 * time.Hour)
	rule := PlanRule{PlanARN: "plan-arn", PlanName: "daily", RuleID: "r1", RuleName: "nightly", Schedule: "cron(0 2 * * ? *)",
		StartWindowMinutes: 60, CompletionWindowMinutes: 120, TargetVaultARN: west + "locked", DeleteAfterDays: days(3),
		CopyTo:      []CopyTarget{{VaultARN: "arn:aws:backup:us-east-1:111122223333:backup-vault:Default", Region: "us-east-1", Account: "111122223333"}},
		PlanCreated: t0.Add(-30 * 24 * time.Hour)}
	facts := []*Facts{{Region: "us-west-2", Resources: []Resource{{ARN: db, Type: "RDS", Name: "orders", Region: "us-west-2", Account: "111122223333", Plans: []PlanRule{rule}}},
		Plans: []Plan{{ARN: "plan-arn", Name: "daily", Account: "111122223333", Selected: 1}, {ARN: "empty-arn", Name: "empty", Account: "111122223333"}},
		Points: []RecoveryPoint{{ARN: "p1", ResourceARN: db, VaultARN: west + "locked", Region: "us-west-2", Account: "111122223333",
			Created: t0.Add(-34 * time.Hour), Status: "COMPLETED", VaultLock: "COMPLIANCE", VaultLockDate: &lockDate, PlanARN: "plan-arn", RuleID: "r1"}},
		Restores: []Restore{{JobID: "j1", ResourceARN: db, Region: "us-west-2", Created: t0.Add(-10 * time.Hour), Status: "COMPLETED",
			ValidationStatus: "FAILED", ValidationMessage: "row counts differ", TestPlanARN: "rt"}}},
		{Region: "us-east-1"}}
	rep, err := Assess(Input{Now: t0, Facts: facts, Policy: Policy{Require: Threats}})
	if err != nil {
		t.Fatal(err)
	}
	// 34 hours old, a 02:00 run missed yesterday: AT_RISK, and the lock
	// makes it count against credential loss too.
	for _, th := range []Threat{AccidentalDeletion, Corruption, CredentialLoss} {
		if c := cellFor(t, rep, db, th); c.Status != AtRisk || c.RPO == nil || *c.RPO != Duration(34*time.Hour) || !strings.Contains(c.Note, "missed") {
			t.Errorf("%s: %+v", th, c)
		}
	}
	if c := cellFor(t, rep, db, RegionOutage); c.Status != AtRisk || !strings.Contains(c.Note, "no copy ever completed") {
		t.Errorf("region outage: %+v", c)
	}
	for _, f := range []string{FlagMissedBackup, FlagShortRetention, FlagTestFailed, FlagCopyNeverCompleted} {
		if !flagged(rep, db, f) {
			t.Errorf("no %s flag: %+v", f, rep.Rows[0].Flags)
		}
	}
	if len(rep.Flags) != 1 || rep.Flags[0].Code != FlagPlanSelectsNothing || rep.Verdict != AtRisk {
		t.Errorf("deployment flags %+v, verdict %s", rep.Flags, rep.Verdict)
	}
	// With us-east-1 unreachable, the copy there cannot be seen.
	rep, err = Assess(Input{Now: t0, Facts: facts[:1], Unreached: []Unreached{{Region: "us-east-1", Error: "connection refused"}}})
	if err != nil {
		t.Fatal(err)
	}
	if c := cellFor(t, rep, db, RegionOutage); c.Status != Unknown {
		t.Errorf("region outage with us-east-1 down: %+v", c)
	}
	// Before the lock's grace time ends, it does not count.
	lockDate = t0.Add(time.Hour)
	if rep, _ = Assess(Input{Now: t0, Facts: facts}); cellFor(t, rep, db, CredentialLoss).Status != Unprotected {
		t.Errorf("credential loss under a lock still in its grace time: %+v", cellFor(t, rep, db, CredentialLoss))
	}
}
