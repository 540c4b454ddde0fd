package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/meta"
)

// Keyspaces of the scheduler.
const (
	spaceLease     = "backup-lease"          // leaseKey → lease
	spaceRuleState = "backup-rule-state"     // account/planID/ruleID → ruleState
	spaceRuns      = "backup-scheduled-runs" // account/jobID → ScheduledRun
	leaseKey       = "scheduler"
)

// JobExpired is the state of a scheduled job that did not start within its
// start window.
const JobExpired = "EXPIRED"

// msgStartWindow is the message of a run recorded as expired.
const msgStartWindow = "The backup job did not start within the start window"

// Scheduler defaults.
const (
	DefaultSchedulerInterval = 30 * time.Second
	DefaultLeaseTTL          = 2 * time.Minute
	// DefaultMaxCatchUp bounds the missed runs of one rule recorded after
	// a downtime; older ones are skipped (and logged as skipped).
	DefaultMaxCatchUp = 32
	// maxScan bounds the run times computed in one call of Between; the
	// scan goes on in chunks so that no run is lost, keeping the newest.
	maxScan = 1024
)

// SchedulerConfig configures a Scheduler.
type SchedulerConfig struct {
	// Jobs starts the backup jobs; its catalog and object store are the
	// scheduler's.
	Jobs *Service
	// ID names this scheduler in the region's lease; random when empty.
	ID string
	// Now is the clock (nil: time.Now).
	Now        func() time.Time
	Interval   time.Duration // between passes; DefaultSchedulerInterval when 0
	LeaseTTL   time.Duration // DefaultLeaseTTL when 0
	MaxCatchUp int           // DefaultMaxCatchUp when 0
	Logger     *slog.Logger
	// Reports, when set, has each pass start the daily report job of
	// every report plan (Audit.StartDueReports).
	Reports *Audit
	// Held, when set, says whether this scheduler may act: its process
	// holds the region's lease on the scheduler's work, kept outside
	// (package lease), and the scheduler keeps no lease of its own.
	Held func() bool
}

// Scheduler runs the region's backup plans by the clock. Several may run
// on one metadata store (one per process of the region); a lease in the
// store lets one of them act at a time, and another takes over when the
// holder stops renewing it.
//
// Each pass starts the jobs whose scheduled time has come, records as
// EXPIRED the runs whose start window passed while no scheduler ran (the
// catch-up after a downtime), and looks for jobs past their completion
// window. It runs the restore testing plans the same way, and deletes
// the targets of restore tests whose validation window has passed
// (restoretest_run.go), and starts the daily report job of each report
// plan (report.go). What a rule has evaluated is kept in the store, so
// a pass repeated after a crash starts nothing twice.
type Scheduler struct {
	jobs       *Service
	cat        *Catalog
	id         string
	now        func() time.Time
	interval   time.Duration
	ttl        time.Duration
	maxCatchUp int
	log        *slog.Logger
	reports    *Audit
	held       func() bool

	wake chan struct{}

	mu     sync.Mutex // guards cancel, done
	cancel context.CancelFunc
	done   chan struct{}
}

// NewScheduler returns a scheduler; Start or Run runs it, Tick does one pass.
func NewScheduler(cfg SchedulerConfig) *Scheduler {
	s := &Scheduler{
		jobs: cfg.Jobs, cat: cfg.Jobs.cat, id: cfg.ID, now: cfg.Now, interval: cfg.Interval,
		ttl: cfg.LeaseTTL, maxCatchUp: cfg.MaxCatchUp, log: cfg.Logger, wake: make(chan struct{}, 1),
	}
	s.reports, s.held = cfg.Reports, cfg.Held
	if s.id == "" {
		s.id = newUUID()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.interval <= 0 {
		s.interval = DefaultSchedulerInterval
	}
	if s.ttl <= 0 {
		s.ttl = DefaultLeaseTTL
	}
	if s.maxCatchUp <= 0 {
		s.maxCatchUp = DefaultMaxCatchUp
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Wake asks for a pass now, as after a plan or selection changed.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Start runs the scheduler in a goroutine of its own until Close.
func (s *Scheduler) Start() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cancel != nil {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan struct{})
	go func() {
		defer close(s.done)
		s.Run(ctx)
	}()
}

// Close stops the goroutine Start started and gives up the lease.
func (s *Scheduler) Close(ctx context.Context) error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run passes at every multiple of the interval and on Wake until ctx ends, then gives up the
// lease so that another scheduler need not wait for it to expire.
func (s *Scheduler) Run(ctx context.Context) {
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := s.release(rctx); err != nil {
			s.log.Warn("release backup scheduler lease", "err", err)
		}
	}()
	t := time.NewTimer(untilAligned(time.Now(), s.interval))
	defer t.Stop()
	for {
		if err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("backup scheduler pass", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.wake:
		}
		t.Reset(untilAligned(time.Now(), s.interval))
	}
}

// untilAligned is the time from now to the next multiple of interval since
// the epoch, a few milliseconds past it. With an interval that divides a
// minute, a pass falls just after every minute starts, so a run that cron
// places at a minute starts then rather than up to an interval late.
func untilAligned(now time.Time, interval time.Duration) time.Duration {
	const past = 5 * time.Millisecond
	return interval - time.Duration(now.UnixNano()%int64(interval)) + past
}

// lease is the record of the scheduler acting for the region.
type lease struct {
	Holder  string
	Expires time.Time
}

// acquire takes or renews the lease; false means another holds it.
func (s *Scheduler) acquire(ctx context.Context, now time.Time) (bool, error) {
	if s.held != nil {
		return s.held(), nil
	}
	ok := false
	err := s.cat.update(ctx, func(tx meta.Tx) error {
		var l lease
		found, err := getJSON(tx, spaceLease, []byte(leaseKey), &l)
		if err != nil {
			return err
		}
		if found && l.Holder != s.id && now.Before(l.Expires) {
			return nil
		}
		ok = true
		return putJSON(tx, spaceLease, []byte(leaseKey), lease{Holder: s.id, Expires: now.Add(s.ttl)})
	})
	return ok, err
}

func (s *Scheduler) release(ctx context.Context) error {
	if s.held != nil {
		return nil
	}
	return s.cat.update(ctx, func(tx meta.Tx) error {
		var l lease
		found, err := getJSON(tx, spaceLease, []byte(leaseKey), &l)
		if err != nil || !found || l.Holder != s.id {
			return err
		}
		return tx.Delete(spaceLease, []byte(leaseKey))
	})
}

// ruleState is what the scheduler keeps of a rule between passes.
type ruleState struct {
	// LastEvaluated is the time up to which the rule's runs are handled.
	LastEvaluated time.Time
	// Anchor is when the scheduler first saw the rule: rate() runs count
	// from it.
	Anchor time.Time
}

// ScheduledRun links a job to the plan rule and time it ran for: the
// BackupJob record has no place for them.
type ScheduledRun struct {
	JobID        string
	BackupPlanID string
	RuleID       string
	RuleName     string
	ScheduledAt  time.Time
	CompleteBy   time.Time
	ResourceARN  string
	// Overdue is set when the job was found running past CompleteBy.
	Overdue bool `json:",omitempty"`
}

// Tick does one pass: when this scheduler holds the lease, it handles the
// runs of every rule due up to now.
func (s *Scheduler) Tick(ctx context.Context) error {
	now := s.now().UTC()
	ok, err := s.acquire(ctx, now)
	if err != nil || !ok {
		return err
	}
	accounts, err := s.cat.planAccounts(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, account := range accounts {
		if err := s.passAccount(ctx, account, now); err != nil {
			errs = append(errs, fmt.Errorf("account %s: %w", account, err))
		}
	}
	if err := s.checkCompletion(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if err := s.runRestoreTests(ctx, now); err != nil {
		errs = append(errs, fmt.Errorf("restore tests: %w", err))
	}
	if err := s.jobs.deleteRestoreTests(ctx, now); err != nil {
		errs = append(errs, err)
	}
	// Lifecycle runs on the same clock: expired recovery points go, those
	// due for cold storage move.
	if _, err := s.jobs.ExpirePoints(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.jobs.MovePoints(ctx, now); err != nil {
		errs = append(errs, err)
	}
	if s.reports != nil {
		if err := s.reports.StartDueReports(ctx, now); err != nil {
			errs = append(errs, fmt.Errorf("report plans: %w", err))
		}
	}
	return errors.Join(errs...)
}

// planAccounts lists the accounts that have backup plans, deleted or not.
func (c *Catalog) planAccounts(ctx context.Context) ([]string, error) {
	return c.accountsIn(ctx, spacePlans)
}

// accountsIn lists the accounts of the keys of a keyspace whose keys
// start with account/.
func (c *Catalog) accountsIn(ctx context.Context, space string) ([]string, error) {
	var out []string
	err := c.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(space)
		for k, _ := it.Seek(nil); k != nil; k, _ = it.Next() {
			a, _, _ := strings.Cut(string(k), "/")
			if len(out) == 0 || out[len(out)-1] != a {
				out = append(out, a)
			}
		}
		return nil
	})
	return out, err
}

func (s *Scheduler) passAccount(ctx context.Context, account string, now time.Time) error {
	plans, err := s.cat.ListPlans(ctx, account, false)
	if err != nil {
		return err
	}
	var resources []*Resource
	listed := false
	var errs []error
	for _, p := range plans {
		cur, err := s.cat.GetPlan(ctx, account, p.BackupPlanID, "")
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var sels []*StoredSelection
		for _, r := range cur.Plan.Rules {
			dues, err := s.dueRuns(ctx, account, cur, r, now)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if len(dues) == 0 {
				continue
			}
			if !listed {
				if resources, err = s.resources(ctx, account); err != nil {
					return err
				}
				listed = true
			}
			if sels == nil {
				if sels, err = s.cat.ListSelections(ctx, account, cur.BackupPlanID); err != nil {
					return err
				}
			}
			for _, due := range dues {
				if err := s.run(ctx, account, cur, r, sels, resources, due, now); err != nil {
					errs = append(errs, err)
					break // the rule's state stays before due: the next pass retries it
				}
				if err := s.saveState(ctx, account, cur.BackupPlanID, r.RuleID, func(st *ruleState) { st.LastEvaluated = due }); err != nil {
					errs = append(errs, err)
					break
				}
			}
		}
	}
	return errors.Join(errs...)
}

// dueRuns returns the rule's run times not yet handled, up to now: at most
// maxCatchUp, the newest. A rule seen for the first time starts at its
// plan version's creation, so a new plan does not run for the past.
func (s *Scheduler) dueRuns(ctx context.Context, account string, pv *PlanVersion, r Rule, now time.Time) ([]time.Time, error) {
	st, err := s.loadState(ctx, account, pv.BackupPlanID, r.RuleID)
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = &ruleState{LastEvaluated: pv.CreationDate, Anchor: pv.CreationDate}
		if err := s.saveState(ctx, account, pv.BackupPlanID, r.RuleID, func(x *ruleState) { *x = *st }); err != nil {
			return nil, err
		}
	}
	sched, err := schedule.Parse(r.ScheduleExpression)
	if err != nil {
		return nil, err
	}
	sched = sched.Anchor(st.Anchor)
	loc, err := time.LoadLocation(r.ScheduleExpressionTimezone)
	if err != nil {
		loc = time.UTC
	}
	var dues []time.Time
	skipped := 0
	for from := st.LastEvaluated; ; {
		chunk := sched.Between(from, now, loc, maxScan)
		dues = append(dues, chunk...)
		if n := len(dues) - s.maxCatchUp; n > 0 {
			skipped += n
			dues = dues[n:]
		}
		if len(chunk) < maxScan {
			break
		}
		from = chunk[len(chunk)-1]
	}
	if skipped > 0 {
		s.log.Warn("backup runs missed beyond the catch-up bound, not recorded", "plan", pv.BackupPlanID, "rule", r.RuleName, "skipped", skipped)
	}
	return dues, nil
}

func (s *Scheduler) loadState(ctx context.Context, account, planID, ruleID string) (*ruleState, error) {
	var st *ruleState
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		x := &ruleState{}
		found, err := getJSON(tx, spaceRuleState, key(account, planID, ruleID), x)
		if found {
			st = x
		}
		return err
	})
	return st, err
}

func (s *Scheduler) saveState(ctx context.Context, account, planID, ruleID string, fn func(*ruleState)) error {
	return s.cat.update(ctx, func(tx meta.Tx) error {
		st := &ruleState{}
		if _, err := getJSON(tx, spaceRuleState, key(account, planID, ruleID), st); err != nil {
			return err
		}
		fn(st)
		return putJSON(tx, spaceRuleState, key(account, planID, ruleID), st)
	})
}

// resources lists the account's resources of the region, of every
// provider, with their tags: the resources a selection may assign.
func (s *Scheduler) resources(ctx context.Context, account string) ([]*Resource, error) {
	return s.jobs.ListResources(ctx, account)
}

// run handles one scheduled time of a rule: a job per assigned resource,
// or an EXPIRED record per resource when the start window has passed.
func (s *Scheduler) run(ctx context.Context, account string, pv *PlanVersion, r Rule, sels []*StoredSelection, resources []*Resource, due, now time.Time) error {
	startBy := due.Add(time.Duration(deref(r.StartWindowMinutes, defaultStartWindow)) * time.Minute)
	completeBy := due.Add(time.Duration(deref(r.CompletionWindowMinutes, defaultCompleteWindow)) * time.Minute)
	var errs []error
	for _, res := range resources {
		sel := SelectionFor(sels, res)
		if sel == nil {
			continue
		}
		role := sel.Selection.IamRoleArn
		in := StartBackupJobInput{
			VaultName: r.TargetBackupVaultName, ResourceARN: res.ARN, IAMRoleARN: role,
			IdempotencyToken: pv.BackupPlanID + "/" + r.RuleID + "/" + due.UTC().Format(time.RFC3339) + "/" + res.ARN,
			Lifecycle:        r.Lifecycle,
			CreatedBy: &CreatedBy{BackupPlanId: pv.BackupPlanID, BackupPlanArn: pv.BackupPlanARN,
				BackupPlanVersion: pv.VersionID, BackupRuleId: r.RuleID},
			CopyActions: r.CopyActions, RecoveryPointTags: r.RecoveryPointTags,
			Continuous: r.EnableContinuousBackup != nil && *r.EnableContinuousBackup,
		}
		sr := ScheduledRun{BackupPlanID: pv.BackupPlanID, RuleID: r.RuleID, RuleName: r.RuleName, ScheduledAt: due.UTC(), CompleteBy: completeBy.UTC(), ResourceARN: res.ARN}
		var j *BackupJob
		var err error
		if now.After(startBy) {
			j, err = s.jobs.RecordExpired(ctx, account, in, due.UTC(), startBy.UTC(), msgStartWindow)
		} else {
			j, err = s.jobs.startScheduled(ctx, account, in)
		}
		var be *Error
		if errors.As(err, &be) {
			// The caller's mistake (a vault deleted since): retrying will not
			// mend it, and the rule must go on to its next runs.
			s.log.Warn("scheduled backup not started", "plan", pv.BackupPlanID, "rule", r.RuleName, "scheduled_at", due.UTC(), "resource", res.ARN, "err", err)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("plan %s rule %s at %s, %s: %w", pv.BackupPlanID, r.RuleName, due.UTC().Format(time.RFC3339), res.ARN, err))
			continue
		}
		sr.JobID = j.JobID
		if err := s.cat.update(ctx, func(tx meta.Tx) error { return putJSON(tx, spaceRuns, key(account, j.JobID), sr) }); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func deref(p *int64, def int64) int64 {
	if p == nil {
		return def
	}
	return *p
}

// jobByToken returns the account's job started with token, of any age.
// StartBackupJob honours a token for an hour only; a scheduled run must
// never start twice, however late the pass that repeats it.
func (s *Service) jobByToken(ctx context.Context, account, token string) (*BackupJob, error) {
	jobs, err := s.ListBackupJobs(ctx, account, JobFilter{})
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if j.IdempotencyToken == token {
			return j, nil
		}
	}
	return nil, nil
}

// startScheduled starts a job for a scheduled run unless its token already
// has one.
func (s *Service) startScheduled(ctx context.Context, account string, in StartBackupJobInput) (*BackupJob, error) {
	if j, err := s.jobByToken(ctx, account, in.IdempotencyToken); err != nil || j != nil {
		return j, err
	}
	return s.StartBackupJob(ctx, account, in)
}

// RecordExpired records a scheduled backup that never ran: a job in state
// EXPIRED, created at the scheduled time and ended when its window closed.
// A second call with the same token returns the first record.
func (s *Service) RecordExpired(ctx context.Context, account string, in StartBackupJobInput, scheduled, ended time.Time, message string) (*BackupJob, error) {
	p, err := s.providers.Lookup(in.ResourceARN)
	if err != nil {
		return nil, err
	}
	v, err := s.cat.DescribeVault(ctx, account, in.VaultName)
	if err != nil {
		return nil, err
	}
	s.startMu.Lock()
	defer s.startMu.Unlock()
	if in.IdempotencyToken != "" {
		if j, err := s.jobByToken(ctx, account, in.IdempotencyToken); err != nil || j != nil {
			return j, err
		}
	}
	j := &BackupJob{
		AccountID: account, JobID: strings.ToUpper(newUUID()), VaultName: v.Name, VaultARN: v.ARN,
		ResourceARN: in.ResourceARN, ResourceType: p.Type(), IAMRoleARN: in.IAMRoleARN, IdempotencyToken: in.IdempotencyToken,
		State: JobExpired, StatusMessage: message, CreationDate: scheduled, CompletionDate: &ended, Lifecycle: in.Lifecycle,
	}
	if err := s.saveJob(ctx, j); err != nil {
		return nil, err
	}
	s.observeJob(kindBackup, JobExpired, ended, ended, 0, 0) // it never ran
	return j, nil
}

// checkCompletion finds scheduled jobs still running past their completion
// window and cancels them: each ends ABORTED with AWS's message, without
// its recovery point, and its run is marked overdue.
func (s *Scheduler) checkCompletion(ctx context.Context, now time.Time) error {
	var overdue []ScheduledRun
	var accounts []string
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceRuns)
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			var sr ScheduledRun
			if err := json.Unmarshal(v, &sr); err != nil {
				return err
			}
			if sr.Overdue || !now.After(sr.CompleteBy) {
				continue
			}
			var j BackupJob
			a, _, _ := strings.Cut(string(k), "/")
			found, err := getJSON(tx, spaceJobs, key(a, sr.JobID), &j)
			if err != nil {
				return err
			}
			if found && (j.State == JobCreated || j.State == JobRunning) {
				overdue = append(overdue, sr)
				accounts = append(accounts, a)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i, sr := range overdue {
		s.log.Warn("scheduled backup job past its completion window: canceling it", "job", sr.JobID, "plan", sr.BackupPlanID, "rule", sr.RuleName, "complete_by", sr.CompleteBy)
		if err := s.jobs.cancelJob(sr.JobID, errOverdue); err != nil {
			s.log.Warn("cancel overdue backup job", "job", sr.JobID, "err", err)
		}
		sr.Overdue = true
		if err := s.cat.update(ctx, func(tx meta.Tx) error { return putJSON(tx, spaceRuns, key(accounts[i], sr.JobID), sr) }); err != nil {
			return err
		}
	}
	return nil
}

// ScheduledRunOf returns what the scheduler recorded of a job: the plan,
// rule and time it ran for; nil for an on-demand job.
func (s *Service) ScheduledRunOf(ctx context.Context, account, jobID string) (*ScheduledRun, error) {
	var out *ScheduledRun
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		sr := &ScheduledRun{}
		found, err := getJSON(tx, spaceRuns, key(account, jobID), sr)
		if found {
			out = sr
		}
		return err
	})
	return out, err
}
