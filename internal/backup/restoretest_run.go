package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/backup/vault"
	"github.com/bulwark/bulwark/internal/meta"
)

// RestoreTester is a Provider that restore testing can run: it names a
// scratch target a test restores into, checks what a restore wrote there
// against the point, runs the selection's own check on it, and deletes
// the target. A type whose provider is not one is not tested (its
// selections start nothing).
type RestoreTester interface {
	// TestRestoreMetadata returns the restore metadata of a test of the
	// point into a new scratch target, named with id (short, lower-case
	// letters and digits). It wins over a selection's overrides for the
	// keys it sets: a test never writes into a target it did not make.
	TestRestoreMetadata(p *RecoveryPoint, id string) map[string]string
	// ValidateRestore checks the target of a completed restore against
	// the point's items, then runs check: its Query in the restored
	// database (a provider without one refuses a Query), its Command with
	// RunValidationCommand and the target's location in its environment.
	// It returns what it checked, in a sentence; its error says what
	// differs or what the check answered.
	ValidateRestore(ctx context.Context, run *RestoreRun, check RestoreCheck) (string, error)
	// DeleteRestored deletes a test's scratch target; one already gone is
	// no error. It refuses a target that is not a scratch target of its
	// own.
	DeleteRestored(ctx context.Context, t RestoreTestTarget) error
}

// Keys of a restore testing selection's RestoreMetadataOverrides that are
// the selection's own check of each restore, not restore metadata: they
// are taken out before the provider sees the metadata.
const (
	// MetaValidationQuery is SQL run in a restored database: it must run
	// without error and, if it returns a row, the first column of the
	// first row must not be false, 0, NULL or empty.
	MetaValidationQuery = "ValidationQuery"
	// MetaValidationCommand is a shell command run on the server with the
	// scratch target's location in its environment; it must exit 0. Only
	// the deployment's admin account's tests run one.
	MetaValidationCommand = "ValidationCommand"
	// MetaValidationDatabase is the database of a PostgreSQL server a
	// ValidationQuery runs in; postgres when absent.
	MetaValidationDatabase = "ValidationDatabase"
)

// RestoreCheck is a selection's own check of its restore tests.
type RestoreCheck struct {
	Query    string `json:",omitempty"`
	Database string `json:",omitempty"`
	Command  string `json:",omitempty"`
}

// RestoreTestTarget is a restore test's scratch target, as its job
// recorded it.
type RestoreTestTarget struct {
	Account string
	// ARN is the job's CreatedResourceArn.
	ARN string
	// Metadata is the job's restore metadata (secrets left out), which
	// holds the provider's TestRestoreMetadata.
	Metadata map[string]string
}

// splitRestoreCheck takes the check out of restore metadata.
func splitRestoreCheck(md map[string]string) *RestoreCheck {
	c := &RestoreCheck{Query: md[MetaValidationQuery], Database: md[MetaValidationDatabase], Command: md[MetaValidationCommand]}
	delete(md, MetaValidationQuery)
	delete(md, MetaValidationDatabase)
	delete(md, MetaValidationCommand)
	if *c == (RestoreCheck{}) {
		return nil
	}
	return c
}

// MayRunValidationCommand reports whether the restore tests of account
// may run a ValidationCommand: a command on the server is the deployment
// admin's, as host paths are without --resource-root.
func (s *Service) MayRunValidationCommand(account string) bool {
	return s.admin != nil && account != "" && account == s.admin()
}

type restoreTestKey struct{}

// withRestoreTest marks the context of a restore test's start, so that a
// provider's CheckRestore lets its own scratch target through the path
// policy (IsRestoreTest); no request can set it.
func withRestoreTest(ctx context.Context) context.Context {
	return context.WithValue(ctx, restoreTestKey{}, true)
}

// IsRestoreTest reports whether ctx is that of a restore test's start:
// its target is the provider's own scratch target, which a provider may
// let through the host path policy (Resources.CheckPath) when it is one.
func IsRestoreTest(ctx context.Context) bool {
	v, _ := ctx.Value(restoreTestKey{}).(bool)
	return v
}

// validationCommandTimeout bounds a ValidationCommand.
const validationCommandTimeout = 30 * time.Minute

// RunValidationCommand runs a selection's ValidationCommand for a restore
// test, as the hooks are run (HookShell -c, its own process group), with
// BULWARK_RESTORE_JOB_ID, BULWARK_RESTORE_ARN (the created resource),
// BULWARK_RECOVERY_POINT_ARN and env (the target's location) added to the
// server's environment. A command that exits non-zero fails the
// validation with the end of its output, standard output and error.
func RunValidationCommand(ctx context.Context, run *RestoreRun, command string, env ...string) error {
	if strings.TrimSpace(command) == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, validationCommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, HookShell, "-c", command)
	cmd.Env = append(append(os.Environ(), "BULWARK_RESTORE_JOB_ID="+run.j.JobID, "BULWARK_RESTORE_ARN="+run.j.CreatedResourceARN,
		"BULWARK_RECOVERY_POINT_ARN="+run.Point.ARN), env...)
	out := &tailWriter{max: hookTail}
	cmd.Stdout, cmd.Stderr = out, out
	setProcessGroup(cmd)
	cmd.WaitDelay = hookKillGrace
	err := cmd.Run()
	if err == nil || errors.Is(err, exec.ErrWaitDelay) {
		return nil
	}
	why := err.Error()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		why = exit.ProcessState.String()
	}
	if ctx.Err() != nil {
		why = "timed out after " + validationCommandTimeout.String()
	}
	msg := fmt.Sprintf("%s failed (%s)", MetaValidationCommand, why)
	if t := out.String(); t != "" {
		msg += ": " + t
	}
	return errorf(ErrInvalidRequest, "%s", msg)
}

// CheckValidationQuery judges the rows a ValidationQuery returned: none,
// or a first column of the first row that is not false, 0, NULL or empty.
func CheckValidationQuery(rows [][]string) error {
	if len(rows) == 0 || len(rows[0]) == 0 {
		return nil
	}
	switch v := strings.TrimSpace(rows[0][0]); strings.ToLower(v) {
	case "", "0", "f", "false", "null", "no", "off":
		return errorf(ErrInvalidRequest, "%s returned %q.", MetaValidationQuery, v)
	}
	return nil
}

// validateRestoreTest validates a restore test's target as its provider
// does and records the outcome on the job, with how long the restore
// (took) and the validation took.
func (s *Service) validateRestoreTest(ctx context.Context, p Provider, run *RestoreRun, took time.Duration) {
	t, ok := p.(RestoreTester)
	if !ok {
		return
	}
	j := run.j
	var check RestoreCheck
	if j.RestoreTestCheck != nil {
		check = *j.RestoreTestCheck
	}
	start := time.Now()
	var what string
	var err error
	if check.Command != "" && !s.MayRunValidationCommand(j.AccountID) {
		err = errorf(ErrInvalidRequest, "%s runs on the server and is open to the deployment's admin account only.", MetaValidationCommand)
	} else {
		what, err = t.ValidateRestore(ctx, run, check)
	}
	times := fmt.Sprintf("Restored in %s, validated in %s", round(took), round(time.Since(start)))
	if err != nil {
		j.ValidationStatus, j.ValidationStatusMessage = ValidationFailed, times+": "+jobMessage(ctx, err)
		return
	}
	for _, c := range []struct{ name, v string }{{MetaValidationQuery, check.Query}, {MetaValidationCommand, check.Command}} {
		if c.v != "" {
			what += " " + c.name + " passed."
		}
	}
	j.ValidationStatus = ValidationSuccessful
	j.ValidationStatusMessage = times + ": " + what
}

func round(d time.Duration) time.Duration { return d.Round(time.Millisecond) }

// restoreTestVault is the handle a restore test reads its point through:
// one that reads the vault's storage, never its cache. A test is there to
// prove that the stored backup restores, and kopia's content cache serves
// the data it read before without reading the packs again, so a pack
// damaged since would pass through the vault's own handle unseen.
func restoreTestVault(ctx context.Context, v *vault.Vault) (*vault.Vault, error) {
	stored, err := v.OpenStored(ctx)
	if err != nil {
		return nil, fmt.Errorf("restore test: %w", err)
	}
	return stored, nil
}

// failRestoreTest records a restore test that could not start (its
// restore was refused) as a FAILED restore job of the plan, saying why: a
// test nobody sees failing would be taken for one that passed. The job
// has no created resource, so nothing is deleted after it. A pass
// repeated after a crash records it once (the job's idempotency token).
func (s *Service) failRestoreTest(ctx context.Context, account string, pt *RecoveryPoint, resourceType string, in StartRestoreJobInput, cause error) error {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	now := s.cat.clock()
	jobs, err := s.ListRestoreJobs(ctx, account, JobFilter{})
	if err != nil {
		return err
	}
	if prev, _ := reuse(jobs, in.IdempotencyToken, now, func(j *RestoreJob) (string, time.Time) { return j.IdempotencyToken, j.CreationDate },
		func(*RestoreJob) bool { return true }); prev != nil {
		return nil
	}
	j := &RestoreJob{
		AccountID: account, JobID: strings.ToUpper(newUUID()), RecoveryPointARN: pt.ARN, VaultName: pt.VaultName,
		ResourceType: resourceType, IAMRoleARN: in.IAMRoleARN, IdempotencyToken: in.IdempotencyToken, Metadata: withoutSecrets(in.Metadata),
		Status: RestoreFailed, StatusMessage: "The restore test did not start: " + jobMessage(ctx, cause),
		CreationDate: now, CompletionDate: &now, BackupSizeInBytes: pt.BackupSizeInBytes,
		RestoreTestingPlanARN: in.RestoreTestingPlanARN, ValidationWindowHours: in.ValidationWindowHours, RestoreTestCheck: in.RestoreTestCheck,
	}
	s.observeJob(kindRestore, j.Status, now, now, 0, 0)
	return s.saveRestore(ctx, j)
}

// restoreTestState keys a plan's schedule state in the scheduler's rule
// state, by the plan's ARN (a plan made again under its name starts
// afresh).
const restoreTestState = "restore-test"

// runRestoreTests starts the restore tests whose time has come. Only the
// newest due time of a plan runs, and only within its start window: a test
// of the past is not worth restoring after a downtime.
func (s *Scheduler) runRestoreTests(ctx context.Context, now time.Time) error {
	accounts, err := s.cat.accountsIn(ctx, spaceRTPlans)
	if err != nil {
		return err
	}
	var errs []error
	for _, account := range accounts {
		plans, err := s.cat.ListRestoreTestingPlans(ctx, account)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, p := range plans {
			due, ok, err := s.restoreTestDue(ctx, account, p, now)
			if err != nil || !ok {
				errs = append(errs, err)
				continue
			}
			if now.Before(due.Add(time.Duration(p.StartWindowHours) * time.Hour)) {
				if err := s.startRestoreTests(ctx, account, p, due); err != nil {
					errs = append(errs, err)
					continue // the state stays before due: the next pass retries
				}
			}
			if err := s.saveState(ctx, account, p.RestoreTestingPlanArn, restoreTestState, func(st *ruleState) { st.LastEvaluated = due }); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// restoreTestDue returns the newest due time of a plan not yet handled.
func (s *Scheduler) restoreTestDue(ctx context.Context, account string, p *RestoreTestingPlan, now time.Time) (time.Time, bool, error) {
	st, err := s.loadState(ctx, account, p.RestoreTestingPlanArn, restoreTestState)
	if err != nil {
		return time.Time{}, false, err
	}
	if st == nil {
		st = &ruleState{LastEvaluated: p.CreationTime, Anchor: p.CreationTime}
		if err := s.saveState(ctx, account, p.RestoreTestingPlanArn, restoreTestState, func(x *ruleState) { *x = *st }); err != nil {
			return time.Time{}, false, err
		}
	}
	sched, err := schedule.Parse(p.ScheduleExpression)
	if err != nil {
		return time.Time{}, false, err
	}
	loc, err := time.LoadLocation(p.ScheduleExpressionTimezone)
	if err != nil {
		loc = time.UTC
	}
	var last time.Time
	for from := st.LastEvaluated; ; {
		chunk := sched.Anchor(st.Anchor).Between(from, now, loc, maxScan)
		if len(chunk) > 0 {
			last = chunk[len(chunk)-1]
		}
		if len(chunk) < maxScan {
			break
		}
		from = last
	}
	return last, !last.IsZero(), nil
}

// startRestoreTests starts, for each selection of the plan, a restore test
// of each resource it takes that has a point the plan's recovery point
// selection chooses.
func (s *Scheduler) startRestoreTests(ctx context.Context, account string, p *RestoreTestingPlan, due time.Time) error {
	sels, err := s.cat.ListRestoreTestingSelections(ctx, account, p.RestoreTestingPlanName)
	if err != nil || len(sels) == 0 {
		return err
	}
	var errs []error
	for _, sel := range sels {
		prov, ok := s.jobs.providers.ByType(sel.ProtectedResourceType)
		tester, testable := prov.(RestoreTester)
		if !ok || !testable {
			s.log.Warn("restore testing selection of a type without restore tests", "plan", p.RestoreTestingPlanName, "selection", sel.RestoreTestingSelectionName, "type", sel.ProtectedResourceType)
			continue
		}
		resources, err := prov.List(ctx, account)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %s resources: %w", prov.Type(), err))
			continue
		}
		for _, res := range resources {
			if !sel.Matches(res.ARN, res.Tags) {
				continue
			}
			points, err := s.jobs.ListRecoveryPoints(ctx, account, "", res.ARN)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			token := p.RestoreTestingPlanArn + "/" + due.UTC().Format(time.RFC3339) + "/" + res.ARN
			// The draw is seeded by the run, so that a pass repeated after a
			// crash chooses the point the first chose, and its job is found
			// by its token.
			h := fnv.New64a()
			h.Write([]byte(token))
			pt := p.RecoveryPointSelection.ChoosePoint(points, due, rand.New(rand.NewPCG(h.Sum64(), 0)).IntN)
			if pt == nil {
				continue
			}
			id := strings.ToLower(strings.ReplaceAll(newUUID(), "-", ""))[:8]
			md := maps.Clone(sel.RestoreMetadataOverrides)
			if md == nil {
				md = map[string]string{}
			}
			check := splitRestoreCheck(md)
			maps.Copy(md, tester.TestRestoreMetadata(pt, id))
			var window int64
			if sel.ValidationWindowHours != nil {
				window = *sel.ValidationWindowHours
			}
			in := StartRestoreJobInput{
				RecoveryPointARN: pt.ARN, IAMRoleARN: sel.IamRoleArn, Metadata: md,
				IdempotencyToken:      token,
				RestoreTestingPlanARN: p.RestoreTestingPlanArn, ValidationWindowHours: window, RestoreTestCheck: check,
			}
			_, err = s.jobs.StartRestoreJob(withRestoreTest(ctx), account, in)
			var be *Error
			if errors.As(err, &be) {
				s.log.Warn("restore test not started", "plan", p.RestoreTestingPlanName, "resource", res.ARN, "point", pt.ARN, "err", err)
				err = s.jobs.failRestoreTest(ctx, account, pt, prov.Type(), in, err)
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	return s.cat.update(ctx, func(tx meta.Tx) error {
		cur, err := getRTPlan(tx, account, p.RestoreTestingPlanName)
		if err != nil || cur.RestoreTestingPlanArn != p.RestoreTestingPlanArn {
			return nil // deleted meanwhile
		}
		at := due.UTC()
		cur.LastExecutionTime = &at
		return putJSON(tx, spaceRTPlans, key(account, cur.RestoreTestingPlanName), cur)
	})
}

// spaceRTTargets indexes the scratch targets of ended restore tests not
// yet deleted, with the time each is due for deletion: the deletion pass
// reads them, not every restore job. An entry is written in the
// transaction that writes its job (putRestoreJob).
const spaceRTTargets = "backup-restore-test-targets" // account/jobID → pendingTarget

// rtTargetsIndexed marks, in spaceRTTargets, that the restore jobs of an
// earlier version, written without the index, have been indexed.
var rtTargetsIndexed = []byte("\x00indexed")

// pendingTarget is an entry of spaceRTTargets.
type pendingTarget struct {
	Due time.Time
}

// putRestoreJob writes a restore job, and keeps its entry in the index of
// pending scratch targets: a restore test's target is pending from the
// end of its job until it is deleted, due when the job's validation
// window has passed since its end, or earlier when a final validation
// result moved the due time (PutRestoreValidationResult).
func putRestoreJob(tx meta.Tx, j *RestoreJob) error {
	if err := putJSON(tx, spaceRestoreJobs, key(j.AccountID, j.JobID), j); err != nil {
		return err
	}
	if j.RestoreTestingPlanARN == "" || j.CreatedResourceARN == "" || j.CompletionDate == nil {
		return nil
	}
	k := key(j.AccountID, j.JobID)
	if j.DeletionStatus == DeletionSuccessful {
		return tx.Delete(spaceRTTargets, k)
	}
	due := j.CompletionDate.Add(time.Duration(j.ValidationWindowHours) * time.Hour)
	cur := &pendingTarget{}
	if ok, err := getJSON(tx, spaceRTTargets, k, cur); err != nil {
		return err
	} else if ok && cur.Due.Before(due) {
		return nil
	}
	return putJSON(tx, spaceRTTargets, k, &pendingTarget{Due: due})
}

// dueSooner makes a pending target of the job due at the latest at t.
func dueSooner(tx meta.Tx, j *RestoreJob, t time.Time) error {
	k := key(j.AccountID, j.JobID)
	cur := &pendingTarget{}
	ok, err := getJSON(tx, spaceRTTargets, k, cur)
	if err != nil || !ok || !cur.Due.After(t) {
		return err
	}
	return putJSON(tx, spaceRTTargets, k, &pendingTarget{Due: t})
}

// indexRestoreTests indexes, once, the pending targets of restore jobs
// written before the index was.
func (s *Service) indexRestoreTests(ctx context.Context) error {
	return s.cat.update(ctx, func(tx meta.Tx) error {
		if tx.Get(spaceRTTargets, rtTargetsIndexed) != nil {
			return nil
		}
		it := tx.Iter(spaceRestoreJobs)
		var jobs []*RestoreJob
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			j := &RestoreJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if j.RestoreTestingPlanARN != "" {
				jobs = append(jobs, j)
			}
		}
		for _, j := range jobs {
			if err := putRestoreJob(tx, j); err != nil {
				return err
			}
		}
		return tx.Put(spaceRTTargets, rtTargetsIndexed, []byte{1})
	})
}

// deleteRestoreTests deletes the scratch targets of ended restore tests
// that are due (their validation window has passed, or a final validation
// result came), and records the deletion on the job.
func (s *Service) deleteRestoreTests(ctx context.Context, now time.Time) error {
	if err := s.indexRestoreTests(ctx); err != nil {
		return err
	}
	var due []*RestoreJob
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceRTTargets)
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			pt := &pendingTarget{}
			if bytes.Equal(k, rtTargetsIndexed) {
				continue
			}
			if err := json.Unmarshal(v, pt); err != nil {
				return err
			}
			if now.Before(pt.Due) {
				continue
			}
			j := &RestoreJob{}
			if ok, err := getJSON(tx, spaceRestoreJobs, k, j); err != nil {
				return err
			} else if ok {
				due = append(due, j)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	var errs []error
	for _, j := range due {
		if err := s.deleteRestoreTest(ctx, j); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// deleteRestoreTest deletes one test's scratch target and records the
// outcome: a target that is not deleted stays pending, retried at the
// next pass.
func (s *Service) deleteRestoreTest(ctx context.Context, j *RestoreJob) error {
	prov, err := s.providers.Lookup(j.CreatedResourceARN)
	tester, ok := prov.(RestoreTester)
	if err != nil || !ok {
		return nil
	}
	status, msg := DeletionSuccessful, ""
	var derr error
	if err := tester.DeleteRestored(ctx, RestoreTestTarget{Account: j.AccountID, ARN: j.CreatedResourceARN, Metadata: j.Metadata}); err != nil {
		status, msg = DeletionFailed, jobMessage(ctx, err)
		derr = fmt.Errorf("delete restore test target %s: %w", j.CreatedResourceARN, err)
	}
	err = s.cat.update(ctx, func(tx meta.Tx) error {
		cur := &RestoreJob{}
		if ok, err := getJSON(tx, spaceRestoreJobs, key(j.AccountID, j.JobID), cur); err != nil || !ok {
			return err
		}
		if cur.Status == RestoreCompleted && (cur.ValidationStatus == "" || cur.ValidationStatus == ValidationValidating) {
			cur.ValidationStatus = ValidationTimedOut
		}
		cur.DeletionStatus, cur.DeletionStatusMessage = status, msg
		return putRestoreJob(tx, cur)
	})
	return errors.Join(derr, err)
}
