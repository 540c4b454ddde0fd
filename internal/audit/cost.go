package audit

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"time"
)

// Prices are what protection costs, per unit. The defaults are the
// article's (and AWS's list prices where the article gives none); a user
// replaces them with AWS's current prices or with what their own hardware
// costs per GB-month.
type Prices struct {
	Currency string `json:"currency"`
	// ReplicationPer1000Requests prices replication requests: every
	// version, delete marker and tag set sent to a destination.
	ReplicationPer1000Requests float64 `json:"replicationPer1000Requests"`
	// ReplicaStoragePerGBMonth prices what replica buckets hold, every
	// version of every object, in the destination region.
	ReplicaStoragePerGBMonth float64 `json:"replicaStoragePerGBMonth"`
	// BackupWarmPerGBMonth and BackupColdPerGBMonth price what backup
	// vaults hold for a resource in each tier.
	BackupWarmPerGBMonth float64 `json:"backupWarmPerGBMonth"`
	BackupColdPerGBMonth float64 `json:"backupColdPerGBMonth"`
}

// DefaultPrices are the article's: CRR $0.005 per 1,000 requests plus
// storage in the destination region (S3 Standard's $0.023 per GB-month),
// AWS Backup $0.05 per GB-month warm and $0.01 cold.
var DefaultPrices = Prices{
	Currency:                   "USD",
	ReplicationPer1000Requests: 0.005,
	ReplicaStoragePerGBMonth:   0.023,
	BackupWarmPerGBMonth:       0.05,
	BackupColdPerGBMonth:       0.01,
}

// ReadPrices reads a price table as JSON over base: the prices it leaves
// out keep base's. Unknown keys and negative prices are refused.
func ReadPrices(r io.Reader, base Prices) (Prices, error) {
	p := base
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return Prices{}, fmt.Errorf("read prices: %w", err)
	}
	for name, v := range map[string]float64{
		"replicationPer1000Requests": p.ReplicationPer1000Requests,
		"replicaStoragePerGBMonth":   p.ReplicaStoragePerGBMonth,
		"backupWarmPerGBMonth":       p.BackupWarmPerGBMonth,
		"backupColdPerGBMonth":       p.BackupColdPerGBMonth,
	} {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return Prices{}, fmt.Errorf("read prices: %s is %v; a price is a number of zero or more", name, v)
		}
	}
	return p, nil
}

// GB is the unit storage is priced in: AWS bills a GB-month as 2^30 bytes
// held for a month.
const GB = 1 << 30

// Month is the billing month, 730 hours as AWS prices it.
const Month = 730 * time.Hour

// Usage is what one resource did and holds: the cost model's input, taken
// from the facts every region reports.
type Usage struct {
	ARN  string `json:"resourceArn"`
	Type string `json:"resourceType"`
	// Replicable says whether the resource can be replicated (buckets):
	// replication covers nothing else.
	Replicable bool `json:"replicable"`
	// SourceBytes is what the resource holds now (every version of a
	// bucket), which prices an option not configured.
	SourceBytes int64 `json:"sourceBytes"`
	// Replicated says a replication rule is configured.
	Replicated bool `json:"replicated"`
	// ReplicationRequests were counted since RequestsSince.
	ReplicationRequests int64     `json:"replicationRequests"`
	RequestsSince       time.Time `json:"requestsSince,omitzero"`
	// ReplicaBytes is what the replica buckets hold.
	ReplicaBytes int64 `json:"replicaBytes"`
	// BackedUp says a backup plan selects the resource or it has
	// recovery points.
	BackedUp bool `json:"backedUp"`
	// CrossRegionCopy says its points are copied to another region.
	CrossRegionCopy bool `json:"crossRegionCopy"`
	// WarmBytes and ColdBytes are what the vaults hold for the resource
	// in each tier, after deduplication and compression, in every region.
	WarmBytes int64 `json:"warmBytes"`
	ColdBytes int64 `json:"coldBytes"`
	// LogicalBytes is the sum of the recovery points' sizes: what full
	// copies without deduplication would hold.
	LogicalBytes int64 `json:"logicalBytes"`
}

// Option is one way to protect a resource, as the article's decision
// table weighs them.
type Option string

const (
	OptionConfigured Option = "configured"
	OptionCRROnly    Option = "crr-only"
	OptionBackupOnly Option = "backup-only"
	OptionBoth       Option = "both"
)

// Cost is the monthly cost of one option for one resource.
type Cost struct {
	Option      Option  `json:"option"`
	Available   bool    `json:"available"`
	Replication float64 `json:"replication"`
	Backup      float64 `json:"backup"`
	Total       float64 `json:"total"`
	// Estimated says part of the figure is not measured: the option is not
	// configured, so its storage is priced from the resource's size.
	Estimated bool `json:"estimated,omitempty"`
	// Protects and LeavesOut are the threats the option answers and
	// those it leaves open.
	Protects  []Threat `json:"protects"`
	LeavesOut []Threat `json:"leavesOut"`
	Note      string   `json:"note,omitempty"`
}

// ResourceCost is the cost model's answer for one resource.
type ResourceCost struct {
	Usage Usage `json:"usage"`
	// RequestsPerMonth is the replication request rate measured, in
	// requests per billing month.
	RequestsPerMonth float64 `json:"replicationRequestsPerMonth"`
	Configured       Cost    `json:"configured"`
	// DedupSavedBytes and DedupSaved are what deduplication and
	// compression save against full copies, apart from the cost.
	DedupSavedBytes int64   `json:"dedupSavedBytes"`
	DedupSaved      float64 `json:"dedupSaved"`
	WhatIf          []Cost  `json:"whatIf"`
}

// CostReport prices every resource.
type CostReport struct {
	Prices    Prices         `json:"prices"`
	At        time.Time      `json:"at"`
	Resources []ResourceCost `json:"resources"`
	// Total is the monthly cost of what is configured, for all resources.
	Total float64 `json:"total"`
	// Unreached are the regions that did not answer: what they hold
	// (replicas, copies, resources homed there) is not priced.
	Unreached []Unreached `json:"unreached,omitempty"`
}

// PriceUsage applies prices to what each resource did, at now.
func PriceUsage(usage []Usage, p Prices, now time.Time) *CostReport {
	rep := &CostReport{Prices: p, At: now}
	for _, u := range usage {
		rc := priceOne(u, p, now)
		rep.Total += rc.Configured.Total
		rep.Resources = append(rep.Resources, rc)
	}
	slices.SortFunc(rep.Resources, func(a, b ResourceCost) int {
		switch {
		case a.Usage.ARN < b.Usage.ARN:
			return -1
		case a.Usage.ARN > b.Usage.ARN:
			return 1
		}
		return 0
	})
	return rep
}

func gbMonths(bytes int64) float64 { return float64(bytes) / GB }

func priceOne(u Usage, p Prices, now time.Time) ResourceCost {
	rc := ResourceCost{Usage: u}
	if u.ReplicationRequests > 0 && !u.RequestsSince.IsZero() && now.After(u.RequestsSince) {
		rc.RequestsPerMonth = float64(u.ReplicationRequests) * float64(Month) / float64(now.Sub(u.RequestsSince))
	}
	crr := p.ReplicationPer1000Requests*rc.RequestsPerMonth/1000 + p.ReplicaStoragePerGBMonth*gbMonths(u.ReplicaBytes)
	bk := p.BackupWarmPerGBMonth*gbMonths(u.WarmBytes) + p.BackupColdPerGBMonth*gbMonths(u.ColdBytes)
	if saved := u.LogicalBytes - u.WarmBytes - u.ColdBytes; saved > 0 {
		rc.DedupSavedBytes = saved
		rc.DedupSaved = p.BackupWarmPerGBMonth * gbMonths(saved)
	}

	// An option not configured is priced from the resource's size: one
	// replica of everything, or one full backup (later points add only
	// what changed), twice with a copy in another region.
	crrOnly := Cost{Option: OptionCRROnly, Available: u.Replicable, Replication: crr}
	if u.Replicable && !u.Replicated {
		crrOnly.Replication = p.ReplicaStoragePerGBMonth * gbMonths(u.SourceBytes)
		crrOnly.Estimated = true
		crrOnly.Note = "replica storage priced from the bucket's size; requests at its write rate come on top (no rule counts them yet)"
	}
	backupOnly := Cost{Option: OptionBackupOnly, Available: true, Backup: bk}
	if !u.BackedUp {
		backupOnly.Backup = 2 * p.BackupWarmPerGBMonth * gbMonths(u.SourceBytes)
		backupOnly.Estimated = true
		backupOnly.Note = "one full point warm, and its copy in another region, priced from the resource's size"
	}
	both := Cost{Option: OptionBoth, Available: u.Replicable, Replication: crrOnly.Replication, Backup: backupOnly.Backup,
		Estimated: crrOnly.Estimated || backupOnly.Estimated}
	conf := Cost{Option: OptionConfigured, Available: true}
	if u.Replicated {
		conf.Replication = crr
	}
	if u.BackedUp {
		conf.Backup = bk
	}
	crrOnly.Protects = []Threat{RegionOutage}
	backupOnly.Protects = []Threat{AccidentalDeletion, Corruption}
	if u.CrossRegionCopy || !u.BackedUp {
		backupOnly.Protects = append(backupOnly.Protects, RegionOutage)
	}
	both.Protects = []Threat{RegionOutage, AccidentalDeletion, Corruption}
	conf.Protects = protectsConfigured(u)
	if !u.Replicable {
		crrOnly.Note = "replication covers buckets only"
		both.Note = crrOnly.Note
	}
	rc.Configured = finish(conf)
	rc.WhatIf = []Cost{finish(crrOnly), finish(backupOnly), finish(both)}
	return rc
}

// protectsConfigured names the threats what is configured answers, by the
// article's table; the audit's matrix says how well, measured.
func protectsConfigured(u Usage) []Threat {
	var out []Threat
	if (u.Replicated && u.Replicable) || (u.BackedUp && u.CrossRegionCopy) {
		out = append(out, RegionOutage)
	}
	if u.BackedUp {
		out = append(out, AccidentalDeletion, Corruption)
	}
	return out
}

// finish totals a cost and lists the threats it leaves out. Credential
// loss is never answered by an option alone: it needs a vault lock or
// another account, which the audit checks.
func finish(c Cost) Cost {
	if !c.Available {
		c.Replication, c.Backup, c.Estimated, c.Protects = 0, 0, false, nil
	}
	c.Total = c.Replication + c.Backup
	protects := c.Protects
	c.Protects, c.LeavesOut = []Threat{}, []Threat{}
	for _, t := range Threats {
		if slices.Contains(protects, t) {
			c.Protects = append(c.Protects, t)
		} else {
			c.LeavesOut = append(c.LeavesOut, t)
		}
	}
	return c
}
