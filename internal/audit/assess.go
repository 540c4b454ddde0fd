package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup/schedule"
)

// index holds every region's facts by what the matrix looks them up by.
type index struct {
	in        Input
	byARN     map[string]*Resource
	points    map[string][]*RecoveryPoint // by resource ARN, newest first
	restores  map[string][]*Restore       // by resource ARN, newest first
	copies    map[string][]*CopyJob       // by resource ARN
	replicaOf map[string][]string         // destination bucket → source ARNs
	scratch   map[string]bool             // restore tests' targets
	unreached map[string]string
}

func newIndex(in Input) *index {
	ix := &index{in: in, byARN: map[string]*Resource{}, points: map[string][]*RecoveryPoint{}, restores: map[string][]*Restore{},
		copies: map[string][]*CopyJob{}, replicaOf: map[string][]string{}, scratch: map[string]bool{}, unreached: map[string]string{}}
	for _, u := range in.Unreached {
		ix.unreached[u.Region] = u.Error
	}
	for _, f := range in.Facts {
		for i := range f.Resources {
			r := &f.Resources[i]
			ix.byARN[r.ARN] = r
			for _, rule := range r.Replication {
				ix.replicaOf[rule.DestinationBucket] = append(ix.replicaOf[rule.DestinationBucket], r.ARN)
			}
		}
		for i := range f.Points {
			p := &f.Points[i]
			ix.points[p.ResourceARN] = append(ix.points[p.ResourceARN], p)
		}
		for i := range f.Restores {
			j := &f.Restores[i]
			ix.restores[j.ResourceARN] = append(ix.restores[j.ResourceARN], j)
			if j.TestPlanARN != "" && j.CreatedResourceARN != "" {
				ix.scratch[j.CreatedResourceARN] = true
			}
		}
		for i := range f.CopyJobs {
			j := &f.CopyJobs[i]
			ix.copies[j.ResourceARN] = append(ix.copies[j.ResourceARN], j)
		}
	}
	for _, ps := range ix.points {
		slices.SortFunc(ps, func(a, b *RecoveryPoint) int { return b.Created.Compare(a.Created) })
	}
	for _, rs := range ix.restores {
		slices.SortFunc(rs, func(a, b *Restore) int { return b.Created.Compare(a.Created) })
	}
	return ix
}

// resources lists the resources to audit, by ARN: every one a region
// reported, but the scratch targets of restore tests.
func (ix *index) resources() []*Resource {
	var out []*Resource
	for arn, r := range ix.byARN {
		if !ix.scratch[arn] {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *Resource) int { return strings.Compare(a.ARN, b.ARN) })
	return out
}

// unseen makes a row for each resource known only by its recovery points
// while some region did not answer: its home may be that region.
func (ix *index) unseen() []Row {
	if len(ix.unreached) == 0 {
		return nil
	}
	var out []Row
	for arn, ps := range ix.points {
		if ix.byARN[arn] != nil || ix.scratch[arn] || arn == "" || !ix.in.keeps(&Resource{ARN: arn, Account: ps[0].Account}) {
			continue
		}
		row := Row{ARN: arn, Type: ps[0].ResourceType, Account: ps[0].Account, Region: arnRegion(arn), RequiredBy: "unknown",
			Flags: []Flag{{FlagUnknownResource, fmt.Sprintf("%s has recovery points but no region that answered is its home: its home region may be one that did not answer (%s).",
				arn, strings.Join(sortedKeys(ix.unreached), ", "))}}}
		for _, t := range Threats {
			row.Cells = append(row.Cells, Cell{Threat: t, Status: Unknown, Note: "the resource's home region did not answer"})
		}
		out = append(out, row)
	}
	slices.SortFunc(out, func(a, b Row) int { return strings.Compare(a.ARN, b.ARN) })
	return out
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// assess makes the row of one resource.
func (ix *index) assess(res *Resource) (Row, error) {
	replicaOf := ix.replicaOf[res.Name]
	if res.Type != "S3" {
		replicaOf = nil
	}
	req, by, err := required(res, replicaOf, ix.in.Require, ix.in.Policy)
	if err != nil {
		return Row{}, err
	}
	row := Row{ARN: res.ARN, Type: res.Type, Name: res.Name, Region: res.Region, Account: res.Account,
		ReplicaOf: replicaOf, Required: req, RequiredBy: by}
	flags := &row.Flags
	repl := ix.replicationCovers(res, flags)
	bk := ix.backupCovers(res, flags)
	if len(replicaOf) > 0 {
		// A replica destination is the protection, not the thing protected:
		// that no plan backs it up is no news.
		row.Flags = slices.DeleteFunc(row.Flags, func(f Flag) bool { return f.Code == FlagNoPlan })
	}
	for _, t := range Threats {
		var covers []cover
		none := "nothing configured counts against it"
		switch t {
		case RegionOutage:
			covers = append(repl, bk[t]...)
			none = "no replica in another region and no recovery point copied to another region's vault"
		case AccidentalDeletion, Corruption:
			covers = bk[t]
			none = "no recovery point: replication copies deletes and overwrites to the replica, and versioning alone can be undone by whoever may delete versions"
		case CredentialLoss:
			covers = bk[t]
			none = "no recovery point in another account's vault or under a compliance-mode vault lock: the account's credentials can delete every copy"
		}
		row.Cells = append(row.Cells, cell(t, slices.Contains(req, t), covers, none))
	}
	return row, nil
}

// replicationCovers are what the resource's replication rules give
// against a region outage, the only threat replication counts against.
func (ix *index) replicationCovers(res *Resource, flags *[]Flag) []cover {
	now, limit := ix.in.Now, time.Duration(ix.in.Policy.MaxReplicationDelay)
	var out []cover
	for _, r := range res.Replication {
		name := fmt.Sprintf("replication rule %s to %s (%s)", r.Rule, r.DestinationBucket, r.DestinationRegion)
		switch {
		case r.State == "Disabled":
			*flags = append(*flags, Flag{FlagRuleDisabled, fmt.Sprintf("Replication rule %s is disabled: nothing new reaches %s.", r.Rule, r.DestinationBucket)})
			continue
		case r.DestinationRegion == "" && len(ix.unreached) > 0:
			out = append(out, cover{by: name, status: Unknown, note: fmt.Sprintf("the region of %s could not be found: %s did not answer", r.DestinationBucket, strings.Join(sortedKeys(ix.unreached), ", "))})
			continue
		case r.DestinationRegion == "":
			*flags = append(*flags, Flag{FlagNoDestination, fmt.Sprintf("Replication rule %s names %s, which no region holds.", r.Rule, r.DestinationBucket)})
			continue
		case r.DestinationRegion == res.Region:
			*flags = append(*flags, Flag{FlagSameRegion, fmt.Sprintf("Replication rule %s replicates to %s in the same region (%s): the replica goes down with the source.", r.Rule, r.DestinationBucket, res.Region)})
			continue
		case ix.unreached[r.DestinationRegion] != "":
			out = append(out, cover{by: name, status: Unknown, note: fmt.Sprintf("%s did not answer: the replica there cannot be seen", r.DestinationRegion)})
			continue
		}
		rpo := max(time.Duration(r.LagP99), time.Duration(r.OldestPendingAge))
		cv := cover{by: name, status: Protected, rpo: &rpo, rto: ptr(0),
			note: "the replica is readable at once; RTO counts no failover of clients, and objects older than the rule are not replicated unless a batch job copied them"}
		if r.FailedOps > 0 && r.OldestFailure != nil {
			age := now.Sub(*r.OldestFailure)
			reason := failureReason(r)
			if age >= limit {
				cv.status = AtRisk
				cv.rpo = ptr(max(rpo, age))
				cv.note = fmt.Sprintf("replication FAILED for %s: %s", age.Round(time.Second), reason)
				*flags = append(*flags, Flag{FlagReplicationFailed, fmt.Sprintf("Replication rule %s to %s has failed for %s (%d operations): %s",
					r.Rule, r.DestinationBucket, age.Round(time.Second), r.FailedOps, reason)})
			} else {
				*flags = append(*flags, Flag{FlagReplicationFailing, fmt.Sprintf("Replication rule %s to %s is failing since %s ago (%d operations): %s",
					r.Rule, r.DestinationBucket, age.Round(time.Second), r.FailedOps, reason)})
			}
		}
		if cv.status == Protected && rpo >= limit {
			cv.status = AtRisk
			cv.note = fmt.Sprintf("replication is %s behind, more than %s", rpo.Round(time.Second), limit)
			*flags = append(*flags, Flag{FlagReplicationBehind, fmt.Sprintf("Replication rule %s to %s is %s behind (%d operations, %d bytes pending; threshold %s).",
				r.Rule, r.DestinationBucket, rpo.Round(time.Second), r.PendingOps, r.PendingBytes, limit)})
		}
		out = append(out, cv)
	}
	return out
}

func failureReason(r ReplicationRule) string {
	var parts []string
	for _, f := range r.Failures {
		parts = append(parts, fmt.Sprintf("%s (%d): %s", f.Code, f.Count, f.Reason))
	}
	if len(parts) == 0 {
		return "no reason recorded"
	}
	return strings.Join(parts, "; ")
}

// scheduleMissed returns the newest time a plan rule was due to back the
// resource up, with its windows over, with no point of the rule since;
// zero when none was missed.
func scheduleMissed(r PlanRule, newest, now time.Time) time.Time {
	sched, err := schedule.Parse(r.Schedule)
	if err != nil {
		return time.Time{}
	}
	sched = sched.Anchor(r.PlanCreated)
	loc, err := time.LoadLocation(r.Timezone)
	if err != nil {
		loc = time.UTC
	}
	from := newest
	if r.PlanCreated.After(from) {
		from = r.PlanCreated
	}
	to := now.Add(-time.Duration(r.StartWindowMinutes+r.CompletionWindowMinutes) * time.Minute)
	dues := sched.Between(from, to, loc, 10000)
	if len(dues) == 0 {
		return time.Time{}
	}
	return dues[len(dues)-1]
}
