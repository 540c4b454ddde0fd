package server

import (
	"context"
	"errors"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/lease"
	"github.com/bulwark/bulwark/internal/meta"
)

// A region can be served by several processes, gateways, over one
// PostgreSQL database and one shared blob store (docs/design/gateways.md).
// Requests go to any gateway: every one reads and writes through the
// shared stores and keeps no state of its own that another could change.
// Background work is leased (package lease): each item runs in exactly one
// live gateway, and another takes it over within seconds when that one
// dies. A region on bbolt has one process, which takes every lease at once.

// Leases on the region's background work.
const (
	leaseReplication = "replication"      // the engine: feed dispatch, lanes, batch jobs
	leaseScheduler   = "backup-scheduler" // plans, restore tests, lifecycle, reports
	leaseStreams     = "backup-streams"   // continuous backup streams
	leaseJobs        = "backup-jobs"      // jobs of gateways that died
	leaseSweeper     = "sweeper"          // orphan blobs, expired uploads
	leaseIAMSync     = "iam-sync"         // the copy of IAM from its home region
)

// singleHolder names the one process of a region on bbolt, whose file
// lock makes it the only one: it takes back its own leases at once after
// a restart.
const singleHolder = "local"

// gatewayForwarded marks a request one gateway passes to another of its
// region, so that it is answered there and not passed on again.
const gatewayForwarded = "X-Bulwark-Gateway-Forwarded"

// feedChannel is the notification sent after a gateway's commits: the
// replication engine, wherever it runs, reads the change feed again.
const feedChannel = "bulwark_feed"

// notifier carries wake-ups between the gateways of a region: PostgreSQL's
// LISTEN/NOTIFY, or a channel within the process for a region on bbolt.
// A notification may be lost; receivers poll besides.
type notifier interface {
	Subscribe(channel string) <-chan struct{}
	Notify(ctx context.Context, channel string) error
	Start()
	Close(ctx context.Context) error
}

// newNotifier returns the notifier of the region's metadata store.
func newNotifier(m meta.Store, r *Region) notifier {
	if s, ok := m.(pgMeta); ok {
		return s.NewNotifier(r.log)
	}
	return &localNotifier{subs: map[string][]chan struct{}{}}
}

// localNotifier is a notifier within one process.
type localNotifier struct {
	mu   sync.Mutex
	subs map[string][]chan struct{}
}

func (n *localNotifier) Subscribe(channel string) <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	c := make(chan struct{}, 1)
	n.subs[channel] = append(n.subs[channel], c)
	return c
}

func (n *localNotifier) Notify(_ context.Context, channel string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, c := range n.subs[channel] {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	return nil
}

func (n *localNotifier) Start()                        {}
func (n *localNotifier) Close(_ context.Context) error { return nil }

// feedNotice sends feedChannel after the gateway's commits, at most one at
// a time: commits made while one is being sent are covered by the next.
type feedNotice struct {
	n    notifier
	kick chan struct{}
}

// commitNotifier wraps the metadata store so that every commit kicks the
// feed notice; it is what a PUT on one gateway wakes another's engine by.
type commitNotifier struct {
	meta.Store
	kick chan struct{}
}

func (m commitNotifier) Update(ctx context.Context, fn func(meta.Tx) error) error {
	err := m.Store.Update(ctx, fn)
	if err == nil {
		select {
		case m.kick <- struct{}{}:
		default:
		}
	}
	return err
}

// run sends the notices until ctx ends.
func (f *feedNotice) run(ctx context.Context, log interface {
	Warn(msg string, args ...any)
}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.kick:
		}
		nctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := f.n.Notify(nctx, feedChannel); err != nil && ctx.Err() == nil {
			log.Warn("notify the region's gateways of new changes", "err", err)
		}
		cancel()
	}
}

// leaseConfig is the configuration of the region's leases.
func (r *Region) newLeases() *lease.Leases {
	holder := singleHolder
	if r.multi {
		holder = lease.NewHolderID()
	}
	return lease.New(lease.Config{Meta: r.meta, Holder: holder, TTL: r.cfg.LeaseTTL, Logger: r.log})
}

// works returns the region's background work, each item under its lease.
func (r *Region) leasedWork() []*lease.Work {
	l := r.leases
	works := []*lease.Work{
		l.Work(leaseReplication, func(ctx context.Context) error {
			if err := r.Replication.Start(ctx); err != nil {
				return err
			}
			<-ctx.Done()
			r.Replication.Close()
			return nil
		}),
		l.Work(leaseSweeper, func(ctx context.Context) error {
			r.Store.RunSweeper(ctx, r.cfg.SweepInterval, r.cfg.SweepGrace, r.cfg.UploadExpiry)
			return nil
		}),
	}
	if r.iamCopy != nil {
		works = append(works, l.Work(leaseIAMSync, func(ctx context.Context) error {
			r.iamCopy.run(ctx)
			return nil
		}))
	}
	if !r.multi {
		return works
	}
	// With several gateways the scheduler acts under the region's lease;
	// alone, it keeps its own (startBackupScheduler).
	sched := l.Work(leaseScheduler, func(ctx context.Context) error {
		r.BackupScheduler.Run(ctx)
		return nil
	})
	r.schedulerWork = sched
	works = append(works, sched,
		l.Work(leaseStreams, func(ctx context.Context) error {
			return r.every(ctx, r.leases.TTL(), "resume continuous backup streams", r.Jobs.ResumeStreams, r.Jobs.StopStreams)
		}),
		l.Work(leaseJobs, func(ctx context.Context) error {
			return r.every(ctx, r.leases.TTL()/2, "take over the jobs of stopped gateways", func(ctx context.Context) error {
				live, err := r.leases.Live(ctx)
				if err != nil {
					return err
				}
				return r.Jobs.TakeOverInterrupted(ctx, live)
			}, nil)
		}),
	)
	return works
}

// every runs fn at once and then every interval until ctx ends, then stop.
func (r *Region) every(ctx context.Context, interval time.Duration, what string, fn func(context.Context) error, stop func()) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := fn(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn(what, "err", err)
		}
		select {
		case <-ctx.Done():
			if stop != nil {
				stop()
			}
			return nil
		case <-t.C:
		}
	}
}

// startGateway starts the gateway's presence, its notifications and the
// background work it may take; it waits for the presence, which the
// jobs it starts are judged by.
func (r *Region) startGateway() error {
	r.leases.SetAddr(r.url)
	r.presence = r.leases.Presence()
	r.presence.Start()
	wctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := r.presence.Wait(wctx)
	cancel()
	if err != nil {
		_ = r.presence.Close(context.Background())
		return errors.New("start gateway: the metadata store took no presence lease")
	}
	feed := r.notes.Subscribe(feedChannel)
	r.notes.Start()
	ctx, cancel := context.WithCancel(context.Background())
	r.gwCancel = cancel
	r.gwWG.Add(2)
	go func() { defer r.gwWG.Done(); r.feed.run(ctx, r.log) }()
	go func() {
		defer r.gwWG.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-feed:
				r.Replication.Wake()
			}
		}
	}()
	r.works = r.leasedWork()
	for _, w := range r.works {
		w.Start()
	}
	return nil
}

// closeGateway stops the background work (each item gives its lease up,
// for another gateway to take at once), the notifications and, last, the
// presence.
func (r *Region) closeGateway(ctx context.Context) error {
	var errs []error
	for i := len(r.works) - 1; i >= 0; i-- {
		if err := r.works[i].Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	if r.gwCancel != nil {
		r.gwCancel()
		r.gwWG.Wait()
	}
	if err := r.notes.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if r.presence != nil {
		if err := r.presence.Close(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// schedulerHeld says whether this gateway holds the scheduler's lease.
func (r *Region) schedulerHeld() bool {
	if r.schedulerWork == nil {
		return false
	}
	_, ok := r.schedulerWork.Held()
	return ok
}

// toLeaseHolder passes a request that only the holder of a lease can
// answer from its memory (the replication engine's backlog, latencies and
// running jobs) to the gateway holding it; false when this gateway should
// answer (it holds the lease, nobody does, or the request was passed on
// already).
func (r *Region) toLeaseHolder(w http.ResponseWriter, req *http.Request, name string) bool {
	if !r.multi || req.Header.Get(gatewayForwarded) != "" {
		return false
	}
	rec, ok, err := r.leases.Get(req.Context(), name)
	if err != nil || !ok || rec.Holder == r.leases.Holder() || rec.Addr == "" || rec.Addr == r.url {
		return false
	}
	target, err := url.Parse(rec.Addr)
	if err != nil {
		return false
	}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			pr.Out.Host = pr.In.Host
			pr.Out.Header.Set(gatewayForwarded, r.leases.Holder())
		},
		Transport: r.peers().transport,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			r.log.Warn("pass a request to the lease holder", "lease", name, "holder", rec.Holder, "err", err)
			writeJSONError(w, http.StatusServiceUnavailable, "ServiceUnavailable",
				"the gateway running "+name+" did not answer; try again")
		},
	}
	proxy.ServeHTTP(w, req)
	return true
}

// replicationHolderFirst wraps the admin API: replication requests go to
// the gateway running the replication engine.
func (r *Region) replicationHolderFirst(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if strings.HasPrefix(req.URL.Path, replicationPath) && r.toLeaseHolder(w, req, leaseReplication) {
			return
		}
		next.ServeHTTP(w, req)
	})
}

// gatewayOf is the name the backup service gives the jobs this gateway
// runs: none for a region's only process.
func (r *Region) gatewayOf() string {
	if !r.multi {
		return ""
	}
	return r.leases.Holder()
}
