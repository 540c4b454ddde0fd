package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// EngineConfig configures an Engine.
type EngineConfig struct {
	Store *objectstore.Store
	// Meta is the metadata store under Store; the engine keeps its cursor,
	// tasks and jobs there, in transactions of their own.
	Meta meta.Store
	// Locate returns the endpoint (base URL) of the region serving a
	// destination bucket. An error wrapping objectstore.ErrNoSuchBucket
	// means no region has it; other errors are taken as transient.
	Locate func(ctx context.Context, bucket string) (endpoint, region string, err error)
	// AssumeRole returns temporary credentials of a rule's IAM role,
	// assumed as the service s3.amazonaws.com: replication acts as the role
	// and may do only what the role's policies (and, across accounts, the
	// destination bucket's policy) allow.
	AssumeRole func(ctx context.Context, roleARN string) (*RoleCredentials, error)
	// Authorize checks the role's permissions on source resources; nil
	// allows everything.
	Authorize func(ctx context.Context, req *iam.Request) error
	// Credentials returns a key of an account's root user, for diff's
	// listing of destinations.
	Credentials func(accountID string) (accessKey, secret string, ok bool)
	HTTPClient  *http.Client
	// Workers is the number of concurrent sends per destination bucket;
	// default 16.
	Workers int
	// Bandwidth caps the bytes per second sent to each destination bucket;
	// 0 is unlimited.
	Bandwidth int64
	// RetryMin and RetryMax bound the backoff between attempts after a
	// transient failure; defaults 100 ms and 30 s.
	RetryMin, RetryMax time.Duration
	// FailedRetry is how often failed operations are tried again, in case
	// what made them fail (a missing bucket, versioning, a policy) was
	// fixed; default 1 minute. A new replication configuration on the
	// source bucket retries them at once.
	FailedRetry time.Duration
	// Window is how many queued tasks each destination's lane holds in
	// memory; the rest wait in the store and are read in as the window
	// drains. Default 4096.
	Window int
	// LaneIdle is how long a destination's lane and its workers stay
	// with nothing to do before they stop; default 5 minutes.
	LaneIdle time.Duration
	Registry prometheus.Registerer
	Logger   *slog.Logger
	Now      func() time.Time
}

// Engine replicates a region's object versions to their destination
// buckets. It consumes the object store's change feed, turns each change
// that a bucket's rules select into durable tasks, and sends them with
// per-destination workers that keep per-key order.
type Engine struct {
	cfg     EngineConfig
	store   *objectstore.Store
	meta    meta.Store
	log     *slog.Logger
	now     func() time.Time
	metrics *metrics

	window   int
	laneIdle time.Duration
	workers  atomic.Int64 // lane workers running

	// qmu orders the queue: a transaction that queues tasks and the
	// handing of them to their lanes happen under it, and so does a
	// lane's paging, so lanes see tasks in ID order and a page that comes
	// up short means the store holds no more. Lock order: qmu, mu, a
	// lane's mu.
	qmu      sync.Mutex
	mu       sync.Mutex
	lanes    map[string]*lane           // destination bucket -> lane
	limiters map[string]*rate.Limiter   // destination bucket -> bandwidth cap
	failures map[series]*seriesFailures // failed tasks, summed up
	stats    map[series]*seriesStat     // per rule and destination
	jobs     map[string]*jobRun
	vlocks   [vlockCount]sync.Mutex
	roles    roles

	cursor    atomic.Uint64 // last change dispatched
	trimmedTo uint64        // feed trimmed up to here (dispatcher only)
	wake      chan struct{} // asks the dispatcher to look again
	runCtx    context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// vlockCount stripes the locks that serialize outcomes per version.
const vlockCount = 64

// Defaults of the lanes' window and idle time.
var (
	defaultWindow   = 4096
	defaultLaneIdle = 5 * time.Minute
)

// New returns an engine; Start runs it.
func New(cfg EngineConfig) *Engine {
	if cfg.Workers <= 0 {
		cfg.Workers = 16
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 30 * time.Second
	}
	if cfg.FailedRetry <= 0 {
		cfg.FailedRetry = time.Minute
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Window <= 0 {
		cfg.Window = defaultWindow
	}
	if cfg.LaneIdle <= 0 {
		cfg.LaneIdle = defaultLaneIdle
	}
	return &Engine{
		cfg: cfg, store: cfg.Store, meta: cfg.Meta, log: cfg.Logger.With("component", "replication"),
		now: cfg.Now, metrics: newMetrics(cfg.Registry), window: max(cfg.Window, 2), laneIdle: cfg.LaneIdle,
		lanes: map[string]*lane{}, limiters: map[string]*rate.Limiter{},
		failures: map[series]*seriesFailures{}, stats: map[series]*seriesStat{}, jobs: map[string]*jobRun{},
		wake: make(chan struct{}, 1),
	}
}

// Start sums up the tasks and failures a previous run left, and starts
// the dispatcher, the lanes that have a backlog (which page their tasks in
// from the store) and any unfinished batch job.
func (e *Engine) Start(ctx context.Context) error {
	if err := e.indexQueue(ctx); err != nil {
		return fmt.Errorf("start replication: %w", err)
	}
	sum, err := e.summarize(ctx)
	if err != nil {
		return fmt.Errorf("start replication: %w", err)
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	e.mu.Lock()
	e.runCtx, e.cancel = runCtx, cancel
	e.installLocked(runCtx, sum)
	e.mu.Unlock()
	if sum.tasks > 0 || sum.failed > 0 {
		e.log.Info("resuming replication backlog", "tasks", sum.tasks, "failed", sum.failed)
	}
	e.wg.Add(2)
	go func() { defer e.wg.Done(); e.dispatch(runCtx) }()
	go func() { defer e.wg.Done(); e.retryFailedLoop(runCtx) }()
	return e.resumeJobs(runCtx)
}

// Close stops the engine; what is queued stays queued for the next Start.
// It forgets what it held in memory (the lanes' windows, the sums of
// pending and failed work), which the next Start, here or in another
// gateway of the region, reads again from the store.
func (e *Engine) Close() {
	e.mu.Lock()
	cancel := e.cancel
	e.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	e.mu.Lock()
	for _, l := range e.lanes {
		l.close()
	}
	e.mu.Unlock()
	e.wg.Wait()
	e.qmu.Lock()
	e.mu.Lock()
	e.runCtx, e.cancel = nil, nil
	e.lanes, e.jobs = map[string]*lane{}, map[string]*jobRun{}
	e.failures, e.stats = map[series]*seriesFailures{}, map[series]*seriesStat{}
	e.trimmedTo = 0
	e.metrics.pendingOps.Reset()
	e.metrics.pendingBytes.Reset()
	e.metrics.failedOps.Reset()
	e.mu.Unlock()
	e.qmu.Unlock()
}

// Wake asks the dispatcher to read the change feed now: another gateway
// of the region committed changes.
func (e *Engine) Wake() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// errCursorMoved fails a dispatch whose cursor another dispatcher moved.
var errCursorMoved = errors.New("replication cursor moved by another dispatcher")

// dispatch follows the change feed from the durable cursor, woken by the
// store's commits.
func (e *Engine) dispatch(ctx context.Context) {
	var cursor uint64
	if err := e.meta.View(ctx, func(tx meta.Tx) error { cursor = getCursor(tx); return nil }); err != nil {
		e.log.Error("read replication cursor", "err", err)
		return
	}
	e.cursor.Store(cursor)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		n, next, err := e.dispatchBatch(ctx, cursor)
		if errors.Is(err, errCursorMoved) {
			// Another gateway dispatched (its lease and ours overlapped):
			// what it queued is not queued twice; go on from there.
			e.log.Warn("replication cursor moved by another gateway; reading it again", "cursor", cursor)
			if err = e.meta.View(ctx, func(tx meta.Tx) error { next = getCursor(tx); return nil }); err == nil {
				cursor = next
				e.cursor.Store(cursor)
			}
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			e.log.Error("dispatch replication tasks", "err", err)
		} else {
			cursor = next
			e.cursor.Store(cursor)
		}
		if n > 0 && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-e.store.Notify():
		case <-e.wake:
		case <-tick.C:
		}
	}
}

const dispatchBatchSize = 512

// The change feed keeps feedTail records behind the cursor, trimmed about
// every trimEvery records.
const (
	feedTail  = 100000
	trimEvery = 1024
)

// dispatchBatch turns the next changes into tasks and advances the cursor
// in one transaction, then hands the tasks to the workers.
func (e *Engine) dispatchBatch(ctx context.Context, cursor uint64) (int, uint64, error) {
	changes, err := e.store.Changes(ctx, cursor, dispatchBatchSize)
	if err != nil || len(changes) == 0 {
		return 0, cursor, err
	}
	var tasks []*Task
	var retryBuckets []string
	var unselected []versionRef
	cfgs := map[string]*Config{}
	for i := range changes {
		c := &changes[i]
		if c.Kind == objectstore.ChangeReplicationConfig {
			retryBuckets = append(retryBuckets, c.Bucket)
			continue
		}
		ts, none, err := e.plan(ctx, c, cfgs)
		if err != nil {
			return 0, cursor, err
		}
		tasks = append(tasks, ts...)
		if none {
			unselected = append(unselected, versionRef{c.Bucket, c.Key, c.VersionID})
		}
	}
	last := changes[len(changes)-1].Seq
	if err := e.queue(ctx, tasks, func(tx meta.Tx) error {
		for _, v := range unselected {
			// Born PENDING under rules that no longer select it.
			if err := clearPendingTx(tx, v); err != nil {
				return err
			}
		}
		// The cursor moves from where this dispatcher read it, or not at
		// all: two dispatchers never queue the same changes.
		if getCursor(tx) != cursor {
			return errCursorMoved
		}
		return tx.Put(spaceState, cursorKey, binary.BigEndian.AppendUint64(nil, last))
	}); err != nil {
		return 0, cursor, err
	}
	// The engine is the feed's only consumer so far; it keeps a tail of
	// records behind its cursor for inspection and trims the rest.
	if last >= e.trimmedTo+feedTail+trimEvery {
		if err := e.store.TrimChanges(ctx, last-feedTail); err != nil {
			e.log.Warn("trim change feed", "err", err)
		} else {
			e.trimmedTo = last - feedTail
		}
	}
	// A new configuration may fix what made operations fail. Should the
	// process stop before this, the periodic retry requeues them.
	for _, b := range slices.Compact(retryBuckets) {
		if _, err := e.requeueFailed(ctx, func(t *Task) bool { return t.Bucket == b }); err != nil {
			e.log.Warn("retry failed replication", "bucket", b, "err", err)
		}
	}
	return len(changes), last, nil
}

// queue stores tasks under new IDs, with also's writes, in one
// transaction, then hands them to their lanes.
func (e *Engine) queue(ctx context.Context, tasks []*Task, also func(meta.Tx) error) error {
	e.qmu.Lock()
	defer e.qmu.Unlock()
	err := e.meta.Update(ctx, func(tx meta.Tx) error {
		for _, t := range tasks {
			id, err := tx.NextSeq(spaceTasks)
			if err != nil {
				return err
			}
			t.ID = id
			if err := queueTx(tx, t); err != nil {
				return err
			}
		}
		return also(tx)
	})
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, t := range tasks {
		e.enqueueLocked(ctx, t)
	}
	return nil
}

func clearPendingTx(tx meta.Tx, v versionRef) error {
	return objectstore.SetReplicationStatusTx(tx, v.bucket, v.key, v.versionID, "")
}

// plan decides which tasks a change makes. none is set when a new version
// was born PENDING but no rule selects it any more.
func (e *Engine) plan(ctx context.Context, c *objectstore.Change, cfgs map[string]*Config) (tasks []*Task, none bool, err error) {
	if c.Origin == objectstore.OriginReplication || c.Kind == objectstore.ChangeDeleteVersion {
		// What replication wrote is never sent on, and a delete that names
		// a version is never replicated.
		return nil, false, nil
	}
	cfg, ok := cfgs[c.Bucket]
	if !ok {
		b, err := e.store.Bucket(ctx, c.Bucket)
		if err != nil && !errors.Is(err, objectstore.ErrNoSuchBucket) {
			return nil, false, err
		}
		if err == nil && len(b.Replication) > 0 {
			if cfg, err = Decode(b.Replication); err != nil {
				return nil, false, err
			}
		}
		cfgs[c.Bucket] = cfg
	}
	if cfg == nil {
		return nil, false, nil
	}
	v, err := e.store.Version(ctx, c.Bucket, c.Key, c.VersionID)
	if errors.Is(err, objectstore.ErrNoSuchVersion) {
		return nil, false, nil // gone before it could be sent: nothing to replicate
	}
	if err != nil {
		return nil, false, err
	}
	var rules []Rule
	op := OpObject
	switch c.Kind {
	case objectstore.ChangePut:
		if v.ReplicationStatus == objectstore.StatusReplica {
			return nil, false, nil
		}
		rules = SelectRules(cfg, c.Key, v.Tags)
		none = len(rules) == 0 && v.ReplicationStatus == objectstore.StatusPending
	case objectstore.ChangeDeleteMarker:
		op = OpDelete
		for _, r := range SelectRules(cfg, c.Key, nil) {
			if ReplicatesDeleteMarkers(r) {
				rules = append(rules, r)
			}
		}
	case objectstore.ChangeTags:
		op = OpTags
		switch v.ReplicationStatus {
		case "":
			// Never replicated: there is no replica to tag.
		case objectstore.StatusReplica:
			// A change made to a replica goes back only with replica
			// modification sync, for two-way setups.
			for _, r := range SelectRules(cfg, c.Key, v.Tags) {
				if syncsReplicaModifications(r) {
					rules = append(rules, r)
				}
			}
		default:
			rules = SelectRules(cfg, c.Key, v.Tags)
		}
	}
	for _, r := range rules {
		tasks = append(tasks, &Task{
			Bucket: c.Bucket, Key: c.Key, VersionID: c.VersionID, Op: op, Role: cfg.Role,
			OwnerOverride: r.Destination.AccessControlTranslation != nil,
			Rule:          r.ID, Dest: r.Destination.BucketName(), StorageClass: r.Destination.StorageClass,
			RTC:  r.Destination.ReplicationTime != nil && r.Destination.ReplicationTime.Status == Enabled,
			Size: sizeOf(op, v), Written: c.Time,
		})
	}
	return tasks, none, nil
}

func sizeOf(op string, v *objectstore.Version) int64 {
	if op == OpObject {
		return v.Size
	}
	return 0
}

func syncsReplicaModifications(r Rule) bool {
	s := r.SourceSelectionCriteria
	return s != nil && s.ReplicaModifications != nil && s.ReplicaModifications.Status == Enabled
}

// Backlog counts the work not done yet: changes not yet turned into tasks,
// and tasks queued (being retried included). Failed tasks are not counted.
func (e *Engine) Backlog(ctx context.Context) (changes uint64, tasks int, err error) {
	st, err := e.store.FeedStats(ctx)
	if err != nil {
		return 0, 0, err
	}
	if c := e.cursor.Load(); st.Last > c {
		changes = st.Last - c
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.stats {
		tasks += int(s.pendingOps)
	}
	return changes, tasks, nil
}

// RetryFailed queues every failed operation of bucket ("" for all) again
// now, and returns how many.
func (e *Engine) RetryFailed(ctx context.Context, bucket string) (int, error) {
	return e.requeueFailed(ctx, func(t *Task) bool { return bucket == "" || t.Bucket == bucket })
}

func (e *Engine) retryFailedLoop(ctx context.Context) {
	tick := time.NewTicker(e.cfg.FailedRetry)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		e.mu.Lock()
		n := len(e.failures)
		e.mu.Unlock()
		if n == 0 {
			continue // no series has a failure
		}
		if k, err := e.RetryFailed(ctx, ""); err != nil {
			e.log.Warn("retry failed replication", "err", err)
		} else {
			e.log.Info("retrying failed replication", "operations", k)
		}
	}
}
