package s3api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the S3 API's Prometheus collectors.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	received prometheus.Counter
	sent     prometheus.Counter
}

// NewMetrics creates the collectors and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "bulwark_s3_requests_total",
			Help: "S3 requests by operation and HTTP status.",
		}, []string{"operation", "status"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "bulwark_s3_request_duration_seconds",
			Help:    "S3 request latency by operation, from arrival to the last byte written.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"operation"}),
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_s3_received_bytes_total",
			Help: "Request body bytes received (as declared by Content-Length).",
		}),
		sent: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "bulwark_s3_sent_bytes_total",
			Help: "Response body bytes sent.",
		}),
	}
	reg.MustRegister(m.requests, m.latency, m.received, m.sent)
	return m
}

func (m *Metrics) observe(rq *request, r *http.Request, sent int64) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(rq.op, strconv.Itoa(rq.status)).Inc()
	m.latency.WithLabelValues(rq.op).Observe(time.Since(rq.start).Seconds())
	if r.ContentLength > 0 {
		m.received.Add(float64(r.ContentLength))
	}
	m.sent.Add(float64(sent))
}
