package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/iam"
)

// IAM is global, as in AWS: one region of the deployment, the first of the
// topology, holds it and takes every IAM write; the others keep a copy,
// pulled from it every iamSyncInterval and at once when a request names an
// access key they do not know yet. Sessions need no copy: their tokens
// carry them, sealed with the deployment key every region shares. Regions
// of one process (bulwark up) share one store and need none of this.

const (
	iamSnapshotPath = adminPrefix + "v1/iam/snapshot"
	iamSyncInterval = 2 * time.Second
)

// iamHome names the region that holds the deployment's IAM.
func (r *Region) iamHome() string {
	if names := r.cfg.Topology.Names(); len(names) > 0 {
		return names[0]
	}
	return r.cfg.Region
}

// copiesIAM reports whether this region keeps a copy of another's IAM.
func (r *Region) copiesIAM() bool {
	return r.cfg.IAM == nil && r.iamHome() != r.cfg.Region
}

type iamSnapshot struct {
	Digest  string       `json:"digest"`
	Records []iam.Record `json:"records,omitempty"`
}

// iamSyncRoutes are the call the other regions copy IAM with. Secrets
// travel sealed with the deployment key. Every account's IAM is in it:
// only the regions may copy it.
func (r *Region) iamSyncRoutes() []adminRoute {
	return []adminRoute{{"GET " + iamSnapshotPath, peersOnly, nil, func(w http.ResponseWriter, req *http.Request) {
		recs, digest, err := r.IAM.Export(req.Context())
		if err != nil {
			r.log.Error("export IAM", "err", err)
			writeJSONError(w, http.StatusInternalServerError, "InternalError", "export IAM")
			return
		}
		if req.URL.Query().Get("digest") == digest {
			writeJSON(w, http.StatusOK, iamSnapshot{Digest: digest})
			return
		}
		writeJSON(w, http.StatusOK, iamSnapshot{Digest: digest, Records: recs})
	}}}
}

// iamCopier keeps a region's copy of IAM current.
type iamCopier struct {
	r *Region
	// down is set while the home region did not answer the last pull;
	// it is read without mu, which a pull holds throughout.
	down   atomic.Bool
	mu     sync.Mutex
	digest string
	last   time.Time // when the last pull ended
}

// refreshEvery is how often at most a key missing from the copy makes a
// region pull its home's IAM.
const refreshEvery = 500 * time.Millisecond

// sync pulls the home region's IAM when it changed.
func (c *iamCopier) sync(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pullLocked(ctx)
}

func (c *iamCopier) pullLocked(ctx context.Context) error {
	err := c.pull(ctx)
	c.last = time.Now()
	c.down.Store(err != nil)
	return err
}

func (c *iamCopier) pull(ctx context.Context) error {
	p := c.r.peers()
	if p.client == nil {
		return errors.New("no key of the deployment to sign peer calls with")
	}
	resp, err := p.client.Do(ctx, c.r.iamHome(), http.MethodGet, iamSnapshotPath+"?digest="+url.QueryEscape(c.digest), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("IAM home %s answered %s: %s", c.r.iamHome(), resp.Status, b)
	}
	var snap iamSnapshot
	if err := json.NewDecoder(resp.Body).Decode(&snap); err != nil {
		return fmt.Errorf("read IAM snapshot: %w", err)
	}
	if snap.Digest == c.digest {
		return nil
	}
	if err := c.r.IAM.Import(ctx, snap.Records); err != nil {
		return err
	}
	c.digest = snap.Digest
	return nil
}

// refresh brings the copy up to date for a key it lacks: it pulls, unless
// a pull ended less than refreshEvery ago (perhaps one it waited for). It
// reports false, having pulled nothing, while the home region does not
// answer: a request with a key the copy lacks is then refused at once
// instead of waiting on a region that is down, and the pulls every
// iamSyncInterval notice when it is back.
func (c *iamCopier) refresh(ctx context.Context) bool {
	if c.down.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.down.Load():
		return false
	case time.Since(c.last) < refreshEvery:
		return true
	}
	return c.pullLocked(ctx) == nil
}

// run copies IAM until ctx ends.
func (c *iamCopier) run(ctx context.Context) {
	tick := time.NewTicker(iamSyncInterval)
	defer tick.Stop()
	for {
		if err := c.sync(ctx); err != nil && ctx.Err() == nil {
			c.r.log.Warn("copy IAM from its home region", "home", c.r.iamHome(), "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// copyingLookup finds keys in the region's copy of IAM, pulling the home
// region's state first when a key is not there yet (see refresh).
type copyingLookup struct {
	store *iam.Store
	c     *iamCopier
}

func (l copyingLookup) Lookup(ctx context.Context, id string) (iam.Key, error) {
	k, err := l.store.Lookup(ctx, id)
	if !errors.Is(err, iam.ErrUnknownKey) || !l.c.refresh(ctx) {
		return k, err
	}
	return l.store.Lookup(ctx, id)
}

// forwardIAM passes an IAM call to the home region, where IAM is written,
// keeping the client's signature (the Host header and body).
func (r *Region) forwardIAM(w http.ResponseWriter, req *http.Request) {
	home := r.iamHome()
	endpoint, ok := r.cfg.Topology.Endpoint(home)
	target, err := url.Parse(endpoint)
	if !ok || err != nil {
		http.Error(w, "IAM home region "+home+" has no endpoint", http.StatusServiceUnavailable)
		return
	}
	// The transport reports a body that failed as a broken request; the
	// body itself says whether the client stalled.
	body := &recordingBody{ReadCloser: req.Body}
	if req.Body != nil {
		req.Body = body
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, pr.In.URL.RawPath
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(forwardedHeader, r.cfg.Region)
		},
		Transport: r.peers().transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			w.Header().Set("Content-Type", "text/xml")
			if errors.Is(body.readErr(), httplimit.ErrReadTimeout) {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Sender</Type><Code>RequestTimeout</Code><Message>%s</Message></Error></ErrorResponse>`, requestTimeoutMessage)
				return
			}
			r.log.Warn("forward IAM call", "home", home, "err", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintf(w, `<ErrorResponse xmlns="https://iam.amazonaws.com/doc/2010-05-08/"><Error><Type>Receiver</Type><Code>ServiceUnavailable</Code><Message>IAM is held by region %s, which did not answer.</Message></Error></ErrorResponse>`, home)
		},
	}
	proxy.ServeHTTP(w, req)
}
