package replication

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// RuleStatus is the state of one rule and destination of a bucket: what
// `bulwark replication status` prints.
type RuleStatus struct {
	Bucket      string `json:"bucket"`
	Rule        string `json:"rule"`
	Destination string `json:"destination"`
	// DestinationRegion is where the destination bucket lives, when known.
	DestinationRegion string `json:"destinationRegion,omitempty"`
	Reachable         bool   `json:"reachable"`
	// Unreachable says why the destination was last unreachable.
	Unreachable      string         `json:"unreachable,omitempty"`
	PendingOps       int64          `json:"pendingOperations"`
	PendingBytes     int64          `json:"pendingBytes"`
	OldestPendingAge Duration       `json:"oldestPendingAge"`
	LatencyP50       Duration       `json:"latencyP50"`
	LatencyP99       Duration       `json:"latencyP99"`
	LatencySamples   int            `json:"latencySamples"`
	FailedOps        int            `json:"failedOperations"`
	Failures         []FailureGroup `json:"failures,omitempty"`
}

// FailureGroup gathers the failed operations that share an error code.
type FailureGroup struct {
	Code           string    `json:"code"`
	Count          int       `json:"count"`
	Reason         string    `json:"reason"`
	ExampleKey     string    `json:"exampleKey"`
	ExampleVersion string    `json:"exampleVersionId"`
	Last           time.Time `json:"lastFailure"`
}

// Duration marshals as a Go duration string ("1.5s").
type Duration time.Duration

// MarshalText implements encoding.TextMarshaler.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	*d = Duration(v)
	return err
}

// LatencyWindow is how far back status looks for latency percentiles.
const LatencyWindow = 5 * time.Minute

// Status reports every rule and destination of bucket ("" for all buckets)
// that has a configuration or has had work.
func (e *Engine) Status(ctx context.Context, bucket string) ([]RuleStatus, error) {
	now := e.now()
	// The rules configured now, so a rule with nothing queued shows too.
	want := map[series]bool{}
	if bucket != "" {
		b, err := e.store.Bucket(ctx, bucket)
		if err != nil {
			return nil, err
		}
		if len(b.Replication) > 0 {
			cfg, err := Decode(b.Replication)
			if err != nil {
				return nil, err
			}
			for _, r := range cfg.Rules {
				want[series{bucket, r.ID, r.Destination.BucketName()}] = true
			}
		}
	}
	e.mu.Lock()
	for s := range e.stats {
		if bucket == "" || s.bucket == bucket {
			want[s] = true
		}
	}
	e.mu.Unlock()
	if err := e.refreshFailures(ctx); err != nil {
		return nil, err
	}
	oldest, err := e.oldestPending(ctx, slices.Collect(maps.Keys(want)))
	if err != nil {
		return nil, err
	}
	var out []RuleStatus
	e.mu.Lock()
	for s := range want {
		st := e.statLocked(s)
		rs := RuleStatus{Bucket: s.bucket, Rule: s.rule, Destination: s.dest, Reachable: true,
			PendingOps: st.pendingOps, PendingBytes: st.pendingBytes}
		if w, ok := oldest[s]; ok && st.pendingOps > 0 {
			rs.OldestPendingAge = Duration(max(now.Sub(w), 0))
		}
		p50, p99, n := st.percentiles(now.Add(-LatencyWindow))
		rs.LatencyP50, rs.LatencyP99, rs.LatencySamples = Duration(p50), Duration(p99), n
		rs.FailedOps, rs.Failures = e.failureGroupsLocked(s)
		if l := e.lanes[s.dest]; l != nil {
			ok, why, _ := l.reachability()
			rs.Reachable, rs.Unreachable = ok, why
		}
		out = append(out, rs)
	}
	e.mu.Unlock()
	for i := range out {
		if _, region, err := e.cfg.Locate(ctx, out[i].Destination); err == nil {
			out[i].DestinationRegion = region
		} else if !errors.Is(err, objectstore.ErrNoSuchBucket) {
			out[i].Reachable = false
			if out[i].Unreachable == "" {
				out[i].Unreachable = err.Error()
			}
		}
	}
	slices.SortFunc(out, func(a, b RuleStatus) int {
		return strings.Compare(a.Bucket+"\x00"+a.Rule+"\x00"+a.Destination, b.Bucket+"\x00"+b.Rule+"\x00"+b.Destination)
	})
	return out, nil
}
