package replication

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// Keyspaces of the metadata store the replication engine owns.
const (
	spaceState  = "repl-state"  // "cursor" -> last change-feed sequence dispatched
	spaceTasks  = "repl-tasks"  // task ID -> Task JSON, waiting or being retried
	spaceFailed = "repl-failed" // task ID -> Task JSON, failed for a reason that needs a fix
	spaceJobs   = "repl-jobs"   // job ID -> Job JSON
	spaceRows   = "repl-rows"   // job ID | row number -> report row JSON
)

// Operations of a task, named as the IAM actions they need on the
// destination.
const (
	OpObject = "ReplicateObject" // a new version with its data
	OpDelete = "ReplicateDelete" // a delete marker
	OpTags   = "ReplicateTags"   // a version's tags
)

// Task is one version (or tag set) to send to one destination bucket.
// Tasks are written in the same transaction that advances the engine's
// cursor over the change feed, so a change is never lost between the feed
// and the queue; a task leaves the queue in the transaction that records
// its outcome.
type Task struct {
	ID           uint64 `json:"id"`
	Bucket       string `json:"bucket"`
	Key          string `json:"key"`
	VersionID    string `json:"versionId"`
	Op           string `json:"op"`
	Rule         string `json:"rule"`
	Dest         string `json:"dest"` // destination bucket name
	StorageClass string `json:"storageClass,omitempty"`
	// Role is the IAM role replication acts as; OwnerOverride makes the
	// destination bucket's owner the replica's owner.
	Role          string    `json:"role,omitempty"`
	OwnerOverride bool      `json:"ownerOverride,omitempty"`
	RTC           bool      `json:"rtc,omitempty"` // the rule has Replication Time Control
	Size          int64     `json:"size"`
	Written       time.Time `json:"written"` // when the source change was made
	Attempts      int       `json:"attempts,omitempty"`
	// Reason says why a failed task failed; Code is the error's code.
	Reason   string    `json:"reason,omitempty"`
	Code     string    `json:"code,omitempty"`
	FailedAt time.Time `json:"failedAt,omitzero"`
}

// series identifies the metrics series of a task: source bucket, rule and
// destination bucket.
type series struct{ bucket, rule, dest string }

func (t *Task) series() series { return series{t.Bucket, t.Rule, t.Dest} }

// versionRef names a source version.
type versionRef struct{ bucket, key, versionID string }

func (t *Task) version() versionRef { return versionRef{t.Bucket, t.Key, t.VersionID} }

func idKey(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

func putTask(tx meta.Tx, space string, t *Task) error {
	raw, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode task: %w", err)
	}
	return tx.Put(space, idKey(t.ID), raw)
}

func loadTasks(tx meta.Tx, space string) ([]*Task, error) {
	var out []*Task
	it := tx.Iter(space)
	for k, v := it.First(); k != nil; k, v = it.Next() {
		t := &Task{}
		if err := json.Unmarshal(v, t); err != nil {
			return nil, fmt.Errorf("decode task %x: %w", k, err)
		}
		out = append(out, t)
	}
	return out, nil
}

var cursorKey = []byte("cursor")

func getCursor(tx meta.Tx) uint64 {
	if raw := tx.Get(spaceState, cursorKey); len(raw) == 8 {
		return binary.BigEndian.Uint64(raw)
	}
	return 0
}
