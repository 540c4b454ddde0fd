// Package topology names the regions of a deployment and their endpoints.
// Every region knows its peers through it: bucket names are global, so a
// region forwards requests for buckets homed elsewhere and replicates to
// buckets in other regions.
package topology

import (
	"errors"
	"fmt"
	"slices"
	"sync"
)

// ErrRegionUnreachable means a peer region did not answer.
var ErrRegionUnreachable = errors.New("region unreachable")

// Region is one region of the deployment.
type Region struct {
	Name     string `json:"name" yaml:"name"`
	Endpoint string `json:"endpoint" yaml:"endpoint"` // base URL, e.g. http://127.0.0.1:9001
}

// Topology is the set of regions. Endpoints may be filled in after the
// listeners are up (a port chosen at random), so it is safe for concurrent
// use.
type Topology struct {
	mu      sync.RWMutex
	regions []Region
	// auditRequire is the topology file's audit.require.
	auditRequire []string
}

// AuditRequire returns the threats the topology file requires every
// resource to survive; nil when it says nothing (or t is nil).
func (t *Topology) AuditRequire() []string {
	if t == nil {
		return nil
	}
	return slices.Clone(t.auditRequire)
}

// New returns a topology of the given regions.
func New(regions ...Region) (*Topology, error) {
	t := &Topology{}
	for _, r := range regions {
		if r.Name == "" {
			return nil, errors.New("topology: a region without a name")
		}
		if slices.ContainsFunc(t.regions, func(o Region) bool { return o.Name == r.Name }) {
			return nil, fmt.Errorf("topology: region %q named twice", r.Name)
		}
		t.regions = append(t.regions, r)
	}
	return t, nil
}

// Names lists the regions in the order given.
func (t *Topology) Names() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]string, len(t.regions))
	for i, r := range t.regions {
		out[i] = r.Name
	}
	return out
}

// Regions returns a copy of the regions.
func (t *Topology) Regions() []Region {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return slices.Clone(t.regions)
}

// Endpoint returns a region's endpoint URL.
func (t *Topology) Endpoint(name string) (string, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for _, r := range t.regions {
		if r.Name == name {
			return r.Endpoint, r.Endpoint != ""
		}
	}
	return "", false
}

// SetEndpoint records a region's endpoint once it is known.
func (t *Topology) SetEndpoint(name, url string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.regions {
		if t.regions[i].Name == name {
			t.regions[i].Endpoint = url
			return
		}
	}
	t.regions = append(t.regions, Region{Name: name, Endpoint: url})
}
