package audit

import (
	"slices"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/replication"
)

// Duration is a length of time that marshals as Go writes it ("1m30s").
type Duration = replication.Duration

// Facts are what one region knows: the resources homed there, and the
// recovery points, restores and copy jobs its vaults and catalog hold
// (of resources homed anywhere). A cost model reads the same facts: the
// replication usage and stored bytes of every bucket, and the size and
// storage class of every recovery point.
type Facts struct {
	Region     string
	GatheredAt time.Time
	Resources  []Resource
	Plans      []Plan
	Points     []RecoveryPoint
	Restores   []Restore
	CopyJobs   []CopyJob
}

// Resource is a bucket of the object store or a registered database or
// directory, with what protects it from its home region's point of view.
type Resource struct {
	ARN     string
	Type    string // S3, RDS, EFS
	Name    string
	Region  string // home region
	Account string
	Tags    map[string]string `json:",omitempty"`
	// Versioning is a bucket's versioning state.
	Versioning  string            `json:",omitempty"`
	Replication []ReplicationRule `json:",omitempty"`
	// Plans are the plan rules whose selections assign the resource.
	Plans []PlanRule `json:",omitempty"`
	// Stored is what a bucket holds, every version counted, replicas of
	// other buckets' versions among it.
	Stored *replication.StoredBytes `json:",omitempty"`
}

// ReplicationRule is one rule and destination of a bucket, configured and
// live.
type ReplicationRule struct {
	Rule                    string
	State                   string // Enabled, Disabled
	DestinationBucket       string
	DestinationRegion       string `json:",omitempty"`
	DestinationAccount      string `json:",omitempty"`
	DeleteMarkerReplication bool
	Reachable               bool
	Unreachable             string `json:",omitempty"`
	PendingOps              int64
	PendingBytes            int64
	OldestPendingAge        Duration
	LagP99                  Duration
	LagSamples              int
	FailedOps               int
	OldestFailure           *time.Time `json:",omitempty"`
	Failures                []Failure  `json:",omitempty"`
	// Requests and Bytes are what the rule sent since UsageSince, the
	// durable counts replication is billed by.
	Requests   int64
	Bytes      int64
	UsageSince *time.Time `json:",omitempty"`
}

// Failure groups a rule's failed operations by cause.
type Failure struct {
	Code   string
	Count  int
	Reason string
	Last   time.Time
}

// PlanRule is a backup plan rule that assigns a resource.
type PlanRule struct {
	PlanARN                 string
	PlanName                string
	RuleID                  string
	RuleName                string
	Selection               string
	Schedule                string
	Timezone                string `json:",omitempty"`
	StartWindowMinutes      int64
	CompletionWindowMinutes int64
	TargetVaultARN          string
	DeleteAfterDays         *int64 `json:",omitempty"`
	MoveToColdAfterDays     *int64 `json:",omitempty"`
	Continuous              bool
	CopyTo                  []CopyTarget `json:",omitempty"`
	// PlanCreated is when the plan version took effect: a plan makes no
	// backup for before it.
	PlanCreated time.Time
}

// CopyTarget is a copy action of a rule.
type CopyTarget struct {
	VaultARN        string
	Region          string
	Account         string
	DeleteAfterDays *int64 `json:",omitempty"`
}

// Plan is a live backup plan and how many resources it selects.
type Plan struct {
	ARN      string
	Name     string
	Account  string
	Region   string
	Selected int
}

// RecoveryPoint is a recovery point in one of the region's vaults.
type RecoveryPoint struct {
	ARN               string
	ResourceARN       string
	ResourceType      string
	VaultARN          string
	Region            string
	Account           string // the vault's
	Created           time.Time
	Completed         *time.Time `json:",omitempty"`
	Status            string
	BackupSizeInBytes int64
	BytesNew          int64
	StorageClass      string     `json:",omitempty"`
	DeleteAfterDays   *int64     `json:",omitempty"`
	MoveToColdAt      *time.Time `json:",omitempty"`
	DeleteAt          *time.Time `json:",omitempty"`
	Continuous        bool
	WindowStart       *time.Time `json:",omitempty"`
	WindowEnd         *time.Time `json:",omitempty"`
	// VaultLock is the vault's lock: "", GOVERNANCE or COMPLIANCE (from
	// VaultLockDate on, nobody can remove it).
	VaultLock             string     `json:",omitempty"`
	VaultMinRetentionDays *int64     `json:",omitempty"`
	VaultLockDate         *time.Time `json:",omitempty"`
	// CopyOf names the point this one is a copy of.
	CopyOf      string `json:",omitempty"`
	CopyOfVault string `json:",omitempty"`
	PlanARN     string `json:",omitempty"`
	RuleID      string `json:",omitempty"`
}

// Restore is a restore job of the region, restore tests included.
type Restore struct {
	JobID              string
	ResourceARN        string // of the point restored; "" when the point is gone
	RecoveryPointARN   string
	Region             string
	Account            string
	Created            time.Time
	Completed          *time.Time `json:",omitempty"`
	Status             string
	ValidationStatus   string `json:",omitempty"`
	ValidationMessage  string `json:",omitempty"`
	Duration           Duration
	TestPlanARN        string `json:",omitempty"`
	CreatedResourceARN string `json:",omitempty"`
}

// CopyJob is a copy of a recovery point made from the region.
type CopyJob struct {
	ResourceARN      string
	SourcePointARN   string
	DestinationVault string
	State            string
	Message          string `json:",omitempty"`
	Created          time.Time
}

// Bucket is what the region's object store and replication engine know of
// one bucket homed there.
type Bucket struct {
	Name       string
	Versioning string
	Rules      []replication.RulePosture
	Stored     replication.StoredBytes
}

// Collect turns what the region's backup service and replication engine
// report into its facts: postures of every account, and the buckets
// homed in the region by name.
func Collect(region string, now time.Time, postures []*backup.Posture, buckets map[string]Bucket) *Facts {
	f := &Facts{Region: region, GatheredAt: now}
	for _, p := range postures {
		collectPosture(f, p, buckets)
	}
	slices.SortFunc(f.Resources, func(a, b Resource) int { return strings.Compare(a.ARN, b.ARN) })
	return f
}

func collectPosture(f *Facts, p *backup.Posture, buckets map[string]Bucket) {
	locks, byName := map[string]*backup.Vault{}, map[string]string{}
	for _, v := range p.Vaults {
		locks[v.ARN], byName[v.Name] = v, v.ARN
	}
	rules := map[string][]PlanRule{}
	for _, pp := range p.Plans {
		f.Plans = append(f.Plans, Plan{ARN: pp.BackupPlanARN, Name: pp.Plan.BackupPlanName, Account: p.Account, Region: f.Region, Selected: len(pp.Assigned)})
		for arn, sel := range pp.Assigned {
			for _, r := range pp.Plan.Rules {
				rules[arn] = append(rules[arn], planRule(pp, r, sel, byName[r.TargetBackupVaultName]))
			}
		}
	}
	for _, res := range p.Resources {
		r := Resource{ARN: res.ARN, Type: res.Type, Name: res.Name, Region: f.Region, Account: res.Account, Tags: res.Tags, Plans: rules[res.ARN]}
		if b, ok := buckets[res.Name]; ok && res.Type == "S3" {
			r.Versioning = b.Versioning
			st := b.Stored
			r.Stored = &st
			for _, rp := range b.Rules {
				r.Replication = append(r.Replication, replicationRule(rp))
			}
		}
		f.Resources = append(f.Resources, r)
	}
	pointRes := map[string]string{}
	for _, pt := range p.Points {
		f.Points = append(f.Points, recoveryPoint(f.Region, pt, locks[pt.VaultARN]))
		pointRes[pt.ARN] = pt.ResourceARN
	}
	for _, j := range p.Restores {
		r := Restore{JobID: j.JobID, ResourceARN: pointRes[j.RecoveryPointARN], RecoveryPointARN: j.RecoveryPointARN, Region: f.Region, Account: p.Account,
			Created: j.CreationDate, Completed: j.CompletionDate, Status: j.Status, ValidationStatus: j.ValidationStatus,
			ValidationMessage: j.ValidationStatusMessage, TestPlanARN: j.RestoreTestingPlanARN, CreatedResourceARN: j.CreatedResourceARN}
		if j.CompletionDate != nil {
			r.Duration = Duration(max(j.CompletionDate.Sub(j.CreationDate), 0))
		}
		f.Restores = append(f.Restores, r)
	}
	for _, j := range p.CopyJobs {
		f.CopyJobs = append(f.CopyJobs, CopyJob{ResourceARN: j.ResourceARN, SourcePointARN: j.SourceRecoveryPointARN,
			DestinationVault: j.DestinationBackupVaultARN, State: j.State, Message: j.StatusMessage, Created: j.CreationDate})
	}
}

func planRule(pp backup.PlanPosture, r backup.Rule, sel, target string) PlanRule {
	pr := PlanRule{PlanARN: pp.BackupPlanARN, PlanName: pp.Plan.BackupPlanName, RuleID: r.RuleID, RuleName: r.RuleName, Selection: sel,
		Schedule: r.ScheduleExpression, Timezone: r.ScheduleExpressionTimezone,
		StartWindowMinutes: deref(r.StartWindowMinutes), CompletionWindowMinutes: deref(r.CompletionWindowMinutes),
		TargetVaultARN: target,
		Continuous:     r.EnableContinuousBackup != nil && *r.EnableContinuousBackup, PlanCreated: pp.CreationDate}
	if r.Lifecycle != nil {
		pr.DeleteAfterDays, pr.MoveToColdAfterDays = r.Lifecycle.DeleteAfterDays, r.Lifecycle.MoveToColdStorageAfterDays
	}
	for _, c := range r.CopyActions {
		ct := CopyTarget{VaultARN: c.DestinationBackupVaultArn}
		ct.Region, ct.Account = arnRegion(c.DestinationBackupVaultArn), arnAccount(c.DestinationBackupVaultArn)
		if c.Lifecycle != nil {
			ct.DeleteAfterDays = c.Lifecycle.DeleteAfterDays
		}
		pr.CopyTo = append(pr.CopyTo, ct)
	}
	return pr
}

func replicationRule(rp replication.RulePosture) ReplicationRule {
	r := ReplicationRule{Rule: rp.Rule, State: rp.State, DestinationBucket: rp.Destination, DestinationRegion: rp.DestinationRegion,
		DestinationAccount: rp.DestinationAccount, DeleteMarkerReplication: rp.DeleteMarkerReplication,
		Reachable: rp.Reachable, Unreachable: rp.Unreachable, PendingOps: rp.PendingOps, PendingBytes: rp.PendingBytes,
		OldestPendingAge: rp.OldestPendingAge, LagP99: rp.LatencyP99, LagSamples: rp.LatencySamples, FailedOps: rp.FailedOps}
	if !rp.OldestFailure.IsZero() {
		t := rp.OldestFailure
		r.OldestFailure = &t
	}
	for _, g := range rp.Failures {
		r.Failures = append(r.Failures, Failure{Code: g.Code, Count: g.Count, Reason: g.Reason, Last: g.Last})
	}
	if rp.Usage != nil {
		since := rp.Usage.Since
		r.Requests, r.Bytes, r.UsageSince = rp.Usage.Requests, rp.Usage.Bytes, &since
	}
	return r
}

func recoveryPoint(region string, p backup.PointPosture, v *backup.Vault) RecoveryPoint {
	rp := RecoveryPoint{ARN: p.ARN, ResourceARN: p.ResourceARN, ResourceType: p.ResourceType, VaultARN: p.VaultARN, Region: region,
		Account: p.AccountID, Created: p.CreationDate, Completed: p.CompletionDate, Status: p.Status,
		BackupSizeInBytes: p.BackupSizeInBytes, BytesNew: p.BytesNew, StorageClass: p.StorageClass,
		Continuous: p.IsContinuous(), CopyOf: p.SourceRecoveryPointARN, CopyOfVault: p.SourceBackupVaultARN}
	if p.Lifecycle != nil {
		rp.DeleteAfterDays = p.Lifecycle.DeleteAfterDays
	}
	if c := p.CalculatedLifecycle; c != nil {
		rp.MoveToColdAt, rp.DeleteAt = c.MoveToColdStorageAt, c.DeleteAt
	}
	if p.CreatedBy != nil {
		rp.PlanARN, rp.RuleID = p.CreatedBy.BackupPlanArn, p.CreatedBy.BackupRuleId
	}
	if len(p.Windows) > 0 {
		start, end := p.Windows[0].Since, p.Windows[len(p.Windows)-1].Until
		rp.WindowStart, rp.WindowEnd = &start, &end
	}
	if v != nil && v.Locked {
		rp.VaultLock, rp.VaultMinRetentionDays = "GOVERNANCE", v.MinRetentionDays
		if v.LockDate != nil {
			rp.VaultLock, rp.VaultLockDate = "COMPLIANCE", v.LockDate
		}
	}
	return rp
}

func deref(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}

// arnRegion and arnAccount read the fourth and fifth fields of an ARN.
func arnRegion(arn string) string  { return arnField(arn, 3) }
func arnAccount(arn string) string { return arnField(arn, 4) }

func arnField(arn string, i int) string {
	f := strings.SplitN(arn, ":", 6)
	if len(f) < 6 {
		return ""
	}
	return f[i]
}

// ForAccount keeps of facts what account may see: its resources, plans,
// restores and copy jobs, and the recovery points of its vaults or of its
// resources (a copy in another account's vault is still its data's).
func ForAccount(facts []*Facts, account string) []*Facts {
	mine := map[string]bool{}
	for _, f := range facts {
		for _, r := range f.Resources {
			if r.Account == account {
				mine[r.ARN] = true
			}
		}
	}
	out := make([]*Facts, 0, len(facts))
	for _, f := range facts {
		g := &Facts{Region: f.Region, GatheredAt: f.GatheredAt}
		g.Resources = keep(f.Resources, func(r Resource) bool { return r.Account == account })
		g.Plans = keep(f.Plans, func(p Plan) bool { return p.Account == account })
		g.Points = keep(f.Points, func(p RecoveryPoint) bool { return p.Account == account || mine[p.ResourceARN] })
		g.Restores = keep(f.Restores, func(r Restore) bool { return r.Account == account })
		g.CopyJobs = keep(f.CopyJobs, func(j CopyJob) bool { return mine[j.ResourceARN] })
		out = append(out, g)
	}
	return out
}

func keep[T any](s []T, ok func(T) bool) []T {
	var out []T
	for _, v := range s {
		if ok(v) {
			out = append(out, v)
		}
	}
	return out
}
