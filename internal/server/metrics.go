package server

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics name buckets, vaults and accounts of every account of the
// deployment, so they are not public. Three ways in:
//
//   - GET /metrics with "Authorization: Bearer TOKEN", the token of
//     Config.MetricsToken: what Prometheus sends (its authorization
//     credentials_file), as MinIO's metrics take a bearer token;
//   - a signed GET /_bulwark/v1/metrics by a principal of the admin
//     account allowed bulwark:GetMetrics (its root user always is);
//   - GET /metrics with nothing, when Config.MetricsPublic says so.
const (
	metricsPath      = adminPrefix + "v1/metrics"
	actionGetMetrics = "bulwark:GetMetrics"
)

// metricsRoutes are the signed way to the metrics.
func (r *Region) metricsRoutes() []adminRoute {
	metrics := promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{})
	return []adminRoute{{"GET " + metricsPath, checked, []string{actionGetMetrics}, func(w http.ResponseWriter, req *http.Request) {
		if r.adminOnly(w, req, actionGetMetrics, "reading the metrics") {
			metrics.ServeHTTP(w, req)
		}
	}}}
}

// isMetricsScrape tells an unsigned GET /metrics (a signed request there
// is S3's, for a bucket named "metrics").
func isMetricsScrape(req *http.Request) bool {
	if req.URL.Path != "/metrics" || req.Method != http.MethodGet || strings.Contains(req.URL.RawQuery, "X-Amz-") {
		return false
	}
	a := req.Header.Get("Authorization")
	return a == "" || a == "Bearer" || strings.HasPrefix(a, "Bearer ")
}

// metricsScrape serves an unsigned GET /metrics to a holder of the bearer
// token, or to anyone when the metrics are public.
func (r *Region) metricsScrape(metrics http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		token, bearer := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		ok := r.cfg.MetricsPublic ||
			bearer && r.cfg.MetricsToken != "" && subtle.ConstantTimeCompare([]byte(token), []byte(r.cfg.MetricsToken)) == 1
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bulwark metrics"`)
			writeJSONError(w, http.StatusUnauthorized, "AccessDenied",
				"metrics need the bearer token (bulwark up keeps it in DATA/metrics-token; bulwark serve takes -metrics-token-file), or a signed GET "+metricsPath)
			return
		}
		metrics.ServeHTTP(w, req)
	}
}
