package server

import (
	"time"

	"github.com/bulwark/bulwark/internal/topology"
)

// AdminRoutePatterns lists the patterns of every admin and peer API
// route, for the authorization tests to check they cover them all.
func AdminRoutePatterns(r *Region) []string {
	var out []string
	for _, rt := range r.adminRoutes() {
		out = append(out, rt.pattern)
	}
	return out
}

// SetForwardAnswerTimeout sets how long a forwarded request waits for the
// home region's answer, for the tests of a hung region, and returns a
// function that puts it back.
func SetForwardAnswerTimeout(d time.Duration) func() {
	old := forwardAnswerTimeout
	forwardAnswerTimeout = d
	return func() { forwardAnswerTimeout = old }
}

// TopologyOf returns the topology a region runs with.
func TopologyOf(r *Region) *topology.Topology { return r.cfg.Topology }
