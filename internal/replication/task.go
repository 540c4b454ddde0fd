package replication

import (
	"bytes"
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
	// Indexes of the queue, kept in the transactions that write the tasks:
	// a lane pages its tasks in ID order, status finds a series' oldest
	// task, and an outcome finds the other tasks of its version, all
	// without holding one entry per task in memory.
	spaceLanes    = "repl-lanes"    // dest \0 task ID -> 1, a queued task of a lane
	spaceAges     = "repl-ages"     // series | written | task ID -> 1, a queued task by age
	spaceVersions = "repl-versions" // version | task ID -> state ('q' queued, 'f' failed) + dest
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

func decodeTask(k, v []byte) (*Task, error) {
	t := &Task{}
	if err := json.Unmarshal(v, t); err != nil {
		return nil, fmt.Errorf("decode task %x: %w", k, err)
	}
	return t, nil
}

// idOf reads the task ID that ends an index key.
func idOf(k []byte) uint64 {
	if len(k) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(k[len(k)-8:])
}

func laneKey(dest string, id uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(dest+"\x00"), id)
}

// appendField appends a length-prefixed string, so that keys made of
// several strings (object keys may hold any byte) never run together.
func appendField(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func agePrefix(s series) []byte {
	return appendField(appendField(appendField(nil, s.bucket), s.rule), s.dest)
}

func ageKey(t *Task) []byte {
	k := binary.BigEndian.AppendUint64(agePrefix(t.series()), uint64(max(t.Written.UnixNano(), 0)))
	return binary.BigEndian.AppendUint64(k, t.ID)
}

func versionPrefix(v versionRef) []byte {
	return appendField(appendField(appendField(nil, v.bucket), v.key), v.versionID)
}

func versionKey(t *Task) []byte {
	return binary.BigEndian.AppendUint64(versionPrefix(t.version()), t.ID)
}

// States of a task in the version index; a tag update's are in upper
// case, since it does not count in the version's status.
const (
	stateQueued = 'q'
	stateFailed = 'f'
	tagsOffset  = 'a' - 'A'
)

var present = []byte{1}

// queueTx stores a task in the queue with its index entries.
func queueTx(tx meta.Tx, t *Task) error {
	if err := putTask(tx, spaceTasks, t); err != nil {
		return err
	}
	if err := tx.Put(spaceLanes, laneKey(t.Dest, t.ID), present); err != nil {
		return err
	}
	if err := tx.Put(spaceAges, ageKey(t), present); err != nil {
		return err
	}
	return indexVersionTx(tx, t, stateQueued)
}

// dequeueTx removes a task from the queue and its index entries.
func dequeueTx(tx meta.Tx, t *Task) error {
	for _, d := range []struct {
		space string
		key   []byte
	}{{spaceTasks, idKey(t.ID)}, {spaceLanes, laneKey(t.Dest, t.ID)}, {spaceAges, ageKey(t)}, {spaceVersions, versionKey(t)}} {
		if err := tx.Delete(d.space, d.key); err != nil {
			return err
		}
	}
	return nil
}

// failTx keeps a failed task with its reason.
func failTx(tx meta.Tx, t *Task) error {
	if err := putTask(tx, spaceFailed, t); err != nil {
		return err
	}
	return indexVersionTx(tx, t, stateFailed)
}

// unfailTx forgets a failed task.
func unfailTx(tx meta.Tx, t *Task) error {
	if err := tx.Delete(spaceFailed, idKey(t.ID)); err != nil {
		return err
	}
	return tx.Delete(spaceVersions, versionKey(t))
}

// indexVersionTx records a task under its version.
func indexVersionTx(tx meta.Tx, t *Task, state byte) error {
	if t.Op == OpTags {
		state -= tagsOffset
	}
	return tx.Put(spaceVersions, versionKey(t), append([]byte{state}, t.Dest...))
}

// versionStateTx counts the tasks of a version queued and failed, over
// every destination.
func versionStateTx(tx meta.Tx, v versionRef) (open, failed int) {
	prefix := versionPrefix(v)
	it := tx.Iter(spaceVersions)
	for k, val := it.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix) && len(k) == len(prefix)+8; k, val = it.Next() {
		switch {
		case len(val) == 0:
		case val[0] == stateFailed:
			failed++
		case val[0] == stateQueued:
			open++
		}
	}
	return open, failed
}

var cursorKey = []byte("cursor")

func getCursor(tx meta.Tx) uint64 {
	if raw := tx.Get(spaceState, cursorKey); len(raw) == 8 {
		return binary.BigEndian.Uint64(raw)
	}
	return 0
}
