package backup

import (
	"context"
	"fmt"
)

// Posture is what the region's backup catalog knows of an account's
// protection, for the protection audit: the resources of every provider,
// the plans and what their selections assign, the vaults and their locks,
// the recovery points (with the restorable windows of continuous ones),
// and the restore and copy jobs. It is read, never changed.
type Posture struct {
	Account   string
	Resources []*Resource
	Plans     []PlanPosture
	Vaults    []*Vault
	Points    []PointPosture
	Restores  []*RestoreJob
	CopyJobs  []*CopyJob
}

// PlanPosture is a live plan's current version and the resources of the
// region its selections assign, as the scheduler assigns them.
type PlanPosture struct {
	*PlanVersion
	// Assigned maps each resource ARN the plan selects to the name of
	// the first selection that assigns it.
	Assigned map[string]string
}

// PointPosture is a recovery point and, when it is continuous, the
// stretches of time it can be restored to.
type PointPosture struct {
	*RecoveryPoint
	Windows []Window `json:",omitempty"`
}

// ListResources lists the account's resources of the region, of every
// provider, with their tags: the resources a selection may assign.
func (s *Service) ListResources(ctx context.Context, account string) ([]*Resource, error) {
	var out []*Resource
	for _, p := range s.providers.Providers() {
		rs, err := p.List(ctx, account)
		if err != nil {
			return nil, fmt.Errorf("list %s resources: %w", p.Type(), err)
		}
		out = append(out, rs...)
	}
	return out, nil
}

// SelectionFor returns the first of sels that assigns res, nil when none
// does: the one rule by which plans pick resources, for the scheduler and
// the audit alike.
func SelectionFor(sels []*StoredSelection, res *Resource) *StoredSelection {
	for _, sel := range sels {
		if sel.Selection.Matches(res.ARN, res.Tags) {
			return sel
		}
	}
	return nil
}

// Posture reads the account's protection state in the region.
func (s *Service) Posture(ctx context.Context, account string) (*Posture, error) {
	out := &Posture{Account: account}
	var err error
	if out.Resources, err = s.ListResources(ctx, account); err != nil {
		return nil, fmt.Errorf("posture of %q: %w", account, err)
	}
	plans, err := s.cat.ListPlans(ctx, account, false)
	if err != nil {
		return nil, fmt.Errorf("posture of %q: list plans: %w", account, err)
	}
	for _, pv := range plans {
		sels, err := s.cat.ListSelections(ctx, account, pv.BackupPlanID)
		if err != nil {
			return nil, fmt.Errorf("posture of %q: selections of %s: %w", account, pv.BackupPlanID, err)
		}
		pp := PlanPosture{PlanVersion: pv, Assigned: map[string]string{}}
		for _, res := range out.Resources {
			if sel := SelectionFor(sels, res); sel != nil {
				pp.Assigned[res.ARN] = sel.Selection.SelectionName
			}
		}
		out.Plans = append(out.Plans, pp)
	}
	if out.Vaults, err = s.cat.ListVaults(ctx, account); err != nil {
		return nil, fmt.Errorf("posture of %q: list vaults: %w", account, err)
	}
	points, err := s.ListRecoveryPoints(ctx, account, "", "")
	if err != nil {
		return nil, fmt.Errorf("posture of %q: list recovery points: %w", account, err)
	}
	for _, p := range points {
		pp := PointPosture{RecoveryPoint: p}
		if p.IsContinuous() {
			if pp.Windows, err = s.RestorableWindows(ctx, p); err != nil {
				return nil, fmt.Errorf("posture of %q: windows of %s: %w", account, p.ARN, err)
			}
		}
		out.Points = append(out.Points, pp)
	}
	if out.Restores, err = s.ListRestoreJobs(ctx, account, JobFilter{}); err != nil {
		return nil, fmt.Errorf("posture of %q: list restore jobs: %w", account, err)
	}
	if out.CopyJobs, err = s.ListCopyJobs(ctx, account, CopyJobFilter{}); err != nil {
		return nil, fmt.Errorf("posture of %q: list copy jobs: %w", account, err)
	}
	return out, nil
}

// PostureAccounts lists the accounts the region's backup catalog holds
// anything of: plans, vaults or recovery points.
func (s *Service) PostureAccounts(ctx context.Context) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for _, space := range []string{spacePlans, spaceVaults, spacePoints} {
		as, err := s.cat.accountsIn(ctx, space)
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			if !seen[a] {
				seen[a] = true
				out = append(out, a)
			}
		}
	}
	return out, nil
}
