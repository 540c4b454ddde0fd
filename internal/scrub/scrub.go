// Package scrub re-reads a region's stored object data at a bounded rate,
// checks it against the checksums recorded when it was written, marks a
// damaged version so that it is never served, and repairs it from a good
// copy: another region's replica of the same version (same version ID and
// ETag), or, when the operator asks, the latest recovery point that holds
// it. Replication thereby protects against rot as well as against the
// loss of a region.
//
// A pass walks every bucket of the region (or one), version by version.
// Passes run in the background every Config.Interval and on demand
// (Scrubber.Start, `bulwark scrub`); one at a time.
package scrub

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/bulwark/bulwark/internal/objectstore"
)

// ErrNoCopy is a source that holds no good copy of a version.
var ErrNoCopy = errors.New("no copy of this version")

// ErrRunning refuses a pass while another runs.
var ErrRunning = errors.New("a scrub pass is running already")

// Source supplies good copies of versions' data.
type Source interface {
	// Fetch returns piece part (0 for a single-part object, else the part
	// number) of version v, and names where it came from; an error
	// wrapping ErrNoCopy when the source has no copy. The caller checks
	// the data against v's checksums before using it.
	Fetch(ctx context.Context, v *objectstore.Version, part int) (data io.ReadCloser, from string, err error)
}

// Config configures a Scrubber.
type Config struct {
	Store    *objectstore.Store
	Replicas Source // other regions' replicas; nil for none
	Backups  Source // recovery points, used when a pass asks; nil for none
	// Rate caps the bytes read per second (DefaultRate when 0).
	Rate int64
	// Interval is the time between background passes; 0 runs none.
	Interval time.Duration
	// StatePath is the file the last finished pass is kept in, so that a
	// restart does not scrub again at once, nor never.
	StatePath string
	Logger    *slog.Logger
	Registry  prometheus.Registerer
	Now       func() time.Time
}

// DefaultRate reads 32 MiB/s: a full pass of 1 TiB in about 9 hours, a
// fraction of a disk's rate, leaving the rest to clients.
const DefaultRate = 32 << 20

// Options choose what a pass does.
type Options struct {
	Bucket           string // "" for every bucket
	RepairFromBackup bool   // repair from recovery points when no replica has the version
}

// Pass states.
const (
	Running   = "RUNNING"
	Completed = "COMPLETED"
	Failed    = "FAILED"
	Aborted   = "ABORTED" // the region stopped during the pass
)

// Pass is one walk over the region's data, and what it found.
type Pass struct {
	ID               string    `json:"id"`
	Bucket           string    `json:"bucket,omitempty"`
	RepairFromBackup bool      `json:"repairFromBackup,omitempty"`
	State            string    `json:"state"`
	Started          time.Time `json:"started"`
	Finished         time.Time `json:"finished,omitzero"`
	Buckets          int       `json:"buckets"`
	Versions         int64     `json:"versions"`
	Bytes            int64     `json:"bytes"`
	Damaged          int       `json:"damaged"`
	Repaired         int       `json:"repaired"`
	Findings         []Finding `json:"findings"`
	Error            string    `json:"error,omitempty"`
}

// KindMetadata is a finding about the metadata store itself, not a version.
const KindMetadata = "metadata"

// Finding is a damaged version, or damaged metadata (Kind KindMetadata).
type Finding struct {
	Bucket       string    `json:"bucket"`
	Key          string    `json:"key"`
	VersionID    string    `json:"versionId"`
	Kind         string    `json:"kind"` // objectstore.DamageCorrupt or DamageMissing
	Why          string    `json:"why"`
	Found        time.Time `json:"found"`
	Repaired     bool      `json:"repaired"`
	RepairedFrom string    `json:"repairedFrom,omitempty"`
	// Unrepaired says why no repair was made.
	Unrepaired string `json:"unrepaired,omitempty"`
}

// Status is the current or last pass and the last one finished.
type Status struct {
	Current *Pass `json:"current,omitempty"`
	Last    *Pass `json:"last,omitempty"`
}

// Scrubber runs passes over one region's data.
type Scrubber struct {
	cfg     Config
	log     *slog.Logger
	limiter *rate.Limiter
	m       *metrics

	mu      sync.Mutex
	current *Pass
	last    *Pass

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New returns a scrubber; Open starts its background passes.
func New(cfg Config) *Scrubber {
	if cfg.Rate <= 0 {
		cfg.Rate = DefaultRate
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Scrubber{cfg: cfg, log: cfg.Logger, m: newMetrics(cfg.Registry)}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	burst := int(min(cfg.Rate, 1<<20))
	s.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(burst, 256<<10))
	s.last = s.loadState()
	return s
}

// Open starts the background passes.
func (s *Scrubber) Open() {
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if s.cfg.Interval <= 0 {
		return
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			wait := s.cfg.Interval
			if last := s.Status().Last; last != nil && last.Bucket == "" {
				wait = time.Until(last.Finished.Add(s.cfg.Interval))
			}
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(max(wait, time.Minute)):
			}
			if _, err := s.Start(Options{}); err != nil && !errors.Is(err, ErrRunning) {
				s.log.Warn("scrub: start a background pass", "err", err)
			}
		}
	}()
}

// Close stops a running pass and the background passes, and waits.
func (s *Scrubber) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// Start begins a pass in the background and returns it as it starts.
func (s *Scrubber) Start(opts Options) (*Pass, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx == nil || s.ctx.Err() != nil {
		return nil, errors.New("the scrubber is closed")
	}
	if s.current != nil && s.current.State == Running {
		return nil, ErrRunning
	}
	p := &Pass{ID: newID(), Bucket: opts.Bucket, RepairFromBackup: opts.RepairFromBackup, State: Running,
		Started: s.cfg.Now().UTC(), Findings: []Finding{}}
	s.current = p
	cp := *p
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.run(s.ctx, p, opts)
	}()
	return &cp, nil
}

// Status returns copies of the current and last finished passes.
func (s *Scrubber) Status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st Status
	if s.current != nil {
		st.Current = s.current.copy()
	}
	if s.last != nil {
		st.Last = s.last.copy()
	}
	return st
}

func (p *Pass) copy() *Pass {
	c := *p
	c.Findings = append([]Finding{}, p.Findings...)
	return &c
}

// update changes the running pass under the lock.
func (s *Scrubber) update(fn func(p *Pass)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fn(s.current)
}

func (s *Scrubber) run(ctx context.Context, p *Pass, opts Options) {
	s.log.Info("scrub: pass started", "pass", p.ID, "bucket", opts.Bucket, "repairFromBackup", opts.RepairFromBackup)
	err := s.walk(ctx, opts)
	s.mu.Lock()
	p.Finished = s.cfg.Now().UTC()
	switch {
	case err == nil:
		p.State = Completed
	case ctx.Err() != nil:
		p.State = Aborted
	default:
		p.State, p.Error = Failed, err.Error()
	}
	done := p.copy()
	s.last = done
	s.mu.Unlock()
	if done.State == Completed && opts.Bucket == "" {
		s.m.lastPass.Set(float64(done.Finished.Unix()))
	}
	s.saveState(done)
	s.log.Info("scrub: pass ended", "pass", done.ID, "state", done.State, "versions", done.Versions,
		"bytes", done.Bytes, "damaged", done.Damaged, "repaired", done.Repaired, "err", done.Error)
}

// walk checks every version of the buckets opts names.
func (s *Scrubber) walk(ctx context.Context, opts Options) error {
	var buckets []string
	if opts.Bucket != "" {
		buckets = []string{opts.Bucket}
	} else {
		// The metadata's own structure first: a damaged page could hide
		// versions from the walk below.
		if err := s.cfg.Store.CheckMetadata(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			s.m.damaged.WithLabelValues(KindMetadata).Inc()
			s.log.Error("scrub: the metadata store is damaged", "err", err)
			f := Finding{Kind: KindMetadata, Why: err.Error(), Found: s.cfg.Now().UTC(),
				Unrepaired: "the metadata store cannot be repaired in place: restore the region from its replicas and backups"}
			s.update(func(p *Pass) { p.Damaged++; p.Findings = append(p.Findings, f) })
		}
		bs, err := s.cfg.Store.AllBuckets(ctx)
		if err != nil {
			return err
		}
		for _, b := range bs {
			buckets = append(buckets, b.Name)
		}
	}
	pace := func(n int) error { return s.limiter.WaitN(ctx, min(n, s.limiter.Burst())) }
	var errs []error
	for _, bucket := range buckets {
		var cur objectstore.VersionCursor
		for more := true; more; {
			var err error
			cur, more, err = s.cfg.Store.WalkVersions(ctx, bucket, cur, 256, func(v *objectstore.Version) error {
				return s.check(ctx, v, opts, pace)
			})
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, objectstore.ErrNoSuchBucket) {
				break // deleted meanwhile
			}
			if err != nil {
				// A record that cannot be read is damage of the metadata:
				// reported, and the walk goes on with the next bucket.
				s.log.Error("scrub: walk bucket", "bucket", bucket, "after", cur.Key, "err", err)
				errs = append(errs, fmt.Errorf("bucket %s after key %q: %w", bucket, cur.Key, err))
				break
			}
		}
		s.update(func(p *Pass) { p.Buckets++ })
	}
	return errors.Join(errs...)
}

// check verifies one version and handles what it finds.
func (s *Scrubber) check(ctx context.Context, v *objectstore.Version, opts Options, pace func(int) error) error {
	if !v.HasData() {
		return nil
	}
	err := s.cfg.Store.VerifyVersion(ctx, v, pace)
	s.m.versions.Inc()
	s.m.bytes.Add(float64(v.Size))
	s.update(func(p *Pass) { p.Versions++; p.Bytes += v.Size })
	var dmg *objectstore.DamageError
	switch {
	case errors.As(err, &dmg):
	case err != nil:
		return err
	case v.Damaged != "":
		// Sound again (repaired by hand, or a read error that passed):
		// served again.
		s.log.Info("scrub: a version marked damaged reads sound; mark cleared", "bucket", v.Bucket, "key", v.Key, "version", v.VersionID)
		return s.cfg.Store.MarkDamaged(ctx, v.Bucket, v.Key, v.VersionID, "")
	default:
		return nil
	}
	f := Finding{Bucket: v.Bucket, Key: v.Key, VersionID: v.VersionID, Kind: dmg.Kind, Why: dmg.Error(), Found: s.cfg.Now().UTC()}
	s.m.damaged.WithLabelValues(dmg.Kind).Inc()
	s.log.Error("scrub: damaged object data", "bucket", v.Bucket, "key", v.Key, "version", v.VersionID, "kind", dmg.Kind, "why", dmg.Error())
	if err := s.cfg.Store.MarkDamaged(ctx, v.Bucket, v.Key, v.VersionID, dmg.Error()); err != nil {
		return fmt.Errorf("mark %s/%s %s damaged: %w", v.Bucket, v.Key, v.VersionID, err)
	}
	from, why := s.repair(ctx, v, opts)
	if from != "" {
		f.Repaired, f.RepairedFrom = true, from
		s.m.repaired.Inc()
		s.log.Info("scrub: repaired", "bucket", v.Bucket, "key", v.Key, "version", v.VersionID, "from", from)
	} else {
		f.Unrepaired = why
		s.log.Warn("scrub: not repaired", "bucket", v.Bucket, "key", v.Key, "version", v.VersionID, "why", why)
	}
	s.update(func(p *Pass) {
		p.Damaged++
		if f.Repaired {
			p.Repaired++
		}
		p.Findings = append(p.Findings, f)
	})
	return nil
}

// repair replaces every piece of v's data from the first source that has
// a good copy, verifies the whole version again and clears its mark. It
// returns where the data came from, or why there was none.
func (s *Scrubber) repair(ctx context.Context, v *objectstore.Version, opts Options) (from, why string) {
	sources := []Source{}
	if s.cfg.Replicas != nil {
		sources = append(sources, s.cfg.Replicas)
	}
	if opts.RepairFromBackup && s.cfg.Backups != nil {
		sources = append(sources, s.cfg.Backups)
	}
	if len(sources) == 0 {
		return "", "no replica of this version in another region, and no repair from backups was asked for"
	}
	var reasons []string
	for _, src := range sources {
		from, err := s.repairFrom(ctx, src, v)
		if err == nil {
			return from, ""
		}
		reasons = append(reasons, err.Error())
	}
	if !opts.RepairFromBackup {
		reasons = append(reasons, "repair from backups was not asked for (bulwark scrub --repair-from-backup)")
	}
	return "", fmt.Sprint(reasons)
}

func (s *Scrubber) repairFrom(ctx context.Context, src Source, v *objectstore.Version) (string, error) {
	pieces := []int{0}
	if len(v.Parts) > 0 {
		pieces = pieces[:0]
		for _, p := range v.Parts {
			pieces = append(pieces, p.Number)
		}
	}
	from := ""
	for _, part := range pieces {
		rc, f, err := src.Fetch(ctx, v, part)
		if err != nil {
			return "", err
		}
		err = s.cfg.Store.RepairData(ctx, v.Bucket, v.Key, v.VersionID, part, rc)
		rc.Close()
		if err != nil {
			return "", fmt.Errorf("%s: %w", f, err)
		}
		from = f
	}
	fresh, err := s.cfg.Store.VersionRecord(ctx, v.Bucket, v.Key, v.VersionID)
	if err != nil {
		return "", err
	}
	if err := s.cfg.Store.VerifyVersion(ctx, fresh, nil); err != nil {
		return "", fmt.Errorf("%s: still damaged after the repair: %w", from, err)
	}
	if err := s.cfg.Store.MarkDamaged(ctx, v.Bucket, v.Key, v.VersionID, ""); err != nil {
		return "", err
	}
	return from, nil
}

type state struct {
	Last *Pass `json:"last"`
}

func (s *Scrubber) loadState() *Pass {
	if s.cfg.StatePath == "" {
		return nil
	}
	raw, err := os.ReadFile(s.cfg.StatePath)
	if err != nil {
		return nil
	}
	var st state
	if json.Unmarshal(raw, &st) != nil {
		return nil
	}
	return st.Last
}

// saveState keeps the last finished pass of the whole region, so that
// the next background pass is due an interval after it.
func (s *Scrubber) saveState(p *Pass) {
	if s.cfg.StatePath == "" || p.Bucket != "" {
		return
	}
	raw, err := json.Marshal(state{Last: p})
	if err == nil {
		tmp := s.cfg.StatePath + ".tmp"
		if err = os.WriteFile(tmp, raw, 0o600); err == nil {
			err = os.Rename(tmp, s.cfg.StatePath)
		}
	}
	if err != nil {
		s.log.Warn("scrub: keep the last pass", "err", err)
	}
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

type metrics struct {
	versions prometheus.Counter
	bytes    prometheus.Counter
	damaged  *prometheus.CounterVec
	repaired prometheus.Counter
	lastPass prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		versions: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_scrub_checked_versions_total",
			Help: "Object versions whose stored data the scrubber read and checked."}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_scrub_checked_bytes_total",
			Help: "Bytes of object data the scrubber read and checked."}),
		damaged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "bulwark_scrub_damaged_versions_total",
			Help: "Versions found damaged, by kind (corrupt, missing)."}, []string{"kind"}),
		repaired: prometheus.NewCounter(prometheus.CounterOpts{Name: "bulwark_scrub_repaired_versions_total",
			Help: "Damaged versions repaired from a replica or a recovery point."}),
		lastPass: prometheus.NewGauge(prometheus.GaugeOpts{Name: "bulwark_scrub_last_pass_timestamp_seconds",
			Help: "When the last full pass over the region finished."}),
	}
	if reg != nil {
		reg.MustRegister(m.versions, m.bytes, m.damaged, m.repaired, m.lastPass)
	}
	return m
}
