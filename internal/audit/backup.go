package audit

import (
	"fmt"
	"maps"
	"slices"
	"time"
)

// restorable says whether a point can be restored now.
func restorable(p *RecoveryPoint) bool {
	return p.Status == "COMPLETED" || p.Status == "PARTIAL" || p.Continuous && p.WindowEnd != nil
}

// instant is the newest state of the resource a point restores.
func (p *RecoveryPoint) instant() time.Time {
	if p.Continuous && p.WindowEnd != nil {
		return *p.WindowEnd
	}
	return p.Created
}

// counts says whether a point counts against a threat for res.
func counts(t Threat, p *RecoveryPoint, res *Resource, now time.Time) bool {
	switch t {
	case AccidentalDeletion, Corruption:
		return true
	case RegionOutage:
		return p.Region != res.Region
	case CredentialLoss:
		return p.Account != res.Account || compliant(p, now)
	}
	return false
}

// compliant says whether a compliance-mode vault lock, past its grace
// time, holds the point: then no credential can delete it early.
func compliant(p *RecoveryPoint, now time.Time) bool {
	return p.VaultLock == "COMPLIANCE" && p.VaultLockDate != nil && !p.VaultLockDate.After(now)
}

// backupCovers are what the resource's recovery points give against each
// threat, and the flags its plans, copies and restore tests raise.
func (ix *index) backupCovers(res *Resource, flags *[]Flag) map[Threat][]cover {
	now := ix.in.Now
	points := ix.points[res.ARN]
	stale := ix.planFlags(res, points, flags)
	ix.testFlags(res, points, flags)
	out := map[Threat][]cover{}
	seen := map[string]bool{}
	behind := false
	for _, p := range points { // newest first
		if !restorable(p) {
			continue
		}
		at := p.instant()
		rpo := now.Sub(at)
		cv := cover{status: Protected, rpo: &rpo, by: pointName(p)}
		rto, how := ix.rto(res, p.Region)
		cv.rto, cv.note = rto, fmt.Sprintf("restore from %s (state of %s); %s", p.ARN, at.UTC().Format(time.RFC3339), how)
		switch {
		case p.Continuous && rpo > time.Duration(ix.in.Policy.MaxContinuousDelay):
			cv.status = AtRisk
			cv.note = fmt.Sprintf("continuous backup's window ends %s ago", rpo.Round(time.Second))
			if !behind {
				behind = true
				*flags = append(*flags, Flag{FlagContinuousBehind, fmt.Sprintf("Continuous backup %s can restore no later than %s ago (threshold %s).",
					p.ARN, rpo.Round(time.Second), time.Duration(ix.in.Policy.MaxContinuousDelay))})
			}
		case !p.Continuous && at.Before(stale):
			cv.status = AtRisk
			cv.note = fmt.Sprintf("backups were missed: the newest point is from %s, one was due at %s", at.UTC().Format(time.RFC3339), stale.UTC().Format(time.RFC3339))
		}
		for _, t := range Threats {
			if k := string(t) + "\x00" + p.VaultARN; counts(t, p, res, now) && !seen[k] {
				seen[k] = true
				out[t] = append(out[t], cv)
			}
		}
	}
	ix.copyCovers(res, points, out, flags)
	return out
}

func pointName(p *RecoveryPoint) string {
	what := "backup"
	switch {
	case p.Continuous:
		what = "continuous backup"
	case p.CopyOf != "":
		what = "copy"
	}
	s := fmt.Sprintf("%s in %s", what, p.VaultARN)
	if p.VaultLock != "" {
		s += " (vault lock " + p.VaultLock + ")"
	}
	return s
}

// rto is the duration of the resource's newest successful restore,
// preferably one made in region, and a sentence saying which it was.
func (ix *index) rto(res *Resource, region string) (*time.Duration, string) {
	var pick *Restore
	for _, j := range ix.restores[res.ARN] { // newest first
		if j.Status != "COMPLETED" || j.ValidationStatus == "FAILED" {
			continue
		}
		if pick == nil || j.Region == region && pick.Region != region {
			pick = j
		}
	}
	if pick == nil {
		return nil, "RTO unknown: no restore of the resource ever completed"
	}
	what := "restore job"
	if pick.TestPlanARN != "" {
		what = "restore test"
	}
	d := time.Duration(pick.Duration)
	return &d, fmt.Sprintf("RTO measured by the %s %s in %s of %s", what, pick.JobID, pick.Region, pick.Created.UTC().Format(time.RFC3339))
}

// planFlags flags what the resource's plans promise and do not keep, and
// returns the newest time a backup was due and not made (zero when none
// was missed).
func (ix *index) planFlags(res *Resource, points []*RecoveryPoint, flags *[]Flag) time.Time {
	now, minDays := ix.in.Now, ix.in.Policy.MinRetentionDays
	if len(res.Plans) == 0 {
		*flags = append(*flags, Flag{FlagNoPlan, fmt.Sprintf("%s is selected by no backup plan: it is backed up only when someone remembers to.", res.Name)})
	}
	var stale time.Time
	for _, pr := range res.Plans {
		if pr.DeleteAfterDays != nil && *pr.DeleteAfterDays < minDays {
			*flags = append(*flags, Flag{FlagShortRetention, fmt.Sprintf("Plan %s rule %s keeps recovery points %d days, less than the %d required: damage found later cannot be undone.",
				pr.PlanName, pr.RuleName, *pr.DeleteAfterDays, minDays)})
		}
		for _, ct := range pr.CopyTo {
			if ct.DeleteAfterDays != nil && *ct.DeleteAfterDays < minDays {
				*flags = append(*flags, Flag{FlagShortRetention, fmt.Sprintf("Plan %s rule %s keeps copies in %s %d days, less than the %d required.",
					pr.PlanName, pr.RuleName, ct.VaultARN, *ct.DeleteAfterDays, minDays)})
			}
		}
		if pr.Continuous {
			continue
		}
		var newest time.Time
		for _, p := range points {
			if p.PlanARN == pr.PlanARN && p.RuleID == pr.RuleID && p.CopyOf == "" && restorable(p) && p.Created.After(newest) {
				newest = p.Created
			}
		}
		if due := scheduleMissed(pr, newest, now); !due.IsZero() {
			last := "never"
			if !newest.IsZero() {
				last = newest.UTC().Format(time.RFC3339)
			}
			*flags = append(*flags, Flag{FlagMissedBackup, fmt.Sprintf("Plan %s rule %s (%s) was due to back %s up at %s; its newest recovery point is from %s.",
				pr.PlanName, pr.RuleName, pr.Schedule, res.Name, due.UTC().Format(time.RFC3339), last)})
			if due.After(stale) {
				stale = due
			}
		}
	}
	return stale
}

// testFlags flags a resource with backups that was never restore-tested,
// or whose last test failed.
func (ix *index) testFlags(res *Resource, points []*RecoveryPoint, flags *[]Flag) {
	if len(points) == 0 {
		return
	}
	for _, j := range ix.restores[res.ARN] { // newest first
		if j.TestPlanARN == "" || j.Status == "PENDING" || j.Status == "RUNNING" {
			continue
		}
		if j.Status != "COMPLETED" || j.ValidationStatus == "FAILED" {
			msg := j.ValidationMessage
			if msg == "" {
				msg = j.Status
			}
			*flags = append(*flags, Flag{FlagTestFailed, fmt.Sprintf("The last restore test of %s (%s, %s) failed: %s",
				res.Name, j.JobID, j.Created.UTC().Format(time.RFC3339), msg)})
		}
		return
	}
	*flags = append(*flags, Flag{FlagNeverTested, fmt.Sprintf("%s has recovery points but was never restore-tested: a backup never restored is an assumption.", res.Name)})
}

// copyCovers adds, for the copy actions of the resource's plans that have
// no copy yet, a degraded cover (the copy never completed) or one that
// cannot be seen (its region did not answer), and flags failed copy jobs.
func (ix *index) copyCovers(res *Resource, points []*RecoveryPoint, out map[Threat][]cover, flags *[]Flag) {
	have := map[string]bool{}
	backedUp := false
	for _, p := range points {
		if restorable(p) {
			have[p.VaultARN] = true
			backedUp = backedUp || p.CopyOf == ""
		}
	}
	for _, pr := range res.Plans {
		for _, ct := range pr.CopyTo {
			if have[ct.VaultARN] || !backedUp {
				continue
			}
			cv := cover{by: "copy to " + ct.VaultARN, status: AtRisk, note: "the plan copies to " + ct.VaultARN + " but no copy ever completed"}
			if ix.unreached[ct.Region] != "" {
				cv.status, cv.note = Unknown, ct.Region+" did not answer: the copies there cannot be seen"
			} else {
				*flags = append(*flags, Flag{FlagCopyNeverCompleted, fmt.Sprintf("Plan %s rule %s copies %s to %s, but no copy is there.",
					pr.PlanName, pr.RuleName, res.Name, ct.VaultARN)})
			}
			if ct.Region != res.Region {
				out[RegionOutage] = append(out[RegionOutage], cv)
			}
			if ct.Account != res.Account {
				out[CredentialLoss] = append(out[CredentialLoss], cv)
			}
		}
	}
	newest := map[string]*CopyJob{}
	for _, j := range ix.copies[res.ARN] {
		if n := newest[j.DestinationVault]; n == nil || j.Created.After(n.Created) {
			newest[j.DestinationVault] = j
		}
	}
	for _, dest := range slices.Sorted(maps.Keys(newest)) {
		if j := newest[dest]; j.State == "FAILED" {
			*flags = append(*flags, Flag{FlagCopyFailed, fmt.Sprintf("The last copy of %s to %s failed (%s): %s",
				res.Name, dest, j.Created.UTC().Format(time.RFC3339), j.Message)})
		}
	}
}
