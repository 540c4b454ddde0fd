package backup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
	"github.com/bulwark/bulwark/internal/meta"
)

// RestoreTester is a Provider that restore testing can run: it names a
// scratch target a test restores into, checks what a restore wrote there
// against the point, and deletes the target. A type whose provider is not
// one is not tested (its selections start nothing).
type RestoreTester interface {
	// TestRestoreMetadata returns the restore metadata of a test of the
	// point into a new scratch target, named with id (short, lower-case
	// letters and digits). It wins over a selection's overrides for the
	// keys it sets: a test never writes into a target it did not make.
	TestRestoreMetadata(p *RecoveryPoint, id string) map[string]string
	// ValidateRestore checks the target of a completed restore against
	// the point's items; its error says what differs.
	ValidateRestore(ctx context.Context, run *RestoreRun) error
	// DeleteRestored deletes the scratch target named by a test's
	// CreatedResourceARN; one already gone is no error. It refuses a
	// target that is not a scratch target of the account.
	DeleteRestored(ctx context.Context, account, arn string) error
}

// validateRestoreTest validates a restore test's target as its provider
// does and records the outcome on the job.
func (s *Service) validateRestoreTest(ctx context.Context, p Provider, run *RestoreRun) {
	t, ok := p.(RestoreTester)
	if !ok {
		return
	}
	start := time.Now()
	err := t.ValidateRestore(ctx, run)
	j := run.j
	if err != nil {
		j.ValidationStatus, j.ValidationStatusMessage = ValidationFailed, jobMessage(ctx, err)
		return
	}
	j.ValidationStatus = ValidationSuccessful
	j.ValidationStatusMessage = fmt.Sprintf("Every restored item matches the recovery point (validated in %s).", time.Since(start).Round(time.Millisecond))
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
			maps.Copy(md, tester.TestRestoreMetadata(pt, id))
			var window int64
			if sel.ValidationWindowHours != nil {
				window = *sel.ValidationWindowHours
			}
			_, err = s.jobs.StartRestoreJob(ctx, account, StartRestoreJobInput{
				RecoveryPointARN: pt.ARN, IAMRoleARN: sel.IamRoleArn, Metadata: md,
				IdempotencyToken:      token,
				RestoreTestingPlanARN: p.RestoreTestingPlanArn, ValidationWindowHours: window,
			})
			var be *Error
			if errors.As(err, &be) {
				s.log.Warn("restore test not started", "plan", p.RestoreTestingPlanName, "resource", res.ARN, "point", pt.ARN, "err", err)
				continue
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

// deleteRestoreTests deletes the targets of ended restore tests whose
// validation window has passed, and records the deletion on the job.
func (s *Service) deleteRestoreTests(ctx context.Context, now time.Time) error {
	var due []*RestoreJob
	err := s.cat.view(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceRestoreJobs)
		for k, v := it.Seek(nil); k != nil; k, v = it.Next() {
			j := &RestoreJob{}
			if err := json.Unmarshal(v, j); err != nil {
				return err
			}
			if j.RestoreTestingPlanARN == "" || j.DeletionStatus == DeletionSuccessful || j.CompletionDate == nil || j.CreatedResourceARN == "" {
				continue
			}
			if !now.Before(j.CompletionDate.Add(time.Duration(j.ValidationWindowHours) * time.Hour)) {
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
		prov, err := s.providers.Lookup(j.CreatedResourceARN)
		tester, ok := prov.(RestoreTester)
		if err != nil || !ok {
			continue
		}
		status, msg := DeletionSuccessful, ""
		if err := tester.DeleteRestored(ctx, j.AccountID, j.CreatedResourceARN); err != nil {
			status, msg = DeletionFailed, jobMessage(ctx, err)
			errs = append(errs, fmt.Errorf("delete restore test target %s: %w", j.CreatedResourceARN, err))
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
			return putJSON(tx, spaceRestoreJobs, key(j.AccountID, j.JobID), cur)
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
