package backup

import (
	"strings"
	"testing"
	"time"
)

func rtPlanInput() RestoreTestingPlanInput {
	return RestoreTestingPlanInput{
		RestoreTestingPlanName: "daily_test",
		ScheduleExpression:     "cron(0 1 ? * * *)",
		RecoveryPointSelection: &RecoveryPointSelection{Algorithm: AlgorithmLatestWithinWindow, IncludeVaults: []string{"*"}, RecoveryPointTypes: []string{RecoveryPointTypeSnapshot}},
	}
}

func TestRestoreTestingPlanCatalog(t *testing.T) {
	c := newCatalog(t)
	p, err := c.CreateRestoreTestingPlan(ctx, acct, CreateRestoreTestingPlanInput{Plan: rtPlanInput(), CreatorRequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	prefix := "arn:aws:backup:us-east-1:" + acct + ":restore-testing-plan:daily_test-"
	if !strings.HasPrefix(p.RestoreTestingPlanArn, prefix) || len(p.RestoreTestingPlanArn) != len(prefix)+36 {
		t.Fatalf("ARN %s", p.RestoreTestingPlanArn)
	}
	if p.StartWindowHours != 24 || p.ScheduleExpressionTimezone != "Etc/UTC" || *p.RecoveryPointSelection.SelectionWindowDays != 30 {
		t.Fatalf("defaults: %+v", p)
	}
	// A retry answers the first plan; another plan under the token does not.
	again, err := c.CreateRestoreTestingPlan(ctx, acct, CreateRestoreTestingPlanInput{Plan: rtPlanInput(), CreatorRequestID: "req-1"})
	if err != nil || again.RestoreTestingPlanArn != p.RestoreTestingPlanArn {
		t.Fatalf("retry: %+v, %v", again, err)
	}
	in := rtPlanInput()
	in.RestoreTestingPlanName = "other"
	_, err = c.CreateRestoreTestingPlan(ctx, acct, CreateRestoreTestingPlanInput{Plan: in, CreatorRequestID: "req-1"})
	wantKind(t, err, ErrAlreadyExists)
	_, err = c.CreateRestoreTestingPlan(ctx, acct, CreateRestoreTestingPlanInput{Plan: rtPlanInput()})
	wantKind(t, err, ErrAlreadyExists)
	// Another account has its own names.
	if _, err := c.CreateRestoreTestingPlan(ctx, other, CreateRestoreTestingPlanInput{Plan: rtPlanInput()}); err != nil {
		t.Fatal(err)
	}
	if ps, err := c.ListRestoreTestingPlans(ctx, acct); err != nil || len(ps) != 1 {
		t.Fatalf("list: %v, %v", ps, err)
	}

	days := int64(7)
	u, err := c.UpdateRestoreTestingPlan(ctx, acct, "daily_test", RestoreTestingPlanUpdate{RecoveryPointSelection: &RecoveryPointSelection{SelectionWindowDays: &days}})
	if err != nil || *u.RecoveryPointSelection.SelectionWindowDays != 7 || u.RecoveryPointSelection.Algorithm != AlgorithmLatestWithinWindow || u.LastUpdateTime == nil {
		t.Fatalf("update: %+v, %v", u, err)
	}
	bad := int64(366)
	_, err = c.UpdateRestoreTestingPlan(ctx, acct, "daily_test", RestoreTestingPlanUpdate{RecoveryPointSelection: &RecoveryPointSelection{SelectionWindowDays: &bad}})
	wantKind(t, err, ErrInvalidParameter)

	sel := RestoreTestingSelection{RestoreTestingSelectionName: "s3_all", ProtectedResourceType: "S3", ProtectedResourceArns: []string{"*"}, IamRoleArn: "arn:aws:iam::" + acct + ":role/r"}
	if _, _, err := c.CreateRestoreTestingSelection(ctx, acct, "daily_test", sel, ""); err != nil {
		t.Fatal(err)
	}
	_, _, err = c.CreateRestoreTestingSelection(ctx, acct, "daily_test", sel, "")
	wantKind(t, err, ErrAlreadyExists)
	wantKind(t, c.DeleteRestoreTestingPlan(ctx, acct, "daily_test"), ErrInvalidRequest)
	if err := c.DeleteRestoreTestingSelection(ctx, acct, "daily_test", "s3_all"); err != nil {
		t.Fatal(err)
	}
	if err := c.DeleteRestoreTestingPlan(ctx, acct, "daily_test"); err != nil {
		t.Fatal(err)
	}
	_, err = c.GetRestoreTestingPlan(ctx, acct, "daily_test")
	wantKind(t, err, ErrNotFound)
}

func TestRestoreTestingValidation(t *testing.T) {
	c := newCatalog(t)
	for name, c2 := range map[string]struct {
		edit func(*RestoreTestingPlanInput)
		kind error
	}{
		"name with dash":    {func(in *RestoreTestingPlanInput) { in.RestoreTestingPlanName = "a-b" }, ErrInvalidParameter},
		"no name":           {func(in *RestoreTestingPlanInput) { in.RestoreTestingPlanName = "" }, ErrMissingParameter},
		"bad cron":          {func(in *RestoreTestingPlanInput) { in.ScheduleExpression = "cron(0 1 * * * *)" }, ErrInvalidParameter},
		"no schedule":       {func(in *RestoreTestingPlanInput) { in.ScheduleExpression = "" }, ErrMissingParameter},
		"bad time zone":     {func(in *RestoreTestingPlanInput) { in.ScheduleExpressionTimezone = "Mars/Base" }, ErrInvalidParameter},
		"start window 169":  {func(in *RestoreTestingPlanInput) { w := int64(169); in.StartWindowHours = &w }, ErrInvalidParameter},
		"window days 0":     {func(in *RestoreTestingPlanInput) { d := int64(0); in.RecoveryPointSelection.SelectionWindowDays = &d }, ErrInvalidParameter},
		"unknown algorithm": {func(in *RestoreTestingPlanInput) { in.RecoveryPointSelection.Algorithm = "OLDEST" }, ErrInvalidParameter},
		"no vaults":         {func(in *RestoreTestingPlanInput) { in.RecoveryPointSelection.IncludeVaults = nil }, ErrMissingParameter},
		"bad vault":         {func(in *RestoreTestingPlanInput) { in.RecoveryPointSelection.IncludeVaults = []string{"Default"} }, ErrInvalidParameter},
		"bad point type":    {func(in *RestoreTestingPlanInput) { in.RecoveryPointSelection.RecoveryPointTypes = []string{"FULL"} }, ErrInvalidParameter},
		"no selection":      {func(in *RestoreTestingPlanInput) { in.RecoveryPointSelection = nil }, ErrMissingParameter},
	} {
		in := rtPlanInput()
		c2.edit(&in)
		if _, err := c.CreateRestoreTestingPlan(ctx, acct, CreateRestoreTestingPlanInput{Plan: in}); !errorsIs(err, c2.kind) {
			t.Errorf("%s: got %v, want %v", name, err, c2.kind)
		}
	}
	if _, err := c.CreateRestoreTestingPlan(ctx, acct, CreateRestoreTestingPlanInput{Plan: rtPlanInput()}); err != nil {
		t.Fatal(err)
	}
	role := "arn:aws:iam::" + acct + ":role/r"
	w := int64(169)
	for name, s := range map[string]RestoreTestingSelection{
		"arns and conditions": {ProtectedResourceArns: []string{"arn:aws:s3:::b"}, ProtectedResourceConditions: &ProtectedResourceConditions{StringEquals: []KeyValue{{"aws:ResourceTag/env", "prod"}}}},
		"neither":             {},
		"bare tag key":        {ProtectedResourceArns: []string{"*"}, ProtectedResourceConditions: &ProtectedResourceConditions{StringEquals: []KeyValue{{"env", "prod"}}}},
		"window 169":          {ProtectedResourceArns: []string{"*"}, ValidationWindowHours: &w},
		"password override":   {ProtectedResourceArns: []string{"*"}, RestoreMetadataOverrides: map[string]string{"MasterUserPassword": "x"}},
	} {
		s.RestoreTestingSelectionName, s.ProtectedResourceType, s.IamRoleArn = "sel", "S3", role
		if _, _, err := c.CreateRestoreTestingSelection(ctx, acct, "daily_test", s, ""); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// "*" with conditions is what AWS documents.
	s := RestoreTestingSelection{RestoreTestingSelectionName: "tagged", ProtectedResourceType: "S3", IamRoleArn: role, ProtectedResourceArns: []string{"*"},
		ProtectedResourceConditions: &ProtectedResourceConditions{StringEquals: []KeyValue{{"aws:ResourceTag/env", "prod"}}}}
	if _, _, err := c.CreateRestoreTestingSelection(ctx, acct, "daily_test", s, ""); err != nil {
		t.Fatal(err)
	}
	if !s.Matches("arn:aws:s3:::a", map[string]string{"env": "prod"}) || s.Matches("arn:aws:s3:::a", map[string]string{"env": "dev"}) {
		t.Fatal("conditions not applied")
	}
	rp := RecoveryPointSelection{IncludeVaults: []string{"arn:aws:backup:*:*:backup-vault:prod-*"}, ExcludeVaults: []string{"arn:aws:backup:*:*:backup-vault:prod-old"}}
	if !rp.MatchesVault("arn:aws:backup:us-east-1:"+acct+":backup-vault:prod-a") || rp.MatchesVault("arn:aws:backup:us-east-1:"+acct+":backup-vault:prod-old") {
		t.Fatal("vault selection")
	}
}

func TestChoosePoint(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	vault := func(name string) string { return "arn:aws:backup:us-east-1:" + acct + ":backup-vault:" + name }
	pt := func(id, v string, ageDays int, status string) *RecoveryPoint {
		return &RecoveryPoint{ARN: id, PointID: id, VaultARN: vault(v), Status: status, CreationDate: now.Add(-time.Duration(ageDays) * 24 * time.Hour)}
	}
	points := []*RecoveryPoint{
		pt("old", "Default", 10, PointCompleted),
		pt("mid", "Default", 3, PointCompleted),
		pt("new-partial", "Default", 1, PointPartial),
		pt("new-excluded", "scratch", 0, PointCompleted),
		{ARN: "cont", PointID: ContinuousPrefix + "x", VaultARN: vault("Default"), Status: PointCompleted, CreationDate: now.Add(-time.Hour)},
	}
	days := int64(7)
	s := RecoveryPointSelection{Algorithm: AlgorithmLatestWithinWindow, IncludeVaults: []string{"*"}, ExcludeVaults: []string{vault("scratch")},
		RecoveryPointTypes: []string{RecoveryPointTypeSnapshot}, SelectionWindowDays: &days}
	never := func(int) int { t.Fatal("drawn for LATEST_WITHIN_WINDOW"); return 0 }
	if p := s.ChoosePoint(points, now, never); p == nil || p.ARN != "mid" {
		t.Fatalf("latest snapshot: %+v", p)
	}
	s.RecoveryPointTypes = []string{RecoveryPointTypeSnapshot, RecoveryPointTypeContinuous}
	if p := s.ChoosePoint(points, now, never); p == nil || p.ARN != "cont" {
		t.Fatalf("latest of both types: %+v", p)
	}
	s.Algorithm = AlgorithmRandomWithinWindow
	var drawn int
	if p := s.ChoosePoint(points, now, func(n int) int { drawn = n; return n - 1 }); drawn != 2 || p == nil || p.ARN != "mid" {
		t.Fatalf("random: drew among %d, got %+v", drawn, p)
	}
	days = 1
	s.RecoveryPointTypes = []string{RecoveryPointTypeSnapshot}
	if p := s.ChoosePoint(points, now, func(int) int { return 0 }); p != nil {
		t.Fatalf("nothing within a day: %+v", p)
	}
}
