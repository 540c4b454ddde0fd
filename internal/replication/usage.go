package replication

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// spaceUsage counts, per source bucket, rule and destination, the
// replication requests done and the bytes they carried: what replication
// is billed by. The counts are kept in the transaction that records each
// outcome, so a restart neither loses nor repeats them, unlike the
// process's metrics.
const spaceUsage = "repl-usage" // bucket \x00 rule \x00 dest -> RuleUsage JSON

// RuleUsage is what one rule sent to one destination since Since, the
// first request counted.
type RuleUsage struct {
	Bucket      string    `json:"bucket"`
	Rule        string    `json:"rule"`
	Destination string    `json:"destination"`
	Requests    int64     `json:"requests"`
	Bytes       int64     `json:"bytes"`
	Since       time.Time `json:"since"`
}

func usageKey(s series) []byte {
	return []byte(s.bucket + "\x00" + s.rule + "\x00" + s.dest)
}

// countTx adds the requests done to their series' usage.
func countTx(tx meta.Tx, done []*Task, now time.Time) error {
	for _, t := range done {
		k := usageKey(t.series())
		u := RuleUsage{Bucket: t.Bucket, Rule: t.Rule, Destination: t.Dest, Since: now}
		if raw := tx.Get(spaceUsage, k); raw != nil {
			if err := json.Unmarshal(raw, &u); err != nil {
				return fmt.Errorf("decode replication usage of %q: %w", t.Bucket, err)
			}
		}
		u.Requests++
		u.Bytes += t.Size
		raw, err := json.Marshal(u)
		if err != nil {
			return err
		}
		if err := tx.Put(spaceUsage, k, raw); err != nil {
			return err
		}
	}
	return nil
}

// Usage returns the replication requests and bytes counted for bucket's
// rules ("" for every bucket), by rule and destination.
func (e *Engine) Usage(ctx context.Context, bucket string) ([]RuleUsage, error) {
	var out []RuleUsage
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceUsage)
		prefix := ""
		if bucket != "" {
			prefix = bucket + "\x00"
		}
		for k, v := it.Seek([]byte(prefix)); k != nil && strings.HasPrefix(string(k), prefix); k, v = it.Next() {
			var u RuleUsage
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("decode replication usage: %w", err)
			}
			out = append(out, u)
		}
		return nil
	})
	return out, err
}
