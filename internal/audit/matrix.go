package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Status is how well a resource is protected against a threat.
type Status string

const (
	// Protected: a mechanism that counts against the threat is in place
	// and healthy now.
	Protected Status = "PROTECTED"
	// AtRisk: a mechanism is configured but degraded (replication failing
	// or behind, backups missed, copies never made).
	AtRisk Status = "AT_RISK"
	// Unprotected: nothing that counts against the threat is configured.
	Unprotected Status = "UNPROTECTED"
	// Unknown: what would count lives in a region that did not answer.
	Unknown Status = "UNKNOWN"
)

// Input is what an audit is computed from.
type Input struct {
	Now       time.Time
	Facts     []*Facts
	Unreached []Unreached
	Policy    Policy
	// Require, when not nil, replaces the policy's requirement (the
	// command line's --require).
	Require []Threat
	// Account and Resource, when set, keep only that account's resources,
	// or that one resource.
	Account, Resource string
}

// Unreached is a region that did not answer the audit.
type Unreached struct {
	Region string
	Error  string
}

// Report is the audit's answer: a row per resource, a cell per threat.
type Report struct {
	GeneratedAt time.Time
	Policy      Policy
	Regions     []RegionState
	Rows        []Row
	// Flags are the deployment's, not one resource's (a plan that selects
	// nothing).
	Flags []Flag `json:",omitempty"`
	// Verdict sums up the required cells: PROTECTED when every one is,
	// AT_RISK when one is AT_RISK or UNPROTECTED, UNKNOWN when the rest
	// are protected but some could not be seen.
	Verdict Status
	// Facts are what every region that answered reported: what the
	// matrix was computed from, and what a cost model reads.
	Facts []*Facts
}

// RegionState says whether a region answered, and what the audit cannot
// see when it did not.
type RegionState struct {
	Region    string
	Reached   bool
	Error     string `json:",omitempty"`
	CannotSee string `json:",omitempty"`
}

// Row is one resource against every threat.
type Row struct {
	ARN, Type, Name, Region, Account string
	// ReplicaOf lists the buckets whose replication rules write into this
	// one.
	ReplicaOf []string `json:",omitempty"`
	// Required are the threats the resource must survive; RequiredBy
	// says who said so (policy, --require, the tag, a replica's default).
	Required   []Threat
	RequiredBy string
	Cells      []Cell
	Flags      []Flag `json:",omitempty"`
}

// Cell is one resource against one threat.
type Cell struct {
	Threat   Threat
	Status   Status
	Required bool
	// By names what protects (or would protect) the resource: a rule, a
	// plan, a vault, a copy.
	By []string `json:",omitempty"`
	// RPO is the measured recovery point: how much would be lost now.
	RPO *Duration `json:",omitempty"`
	// RTO is the measured recovery time: the last restore's duration for
	// a backup, zero for a replica.
	RTO  *Duration `json:",omitempty"`
	Note string    `json:",omitempty"`
}

// Flag is a reason for false confidence, with a sentence that says it.
type Flag struct {
	Code    string
	Message string
}

// Flag codes.
const (
	FlagReplicationFailed  = "replication-failed"
	FlagReplicationBehind  = "replication-behind"
	FlagReplicationFailing = "replication-failing"
	FlagRuleDisabled       = "replication-rule-disabled"
	FlagSameRegion         = "replication-same-region"
	FlagNoDestination      = "replication-destination-missing"
	FlagPlanSelectsNothing = "plan-selects-nothing"
	FlagCopyNeverCompleted = "copy-never-completed"
	FlagCopyFailed         = "copy-failed"
	FlagShortRetention     = "retention-too-short"
	FlagNeverTested        = "never-restore-tested"
	FlagTestFailed         = "restore-test-failed"
	FlagNoPlan             = "not-in-any-plan"
	FlagMissedBackup       = "missed-backup"
	FlagContinuousBehind   = "continuous-backup-behind"
	FlagNoBackupYet        = "no-recovery-point"
	FlagUnknownResource    = "home-region-unreachable"
)

// Assess computes the matrix. It is a pure function of its input.
func Assess(in Input) (*Report, error) {
	in.Policy = in.Policy.WithDefaults()
	ix := newIndex(in)
	rep := &Report{GeneratedAt: in.Now, Policy: in.Policy, Facts: in.Facts, Regions: regionStates(in)}
	for _, f := range in.Facts {
		for _, p := range f.Plans {
			if p.Selected == 0 && (in.Account == "" || p.Account == in.Account) {
				rep.Flags = append(rep.Flags, Flag{FlagPlanSelectsNothing,
					fmt.Sprintf("Backup plan %s (%s) selects no resource: it backs up nothing.", p.Name, p.ARN)})
			}
		}
	}
	for _, res := range ix.resources() {
		if !in.keeps(res) {
			continue
		}
		row, err := ix.assess(res)
		if err != nil {
			return nil, err
		}
		rep.Rows = append(rep.Rows, row)
	}
	rep.Rows = append(rep.Rows, ix.unseen()...)
	rep.Verdict = verdict(rep.Rows)
	return rep, nil
}

func (in Input) keeps(res *Resource) bool {
	return (in.Account == "" || res.Account == in.Account) && (in.Resource == "" || res.ARN == in.Resource)
}

func regionStates(in Input) []RegionState {
	var out []RegionState
	for _, f := range in.Facts {
		out = append(out, RegionState{Region: f.Region, Reached: true})
	}
	for _, u := range in.Unreached {
		out = append(out, RegionState{Region: u.Region, Error: u.Error, CannotSee: "the live state of the resources homed in " + u.Region +
			", and the replicas and backup copies held there: what depends on them is UNKNOWN"})
	}
	slices.SortFunc(out, func(a, b RegionState) int { return strings.Compare(a.Region, b.Region) })
	return out
}

// verdict sums up the required cells of rows.
func verdict(rows []Row) Status {
	v := Protected
	for _, r := range rows {
		for _, c := range r.Cells {
			switch {
			case !c.Required || c.Status == Protected:
			case c.Status == Unknown:
				if v == Protected {
					v = Unknown
				}
			default:
				v = AtRisk
			}
		}
	}
	return v
}

// cover is one mechanism's answer for one threat.
type cover struct {
	by       string
	status   Status // Protected, AtRisk or Unknown
	rpo, rto *time.Duration
	note     string
}

// cell picks the best cover: a healthy one with the smallest RPO, else
// one that cannot be seen, else a degraded one.
func cell(t Threat, req bool, covers []cover, none string) Cell {
	c := Cell{Threat: t, Status: Unprotected, Required: req, Note: none}
	rank := map[Status]int{Protected: 3, Unknown: 2, AtRisk: 1}
	var best *cover
	for i := range covers {
		cv := &covers[i]
		switch {
		case best == nil, rank[cv.status] > rank[best.status]:
			best = cv
		case rank[cv.status] == rank[best.status] && cv.rpo != nil && (best.rpo == nil || *cv.rpo < *best.rpo):
			best = cv
		}
	}
	if best == nil {
		return c
	}
	c.Status, c.Note = best.status, best.note
	c.RPO, c.RTO = dur(best.rpo), dur(best.rto)
	for _, cv := range covers {
		if cv.status == best.status && !slices.Contains(c.By, cv.by) {
			c.By = append(c.By, cv.by)
		}
	}
	return c
}

func dur(d *time.Duration) *Duration {
	if d == nil {
		return nil
	}
	v := Duration(*d)
	return &v
}

func ptr(d time.Duration) *time.Duration { return &d }
