package replication

import (
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the engine's Prometheus collectors, labelled by source
// bucket, rule and destination bucket.
type metrics struct {
	pendingOps    *prometheus.GaugeVec
	pendingBytes  *prometheus.GaugeVec
	failedOps     *prometheus.GaugeVec
	failedTotal   *prometheus.CounterVec
	attemptErrors *prometheus.CounterVec
	done          *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	latency       *prometheus.HistogramVec
	missed        *prometheus.CounterVec
}

var seriesLabels = []string{"bucket", "rule", "destination"}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		pendingOps: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_replication_pending_operations",
			Help: "Replication operations queued and not yet done.",
		}, seriesLabels),
		pendingBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_replication_pending_bytes",
			Help: "Bytes of object data queued for replication.",
		}, seriesLabels),
		failedOps: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "bulwark_replication_failed_operations",
			Help: "Replication operations failed and waiting for their cause to be fixed.",
		}, seriesLabels),
		failedTotal: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_replication_failed_operations_total",
			Help: "Replication operations marked FAILED, by reason.",
		}, append(slices.Clone(seriesLabels), "reason")),
		attemptErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_replication_transient_errors_total",
			Help: "Attempts that failed transiently and will be retried, by reason.",
		}, append(slices.Clone(seriesLabels), "reason")),
		done: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_replication_replicated_operations_total",
			Help: "Replication operations completed.",
		}, seriesLabels),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_replication_replicated_bytes_total",
			Help: "Object data bytes replicated.",
		}, seriesLabels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_replication_latency_seconds",
			Help:    "Time from the source write to the destination's acknowledgement.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
		}, seriesLabels),
		missed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_replication_missed_threshold_operations_total",
			Help: "Operations of rules with Replication Time Control replicated after the 15-minute threshold.",
		}, seriesLabels),
	}
	reg.MustRegister(m.pendingOps, m.pendingBytes, m.failedOps, m.failedTotal, m.attemptErrors,
		m.done, m.bytes, m.latency, m.missed)
	return m
}

func labels(t *Task) []string { return []string{t.Bucket, t.Rule, t.Dest} }

func (m *metrics) pending(t *Task, d float64) {
	m.pendingOps.WithLabelValues(labels(t)...).Add(d)
	m.pendingBytes.WithLabelValues(labels(t)...).Add(d * float64(t.Size))
}

func (m *metrics) failedGauge(t *Task, d float64) { m.failedOps.WithLabelValues(labels(t)...).Add(d) }

func (m *metrics) failed(t *Task, reason string) {
	m.failedTotal.WithLabelValues(append(labels(t), reason)...).Inc()
}

func (m *metrics) attemptFailed(t *Task, reason string) {
	m.attemptErrors.WithLabelValues(append(labels(t), reason)...).Inc()
}

func (m *metrics) replicated(t *Task, lat time.Duration) {
	m.done.WithLabelValues(labels(t)...).Inc()
	m.bytes.WithLabelValues(labels(t)...).Add(float64(t.Size))
	m.latency.WithLabelValues(labels(t)...).Observe(lat.Seconds())
	if t.RTC && lat > RTCMinutes*time.Minute {
		m.missed.WithLabelValues(labels(t)...).Inc()
	}
}

// seriesStat is what `replication status` shows of one rule and
// destination, kept in memory: sums, never one entry per task. The age of
// the oldest task comes from the store's age index.
type seriesStat struct {
	pendingOps, pendingBytes int64
	samples                  []sample // recent latencies, a ring
	next                     int
}

type sample struct {
	at  time.Time
	lat time.Duration
}

const maxSamples = 4096

func (e *Engine) statLocked(s series) *seriesStat {
	st := e.stats[s]
	if st == nil {
		st = &seriesStat{}
		e.stats[s] = st
	}
	return st
}

func (s *seriesStat) addPending(t *Task) {
	s.pendingOps++
	s.pendingBytes += t.Size
}

func (s *seriesStat) removePending(t *Task) {
	s.pendingOps--
	s.pendingBytes -= t.Size
}

func (s *seriesStat) observe(now time.Time, lat time.Duration) {
	if len(s.samples) < maxSamples {
		s.samples = append(s.samples, sample{now, lat})
		return
	}
	s.samples[s.next] = sample{now, lat}
	s.next = (s.next + 1) % maxSamples
}

// percentiles returns p50 and p99 of the latencies seen since since.
func (s *seriesStat) percentiles(since time.Time) (p50, p99 time.Duration, n int) {
	var l []time.Duration
	for _, x := range s.samples {
		if !x.at.Before(since) {
			l = append(l, x.lat)
		}
	}
	if len(l) == 0 {
		return 0, 0, 0
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	at := func(q float64) time.Duration { return l[min(len(l)-1, int(q*float64(len(l))))] }
	return at(0.50), at(0.99), len(l)
}
