// Package server wires a region together — metadata and blob stores, the
// object store, the S3 API, metrics — and owns its lifecycle: open, serve,
// graceful close. It is the one package that imports everything.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/auth"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backupapi"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/iamapi"
	"github.com/bulwark/bulwark/internal/lease"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/s3api"
	"github.com/bulwark/bulwark/internal/scrub"
	"github.com/bulwark/bulwark/internal/sigv4"
	"github.com/bulwark/bulwark/internal/topology"
)

// Config configures one region.
type Config struct {
	Region  string
	DataDir string
	Listen  string // host:port; port 0 picks a free port
	TLSCert string // PEM files; both empty serves plain HTTP
	TLSKey  string
	Keys    []iam.Key
	// Domains for virtual-hosted-style requests; default "localhost".
	Domains []string
	Logger  *slog.Logger
	// SweepInterval and SweepGrace drive the orphan blob sweeper; a blob
	// younger than the grace period may belong to an upload in progress.
	SweepInterval, SweepGrace time.Duration
	// UploadExpiry is the age at which an unfinished multipart upload is
	// aborted and its parts reclaimed; default 7 days.
	UploadExpiry time.Duration
	// InlineLimit overrides objectstore.DefaultInlineLimit when non-zero.
	InlineLimit int64
	// MetaDSN, when set, is the PostgreSQL database holding the region's
	// metadata (a postgres:// URL), shared by every gateway serving the
	// region; empty keeps it in DataDir (bbolt).
	MetaDSN string
	// SharedDir is the directory every gateway of the region shares: blobs,
	// vault repositories and the deployment key (default DataDir, for a
	// region served by one process). DataDir keeps what is the process's
	// own: scratch space, the disk guard's ballast, the scrubber's state.
	SharedDir string
	// BlobURL is where object data lives: a directory, or
	// s3://bucket/prefix?endpoint=URL&region=NAME with credentials from
	// AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Several gateways over
	// one metadata store may share it; regions with metadata of their own
	// must not (each would sweep the other's blobs). Empty means
	// SharedDir/blobs.
	BlobURL string
	// LeaseTTL is how long background work waits for a gateway that
	// stopped renewing its lease before another takes it over
	// (lease.DefaultTTL when 0).
	LeaseTTL time.Duration
	// Topology names every region of the deployment, this one included;
	// nil runs the region alone.
	Topology *topology.Topology
	// Replication tunes the replication engine.
	Replication ReplicationConfig
	// IAM, when set, is the deployment's IAM store, shared with the region
	// that holds it (bulwark up runs every region over one); nil opens one
	// over this region's metadata store.
	IAM *iam.Store
	// DeploymentKey seals secret keys at rest; nil takes (or makes) the
	// one in DataDir/deployment.key.
	DeploymentKey []byte
	// BootstrapKeys are root keys kept in IAM, sealed, rather than given
	// by configuration: bulwark up's admin key. Open stores one that
	// carries its secret unless IAM holds it already; one without names a
	// key stored at an earlier start. The first root key of Keys, else of
	// BootstrapKeys, is the deployment's admin's (see accounts.go).
	BootstrapKeys []iam.Key
	// BackupClock is the clock of the backup service: plans' schedules,
	// job and recovery point dates, lifecycles. nil means time.Now; tests
	// move it instead of waiting days.
	BackupClock func() time.Time
	// BackupSchedulerInterval is the time between the backup scheduler's
	// passes (backup.DefaultSchedulerInterval when 0).
	BackupSchedulerInterval time.Duration
	// BackupProviders are the resource types the backup service backs up
	// besides the region's buckets (always the first, type S3), one per
	// type.
	BackupProviders []backup.Provider
	// ResourceRoots are the directories under which any account may
	// register directories and SQLite files and restore to the server's
	// filesystem; none keeps such paths to the admin account.
	ResourceRoots []string
	// Disk sets the free space the region keeps on its data directory's
	// filesystem and its reserves for deletes on a full disk.
	Disk DiskConfig
	// MetricsToken is the bearer token an unsigned GET /metrics must
	// carry; empty lets in only signed requests to the admin API's
	// metrics, unless MetricsPublic (see metrics.go).
	MetricsToken string
	// MetricsPublic serves GET /metrics to anyone.
	MetricsPublic bool
	// ScrubInterval is the time between the scrubber's background passes
	// over the region's data (a week when 0; negative runs none: only
	// passes asked for); ScrubRate caps its reads in bytes per second
	// (scrub.DefaultRate when 0).
	ScrubInterval time.Duration
	ScrubRate     int64
	// Clients bounds what clients can hold of the region: connections
	// that make no progress, and how many may be open.
	Clients ClientLimits
	// Audit is what the protection audit requires and its thresholds;
	// zero fields take audit.DefaultPolicy's, and a Require of nil the
	// topology file's audit.require.
	Audit audit.Policy
	// Prices is the cost model's price table; nil means audit.DefaultPrices.
	Prices *audit.Prices
}

// ClientLimits bound what clients can hold of the region (see package
// httplimit); zero values take httplimit's defaults, negative ones turn a
// limit off.
type ClientLimits struct {
	// ReadIdleTimeout ends a request whose headers or body make no
	// progress for this long: 400 RequestTimeout, connection closed.
	ReadIdleTimeout time.Duration
	// WriteIdleTimeout ends a response the client takes no byte of for
	// this long.
	WriteIdleTimeout time.Duration
	// MaxConns caps open connections; MaxConnsPerClient those from one IP
	// address (one /64 for IPv6). At a cap, a new connection displaces the
	// one that has waited on its client longest, or is closed.
	MaxConns, MaxConnsPerClient int
}

// ReplicationConfig tunes the replication engine; zero values take the
// engine's defaults.
type ReplicationConfig struct {
	Workers     int   // concurrent sends per destination bucket
	Bandwidth   int64 // bytes per second per destination bucket; 0 unlimited
	RetryMax    time.Duration
	FailedRetry time.Duration
}

// Region is one running region.
type Region struct {
	cfg   Config
	log   *slog.Logger
	meta  metaStore
	Store *objectstore.Store
	// Disk admits new data while the data directory's filesystem keeps
	// its floor free, and keeps the reserves for deletes.
	Disk     *headroom.Guard
	Registry *prometheus.Registry
	roots    *iam.Keyring  // root keys given by configuration
	keys     iam.KeyLookup // every key: roots, stored keys, sessions
	admin    string        // the account whose root user is the deployment's admin
	authz    iam.Authorizer
	// IAM holds the deployment's accounts, users, roles, policies and
	// sessions.
	IAM *iam.Store
	// Backup is the region's backup catalog: vaults, plans, selections.
	Backup *backup.Catalog
	Jobs   *backup.Service // backup and restore jobs, vault repositories
	// Resources are the databases and directories registered for backup.
	Resources *backup.Resources
	// Audit is Backup Audit Manager: frameworks and report plans.
	Audit *backup.Audit
	// BackupScheduler runs the region's backup plans (set by Serve).
	BackupScheduler *backup.Scheduler
	// Scrub checks the stored data and repairs what rotted.
	Scrub     *scrub.Scrubber
	vaultKey  []byte     // the deployment key, which encrypts the vaults
	iamCopy   *iamCopier // set when IAM's home is another region
	peerOnce  sync.Once
	peerState *peerState // lookups and calls to the other regions
	// Replication sends this region's new object versions to their
	// destination buckets.
	Replication *replication.Engine
	srv         *http.Server
	ln          net.Listener
	url         string

	// multi is set when other processes may serve the region too (its
	// metadata in PostgreSQL, or a shared directory): see gateway.go.
	multi         bool
	leases        *lease.Leases
	presence      *lease.Work   // this gateway's presence
	works         []*lease.Work // background work, each under its lease
	schedulerWork *lease.Work
	notes         notifier
	feed          *feedNotice
	gwCancel      context.CancelFunc
	gwWG          sync.WaitGroup

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// Open opens the region's stores and, when it is the only process using
// them, sweeps blobs a previous crash left unreferenced. It does not serve
// yet. Whatever it opened is closed again when it fails.
func Open(ctx context.Context, cfg Config) (_ *Region, err error) {
	if cfg.Region == "" || cfg.DataDir == "" {
		return nil, errors.New("open region: region and data directory are required")
	}
	cfg = withDefaults(cfg)
	if _, err := auditPolicy(cfg); err != nil {
		return nil, fmt.Errorf("open region %s: %w", cfg.Region, err)
	}
	log := cfg.Logger.With("region", cfg.Region)
	for _, dir := range []string{cfg.DataDir, cfg.SharedDir} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("open region %s: %w", cfg.Region, err)
		}
	}
	var undo cleanups
	defer func() {
		if err != nil {
			undo.run(log)
		}
	}()
	reg := prometheus.NewRegistry()
	// First of all: on a full disk, the guard releases the ballast before
	// anything else opens.
	gcfg := cfg.Disk.guard(cfg.Region, cfg.DataDir)
	gcfg.Logger, gcfg.Registerer = log, reg
	disk, err := headroom.Open(gcfg)
	if err != nil {
		return nil, fmt.Errorf("open region %s: %w", cfg.Region, err)
	}
	bm, err := openMeta(ctx, cfg, disk)
	if err != nil {
		return nil, err
	}
	undo.push("metadata store", bm.Close)
	r := &Region{cfg: cfg, log: log, meta: bm, multi: bm.shared() || cfg.SharedDir != cfg.DataDir, Disk: disk, Registry: reg,
		roots: iam.NewKeyring(cfg.Keys...)}
	r.leases = r.newLeases()
	r.notes = newNotifier(bm, r)
	r.feed = &feedNotice{n: r.notes, kick: make(chan struct{}, 1)}
	// Every package writes metadata and blobs through these, so a write
	// that runs out of space says so, whichever package made it; every
	// commit tells the region's other gateways to read the change feed.
	var m meta.Store = spaceMeta{Store: bm, g: disk}
	if r.multi {
		m = commitNotifier{Store: m, kick: r.feed.kick}
	}
	rawBlobs, private, err := openBlobStore(ctx, cfg, !r.multi)
	if err != nil {
		return nil, err
	}
	store := objectstore.New(objectstore.Config{
		Region: cfg.Region, Meta: m, Blobs: spaceBlobs{Store: rawBlobs, g: disk}, Logger: log, InlineLimit: cfg.InlineLimit,
		ReplicationSelects: replication.Selects, Space: disk,
	})
	r.Store = store
	if !r.multi {
		// The only process: nothing is being written yet, so every
		// unreferenced blob of a store it owns alone is an orphan; one it
		// may share keeps the grace. With several gateways, another may be
		// writing one now, and the leased sweeper keeps the grace.
		grace := cfg.SweepGrace
		if private {
			grace = 0
		}
		if n, err := store.SweepOrphans(ctx, grace); err != nil {
			return nil, err
		} else if n > 0 {
			log.Info("removed orphan blobs left by an interrupted run", "count", n)
		}
	}
	r.registerMetrics()
	if err := r.openServices(ctx, m); err != nil {
		return nil, err
	}
	undo.push("backup jobs", func() error { return r.Jobs.Close(context.Background()) })
	if err := r.bootstrap(ctx); err != nil {
		return nil, err
	}
	// The accounts of the configured root keys exist, each with the
	// replication role the design article's configuration names.
	for _, k := range slices.Concat(cfg.Keys, cfg.BootstrapKeys) {
		if k.Principal.Root() {
			err := r.IAM.EnsureAccount(ctx, k.Principal.AccountID, "")
			if err == nil {
				err = r.IAM.EnsureReplicationRole(ctx, k.Principal.AccountID)
			}
			if err != nil {
				return nil, err
			}
		}
	}
	r.Replication = r.newReplication(m)
	r.Scrub = r.newScrubber()
	return r, nil
}

// withDefaults fills in the configuration's defaults.
func withDefaults(cfg Config) Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if len(cfg.Domains) == 0 {
		cfg.Domains = []string{"localhost"}
	}
	if cfg.SharedDir == "" {
		cfg.SharedDir = cfg.DataDir
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = time.Hour
	}
	if cfg.SweepGrace == 0 {
		cfg.SweepGrace = 24 * time.Hour
	}
	if cfg.UploadExpiry == 0 {
		cfg.UploadExpiry = 7 * 24 * time.Hour
	}
	switch {
	case cfg.ScrubInterval == 0:
		cfg.ScrubInterval = 7 * 24 * time.Hour // as Ceph's weekly deep scrub
	case cfg.ScrubInterval < 0:
		cfg.ScrubInterval = 0
	}
	if cfg.Topology == nil {
		cfg.Topology, _ = topology.New(topology.Region{Name: cfg.Region})
	}
	return cfg
}

// registerMetrics registers the region's own collectors.
func (r *Region) registerMetrics() {
	reg, store, bm := r.Registry, r.Store, r.meta
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "bulwark_objectstore_feed_records",
		Help: "Change records in the change feed not yet trimmed.",
	}, func() float64 {
		st, err := store.FeedStats(context.Background())
		if err != nil {
			return -1
		}
		return float64(st.Length)
	}))
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "bulwark_meta_commits_total",
			Help: "Durable metadata commits (each one fsync group).",
		}, func() float64 { c, _ := bm.commitStats(); return float64(c) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "bulwark_meta_transactions_total",
			Help: "Metadata transactions committed; divided by commits, the group commit factor.",
		}, func() float64 { _, t := bm.commitStats(); return float64(t) }),
	)
}

// openServices opens IAM, the backup catalog and job service and Backup
// Audit Manager over the metadata store.
func (r *Region) openServices(ctx context.Context, m meta.Store) error {
	cfg := r.cfg
	r.IAM = cfg.IAM
	if r.IAM == nil {
		key := cfg.DeploymentKey
		if key == nil {
			var err error
			if key, err = iam.LoadDeploymentKey(filepath.Join(cfg.SharedDir, "deployment.key"), ""); err != nil {
				return err
			}
		}
		r.vaultKey = key
		var err error
		if r.IAM, err = iam.NewStore(m, key, r.roots, nil); err != nil {
			return err
		}
	}
	r.keys = r.IAM
	if r.copiesIAM() {
		r.iamCopy = &iamCopier{r: r}
		r.keys = copyingLookup{store: r.IAM, c: r.iamCopy}
	}
	r.authz = &iam.Evaluator{Store: r.IAM}
	r.Backup = backup.NewCatalog(m, cfg.Region, cfg.BackupClock)
	if err := r.openBackupJobs(ctx); err != nil {
		return err
	}
	r.openAudit()
	return nil
}

// newReplication makes the region's replication engine; it runs in the
// gateway holding the replication lease.
func (r *Region) newReplication(m meta.Store) *replication.Engine {
	cfg := r.cfg
	return replication.New(replication.EngineConfig{
		Store: r.Store, Meta: m, Locate: r.locateEndpoint,
		AssumeRole: func(ctx context.Context, role string) (*replication.RoleCredentials, error) {
			ss, err := r.IAM.AssumeRoleAsService(ctx, iam.ServiceS3, role, "bulwark-replication-"+cfg.Region)
			if err != nil {
				return nil, err
			}
			return &replication.RoleCredentials{AccessKey: ss.ID, Secret: ss.Secret, Token: ss.Token, Expires: ss.Expires,
				Principal: iam.Principal{AccountID: ss.Account, ARN: ss.ARN(), AccessKey: ss.ID, RoleARN: ss.RoleARN, RoleName: ss.RoleName}}, nil
		},
		Authorize: func(ctx context.Context, req *iam.Request) error { return r.authz.Authorize(ctx, req) },
		Credentials: func(account string) (string, string, bool) {
			k, ok := r.rootKeyOf(context.Background(), account)
			return k.AccessKey, k.Secret, ok
		},
		HTTPClient: &http.Client{Transport: topology.NewTransport(r.peerTLS())},
		Workers:    cfg.Replication.Workers, Bandwidth: cfg.Replication.Bandwidth,
		RetryMax: cfg.Replication.RetryMax, FailedRetry: cfg.Replication.FailedRetry,
		Registry: r.Registry, Logger: r.log,
	})
}

// cleanups undoes, last first, what a failing Open had opened.
type cleanups []struct {
	what string
	fn   func() error
}

func (c *cleanups) push(what string, fn func() error) {
	*c = append(*c, struct {
		what string
		fn   func() error
	}{what, fn})
}

func (c cleanups) run(log *slog.Logger) {
	for i := len(c) - 1; i >= 0; i-- {
		if err := c[i].fn(); err != nil {
			log.Warn("close after a failed open", "what", c[i].what, "err", err)
		}
	}
}

// verifier checks signatures made with the deployment's keys. Bucket names
// are global and any region's endpoint serves any bucket, so a credential
// scope may name any region of the topology; this region comes first, as
// the one reported to a client that names none of them.
func (r *Region) verifier() *sigv4.Verifier {
	regions := []string{r.cfg.Region}
	for _, n := range r.cfg.Topology.Names() {
		if n != r.cfg.Region {
			regions = append(regions, n)
		}
	}
	return &sigv4.Verifier{Lookup: auth.Lookup(r.keys), Regions: regions}
}

// Handler returns the region's HTTP handler: the S3 API; Bulwark's own API
// under /_bulwark/ (no bucket name can start with "_"); and Prometheus
// metrics on a GET /metrics with a bearer token (a SigV4-signed request
// there is S3's, for a bucket named "metrics").
func (r *Region) Handler() http.Handler {
	api := s3api.New(s3api.Config{
		Store:      r.Store,
		Verifier:   r.verifier(),
		Keys:       r.keys,
		Authorizer: r.authz,
		Metrics:    s3api.NewMetrics(r.Registry),
		Logger:     r.log,
		Domains:    r.cfg.Domains,
		Router:     r.router(),
		// Replication destinations may live in any region.
		LookupBucket: r.lookupBucket,
	})
	admin := r.replicationHolderFirst(r.adminHandler())
	// IAM and STS are global services: any region's endpoint answers them,
	// signed for us-east-1 (where the aws CLI signs global services) or any
	// region of the deployment.
	iamRegions := append(r.verifier().Regions, "us-east-1")
	iamAPI := iamapi.New(iamapi.Config{
		Store: r.IAM, Keys: r.keys, Authorizer: r.authz, Logger: r.log,
		Verifier: &sigv4.Verifier{Lookup: auth.Lookup(r.keys), Services: []string{"iam", "sts"}, Regions: iamRegions},
	})
	backupAPI := backupapi.New(backupapi.Config{
		Catalog: r.Backup, Jobs: r.Jobs, Providers: r.Jobs.Providers(), Audit: r.Audit, Keys: r.keys, Authorizer: r.authz, Region: r.cfg.Region, Logger: r.log,
		Verifier: &sigv4.Verifier{Lookup: auth.Lookup(r.keys), Services: []string{"backup"}, Regions: r.verifier().Regions},
	})
	metrics := r.metricsScrape(promhttp.HandlerFor(r.Registry, promhttp.HandlerOpts{}))
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		svc := scopeService(req)
		if svc == "" && req.Method == http.MethodPost && req.URL.Path == "/" &&
			strings.HasPrefix(req.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
			// An unsigned Query API call: IAM or STS answers it (S3 has no
			// such request), refusing it for want of a signature.
			svc = "sts"
		}
		if svc == "backup" {
			backupAPI.ServeHTTP(w, req)
			return
		}
		if svc == "iam" || svc == "sts" {
			if svc == "iam" && r.iamCopy != nil && req.Header.Get(forwardedHeader) == "" {
				r.forwardIAM(w, req)
				return
			}
			iamAPI.ServeHTTP(w, req)
			return
		}
		if strings.HasPrefix(req.URL.Path, adminPrefix) {
			admin.ServeHTTP(w, req)
			return
		}
		if isMetricsScrape(req) {
			metrics.ServeHTTP(w, req)
			return
		}
		api.ServeHTTP(w, req)
	})
}

// scopeService is the service a request's SigV4 credential scope names
// (AKID/date/region/service/aws4_request), "" when unsigned.
func scopeService(req *http.Request) string {
	cred := req.URL.Query().Get("X-Amz-Credential")
	if auth := req.Header.Get("Authorization"); auth != "" {
		if _, after, ok := strings.Cut(auth, "Credential="); ok {
			cred, _, _ = strings.Cut(after, ",")
		}
	}
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return ""
	}
	return parts[3]
}

// Start listens and serves in the background.
func (r *Region) Start() error {
	if r.iamCopy != nil {
		// Serve with a current copy of IAM when its home answers; with the
		// copy kept from the last run otherwise.
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := r.iamCopy.sync(sctx); err != nil {
			r.log.Warn("IAM home region did not answer; serving with the IAM copy kept", "home", r.iamHome(), "err", err)
		}
		cancel()
	}
	ln, err := net.Listen("tcp", r.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", r.cfg.Listen, err)
	}
	cl := r.cfg.Clients
	limits := httplimit.New(httplimit.Config{
		ReadIdle: cl.ReadIdleTimeout, WriteIdle: cl.WriteIdleTimeout,
		MaxConns: cl.MaxConns, MaxConnsPerClient: cl.MaxConnsPerClient,
		Registry: r.Registry, Logger: r.log,
	})
	// Below TLS: the limits count and time the bytes on the wire.
	ln = limits.Listener(ln)
	scheme := "http"
	if r.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(r.cfg.TLSCert, r.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("load TLS certificate: %w", err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}})
		scheme = "https"
	}
	r.ln = ln
	r.url = scheme + "://" + ln.Addr().String()
	r.srv = &http.Server{
		Handler: r.Handler(),
		// The read idle timeout takes its place unless turned off.
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(r.log.Handler(), slog.LevelDebug),
	}
	limits.Configure(r.srv)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.startBackupScheduler(ctx)
	if err := r.startGateway(); err != nil {
		cancel()
		r.wg.Wait()
		ln.Close()
		return err
	}
	r.wg.Add(2)
	go func() {
		defer r.wg.Done()
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			r.log.Error("serve", "err", err)
		}
	}()
	go func() { defer r.wg.Done(); r.Disk.Run(ctx) }()
	r.Scrub.Open()
	r.log.Info("serving", "url", r.url, "gateway", r.leases.Holder())
	return nil
}

// locateEndpoint finds the region and endpoint serving a bucket, for the
// replication engine.
func (r *Region) locateEndpoint(ctx context.Context, bucket string) (string, string, error) {
	region, err := r.LocateBucket(ctx, bucket)
	if err != nil {
		return "", "", err
	}
	if region == r.cfg.Region {
		return r.url, region, nil
	}
	ep, ok := r.cfg.Topology.Endpoint(region)
	if !ok {
		return "", "", fmt.Errorf("%w: region %s has no endpoint in the topology", topology.ErrRegionUnreachable, region)
	}
	return ep, region, nil
}

// URL is the region's endpoint, once started.
func (r *Region) URL() string { return r.url }

// Close stops accepting requests, lets those in flight finish (until ctx
// ends), stops background work and closes the stores.
func (r *Region) Close(ctx context.Context) error {
	var errs []error
	if r.srv != nil {
		if err := r.srv.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("shutdown: %w", err))
			r.srv.Close()
		}
	}
	if err := r.closeGateway(ctx); err != nil {
		errs = append(errs, err)
	}
	if r.cancel != nil {
		r.cancel()
	}
	r.wg.Wait()
	r.Scrub.Close()
	r.Replication.Close()
	if err := r.Jobs.Close(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := r.meta.Close(); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
