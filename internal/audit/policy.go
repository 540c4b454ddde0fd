package audit

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Policy is what the deployment must survive, and the bounds past which a
// configured mechanism counts as degraded.
type Policy struct {
	// Require lists the threats every resource must be protected against,
	// unless its ProtectTag or the audit's caller says otherwise.
	Require []Threat
	// MaxReplicationDelay is how far behind replication may fall (its
	// lag, its oldest pending operation, its oldest failure) before it is
	// AT_RISK: 15 minutes, S3 Replication Time Control's threshold.
	MaxReplicationDelay Duration
	// MaxContinuousDelay is how far behind now a continuous backup's
	// restorable window may end before it is AT_RISK.
	MaxContinuousDelay Duration
	// MinRetentionDays is the shortest retention a backup rule or copy
	// may keep points for without a flag: a corruption found later than
	// that can no longer be undone.
	MinRetentionDays int64
}

// ProtectTag is the resource tag that overrides the deployment's
// requirement for one resource: a comma-separated list of threats, "all"
// or "none".
const ProtectTag = "bulwark:protect"

// DefaultPolicy requires every resource to survive a region outage and an
// accidental deletion: the question the deployment exists to answer, and
// the mistake far more common than an outage.
func DefaultPolicy() Policy {
	return Policy{
		Require:             []Threat{RegionOutage, AccidentalDeletion},
		MaxReplicationDelay: Duration(15 * time.Minute),
		MaxContinuousDelay:  Duration(time.Hour),
		MinRetentionDays:    7,
	}
}

// WithDefaults fills the zero fields of p from DefaultPolicy; Require nil
// (not empty) takes the default.
func (p Policy) WithDefaults() Policy {
	d := DefaultPolicy()
	if p.Require == nil {
		p.Require = d.Require
	}
	if p.MaxReplicationDelay <= 0 {
		p.MaxReplicationDelay = d.MaxReplicationDelay
	}
	if p.MaxContinuousDelay <= 0 {
		p.MaxContinuousDelay = d.MaxContinuousDelay
	}
	if p.MinRetentionDays <= 0 {
		p.MinRetentionDays = d.MinRetentionDays
	}
	return p
}

// ParseThreats reads a comma-separated list of threats, "all" or "none"
// (an empty, non-nil list).
func ParseThreats(s string) ([]Threat, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "all":
		return slices.Clone(Threats), nil
	case "none":
		return []Threat{}, nil
	}
	out := []Threat{}
	for _, f := range strings.Split(s, ",") {
		t := Threat(strings.TrimSpace(f))
		if !slices.Contains(Threats, t) {
			return nil, fmt.Errorf("parse threats %q: %q is not one of %s, all, none", s, t, joinThreats(Threats))
		}
		if !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out, nil
}

func joinThreats(ts []Threat) string {
	ss := make([]string, len(ts))
	for i, t := range ts {
		ss[i] = string(t)
	}
	return strings.Join(ss, ",")
}

// required decides what one resource must survive and says why: its tag
// wins, then the caller's list, then a replica's exemption (a replica
// destination is the protection, not the thing protected), then the
// policy.
func required(res *Resource, replicaOf []string, caller []Threat, p Policy) ([]Threat, string, error) {
	if v, ok := res.Tags[ProtectTag]; ok {
		ts, err := ParseThreats(v)
		if err != nil {
			return nil, "", fmt.Errorf("tag %s of %s: %w", ProtectTag, res.ARN, err)
		}
		return ts, "tag " + ProtectTag, nil
	}
	if len(replicaOf) > 0 {
		return []Threat{}, "replica destination", nil
	}
	if caller != nil {
		return caller, "--require", nil
	}
	return p.Require, "policy", nil
}
