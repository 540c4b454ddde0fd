package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/topology"
)

// bucketPath is the peer API call that tells whether a bucket is homed in
// the region answering, and who owns it.
const bucketPath = adminPrefix + "v1/buckets/"

// bucketHome is the peer API's answer for a bucket.
type bucketHome struct {
	Name   string `json:"name"`
	Region string `json:"region"`
	Owner  string `json:"owner"`
	// Versioning is the bucket's versioning state, for replication's
	// checks of a destination.
	Versioning string `json:"versioning,omitempty"`
}

// peerRoutes are the calls regions make to each other to find buckets.
// Only the regions may: the answer names the bucket's owner.
func (r *Region) peerRoutes() []adminRoute {
	return []adminRoute{{"GET " + bucketPath + "{name}", peersOnly, nil, func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("name")
		b, err := r.Store.Bucket(req.Context(), name)
		switch {
		case errors.Is(err, objectstore.ErrNoSuchBucket):
			writeJSONError(w, http.StatusNotFound, "NoSuchBucket", fmt.Sprintf("bucket %q is not homed in region %s", name, r.cfg.Region))
		case err != nil:
			r.log.Error("peer API: look up bucket", "bucket", name, "err", err)
			writeJSONError(w, http.StatusInternalServerError, "InternalError", "look up bucket")
		default:
			writeJSON(w, http.StatusOK, bucketHome{Name: b.Name, Region: b.Region, Owner: b.Owner, Versioning: b.Versioning})
		}
	}}}
}

// LocateBucket returns the region a bucket is homed in: this region when
// the local store has it; else the region remembered from an earlier
// lookup; else the region among the peers, asked in parallel, that has it.
// When no region that answered has the bucket, the error wraps
// objectstore.ErrNoSuchBucket, or topology.ErrRegionUnreachable (naming
// the regions) when some peer did not answer and may hold it. It is safe
// for concurrent use.
func (r *Region) LocateBucket(ctx context.Context, name string) (string, error) {
	return r.locate(ctx, name, true)
}

// locate is LocateBucket; useCache false asks the peers even when a home
// is remembered, for answers that must be current (is a name free?).
func (r *Region) locate(ctx context.Context, name string, useCache bool) (string, error) {
	b, err := r.Store.Bucket(ctx, name)
	if err == nil {
		return b.Region, nil
	}
	if !errors.Is(err, objectstore.ErrNoSuchBucket) {
		return "", fmt.Errorf("locate bucket %q: %w", name, err)
	}
	p := r.peers()
	if useCache {
		if home, ok := p.cached(name); ok {
			return home, nil
		}
	}
	return p.ask(ctx, name)
}

// peerState is what a region keeps about its peers: a client for their
// API, the transport requests are forwarded with, and the homes of
// buckets found elsewhere. It holds no pointer to its Region (see peers).
type peerState struct {
	self   string
	topo   *topology.Topology
	log    *slog.Logger
	client *topology.Client // nil when the region has no key to sign with
	// transport carries peer calls; its dial timeout is what makes a dead
	// region fail fast, its stall bounds what makes a partition fail.
	transport *http.Transport
	// forward carries forwarded client requests: transport's bounds, and
	// forwardAnswerTimeout for a region whose process hangs while its
	// kernel still takes the request.
	forward *http.Transport

	mu    sync.RWMutex
	homes map[string]string // bucket → region, for buckets homed elsewhere
}

// peers returns the region's peer state, made on first use.
func (r *Region) peers() *peerState {
	r.peerOnce.Do(func() { r.peerState = r.newPeerState() })
	return r.peerState
}

func (r *Region) newPeerState() *peerState {
	p := &peerState{
		self:      r.cfg.Region,
		topo:      r.cfg.Topology,
		log:       r.log,
		transport: topology.NewTransport(r.peerTLS()),
		homes:     map[string]string{},
	}
	p.forward = p.transport.Clone()
	p.forward.ResponseHeaderTimeout = forwardAnswerTimeout
	if k, ok := r.signingKey(); ok {
		p.client = topology.NewClient(r.cfg.Topology, k.AccessKey, k.Secret, p.transport)
	}
	return p
}

// peerTLS trusts the system's roots and the region's own certificate: the
// local deployment (bulwark up --tls) serves every region with one
// self-signed certificate.
func (r *Region) peerTLS() *tls.Config {
	if r.cfg.TLSCert == "" {
		return nil
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if pem, err := os.ReadFile(r.cfg.TLSCert); err == nil {
		pool.AppendCertsFromPEM(pem)
	} else {
		r.log.Warn("peer TLS: read own certificate", "err", err)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// others lists the other regions of the topology.
func (p *peerState) others() []string {
	return slices.DeleteFunc(p.topo.Names(), func(n string) bool { return n == p.self })
}

func (p *peerState) cached(bucket string) (string, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	home, ok := p.homes[bucket]
	return home, ok
}

func (p *peerState) remember(bucket, home string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.homes[bucket] = home
}

// forget drops a remembered home that turned out wrong (the bucket was
// deleted there), so the next request looks again.
func (p *peerState) forget(bucket string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.homes, bucket)
}

// ask asks every peer at once whether it is the bucket's home, and stops
// the others as soon as one says yes. Every goroutine it starts has
// returned when it does.
func (p *peerState) ask(ctx context.Context, bucket string) (string, error) {
	peers := p.others()
	if len(peers) == 0 {
		return "", fmt.Errorf("locate bucket %q: %w", bucket, objectstore.ErrNoSuchBucket)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		peer, home string
		err        error
	}
	answers := make(chan answer, len(peers))
	for _, peer := range peers {
		go func() {
			home, err := p.lookup(ctx, peer, bucket)
			answers <- answer{peer, home, err}
		}()
	}
	var home string
	var down []string
	for range peers {
		a := <-answers
		switch {
		case home != "":
			// Found already; the rest were cancelled.
		case a.home != "":
			home = a.home
			cancel()
		case a.err != nil:
			down = append(down, a.peer)
			p.log.Warn("locate bucket: region did not answer", "bucket", bucket, "peer", a.peer, "err", a.err)
		}
	}
	switch {
	case home != "":
		p.remember(bucket, home)
		return home, nil
	case ctx.Err() != nil:
		// The caller gave up (nothing was found, so it was not cancel).
		return "", fmt.Errorf("locate bucket %q: %w", bucket, ctx.Err())
	case len(down) > 0:
		slices.Sort(down)
		return "", fmt.Errorf("%w: bucket %q is not in any region that answered; %s did not answer and may hold it",
			topology.ErrRegionUnreachable, bucket, regionList(down))
	default:
		return "", fmt.Errorf("locate bucket %q: %w", bucket, objectstore.ErrNoSuchBucket)
	}
}

// lookup asks one peer. It returns "" and no error when the peer answers
// that the bucket is not homed there.
func (p *peerState) lookup(ctx context.Context, peer, bucket string) (string, error) {
	h, err := p.fetch(ctx, peer, bucket)
	if err != nil || h == nil {
		return "", err
	}
	return h.Region, nil
}

// fetch asks one peer for a bucket's record; nil and no error when the
// peer answers that the bucket is not homed there.
func (p *peerState) fetch(ctx context.Context, peer, bucket string) (*bucketHome, error) {
	if p.client == nil {
		return nil, errors.New("no key of the deployment to sign peer calls with")
	}
	resp, err := p.client.Do(ctx, peer, http.MethodGet, bucketPath+url.PathEscape(bucket), nil)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return nil, fmt.Errorf("%w: region %s: read answer: %v", topology.ErrRegionUnreachable, peer, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		var h bucketHome
		if err := json.Unmarshal(body, &h); err != nil || h.Region == "" {
			return nil, fmt.Errorf("region %s: malformed answer %q", peer, body)
		}
		return &h, nil
	case http.StatusNotFound:
		return nil, nil
	default:
		// A peer that refuses the call (a 403 says the regions do not
		// share keys) cannot say where the bucket is: as good as down.
		return nil, fmt.Errorf("region %s answered %s: %s", peer, resp.Status, strings.TrimSpace(string(body)))
	}
}

// lookupBucket returns a bucket's record from whichever region holds it:
// what validating a replication destination needs to know.
func (r *Region) lookupBucket(ctx context.Context, name string) (*objectstore.Bucket, error) {
	b, err := r.Store.Bucket(ctx, name)
	if err == nil || !errors.Is(err, objectstore.ErrNoSuchBucket) {
		return b, err
	}
	region, err := r.LocateBucket(ctx, name)
	if err != nil {
		return nil, err
	}
	h, err := r.peers().fetch(ctx, region, name)
	if err != nil {
		return nil, err
	}
	if h == nil {
		r.peers().forget(name)
		return nil, fmt.Errorf("%w: %s", objectstore.ErrNoSuchBucket, name)
	}
	return &objectstore.Bucket{Name: h.Name, Region: h.Region, Owner: h.Owner, Versioning: h.Versioning}, nil
}

// regionList names regions for a message: "region us-east-1" or
// "regions eu-west-1, us-east-1".
func regionList(names []string) string {
	if len(names) == 1 {
		return "region " + names[0]
	}
	return "regions " + strings.Join(names, ", ")
}
