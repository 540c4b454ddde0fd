package backup

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/meta"
)

// Compliance statuses of a resource and of a control. A control with no
// target in its scope has INSUFFICIENT_DATA, as AWS Config says of a rule
// that evaluated nothing: it is not evidence of compliance.
const (
	Compliant        = "COMPLIANT"
	NonCompliant     = "NON_COMPLIANT"
	InsufficientData = "INSUFFICIENT_DATA"
)

// AuditSnapshot is what the controls look at: an account's part of the
// region's catalog and its providers' resources, read at one instant Now.
// EvaluateControl is a pure function of it.
type AuditSnapshot struct {
	Region, Account string
	Now             time.Time
	// Resources are every resource a provider lists for the account and
	// every resource with a recovery point in the region.
	Resources []*Resource
	Plans     []*PlanVersion                // current versions of live plans
	Selection map[string][]*StoredSelection // by plan ID
	Vaults    []*Vault
	Points    []*RecoveryPoint
	Copies    []*CopyJob
	Restores  []*RestoreJob
	// Tags holds the tags of the account's backup plans and vaults, by
	// ARN.
	Tags map[string]map[string]string
}

// ResourceCompliance is the verdict of a control on one target.
type ResourceCompliance struct {
	ResourceARN  string
	ResourceType string
	ResourceName string
	Status       string
	Reason       string
}

// ControlEvaluation is the verdict of a control: on each target in its
// scope, and overall (NON_COMPLIANT when any target is).
type ControlEvaluation struct {
	ControlName  string
	Status       string
	Resources    []ResourceCompliance
	Compliant    int
	NonCompliant int
}

// FrameworkEvaluation is the evaluation of every control of a framework.
type FrameworkEvaluation struct {
	Framework   *Framework
	EvaluatedAt time.Time
	Controls    []ControlEvaluation
}

// target is one thing a control evaluates.
type target struct {
	arn, typ, name string
	// scopeType is what ComplianceResourceTypes match: the resource's type,
	// or for a recovery point its resource's.
	scopeType string
	// ids are what ComplianceResourceIds match: the ARN and the names the
	// target is known by.
	ids   []string
	tags  map[string]string
	res   *Resource
	point *RecoveryPoint
	plan  *PlanVersion
	vault *Vault
}

type evalFunc func(e *evaluator, p map[string]string, t *target) (bool, string)

// evaluator indexes a snapshot for the controls.
type evaluator struct {
	snap     *AuditSnapshot
	points   map[string][]*RecoveryPoint // restorable points by resource ARN, newest first
	byARN    map[string]*RecoveryPoint
	vaults   map[string]*Vault // by name
	copies   map[string][]*CopyJob
	restores map[string][]*RestoreJob // completed restores by resource ARN, newest first
	tags     map[string]map[string]string
}

func newEvaluator(s *AuditSnapshot) *evaluator {
	e := &evaluator{snap: s, points: map[string][]*RecoveryPoint{}, byARN: map[string]*RecoveryPoint{}, vaults: map[string]*Vault{},
		copies: map[string][]*CopyJob{}, restores: map[string][]*RestoreJob{}, tags: map[string]map[string]string{}}
	for _, p := range s.Points {
		e.byARN[p.ARN] = p
		if restorable(p) {
			e.points[p.ResourceARN] = append(e.points[p.ResourceARN], p)
		}
	}
	for _, ps := range e.points {
		slices.SortStableFunc(ps, func(a, b *RecoveryPoint) int { return b.CreationDate.Compare(a.CreationDate) })
	}
	for _, v := range s.Vaults {
		e.vaults[v.Name] = v
	}
	for _, c := range s.Copies {
		if c.State == CopyCompleted {
			e.copies[c.ResourceARN] = append(e.copies[c.ResourceARN], c)
		}
	}
	for _, j := range s.Restores {
		if p := e.byARN[j.RecoveryPointARN]; p != nil && j.Status == RestoreCompleted && j.CompletionDate != nil {
			e.restores[p.ResourceARN] = append(e.restores[p.ResourceARN], j)
		}
	}
	for _, rs := range e.restores {
		slices.SortStableFunc(rs, func(a, b *RestoreJob) int { return b.CreationDate.Compare(a.CreationDate) })
	}
	for _, r := range s.Resources {
		e.tags[r.ARN] = r.Tags
	}
	return e
}

// targets lists what a kind of control evaluates.
func (e *evaluator) targets(kind targetKind) []*target {
	var out []*target
	switch kind {
	case targetResources:
		for _, r := range e.snap.Resources {
			out = append(out, &target{arn: r.ARN, typ: r.Type, name: r.Name, scopeType: r.Type, ids: []string{r.ARN, r.Name}, tags: r.Tags, res: r})
		}
	case targetPoints:
		for _, p := range e.snap.Points {
			if !restorable(p) {
				continue
			}
			id := p.ARN[strings.LastIndexByte(p.ARN, ':')+1:]
			out = append(out, &target{arn: p.ARN, typ: TypeRecoveryPoint, name: id, scopeType: p.ResourceType,
				ids: []string{p.ARN, id, p.ResourceARN}, tags: e.tags[p.ResourceARN], point: p})
		}
	case targetPlans:
		for _, pv := range e.snap.Plans {
			out = append(out, &target{arn: pv.BackupPlanARN, typ: TypeBackupPlan, name: pv.Plan.BackupPlanName,
				ids: []string{pv.BackupPlanARN, pv.BackupPlanID, pv.Plan.BackupPlanName}, tags: e.snap.Tags[pv.BackupPlanARN], plan: pv})
		}
	case targetVaults:
		for _, v := range e.snap.Vaults {
			out = append(out, &target{arn: v.ARN, typ: TypeBackupVault, name: v.Name, ids: []string{v.ARN, v.Name}, tags: e.snap.Tags[v.ARN], vault: v})
		}
	}
	return out
}

// EvaluateControl evaluates a validated control over a snapshot.
func EvaluateControl(s *AuditSnapshot, fc FrameworkControl) ControlEvaluation {
	return newEvaluator(s).evaluate(fc)
}

func (e *evaluator) evaluate(fc FrameworkControl) ControlEvaluation {
	out := ControlEvaluation{ControlName: fc.ControlName, Status: InsufficientData, Resources: []ResourceCompliance{}}
	def, ok := controls[fc.ControlName]
	if !ok {
		return out
	}
	p := controlParams(def, fc)
	for _, t := range e.targets(def.target) {
		if !inScope(fc.ControlScope, t) {
			continue
		}
		ok, why := def.eval(e, p, t)
		rc := ResourceCompliance{ResourceARN: t.arn, ResourceType: t.typ, ResourceName: t.name, Status: NonCompliant, Reason: why}
		if ok {
			rc.Status = Compliant
			out.Compliant++
		} else {
			out.NonCompliant++
		}
		out.Resources = append(out.Resources, rc)
	}
	switch {
	case out.NonCompliant > 0:
		out.Status = NonCompliant
	case out.Compliant > 0:
		out.Status = Compliant
	}
	return out
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// age is a count of hours or days as a duration, and how to say it.
func age(unit, value string) (time.Duration, string) {
	n := atoi(value)
	d := time.Duration(n) * 24 * time.Hour
	if unit == "hours" {
		d = time.Duration(n) * time.Hour
	}
	return d, value + " " + strings.TrimSuffix(unit, "s") + plural(n)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func evalProtectedByPlan(e *evaluator, _ map[string]string, t *target) (bool, string) {
	for _, pv := range e.snap.Plans {
		for _, s := range e.snap.Selection[pv.BackupPlanID] {
			if s.Selection.Matches(t.arn, t.tags) {
				return true, fmt.Sprintf("Backup plan %s assigns it by selection %s.", pv.Plan.BackupPlanName, s.Selection.SelectionName)
			}
		}
	}
	return false, "No selection of a backup plan assigns it."
}

// frequencyWindow is how far ahead a rule's schedule is read to find the
// longest time between two runs.
const frequencyWindow = 62 * 24 * time.Hour

// longestGap is the longest time between two runs of a rule in the
// frequencyWindow after now (from now to the first run, and from the last
// run to the window's end, count too).
func longestGap(r Rule, now time.Time) time.Duration {
	if r.EnableContinuousBackup != nil && *r.EnableContinuousBackup {
		return 0
	}
	sched, err := schedule.Parse(r.ScheduleExpression)
	if err != nil {
		return time.Duration(1<<63 - 1)
	}
	if !strings.HasPrefix(r.ScheduleExpression, "cron(") {
		return sched.MinInterval() // a rate runs at one interval
	}
	loc, err := time.LoadLocation(r.ScheduleExpressionTimezone)
	if err != nil {
		loc = time.UTC
	}
	end := now.Add(frequencyWindow)
	gap, prev := time.Duration(0), now
	for t := sched.Next(now, loc); !t.IsZero() && t.Before(end); t = sched.Next(t, loc) {
		gap, prev = max(gap, t.Sub(prev)), t
	}
	return max(gap, end.Sub(prev))
}

func evalPlanFrequency(e *evaluator, p map[string]string, t *target) (bool, string) {
	need, needText := age(p["requiredFrequencyUnit"], p["requiredFrequencyValue"])
	days := int64(atoi(p["requiredRetentionDays"]))
	var faults []string
	for _, r := range t.plan.Plan.Rules {
		keeps := r.Lifecycle == nil || r.Lifecycle.DeleteAfterDays == nil || *r.Lifecycle.DeleteAfterDays >= days
		often := longestGap(r, e.snap.Now) <= need
		if keeps && often {
			return true, fmt.Sprintf("Rule %s backs up at least every %s and keeps recovery points at least %d days.", r.RuleName, needText, days)
		}
		switch {
		case !often:
			faults = append(faults, fmt.Sprintf("rule %s (%s) runs less often than every %s", r.RuleName, r.ScheduleExpression, needText))
		default:
			faults = append(faults, fmt.Sprintf("rule %s keeps recovery points %d days, fewer than %d", r.RuleName, *r.Lifecycle.DeleteAfterDays, days))
		}
	}
	return false, "No rule backs up at least every " + needText + " and keeps recovery points at least " + strconv.FormatInt(days, 10) + " days: " + strings.Join(faults, "; ") + "."
}

func evalPointRetention(_ *evaluator, p map[string]string, t *target) (bool, string) {
	days := atoi(p["requiredRetentionDays"])
	rp := t.point
	if rp.CalculatedLifecycle == nil || rp.CalculatedLifecycle.DeleteAt == nil {
		return true, "The recovery point is kept until it is deleted by hand."
	}
	kept := rp.CalculatedLifecycle.DeleteAt.Sub(rp.CreationDate)
	if kept < time.Duration(days)*24*time.Hour {
		return false, fmt.Sprintf("The recovery point is kept %s, less than %d days.", roundDays(kept), days)
	}
	return true, fmt.Sprintf("The recovery point is kept %s.", roundDays(kept))
}

func roundDays(d time.Duration) string {
	n := int(d.Round(time.Hour).Hours() / 24)
	return fmt.Sprintf("%d day%s", n, plural(n))
}

func evalPointEncrypted(_ *evaluator, _ map[string]string, t *target) (bool, string) {
	if t.point.EncryptionKeyARN == "" {
		return false, "The recovery point names no encryption key."
	}
	return true, "Encrypted with " + t.point.EncryptionKeyARN + "."
}

// evalManualDeletion judges a vault: Bulwark has no vault access policies,
// so what prevents deleting a point by hand is a vault lock, which binds
// every caller (the root user too) in both of its modes. The principals
// AWS's control exempts change nothing: no principal is exempt from a
// lock.
func evalManualDeletion(_ *evaluator, _ map[string]string, t *target) (bool, string) {
	v := t.vault
	if !v.Locked {
		return false, "The vault has no vault lock: any caller allowed backup:DeleteRecoveryPoint may delete its recovery points."
	}
	if v.LockDate != nil {
		return true, "A vault lock in compliance mode forbids deleting recovery points before their retention ends."
	}
	return true, "A vault lock in governance mode forbids deleting recovery points before their retention ends (a caller allowed backup:DeleteBackupVaultLockConfiguration may remove the lock)."
}

func evalLastPoint(e *evaluator, p map[string]string, t *target) (bool, string) {
	limit, text := age(p["recoveryPointAgeUnit"], p["recoveryPointAgeValue"])
	ps := e.points[t.arn]
	if len(ps) == 0 {
		return false, "The resource has no recovery point."
	}
	last := ps[0]
	if e.snap.Now.Sub(last.CreationDate) > limit {
		return false, fmt.Sprintf("The last recovery point was created at %s, more than %s ago.", last.CreationDate.UTC().Format(time.RFC3339), text)
	}
	return true, fmt.Sprintf("The last recovery point was created at %s.", last.CreationDate.UTC().Format(time.RFC3339))
}

// copiedTo looks for a completed copy of the resource into another region
// or account (where picks it from the copy job), among those listed when
// the list is not empty.
func (e *evaluator) copiedTo(t *target, list string, where func(*CopyJob) string, other string) (bool, string) {
	want := splitList(list)
	for _, c := range e.copies[t.arn] {
		w := where(c)
		if w != other && (len(want) == 0 || slices.Contains(want, w)) {
			return true, "Copy job " + c.CopyJobID + " copied a recovery point to " + c.DestinationBackupVaultARN + "."
		}
	}
	if len(want) > 0 {
		return false, "No completed copy job copied a recovery point of the resource to " + strings.Join(want, ", ") + "."
	}
	return false, "No completed copy job copied a recovery point of the resource elsewhere."
}

func evalCrossRegion(e *evaluator, p map[string]string, t *target) (bool, string) {
	return e.copiedTo(t, p["crossRegionList"], func(c *CopyJob) string { return c.DestRegion }, e.snap.Region)
}

func evalCrossAccount(e *evaluator, p map[string]string, t *target) (bool, string) {
	return e.copiedTo(t, p["crossAccountList"], func(c *CopyJob) string { return c.DestAccount }, e.snap.Account)
}

func evalVaultLock(e *evaluator, p map[string]string, t *target) (bool, string) {
	lo := int64(atoi(p["minRetentionDays"]))
	hi := int64(atoi(p["maxRetentionDays"]))
	for _, rp := range e.points[t.arn] {
		v := e.vaults[rp.VaultName]
		if v == nil || !v.Locked {
			continue
		}
		if v.MinRetentionDays == nil || *v.MinRetentionDays < lo {
			continue
		}
		if hi > 0 && (v.MaxRetentionDays == nil || *v.MaxRetentionDays > hi) {
			continue
		}
		return true, "Recovery point " + rp.ARN + " is in locked vault " + v.Name + "."
	}
	bound := fmt.Sprintf("a minimum retention of at least %d days", lo)
	if hi > 0 {
		bound += fmt.Sprintf(" and a maximum retention of at most %d days", hi)
	}
	return false, "No recovery point of the resource is in a vault whose lock sets " + bound + "."
}

func evalRestoreTime(e *evaluator, p map[string]string, t *target) (bool, string) {
	limit := time.Duration(atoi(p["maxRestoreTime"])) * time.Minute
	rs := e.restores[t.arn]
	if len(rs) == 0 {
		return false, "No restore of the resource has completed."
	}
	j := rs[0]
	took := max(j.CompletionDate.Sub(j.CreationDate), 0)
	if took > limit {
		return false, fmt.Sprintf("The latest restore (job %s) took %s, more than %s.", j.JobID, took.Round(time.Second), limit)
	}
	return true, fmt.Sprintf("The latest restore (job %s) took %s.", j.JobID, took.Round(time.Second))
}

// Snapshot reads what the controls look at for an account.
func (a *Audit) Snapshot(ctx context.Context, account string) (*AuditSnapshot, error) {
	s := &AuditSnapshot{Region: a.cat.region, Account: account, Now: a.cat.clock(), Selection: map[string][]*StoredSelection{}, Tags: map[string]map[string]string{}}
	listed := map[string]bool{}
	for _, p := range a.jobs.providers.Providers() {
		rs, err := p.List(ctx, account)
		if err != nil {
			return nil, fmt.Errorf("list %s resources: %w", p.Type(), err)
		}
		for _, r := range rs {
			listed[r.ARN] = true
			s.Resources = append(s.Resources, r)
		}
	}
	var err error
	if s.Points, err = a.jobs.ListRecoveryPoints(ctx, account, "", ""); err != nil {
		return nil, err
	}
	for _, p := range s.Points { // newest first
		if restorable(p) && !listed[p.ResourceARN] {
			listed[p.ResourceARN] = true
			s.Resources = append(s.Resources, &Resource{ARN: p.ResourceARN, Type: p.ResourceType, Name: a.jobs.providers.ResourceName(p.ResourceARN), Account: account})
		}
	}
	if s.Plans, err = a.cat.ListPlans(ctx, account, false); err != nil {
		return nil, err
	}
	for _, pv := range s.Plans {
		if s.Selection[pv.BackupPlanID], err = a.cat.ListSelections(ctx, account, pv.BackupPlanID); err != nil {
			return nil, err
		}
	}
	if s.Vaults, err = a.cat.ListVaults(ctx, account); err != nil {
		return nil, err
	}
	if s.Copies, err = a.jobs.ListCopyJobs(ctx, account, CopyJobFilter{}); err != nil {
		return nil, err
	}
	if s.Restores, err = a.jobs.ListRestoreJobs(ctx, account, JobFilter{}); err != nil {
		return nil, err
	}
	prefix := "arn:aws:backup:" + a.cat.region + ":" + account + ":"
	err = a.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceTags)
		for k, v := it.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = it.Next() {
			tags := map[string]string{}
			if err := json.Unmarshal(v, &tags); err != nil {
				return fmt.Errorf("decode tags of %q: %w", k, err)
			}
			s.Tags[string(k)] = tags
		}
		return nil
	})
	return s, err
}

// EvaluateFramework evaluates every control of an account's framework now.
func (a *Audit) EvaluateFramework(ctx context.Context, account, name string) (*FrameworkEvaluation, error) {
	f, err := a.DescribeFramework(ctx, account, name)
	if err != nil {
		return nil, err
	}
	s, err := a.Snapshot(ctx, account)
	if err != nil {
		return nil, err
	}
	return evaluateFramework(s, f), nil
}

func evaluateFramework(s *AuditSnapshot, f *Framework) *FrameworkEvaluation {
	e := newEvaluator(s)
	out := &FrameworkEvaluation{Framework: f, EvaluatedAt: s.Now}
	for _, fc := range f.FrameworkControls {
		out.Controls = append(out.Controls, e.evaluate(fc))
	}
	return out
}
