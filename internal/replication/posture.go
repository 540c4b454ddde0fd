package replication

import (
	"context"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// RulePosture is one rule and destination of a bucket as the protection
// audit reads it: the rule's configuration, its live state (Status's) and
// what it has sent.
type RulePosture struct {
	RuleStatus
	// State is the rule's Status in the configuration: Enabled or
	// Disabled; empty for a series whose rule is no longer configured.
	State              string `json:"state,omitempty"`
	DestinationAccount string `json:"destinationAccount,omitempty"`
	// DeleteMarkerReplication says whether deletes without a version ID
	// reach the destination (V1 rules always, V2 rules when enabled).
	DeleteMarkerReplication bool `json:"deleteMarkerReplication"`
	// OldestFailure is when the oldest operation still failed failed;
	// zero when none is.
	OldestFailure time.Time `json:"oldestFailure,omitzero"`
	// Usage is what the rule sent to the destination, durably counted;
	// nil before its first request.
	Usage *RuleUsage `json:"usage,omitempty"`
}

// Posture returns every rule and destination of bucket with its
// configuration, live state, oldest failure and usage.
func (e *Engine) Posture(ctx context.Context, bucket string) ([]RulePosture, error) {
	st, err := e.Status(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("replication posture of %q: %w", bucket, err)
	}
	usage, err := e.Usage(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("replication posture of %q: %w", bucket, err)
	}
	rules := map[series]Rule{}
	b, err := e.store.Bucket(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("replication posture of %q: %w", bucket, err)
	}
	if len(b.Replication) > 0 {
		cfg, err := Decode(b.Replication)
		if err != nil {
			return nil, fmt.Errorf("replication posture of %q: %w", bucket, err)
		}
		for _, r := range cfg.Rules {
			rules[series{bucket, r.ID, r.Destination.BucketName()}] = r
		}
	}
	oldest := e.oldestFailures(bucket)
	out := make([]RulePosture, len(st))
	for i, s := range st {
		k := series{s.Bucket, s.Rule, s.Destination}
		p := RulePosture{RuleStatus: s, OldestFailure: oldest[k]}
		if r, ok := rules[k]; ok {
			p.State, p.DestinationAccount = r.Status, r.Destination.Account
			p.DeleteMarkerReplication = !r.V2() || r.DeleteMarkerReplication != nil && r.DeleteMarkerReplication.Status == Enabled
		}
		for j := range usage {
			if usage[j].Rule == s.Rule && usage[j].Destination == s.Destination {
				p.Usage = &usage[j]
			}
		}
		out[i] = p
	}
	return out, nil
}

// oldestFailures returns, per series of bucket, when its oldest failed
// operation failed.
func (e *Engine) oldestFailures(bucket string) map[series]time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := map[series]time.Time{}
	for _, t := range e.failures {
		if t.Bucket != bucket {
			continue
		}
		s := t.series()
		if o, ok := out[s]; !ok || t.FailedAt.Before(o) {
			out[s] = t.FailedAt
		}
	}
	return out
}

// StoredBytes is what a bucket holds, every version counted, and how much
// of it are replicas of another bucket's versions: what storing a replica
// costs.
type StoredBytes struct {
	Versions        int64 `json:"versions"`
	Bytes           int64 `json:"bytes"`
	ReplicaVersions int64 `json:"replicaVersions"`
	ReplicaBytes    int64 `json:"replicaBytes"`
}

// Stored counts what bucket holds, walking every version.
func (e *Engine) Stored(ctx context.Context, bucket string) (StoredBytes, error) {
	var out StoredBytes
	var cur objectstore.VersionCursor
	for {
		next, more, err := e.store.WalkVersions(ctx, bucket, cur, 1000, func(v *objectstore.Version) error {
			if v.DeleteMarker {
				return nil
			}
			out.Versions++
			out.Bytes += v.Size
			if v.ReplicationStatus == objectstore.StatusReplica {
				out.ReplicaVersions++
				out.ReplicaBytes += v.Size
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("count stored bytes of %q: %w", bucket, err)
		}
		if !more {
			return out, nil
		}
		cur = next
	}
}
