package backup

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/meta/bolt"
)

var ctx = context.Background()

const (
	acct   = "111122223333"
	other  = "444455556666"
	region = "us-east-1"
)

func errorsIs(err, kind error) bool { return err != nil && errors.Is(err, kind) }

func newCatalog(t *testing.T) *Catalog {
	t.Helper()
	m, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return NewCatalog(m, region, func() time.Time { now = now.Add(time.Second); return now })
}

func wantKind(t *testing.T, err, kind error) {
	t.Helper()
	if !errorsIs(err, kind) {
		t.Fatalf("got error %v, want kind %v", err, kind)
	}
}

// articlePlan is the plan of the design article.
func articlePlan() Plan {
	var p Plan
	doc := `{"BackupPlanName":"s3-daily-backup","Rules":[{"RuleName":"daily-s3-backup","TargetBackupVaultName":"Default","ScheduleExpression":"cron(0 2 * * ? *)","StartWindowMinutes":60,"CompletionWindowMinutes":180,"Lifecycle":{"DeleteAfterDays":30},"CopyActions":[{"DestinationBackupVaultArn":"arn:aws:backup:us-east-1:111122223333:backup-vault:Default","Lifecycle":{"DeleteAfterDays":90}}]}]}`
	if err := json.Unmarshal([]byte(doc), &p); err != nil {
		panic(err)
	}
	return p
}

func TestVaults(t *testing.T) {
	c := newCatalog(t)
	vs, err := c.ListVaults(ctx, acct)
	if err != nil || len(vs) != 1 || vs[0].Name != "Default" {
		t.Fatalf("fresh account lists %v, %v; want the Default vault", vs, err)
	}
	v, err := c.CreateVault(ctx, acct, CreateVaultInput{Name: "v1", Tags: map[string]string{"team": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if v.ARN != "arn:aws:backup:us-east-1:111122223333:backup-vault:v1" {
		t.Errorf("ARN %s", v.ARN)
	}
	if !strings.HasPrefix(v.EncryptionKeyARN, "arn:aws:kms:us-east-1:111122223333:key/") {
		t.Errorf("key %s", v.EncryptionKeyARN)
	}
	_, err = c.CreateVault(ctx, acct, CreateVaultInput{Name: "v1"})
	wantKind(t, err, ErrAlreadyExists)
	for _, bad := range []string{"a", "has space", strings.Repeat("x", 51), "dot.ted"} {
		_, err = c.CreateVault(ctx, acct, CreateVaultInput{Name: bad})
		wantKind(t, err, ErrInvalidParameter)
	}
	d, err := c.DescribeVault(ctx, acct, "v1")
	if err != nil || d.ARN != v.ARN || d.NumberOfRecoveryPoints != 0 || d.Locked || !d.CreationDate.Equal(v.CreationDate) {
		t.Fatalf("describe %+v %v", d, err)
	}
	_, err = c.DescribeVault(ctx, other, "v1")
	wantKind(t, err, ErrNotFound)
	tags, err := c.ListTags(ctx, acct, v.ARN)
	if err != nil || tags["team"] != "a" {
		t.Fatalf("tags %v %v", tags, err)
	}
	vs, _ = c.ListVaults(ctx, acct)
	if len(vs) != 2 || vs[0].Name != "Default" || vs[1].Name != "v1" {
		t.Fatalf("list %v", vs)
	}
	wantKind(t, c.DeleteVault(ctx, acct, "Default"), ErrInvalidRequest)
	if err := c.DeleteVault(ctx, acct, "v1"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, c.DeleteVault(ctx, acct, "v1"), ErrNotFound)
	_, err = c.ListTags(ctx, acct, v.ARN)
	wantKind(t, err, ErrNotFound)
}

func TestPlanLifecycle(t *testing.T) {
	c := newCatalog(t)
	v1, err := c.CreatePlan(ctx, acct, CreatePlanInput{Plan: articlePlan(), Tags: map[string]string{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	if v1.BackupPlanARN != "arn:aws:backup:us-east-1:111122223333:backup-plan:"+v1.BackupPlanID || v1.VersionID == "" {
		t.Fatalf("created %+v", v1)
	}
	got, err := c.GetPlan(ctx, acct, v1.BackupPlanID, "")
	if err != nil {
		t.Fatal(err)
	}
	r := got.Plan.Rules[0]
	if r.RuleID == "" || r.ScheduleExpression != "cron(0 2 * * ? *)" || *r.StartWindowMinutes != 60 || *r.CompletionWindowMinutes != 180 ||
		*r.Lifecycle.DeleteAfterDays != 30 || r.ScheduleExpressionTimezone != "Etc/UTC" || *r.CopyActions[0].Lifecycle.DeleteAfterDays != 90 {
		t.Fatalf("got rule %+v", r)
	}

	p := articlePlan()
	p.Rules[0].ScheduleExpression = "cron(0 3 * * ? *)"
	p.Rules = append(p.Rules, Rule{RuleName: "weekly", TargetBackupVaultName: "Default", ScheduleExpression: "cron(0 4 ? * SUN *)"})
	v2, err := c.UpdatePlan(ctx, acct, v1.BackupPlanID, p)
	if err != nil {
		t.Fatal(err)
	}
	if v2.VersionID == v1.VersionID {
		t.Fatal("update kept the version ID")
	}
	if v2.Plan.Rules[0].RuleID != r.RuleID || v2.Plan.Rules[1].RuleID == "" || v2.Plan.Rules[1].RuleID == r.RuleID {
		t.Fatalf("rule IDs %s %s (was %s)", v2.Plan.Rules[0].RuleID, v2.Plan.Rules[1].RuleID, r.RuleID)
	}
	if *v2.Plan.Rules[1].StartWindowMinutes != 480 || *v2.Plan.Rules[1].CompletionWindowMinutes != 10080 {
		t.Fatalf("defaults %+v", v2.Plan.Rules[1])
	}
	old, err := c.GetPlan(ctx, acct, v1.BackupPlanID, v1.VersionID)
	if err != nil || old.Plan.Rules[0].ScheduleExpression != "cron(0 2 * * ? *)" || len(old.Plan.Rules) != 1 {
		t.Fatalf("old version %+v %v", old, err)
	}
	cur, _ := c.GetPlan(ctx, acct, v1.BackupPlanID, "")
	if cur.VersionID != v2.VersionID || len(cur.Plan.Rules) != 2 {
		t.Fatalf("current %+v", cur)
	}
	_, err = c.GetPlan(ctx, acct, v1.BackupPlanID, "nope")
	wantKind(t, err, ErrNotFound)
	vs, err := c.ListPlanVersions(ctx, acct, v1.BackupPlanID)
	if err != nil || len(vs) != 2 || vs[0].VersionID != v2.VersionID || vs[1].VersionID != v1.VersionID {
		t.Fatalf("versions %v %v", vs, err)
	}

	sel := Selection{SelectionName: "s3", IamRoleArn: "arn:aws:iam::111122223333:role/backup", Resources: []string{"arn:aws:s3:::source-bucket-name"}}
	s, err := c.CreateSelection(ctx, acct, v1.BackupPlanID, sel, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreateSelection(ctx, acct, v1.BackupPlanID, sel, "")
	wantKind(t, err, ErrAlreadyExists)
	_, err = c.CreateSelection(ctx, acct, "no-such-plan", sel, "")
	wantKind(t, err, ErrNotFound)
	gs, err := c.GetSelection(ctx, acct, v1.BackupPlanID, s.SelectionID)
	if err != nil || gs.Selection.Resources[0] != "arn:aws:s3:::source-bucket-name" {
		t.Fatalf("selection %+v %v", gs, err)
	}
	_, err = c.DeletePlan(ctx, acct, v1.BackupPlanID)
	wantKind(t, err, ErrInvalidRequest)
	ss, _ := c.ListSelections(ctx, acct, v1.BackupPlanID)
	if len(ss) != 1 {
		t.Fatalf("selections %v", ss)
	}
	if err := c.DeleteSelection(ctx, acct, v1.BackupPlanID, s.SelectionID); err != nil {
		t.Fatal(err)
	}
	wantKind(t, c.DeleteSelection(ctx, acct, v1.BackupPlanID, s.SelectionID), ErrNotFound)

	del, err := c.DeletePlan(ctx, acct, v1.BackupPlanID)
	if err != nil || del.DeletionDate == nil || del.VersionID != v2.VersionID {
		t.Fatalf("delete %+v %v", del, err)
	}
	_, err = c.DeletePlan(ctx, acct, v1.BackupPlanID)
	wantKind(t, err, ErrNotFound)
	_, err = c.UpdatePlan(ctx, acct, v1.BackupPlanID, articlePlan())
	wantKind(t, err, ErrNotFound)
	if ps, _ := c.ListPlans(ctx, acct, false); len(ps) != 0 {
		t.Fatalf("deleted plan listed: %v", ps)
	}
	if ps, _ := c.ListPlans(ctx, acct, true); len(ps) != 1 || ps[0].DeletionDate == nil {
		t.Fatalf("deleted plan not listed with includeDeleted: %v", ps)
	}
	if g, err := c.GetPlan(ctx, acct, v1.BackupPlanID, ""); err != nil || g.DeletionDate == nil {
		t.Fatalf("deleted plan %+v %v", g, err)
	}
	_, err = c.GetPlan(ctx, other, v1.BackupPlanID, "")
	wantKind(t, err, ErrNotFound)
}

func TestPlanRejections(t *testing.T) {
	c := newCatalog(t)
	i64 := func(v int64) *int64 { return &v }
	cases := map[string]struct {
		mod  func(*Plan)
		kind error
	}{
		"no name":              {func(p *Plan) { p.BackupPlanName = "" }, ErrMissingParameter},
		"no rules":             {func(p *Plan) { p.Rules = nil }, ErrMissingParameter},
		"unknown vault":        {func(p *Plan) { p.Rules[0].TargetBackupVaultName = "nope" }, ErrInvalidParameter},
		"both day fields":      {func(p *Plan) { p.Rules[0].ScheduleExpression = "cron(0 2 * * * *)" }, ErrInvalidParameter},
		"garbage schedule":     {func(p *Plan) { p.Rules[0].ScheduleExpression = "every day" }, ErrInvalidParameter},
		"start window 30":      {func(p *Plan) { p.Rules[0].StartWindowMinutes = i64(30) }, ErrInvalidParameter},
		"completion too short": {func(p *Plan) { p.Rules[0].CompletionWindowMinutes = i64(100) }, ErrInvalidParameter},
		"cold then delete": {func(p *Plan) {
			p.Rules[0].Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(10), DeleteAfterDays: i64(30)}
		}, ErrInvalidParameter},
		"copy cold then delete": {func(p *Plan) {
			p.Rules[0].CopyActions[0].Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(10), DeleteAfterDays: i64(99)}
		}, ErrInvalidParameter},
		"bad copy ARN":        {func(p *Plan) { p.Rules[0].CopyActions[0].DestinationBackupVaultArn = "arn:aws:s3:::x" }, ErrInvalidParameter},
		"bad time zone":       {func(p *Plan) { p.Rules[0].ScheduleExpressionTimezone = "Mars/Olympus" }, ErrInvalidParameter},
		"duplicate rule name": {func(p *Plan) { p.Rules = append(p.Rules, p.Rules[0]) }, ErrInvalidParameter},
		"bad rule name":       {func(p *Plan) { p.Rules[0].RuleName = "a b" }, ErrInvalidParameter},
		"delete after 0":      {func(p *Plan) { p.Rules[0].Lifecycle.DeleteAfterDays = i64(0) }, ErrInvalidParameter},
		"continuous over 35": {func(p *Plan) {
			b := true
			p.Rules[0].EnableContinuousBackup = &b
			p.Rules[0].Lifecycle.DeleteAfterDays = i64(36)
		}, ErrInvalidParameter},
		"index actions": {func(p *Plan) { p.Rules[0].IndexActions = json.RawMessage(`[{}]`) }, ErrInvalidParameter},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := articlePlan()
			tc.mod(&p)
			_, err := c.CreatePlan(ctx, acct, CreatePlanInput{Plan: p})
			wantKind(t, err, tc.kind)
		})
	}
	if ps, _ := c.ListPlans(ctx, acct, true); len(ps) != 0 {
		t.Fatalf("rejected plans stored: %v", ps)
	}
	// A valid cold-storage lifecycle is accepted.
	p := articlePlan()
	p.Rules[0].Lifecycle = &Lifecycle{MoveToColdStorageAfterDays: i64(10), DeleteAfterDays: i64(100)}
	if _, err := c.CreatePlan(ctx, acct, CreatePlanInput{Plan: p}); err != nil {
		t.Fatal(err)
	}
}

func TestCreatorRequestID(t *testing.T) {
	c := newCatalog(t)
	first, err := c.CreatePlan(ctx, acct, CreatePlanInput{Plan: articlePlan(), CreatorRequestID: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.CreatePlan(ctx, acct, CreatePlanInput{Plan: articlePlan(), CreatorRequestID: "req-1"})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrAlreadyExists) || e.ARN != first.BackupPlanARN {
		t.Fatalf("got %v", err)
	}
}

func TestPlanFromJSON(t *testing.T) {
	p, err := PlanFromJSON(`{"BackupPlanName":"p","Rules":[{"RuleName":"r","TargetBackupVaultName":"anything","ScheduleExpression":"rate(12 hours)"}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if p.Rules[0].ScheduleExpressionTimezone != "Etc/UTC" || *p.Rules[0].StartWindowMinutes != 480 {
		t.Fatalf("%+v", p.Rules[0])
	}
	for doc, kind := range map[string]error{
		``:                       ErrMissingParameter,
		`{`:                      ErrInvalidParameter,
		`[]`:                     ErrInvalidParameter,
		`{"BackupPlanName":"p"}`: ErrMissingParameter,
		`{"BackupPlanName":"p","Rules":[],"Bogus":1}`:                                      ErrInvalidParameter,
		`{"BackupPlanName":"p","Rules":[{"RuleName":"r","TargetBackupVaultName":"v"}]} {}`: ErrInvalidParameter,
	} {
		_, err := PlanFromJSON(doc)
		if !errorsIs(err, kind) {
			t.Errorf("PlanFromJSON(%q) = %v, want %v", doc, err, kind)
		}
	}
}

func TestTags(t *testing.T) {
	c := newCatalog(t)
	def := c.VaultARN(acct, "Default")
	if err := c.TagResource(ctx, acct, def, map[string]string{"a": "1", "b": "2"}); err != nil {
		t.Fatal(err)
	}
	if err := c.UntagResource(ctx, acct, def, []string{"a", "zzz"}); err != nil {
		t.Fatal(err)
	}
	tags, err := c.ListTags(ctx, acct, def)
	if err != nil || len(tags) != 1 || tags["b"] != "2" {
		t.Fatalf("%v %v", tags, err)
	}
	wantKind(t, c.TagResource(ctx, acct, def, map[string]string{"aws:x": "1"}), ErrInvalidParameter)
	wantKind(t, c.TagResource(ctx, acct, c.VaultARN(acct, "nope"), map[string]string{"a": "1"}), ErrNotFound)
	wantKind(t, c.TagResource(ctx, other, def, map[string]string{"a": "1"}), ErrNotFound)
	wantKind(t, c.TagResource(ctx, acct, "not-an-arn", map[string]string{"a": "1"}), ErrInvalidParameter)
	pv, err := c.CreatePlan(ctx, acct, CreatePlanInput{Plan: articlePlan()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.TagResource(ctx, acct, pv.BackupPlanARN, map[string]string{"p": "1"}); err != nil {
		t.Fatal(err)
	}
	if tags, _ := c.ListTags(ctx, acct, pv.BackupPlanARN); tags["p"] != "1" {
		t.Fatalf("plan tags %v", tags)
	}
}
