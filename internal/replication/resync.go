package replication

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// Which versions a batch replication job takes, by their replication
// status.
const (
	ResyncNone   = "NONE"   // never replicated: existing objects
	ResyncFailed = "FAILED" // replication failed
	ResyncAll    = "ALL"    // everything but replicas
)

// States of a job.
const (
	JobCounting  = "COUNTING"
	JobRunning   = "RUNNING"
	JobCompleted = "COMPLETED"
	JobFailed    = "FAILED"
)

// ErrInvalidJob is a batch job request that cannot run.
var ErrInvalidJob = errors.New("invalid replication job")

// ErrNoSuchJob is a job ID that names no job.
var ErrNoSuchJob = errors.New("no such replication job")

// ResyncRequest asks for a batch replication job.
type ResyncRequest struct {
	Bucket string `json:"bucket"`
	Status string `json:"status,omitempty"` // NONE (default), FAILED or ALL
	Prefix string `json:"prefix,omitempty"`
	// ReportBucket, when set, receives the completion report (CSV:
	// bucket, key, version, outcome, reason) under ReportPrefix; it must be
	// a bucket of this region.
	ReportBucket string `json:"reportBucket,omitempty"`
	ReportPrefix string `json:"reportPrefix,omitempty"`
}

// Job is a batch replication job: it walks a bucket's versions, replicates
// what the rules select, and checkpoints as it goes so a restart resumes it.
type Job struct {
	ID string `json:"id"`
	ResyncRequest
	State     string                    `json:"state"`
	Error     string                    `json:"error,omitempty"`
	Cursor    objectstore.VersionCursor `json:"cursor"`
	Counted   objectstore.VersionCursor `json:"counted"`
	Total     int64                     `json:"totalObjects"`
	TotalSize int64                     `json:"totalBytes"`
	Done      int64                     `json:"doneObjects"`
	DoneSize  int64                     `json:"doneBytes"`
	// Outcomes of the versions done.
	Replicated int64     `json:"replicated"`
	Failed     int64     `json:"failed"`
	Skipped    int64     `json:"skipped"`
	Rows       int64     `json:"reportRows"`
	ReportKey  string    `json:"reportKey,omitempty"`
	Created    time.Time `json:"created"`
	Started    time.Time `json:"started,omitzero"`
	Updated    time.Time `json:"updated"`
	Finished   time.Time `json:"finished,omitzero"`
	// Progress, computed when the job is read.
	RateObjects float64  `json:"objectsPerSecond"`
	RateBytes   float64  `json:"bytesPerSecond"`
	ETA         Duration `json:"eta"`
}

// ReportRow is one line of a job's completion report.
type ReportRow struct {
	Bucket    string `json:"bucket"`
	Key       string `json:"key"`
	VersionID string `json:"versionId"`
	Outcome   string `json:"outcome"` // REPLICATED, FAILED or SKIPPED
	Reason    string `json:"reason,omitempty"`
}

type jobRun struct{ cancel context.CancelFunc }

const (
	jobBatch       = 64
	jobConcurrency = 8
	jobAttempts    = 8
)

// StartResync creates a batch replication job and starts it.
func (e *Engine) StartResync(ctx context.Context, req ResyncRequest) (*Job, error) {
	if req.Status == "" {
		req.Status = ResyncNone
	}
	switch req.Status {
	case ResyncNone, ResyncFailed, ResyncAll:
	default:
		return nil, fmt.Errorf("%w: status %q is not NONE, FAILED or ALL", ErrInvalidJob, req.Status)
	}
	b, err := e.store.Bucket(ctx, req.Bucket)
	if err != nil {
		return nil, err
	}
	if len(b.Replication) == 0 {
		return nil, fmt.Errorf("%w: bucket %s has no replication configuration", ErrInvalidJob, req.Bucket)
	}
	if req.ReportBucket != "" {
		if _, err := e.store.Bucket(ctx, req.ReportBucket); err != nil {
			return nil, fmt.Errorf("%w: report bucket %s: %v (it must be a bucket of this region)", ErrInvalidJob, req.ReportBucket, err)
		}
	}
	var id [8]byte
	_, _ = rand.Read(id[:])
	now := e.now().UTC()
	j := &Job{ID: hex.EncodeToString(id[:]), ResyncRequest: req, State: JobCounting, Created: now, Updated: now}
	if err := e.meta.Update(ctx, func(tx meta.Tx) error { return putJob(tx, j) }); err != nil {
		return nil, err
	}
	out := *j
	e.runJob(j)
	return &out, nil
}

func putJob(tx meta.Tx, j *Job) error {
	raw, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return tx.Put(spaceJobs, []byte(j.ID), raw)
}

// Jobs lists the batch jobs, oldest first.
func (e *Engine) Jobs(ctx context.Context) ([]*Job, error) {
	var out []*Job
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceJobs)
		for k, v := it.First(); k != nil; k, v = it.Next() {
			j := &Job{}
			if err := json.Unmarshal(v, j); err != nil {
				return fmt.Errorf("decode job %s: %w", k, err)
			}
			out = append(out, e.withProgress(j))
		}
		return nil
	})
	slices.SortFunc(out, func(a, b *Job) int { return a.Created.Compare(b.Created) })
	return out, err
}

// Job returns one job with its progress.
func (e *Engine) Job(ctx context.Context, id string) (*Job, error) {
	var j *Job
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		raw := tx.Get(spaceJobs, []byte(id))
		if raw == nil {
			return fmt.Errorf("%w: %s", ErrNoSuchJob, id)
		}
		j = &Job{}
		return json.Unmarshal(raw, j)
	})
	if err != nil {
		return nil, err
	}
	return e.withProgress(j), nil
}

func (e *Engine) withProgress(j *Job) *Job {
	if j.Started.IsZero() || j.Done == 0 {
		return j
	}
	end := e.now()
	if !j.Finished.IsZero() {
		end = j.Finished
	}
	secs := end.Sub(j.Started).Seconds()
	if secs <= 0 {
		return j
	}
	j.RateObjects, j.RateBytes = float64(j.Done)/secs, float64(j.DoneSize)/secs
	if j.State == JobRunning && j.RateObjects > 0 {
		j.ETA = Duration(time.Duration(float64(j.Total-j.Done) / j.RateObjects * float64(time.Second)))
	}
	return j
}

// resumeJobs restarts the jobs a previous run left unfinished.
func (e *Engine) resumeJobs(ctx context.Context) error {
	jobs, err := e.Jobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.State == JobCounting || j.State == JobRunning {
			e.log.Info("resuming replication job", "job", j.ID, "bucket", j.Bucket, "done", j.Done, "total", j.Total)
			e.runJob(j)
		}
	}
	return nil
}

func (e *Engine) runJob(j *Job) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.jobs[j.ID]; e.runCtx == nil || ok {
		return
	}
	// The job stops with the engine and resumes at the next Start.
	ctx, cancel := context.WithCancel(e.runCtx)
	e.jobs[j.ID] = &jobRun{cancel: cancel}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		defer cancel()
		if err := e.executeJob(ctx, j); err != nil && ctx.Err() == nil {
			e.log.Error("replication job", "job", j.ID, "err", err)
			j.State, j.Error, j.Finished = JobFailed, err.Error(), e.now().UTC()
			_ = e.meta.Update(context.Background(), func(tx meta.Tx) error { return putJob(tx, j) })
		}
		e.mu.Lock()
		delete(e.jobs, j.ID)
		e.mu.Unlock()
	}()
}

// selection is what a job does with one version.
func (e *Engine) selection(j *Job, cfg *Config, v *objectstore.Version) []Rule {
	if v.ReplicationStatus == objectstore.StatusReplica || len(v.Key) < len(j.Prefix) || v.Key[:len(j.Prefix)] != j.Prefix {
		return nil
	}
	switch j.Status {
	case ResyncNone:
		if v.ReplicationStatus != "" {
			return nil
		}
	case ResyncFailed:
		if v.ReplicationStatus != objectstore.StatusFailed {
			return nil
		}
	}
	if v.DeleteMarker {
		var rules []Rule
		for _, r := range SelectRules(cfg, v.Key, nil) {
			if ReplicatesDeleteMarkers(r) {
				rules = append(rules, r)
			}
		}
		return rules
	}
	return SelectRules(cfg, v.Key, v.Tags)
}

func (e *Engine) jobConfig(ctx context.Context, bucket string) (*Config, error) {
	b, err := e.store.Bucket(ctx, bucket)
	if err != nil {
		return nil, err
	}
	if len(b.Replication) == 0 {
		return nil, fmt.Errorf("bucket %s has no replication configuration any more", bucket)
	}
	return Decode(b.Replication)
}

func (e *Engine) executeJob(ctx context.Context, j *Job) error {
	cfg, err := e.jobConfig(ctx, j.Bucket)
	if err != nil {
		return err
	}
	if j.State == JobCounting {
		// Count first, so progress has a total; checkpointed too.
		for more := true; more; {
			j.Counted, more, err = e.store.WalkVersions(ctx, j.Bucket, j.Counted, 1000, func(v *objectstore.Version) error {
				if len(e.selection(j, cfg, v)) > 0 {
					j.Total++
					j.TotalSize += v.Size
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !more {
				j.State, j.Started = JobRunning, e.now().UTC()
			}
			j.Updated = e.now().UTC()
			if err := e.meta.Update(ctx, func(tx meta.Tx) error { return putJob(tx, j) }); err != nil {
				return err
			}
		}
	}
	for more := true; more; {
		var batch []*objectstore.Version
		var next objectstore.VersionCursor
		next, more, err = e.store.WalkVersions(ctx, j.Bucket, j.Cursor, jobBatch, func(v *objectstore.Version) error {
			batch = append(batch, v)
			return nil
		})
		if err != nil {
			return err
		}
		rows := e.runBatch(ctx, j, cfg, batch)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		j.Cursor, j.Updated = next, e.now().UTC()
		if err := e.checkpoint(ctx, j, rows); err != nil {
			return err
		}
	}
	return e.finishJob(ctx, j)
}

type jobOutcome struct {
	v      *objectstore.Version
	row    ReportRow
	status string
	dests  []string // destinations now replicated
	sent   []*Task  // the requests that succeeded, to be counted
}

// runBatch replicates one batch of versions, a few at a time.
func (e *Engine) runBatch(ctx context.Context, j *Job, cfg *Config, batch []*objectstore.Version) []jobOutcome {
	out := make([]jobOutcome, len(batch))
	sem := make(chan struct{}, jobConcurrency)
	var wg sync.WaitGroup
	for i, v := range batch {
		rules := e.selection(j, cfg, v)
		if len(rules) == 0 {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = e.replicateVersion(ctx, v, cfg.Role, rules)
		}()
	}
	wg.Wait()
	return out
}

// replicateVersion sends one version to every destination its rules name,
// retrying transient failures a few times.
func (e *Engine) replicateVersion(ctx context.Context, v *objectstore.Version, role string, rules []Rule) jobOutcome {
	o := jobOutcome{v: v, row: ReportRow{Bucket: v.Bucket, Key: v.Key, VersionID: v.VersionID, Outcome: "REPLICATED"}, status: objectstore.StatusCompleted}
	if v.VersionID == "null" {
		o.row.Outcome, o.row.Reason, o.status = "SKIPPED", "null version: written before versioning was enabled, it has no version ID a replica could keep", ""
		return o
	}
	op := OpObject
	if v.DeleteMarker {
		op = OpDelete
	}
	var reasons []string
	for _, r := range rules {
		t := &Task{Bucket: v.Bucket, Key: v.Key, VersionID: v.VersionID, Op: op, Rule: r.ID, Role: role,
			OwnerOverride: r.Destination.AccessControlTranslation != nil,
			Dest:          r.Destination.BucketName(), StorageClass: r.Destination.StorageClass, Size: sizeOf(op, v)}
		var res result
		backoff := e.cfg.RetryMin
		for attempt := 1; ; attempt++ {
			res = e.send(ctx, t, e.limiter(t.Dest))
			if !res.transient || attempt == jobAttempts || ctx.Err() != nil {
				break
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
		switch {
		case res.skipped:
			o.row.Outcome, o.row.Reason, o.status = "SKIPPED", res.reason, ""
			return o
		case res.code != "":
			reasons = append(reasons, t.Dest+": "+res.reason)
		default:
			o.dests = append(o.dests, t.Dest)
			o.sent = append(o.sent, t)
			e.metrics.done.WithLabelValues(labels(t)...).Inc()
			e.metrics.bytes.WithLabelValues(labels(t)...).Add(float64(t.Size))
		}
	}
	if len(reasons) > 0 {
		o.row.Outcome, o.status = "FAILED", objectstore.StatusFailed
		o.row.Reason = fmt.Sprint(reasons)
	}
	return o
}

// checkpoint records a batch: the job's position and counts, the report
// rows, the versions' statuses, and the failures the job has made good.
func (e *Engine) checkpoint(ctx context.Context, j *Job, outs []jobOutcome) error {
	var cleared []*Task
	for _, o := range outs {
		if o.v == nil {
			continue
		}
		j.Done++
		j.DoneSize += o.v.Size
		switch o.row.Outcome {
		case "REPLICATED":
			j.Replicated++
		case "FAILED":
			j.Failed++
		default:
			j.Skipped++
		}
	}
	now := e.now()
	err := e.meta.Update(ctx, func(tx meta.Tx) error {
		var err error
		if cleared, err = clearFailedTx(tx, outs); err != nil {
			return err
		}
		rows := j.Rows
		for _, o := range outs {
			if o.v == nil {
				continue
			}
			raw, err := json.Marshal(o.row)
			if err != nil {
				return err
			}
			rows++
			if err := tx.Put(spaceRows, rowKey(j.ID, rows), raw); err != nil {
				return err
			}
			if err := countTx(tx, o.sent, now); err != nil {
				return err
			}
			if o.status != "" {
				if err := objectstore.SetReplicationStatusTx(tx, o.v.Bucket, o.v.Key, o.v.VersionID, o.status); err != nil {
					return err
				}
			}
		}
		jj := *j
		jj.Rows = rows
		return putJob(tx, &jj)
	})
	if err != nil {
		return err
	}
	for _, o := range outs {
		if o.v != nil {
			j.Rows++
		}
	}
	e.mu.Lock()
	for _, t := range cleared {
		e.removeFailedLocked(t)
	}
	e.mu.Unlock()
	return nil
}

// clearFailedTx forgets the failures that the versions a job replicated
// make good: those of their versions for the destinations reached.
func clearFailedTx(tx meta.Tx, outs []jobOutcome) ([]*Task, error) {
	var cleared []*Task
	for _, o := range outs {
		if o.v == nil || len(o.dests) == 0 {
			continue
		}
		prefix := versionPrefix(versionRef{o.v.Bucket, o.v.Key, o.v.VersionID})
		var ids []uint64
		it := tx.Iter(spaceVersions)
		for k, val := it.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, val = it.Next() {
			if len(val) > 0 && (val[0] == stateFailed || val[0] == stateFailed-tagsOffset) && containsString(o.dests, string(val[1:])) {
				ids = append(ids, idOf(k))
			}
		}
		for _, id := range ids {
			raw := tx.Get(spaceFailed, idKey(id))
			if raw == nil {
				continue
			}
			t, err := decodeTask(idKey(id), raw)
			if err != nil {
				return nil, err
			}
			t.ID = id
			if err := unfailTx(tx, t); err != nil {
				return nil, err
			}
			cleared = append(cleared, t)
		}
	}
	return cleared, nil
}

func containsString(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func rowKey(job string, n int64) []byte {
	return append([]byte(job+"\x00"), []byte(fmt.Sprintf("%016x", n))...)
}

// finishJob writes the completion report and marks the job done.
func (e *Engine) finishJob(ctx context.Context, j *Job) error {
	if j.ReportBucket != "" {
		var buf bytes.Buffer
		w := csv.NewWriter(&buf)
		_ = w.Write([]string{"bucket", "key", "version_id", "outcome", "reason"})
		err := e.meta.View(ctx, func(tx meta.Tx) error {
			p := []byte(j.ID + "\x00")
			it := tx.Iter(spaceRows)
			for k, v := it.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = it.Next() {
				var r ReportRow
				if err := json.Unmarshal(v, &r); err != nil {
					return err
				}
				_ = w.Write([]string{r.Bucket, r.Key, r.VersionID, r.Outcome, r.Reason})
			}
			return nil
		})
		if err != nil {
			return err
		}
		w.Flush()
		j.ReportKey = j.ReportPrefix + "replication-job-" + j.ID + ".csv"
		owner := ""
		if b, err := e.store.Bucket(ctx, j.ReportBucket); err == nil {
			owner = b.Owner
		}
		_, err = e.store.PutObject(ctx, &objectstore.PutInput{
			Bucket: j.ReportBucket, Key: j.ReportKey, Owner: owner, Body: bytes.NewReader(buf.Bytes()),
			Size: int64(buf.Len()), ContentType: "text/csv",
			Metadata: map[string]string{"job-id": j.ID, "rows": strconv.FormatInt(j.Rows, 10)},
		})
		if err != nil {
			return fmt.Errorf("write report to %s: %w", j.ReportBucket, err)
		}
	}
	j.State, j.Finished, j.Updated = JobCompleted, e.now().UTC(), e.now().UTC()
	return e.meta.Update(ctx, func(tx meta.Tx) error { return putJob(tx, j) })
}

// Report returns a job's report rows.
func (e *Engine) Report(ctx context.Context, id string) ([]ReportRow, error) {
	var out []ReportRow
	err := e.meta.View(ctx, func(tx meta.Tx) error {
		p := []byte(id + "\x00")
		it := tx.Iter(spaceRows)
		for k, v := it.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = it.Next() {
			var r ReportRow
			if err := json.Unmarshal(v, &r); err != nil {
				return err
			}
			out = append(out, r)
		}
		return nil
	})
	return out, err
}
