package backup

import (
	"testing"
	"time"
)

// auditEnv is the lock tests' catalog, job service and clock, with Audit
// Manager and two buckets of acct, "data" and "spare".
type auditEnv struct {
	*lockEnv
	audit *Audit
}

func newAuditEnv(t *testing.T) *auditEnv {
	t.Helper()
	e := &auditEnv{lockEnv: newLockEnv(t)}
	p, _ := e.svc.providers.ByType(S3)
	for _, b := range []string{"data", "spare"} {
		if err := p.(*S3Provider).store.CreateBucket(ctx, b, acct, region); err != nil {
			t.Fatal(err)
		}
	}
	e.audit = NewAudit(AuditConfig{Jobs: e.svc})
	return e
}

// point records a completed recovery point of a bucket in a vault, made
// now, kept for days (0: forever).
func (e *auditEnv) point(bucket, vaultName string, days int64) *RecoveryPoint {
	e.t.Helper()
	var l *Lifecycle
	if days > 0 {
		l = &Lifecycle{DeleteAfterDays: &days}
	}
	id, now := newUUID(), e.cat.clock()
	rp := &RecoveryPoint{
		AccountID: acct, ARN: e.cat.RecoveryPointARN(acct, id), VaultName: vaultName, VaultARN: e.cat.VaultARN(acct, vaultName),
		ResourceARN: BucketARN(bucket), ResourceType: S3, CreationDate: now, CompletionDate: &now, Status: PointCompleted,
		Lifecycle: l, CalculatedLifecycle: calculate(l, now), PointID: id, EncryptionKeyARN: "arn:aws:kms:us-east-1:" + acct + ":key/k",
	}
	if err := e.svc.recordPoint(ctx, rp); err != nil {
		e.t.Fatal(err)
	}
	return rp
}

// verdicts evaluates one control and returns the status of each target,
// by ARN, and the control's.
func (e *auditEnv) verdicts(name string, scope *ControlScope, params ...string) (map[string]string, string) {
	e.t.Helper()
	fc := FrameworkControl{ControlName: name, ControlScope: scope}
	for i := 0; i+1 < len(params); i += 2 {
		fc.ControlInputParameters = append(fc.ControlInputParameters, ControlInputParameter{params[i], params[i+1]})
	}
	if err := e.audit.ValidateControls([]FrameworkControl{fc}); err != nil {
		e.t.Fatal(err)
	}
	s, err := e.audit.Snapshot(ctx, acct)
	if err != nil {
		e.t.Fatal(err)
	}
	ev := EvaluateControl(s, fc)
	out := map[string]string{}
	for _, r := range ev.Resources {
		out[r.ResourceARN] = r.Status
	}
	return out, ev.Status
}

func (e *auditEnv) want(name, arn, status string, scope *ControlScope, params ...string) {
	e.t.Helper()
	if got, _ := e.verdicts(name, scope, params...); got[arn] != status {
		e.t.Fatalf("%s %v on %s: %q, want %q (all: %v)", name, params, arn, got[arn], status, got)
	}
}

func TestFrameworkCatalog(t *testing.T) {
	e := newAuditEnv(t)
	a := e.audit
	in := FrameworkInput{FrameworkName: "fw_one", FrameworkControls: []FrameworkControl{{ControlName: ControlPointEncrypted}},
		FrameworkTags: map[string]string{"team": "storage"}, IdempotencyToken: "t1"}
	f, err := a.CreateFramework(ctx, acct, in)
	if err != nil {
		t.Fatal(err)
	}
	if f.DeploymentStatus != DeploymentCompleted || f.FrameworkStatus != FrameworkActive || f.CreationTime != e.now().Truncate(time.Millisecond) {
		t.Fatalf("created %+v", f)
	}
	if again, err := a.CreateFramework(ctx, acct, in); err != nil || again.FrameworkArn != f.FrameworkArn {
		t.Fatalf("retry: %v %v", again, err)
	}
	in.IdempotencyToken = ""
	_, err = a.CreateFramework(ctx, acct, in)
	wantMsg(t, err, ErrAlreadyExists, "fw_one")
	if tags, err := e.cat.ListTags(ctx, acct, f.FrameworkArn); err != nil || tags["team"] != "storage" {
		t.Fatalf("tags %v %v", tags, err)
	}
	if err := e.cat.TagResource(ctx, acct, f.FrameworkArn+"x", map[string]string{"a": "b"}); !errorsIs(err, ErrNotFound) {
		t.Fatalf("tag of a framework that does not exist: %v", err)
	}
	for _, name := range []string{"", "1abc", "with-dash"} {
		_, err := a.CreateFramework(ctx, acct, FrameworkInput{FrameworkName: name, FrameworkControls: in.FrameworkControls})
		if !errorsIs(err, ErrInvalidParameter) && !errorsIs(err, ErrMissingParameter) {
			t.Fatalf("name %q: %v", name, err)
		}
	}
	for i := range MaxFrameworks - 1 {
		if _, err := a.CreateFramework(ctx, acct, FrameworkInput{FrameworkName: "more" + string(rune('a'+i)), FrameworkControls: in.FrameworkControls}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = a.CreateFramework(ctx, acct, FrameworkInput{FrameworkName: "one_too_many", FrameworkControls: in.FrameworkControls})
	wantKind(t, err, ErrLimitExceeded)

	desc := "two controls"
	u, err := a.UpdateFramework(ctx, acct, "fw_one", FrameworkUpdate{FrameworkDescription: &desc, IdempotencyToken: "u1",
		FrameworkControls: []FrameworkControl{{ControlName: ControlPointEncrypted}, {ControlName: ControlProtectedByPlan}}})
	if err != nil || len(u.FrameworkControls) != 2 || u.FrameworkDescription != desc {
		t.Fatalf("update: %+v %v", u, err)
	}
	// A retry of the update with its token changes nothing, even with
	// other members.
	if u, err := a.UpdateFramework(ctx, acct, "fw_one", FrameworkUpdate{FrameworkControls: in.FrameworkControls, IdempotencyToken: "u1"}); err != nil || len(u.FrameworkControls) != 2 {
		t.Fatalf("update retry: %+v %v", u, err)
	}
	_, err = a.UpdateFramework(ctx, acct, "nope", FrameworkUpdate{})
	wantKind(t, err, ErrNotFound)

	if _, err := e.cat.CreateVault(ctx, acct, CreateVaultInput{Name: "v1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.CreateReportPlan(ctx, acct, ReportPlanInput{ReportPlanName: "rp", ReportDeliveryChannel: &ReportDeliveryChannel{S3BucketName: "data"},
		ReportSetting: &ReportSetting{ReportTemplate: TemplateControlCompliance, FrameworkArns: []string{f.FrameworkArn}}}); err != nil {
		t.Fatal(err)
	}
	wantMsg(t, a.DeleteFramework(ctx, acct, "fw_one"), ErrConflict, "rp")
	if err := a.DeleteReportPlan(ctx, acct, "rp"); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteFramework(ctx, acct, "fw_one"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.cat.ListTags(ctx, acct, f.FrameworkArn); !errorsIs(err, ErrNotFound) {
		t.Fatalf("tags of a deleted framework: %v", err)
	}
}

func TestControlValidation(t *testing.T) {
	a := newAuditEnv(t).audit
	p := func(name, value string) []ControlInputParameter { return []ControlInputParameter{{name, value}} }
	for _, c := range []struct {
		fc    FrameworkControl
		kind  error
		parts []string
	}{
		{FrameworkControl{ControlName: "NOPE"}, ErrInvalidParameter, []string{"Unknown control", ControlVaultLock}},
		{FrameworkControl{ControlName: ControlPointEncrypted, ControlInputParameters: p("x", "1")}, ErrInvalidParameter, []string{"no parameter", "no parameters"}},
		{FrameworkControl{ControlName: ControlPointMinRetention, ControlInputParameters: p("requiredRetentionDays", "zero")}, ErrInvalidParameter, []string{"requiredRetentionDays", "whole number"}},
		{FrameworkControl{ControlName: ControlLastPointCreated, ControlInputParameters: p("recoveryPointAgeValue", "40")}, ErrInvalidParameter, []string{"recoveryPointAgeValue", "days"}},
		{FrameworkControl{ControlName: ControlPlanFrequency, ControlInputParameters: []ControlInputParameter{{"requiredFrequencyUnit", "hours"}, {"requiredFrequencyValue", "25"}}}, ErrInvalidParameter, []string{"requiredFrequencyValue"}},
		{FrameworkControl{ControlName: ControlCrossRegion, ControlInputParameters: p("crossRegionList", "mars-1,us-east-1")}, ErrInvalidParameter, []string{"mars-1"}},
		{FrameworkControl{ControlName: ControlCrossAccount, ControlInputParameters: p("crossAccountList", "1,2,3,4,5,6")}, ErrInvalidParameter, []string{"1 to 5"}},
		{FrameworkControl{ControlName: ControlVaultLock, ControlInputParameters: []ControlInputParameter{{"minRetentionDays", "30"}, {"maxRetentionDays", "7"}}}, ErrInvalidParameter, []string{"must not exceed"}},
		{FrameworkControl{ControlName: ControlRestoreTimeMeetsGoal}, ErrInvalidParameter, []string{"maxRestoreTime"}},
		{FrameworkControl{ControlName: ControlPointEncrypted, ControlInputParameters: append(p("x", "1"), p("x", "1")...)}, ErrInvalidParameter, []string{"no parameter"}},
		{FrameworkControl{ControlName: ControlProtectedByPlan, ControlScope: &ControlScope{ComplianceResourceTypes: []string{"EC2"}}}, ErrInvalidParameter, []string{"EC2", "S3"}},
		{FrameworkControl{ControlName: ControlManualDeletion, ControlScope: &ControlScope{ComplianceResourceTypes: []string{"S3"}}}, ErrInvalidParameter, []string{"backup vaults"}},
		{FrameworkControl{ControlName: ControlProtectedByPlan, ControlScope: &ControlScope{ComplianceResourceIds: []string{}}}, ErrInvalidParameter, []string{"1 to 100"}},
		{FrameworkControl{}, ErrMissingParameter, []string{"ControlName"}},
	} {
		wantMsg(t, a.ValidateControls([]FrameworkControl{c.fc}), c.kind, c.parts...)
	}
	wantKind(t, a.ValidateControls(nil), ErrMissingParameter)
	if err := a.ValidateControls([]FrameworkControl{{ControlName: ControlRestoreTimeMeetsGoal, ControlInputParameters: p("maxRestoreTime", "60"),
		ControlScope: &ControlScope{ComplianceResourceTypes: []string{S3}, Tags: map[string]string{"tier": ""}}}}); err != nil {
		t.Fatal(err)
	}
}

func TestControlEvaluation(t *testing.T) {
	e := newAuditEnv(t)
	data, spare := BucketARN("data"), BucketARN("spare")
	keep := int64(35)
	pv, err := e.cat.CreatePlan(ctx, acct, CreatePlanInput{Plan: Plan{BackupPlanName: "daily", Rules: []Rule{{RuleName: "daily",
		TargetBackupVaultName: "Default", ScheduleExpression: "cron(0 5 ? * * *)", Lifecycle: &Lifecycle{DeleteAfterDays: &keep}}}}})
	if err != nil {
		t.Fatal(err)
	}
	sel, err := e.cat.CreateSelection(ctx, acct, pv.BackupPlanID, Selection{SelectionName: "data", IamRoleArn: "arn:aws:iam::" + acct + ":role/b", Resources: []string{data}}, "")
	if err != nil {
		t.Fatal(err)
	}

	// Assigned by a plan, then not once the selection is gone.
	e.want(ControlProtectedByPlan, data, Compliant, nil)
	e.want(ControlProtectedByPlan, spare, NonCompliant, nil)
	if got, status := e.verdicts(ControlProtectedByPlan, &ControlScope{ComplianceResourceIds: []string{"spare"}}); len(got) != 1 || status != NonCompliant {
		t.Fatalf("scope by ID: %v %s", got, status)
	}
	if got, status := e.verdicts(ControlProtectedByPlan, &ControlScope{Tags: map[string]string{"tier": "gold"}}); len(got) != 0 || status != InsufficientData {
		t.Fatalf("scope by a tag no bucket has: %v %s", got, status)
	}
	if err := e.cat.DeleteSelection(ctx, acct, pv.BackupPlanID, sel.SelectionID); err != nil {
		t.Fatal(err)
	}
	e.want(ControlProtectedByPlan, data, NonCompliant, nil)

	// The plan's one rule is daily and keeps points 35 days.
	e.want(ControlPlanFrequency, pv.BackupPlanARN, Compliant, nil)
	e.want(ControlPlanFrequency, pv.BackupPlanARN, NonCompliant, nil, "requiredFrequencyUnit", "hours", "requiredFrequencyValue", "12")
	e.want(ControlPlanFrequency, pv.BackupPlanARN, NonCompliant, nil, "requiredRetentionDays", "90")

	// The last recovery point ages.
	e.want(ControlLastPointCreated, data, NonCompliant, nil)
	long := e.point("data", "Default", 35)
	short := e.point("data", "Default", 3)
	e.want(ControlLastPointCreated, data, Compliant, nil)
	e.advance(2 * 24 * time.Hour)
	e.want(ControlLastPointCreated, data, NonCompliant, nil)
	e.want(ControlLastPointCreated, data, Compliant, nil, "recoveryPointAgeUnit", "hours", "recoveryPointAgeValue", "72")

	// Retention and encryption of each point.
	e.want(ControlPointMinRetention, long.ARN, Compliant, nil)
	e.want(ControlPointMinRetention, short.ARN, NonCompliant, nil)
	e.want(ControlPointMinRetention, short.ARN, Compliant, nil, "requiredRetentionDays", "3")
	e.want(ControlPointEncrypted, long.ARN, Compliant, nil)

	// A vault lock: points in a locked vault, and no manual deletion.
	vaultARN := e.cat.VaultARN(acct, "Default")
	e.want(ControlVaultLock, data, NonCompliant, nil)
	e.want(ControlManualDeletion, vaultARN, NonCompliant, nil)
	if _, err := e.cat.PutVaultLock(ctx, acct, "Default", VaultLockInput{MinRetentionDays: days(3), MaxRetentionDays: days(100)}); err != nil {
		t.Fatal(err)
	}
	e.want(ControlVaultLock, data, Compliant, nil)
	e.want(ControlVaultLock, data, NonCompliant, nil, "minRetentionDays", "30")
	e.want(ControlVaultLock, data, NonCompliant, nil, "maxRetentionDays", "50")
	e.want(ControlVaultLock, spare, NonCompliant, nil)
	e.want(ControlManualDeletion, vaultARN, Compliant, nil)

	// Copies into another region and account.
	e.want(ControlCrossRegion, data, NonCompliant, nil)
	now := e.now()
	cp := &CopyJob{AccountID: acct, CopyJobID: newUUID(), ResourceARN: data, ResourceType: S3, State: CopyCompleted, CreationDate: now, CompletionDate: &now,
		DestinationBackupVaultARN: "arn:aws:backup:us-west-2:" + acct + ":backup-vault:dr", DestRegion: "us-west-2", DestAccount: acct, DestVault: "dr"}
	if err := e.svc.saveCopy(ctx, cp); err != nil {
		t.Fatal(err)
	}
	e.want(ControlCrossRegion, data, Compliant, nil)
	e.want(ControlCrossRegion, data, Compliant, nil, "crossRegionList", "us-west-2")
	e.want(ControlCrossRegion, data, NonCompliant, nil, "crossRegionList", "eu-west-1")
	e.want(ControlCrossAccount, data, NonCompliant, nil)

	// Restore time: the latest completed restore of one of its points.
	e.want(ControlRestoreTimeMeetsGoal, data, NonCompliant, nil, "maxRestoreTime", "60")
	done := now.Add(30 * time.Minute)
	if err := e.svc.saveRestore(ctx, &RestoreJob{AccountID: acct, JobID: newUUID(), RecoveryPointARN: long.ARN, ResourceType: S3,
		Status: RestoreCompleted, CreationDate: now, CompletionDate: &done}); err != nil {
		t.Fatal(err)
	}
	e.want(ControlRestoreTimeMeetsGoal, data, Compliant, nil, "maxRestoreTime", "60")
	e.want(ControlRestoreTimeMeetsGoal, data, NonCompliant, nil, "maxRestoreTime", "10")
}

// TestDailyReports checks that the scheduler's pass starts one report job
// a day per report plan, from 01:00 UTC, and none the day the plan is
// made.
func TestDailyReports(t *testing.T) {
	e := newAuditEnv(t)
	if _, err := e.audit.CreateReportPlan(ctx, acct, ReportPlanInput{ReportPlanName: "daily_jobs",
		ReportDeliveryChannel: &ReportDeliveryChannel{S3BucketName: "data"}, ReportSetting: &ReportSetting{ReportTemplate: TemplateBackupJobs}}); err != nil {
		t.Fatal(err)
	}
	sc := NewScheduler(SchedulerConfig{Jobs: e.svc, Now: e.now, Reports: e.audit})
	count := func() int {
		js, err := e.audit.ListReportJobs(ctx, acct, ReportJobFilter{ReportPlanName: "daily_jobs"})
		if err != nil {
			t.Fatal(err)
		}
		return len(js)
	}
	for _, step := range []struct {
		at   time.Time
		want int
	}{
		{time.Date(2026, 5, 1, 23, 0, 0, 0, time.UTC), 0},
		{time.Date(2026, 5, 2, 0, 30, 0, 0, time.UTC), 0},
		{time.Date(2026, 5, 2, 1, 30, 0, 0, time.UTC), 1},
		{time.Date(2026, 5, 2, 9, 0, 0, 0, time.UTC), 1},
		{time.Date(2026, 5, 3, 1, 0, 0, 0, time.UTC), 2},
	} {
		e.clock.Store(step.at.UnixNano())
		if err := sc.Tick(ctx); err != nil {
			t.Fatal(err)
		}
		if got := count(); got != step.want {
			t.Fatalf("at %s: %d report jobs, want %d", step.at, got, step.want)
		}
	}
}
