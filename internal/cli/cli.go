// Package cli implements the bulwark command's subcommands, one file each.
// Main.Run takes its arguments, streams and environment explicitly so tests
// drive it like the real binary.
package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/audit"
	"github.com/bulwark/bulwark/internal/bench"
	"github.com/bulwark/bulwark/internal/httplimit"
	"github.com/bulwark/bulwark/internal/server"
)

// Main is the bulwark command.
type Main struct {
	Stdout, Stderr io.Writer
	// Stdin is read by the commands that take a secret on it (resource
	// add -password-stdin); nil reads nothing.
	Stdin  io.Reader
	Getenv func(string) string
	// Ready, if set, is called with the running regions' endpoints once
	// serve or up accepts requests (tests use it to find ports).
	Ready func(endpoints map[string]string)
}

const usage = `Usage: bulwark <command> [flags]

Commands:
  up       start a local two-region deployment with default settings (start here)
  serve    run one region, alone or as part of a deployment (-config topology.yaml)
  bench    measure PUT and GET throughput of an S3 endpoint
  replication  see replication's state, retry failures, resync and compare buckets
  backup   see backup plans' next runs and last jobs, and the recovery points of each resource
  admin    create and list accounts (the deployment's admin only)
  scrub    check a region's stored data and repair what rotted (the admin only)
  resource register databases and directories for backup, list and remove them
  audit    is each resource protected against region outage, deletion, corruption, credential loss?
  migrate  move a stopped region's metadata from bbolt to PostgreSQL, or compare the two (-verify)
  version  print the version

Run "bulwark <command> -h" for a command's flags.
`

// lockedWriter serializes the writes of several goroutines to w.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func lockWriter(w io.Writer) io.Writer {
	if _, ok := w.(*lockedWriter); ok || w == nil {
		return w
	}
	return &lockedWriter{w: w}
}

// Version is set at build time with -ldflags "-X ...cli.Version=...".
var Version = "dev"

// Run runs the command line args and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	if m.Getenv == nil {
		m.Getenv = func(string) string { return "" }
	}
	// The log and the command's own lines go to the same writers from
	// several goroutines (background work logs while serve says it is
	// shutting down): one lock per writer keeps lines whole.
	out, errOut := m.Stdout, m.Stderr
	m.Stdout, m.Stderr = lockWriter(out), lockWriter(errOut)
	defer func() { m.Stdout, m.Stderr = out, errOut }()
	if len(args) == 0 {
		fmt.Fprint(m.Stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "up":
		err = m.up(ctx, args[1:])
	case "serve":
		err = m.serve(ctx, args[1:])
	case "bench":
		err = m.bench(ctx, args[1:])
	case "replication":
		err = m.replication(ctx, args[1:])
	case "backup":
		err = m.backup(ctx, args[1:])
	case "admin":
		err = m.admin(ctx, args[1:])
	case "scrub":
		err = m.scrub(ctx, args[1:])
	case "resource":
		err = m.resource(ctx, args[1:])
	case "audit":
		err = m.audit(ctx, args[1:])
	case "migrate":
		err = m.migrate(ctx, args[1:])
	case "version":
		fmt.Fprintln(m.Stdout, "bulwark", Version)
	case "help", "-h", "--help":
		fmt.Fprint(m.Stdout, usage)
	default:
		fmt.Fprintf(m.Stderr, "bulwark: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	var code exitCode
	switch {
	case err == nil:
		return 0
	case errors.As(err, &code):
		return int(code)
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(m.Stderr, "bulwark %s: %v\n", args[0], err)
		return 1
	}
}

var errUsage = errors.New("usage")

func (m *Main) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("bulwark "+name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// runFlags are the flags every command that runs regions shares.
type runFlags struct {
	data, logLevel, pprof *string
	uploadExpiry          *time.Duration
	replWorkers           *int
	replBandwidth         *int64
	// The disk flags as given, and as parsed by parseDisk.
	diskFloor, diskBallast, diskMetaReserve *string
	disk                                    *server.DiskConfig
	metricsTokenFile                        *string
	metricsPublic                           *bool
	scrubInterval                           *time.Duration
	scrubRate                               *int64
	readIdle, writeIdle                     *time.Duration
	maxConns, maxPerIP                      *int
	resourceRoots                           *pathList
	prices                                  *string
}

// pathList is a flag that may be given several times.
type pathList []string

func (p *pathList) String() string     { return strings.Join(*p, ",") }
func (p *pathList) Set(v string) error { *p = append(*p, v); return nil }

// clients returns the limits on clients from the flags, where 0 turns a
// limit off.
func (rf runFlags) clients() server.ClientLimits {
	off := func(v int64) int64 {
		if v == 0 {
			return -1
		}
		return v
	}
	return server.ClientLimits{
		ReadIdleTimeout:   time.Duration(off(int64(*rf.readIdle))),
		WriteIdleTimeout:  time.Duration(off(int64(*rf.writeIdle))),
		MaxConns:          int(off(int64(*rf.maxConns))),
		MaxConnsPerClient: int(off(int64(*rf.maxPerIP))),
	}
}

// replication returns the replication engine's settings from the flags.
func (rf runFlags) replication() server.ReplicationConfig {
	return server.ReplicationConfig{Workers: *rf.replWorkers, Bandwidth: *rf.replBandwidth << 20}
}

func addRunFlags(fs *flag.FlagSet) runFlags {
	return runFlags{
		data:     fs.String("data", "./bulwark-data", "data directory"),
		logLevel: fs.String("log-level", "info", "debug, info, warn or error"),
		pprof:    fs.String("pprof", "", "serve Go profiling endpoints on this address (e.g. 127.0.0.1:6060)"),
		uploadExpiry: fs.Duration("upload-expiry", 7*24*time.Hour,
			"abort multipart uploads left unfinished this long and reclaim their parts"),
		replWorkers: fs.Int("replication-workers", 16, "concurrent replication sends per destination bucket"),
		replBandwidth: fs.Int64("replication-bandwidth", 0,
			"cap replication to each destination bucket at this many MiB/s (0: no cap)"),
		diskFloor: fs.String("disk-floor", "",
			"refuse new data (PUT, parts, copies, replicas, backups) that would leave less free space than this on the data directory's filesystem: a size (2GiB) or a share of the filesystem (5%); deletes always work (default: the larger of 1GiB and 2%, at most 100GiB and a quarter of the filesystem)"),
		diskBallast: fs.String("disk-ballast", "",
			"size of the ballast file kept in the data directory and released when the disk is nearly full, so that space can be freed (0: none; default 256MiB, at most a quarter of the floor)"),
		diskMetaReserve: fs.String("disk-meta-reserve", "",
			"space kept allocated ahead of the metadata file, which commits (deletes above all) use when the disk is full (0: none; default 64MiB, at most an eighth of the floor)"),
		disk: &server.DiskConfig{},
		metricsTokenFile: fs.String("metrics-token-file", "",
			"file holding the bearer token GET /metrics must carry (default DATA/metrics-token, made when missing)"),
		metricsPublic: fs.Bool("metrics-public", false, "serve GET /metrics to anyone, without a token"),
		scrubInterval: fs.Duration("scrub-interval", 7*24*time.Hour,
			"time between background passes that check the stored data against its checksums (0: none; bulwark scrub runs one)"),
		scrubRate: fs.Int64("scrub-rate", 32, "cap the scrubber's reads at this many MiB/s"),
		readIdle: fs.Duration("read-idle-timeout", httplimit.DefaultReadIdle,
			"answer 400 RequestTimeout to a request whose headers or body send nothing this long (0: never)"),
		writeIdle: fs.Duration("write-idle-timeout", httplimit.DefaultWriteIdle,
			"drop a response the client reads nothing of this long (0: never)"),
		maxConns: fs.Int("max-conns", httplimit.DefaultMaxConns,
			"open client connections per region (0: no cap)"),
		maxPerIP: fs.Int("max-conns-per-client", httplimit.DefaultMaxConnsPerClient,
			"open connections per region from one client IP address (0: no cap)"),
		resourceRoots: func() *pathList {
			p := &pathList{}
			fs.Var(p, "resource-root", "a directory under which any account may register directories and SQLite files for backup and restore to the server's filesystem (repeatable; none: only the admin account may name server paths, anywhere)")
			return p
		}(),
		prices: fs.String("prices", "", "a JSON price table for bulwark audit cost, over the article's AWS prices (see docs/design/cost-model.md)"),
	}
}

// configure sets what the flags say of a region's configuration beyond
// its identity and keys: the same for every region that serve or up runs.
func (rf runFlags) configure(cfg *server.Config) error {
	cfg.ScrubInterval, cfg.ScrubRate = rf.scrub()
	cfg.ResourceRoots = *rf.resourceRoots
	if *rf.prices == "" {
		return nil
	}
	f, err := os.Open(*rf.prices)
	if err != nil {
		return err
	}
	defer f.Close()
	p, err := audit.ReadPrices(f, audit.DefaultPrices)
	if err != nil {
		return fmt.Errorf("-prices %s: %w", *rf.prices, err)
	}
	cfg.Prices = &p
	return nil
}

// scrub returns the scrubber's settings from the flags.
func (rf runFlags) scrub() (interval time.Duration, rate int64) {
	interval = *rf.scrubInterval
	if interval == 0 {
		interval = -1 // none: the server's zero means its default
	}
	return interval, max(*rf.scrubRate, 1) << 20
}

// metricsToken returns the bearer token of GET /metrics: the one in
// -metrics-token-file, else the one in the data directory, made there
// (random, readable by its owner only) when there is none.
func (rf runFlags) metricsToken() (token, file string, err error) {
	file = *rf.metricsTokenFile
	made := file == ""
	if made {
		file = filepath.Join(*rf.data, "metrics-token")
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) && made {
		buf := make([]byte, 24)
		if _, err := rand.Read(buf); err != nil {
			return "", "", err
		}
		b = []byte(hex.EncodeToString(buf) + "\n")
		if err := os.MkdirAll(*rf.data, 0o700); err != nil {
			return "", "", err
		}
		err = os.WriteFile(file, b, 0o600)
	}
	if err != nil {
		return "", "", fmt.Errorf("metrics token: %w", err)
	}
	token = strings.TrimSpace(string(b))
	if token == "" {
		return "", "", fmt.Errorf("metrics token: %s is empty", file)
	}
	return token, file, nil
}

// parseDisk reads the disk flags into rf.disk.
func (rf runFlags) parseDisk() error {
	if f := strings.TrimSpace(*rf.diskFloor); strings.HasSuffix(f, "%") {
		p, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(f, "%")), 64)
		if err != nil || p <= 0 || p >= 100 {
			return fmt.Errorf("-disk-floor %q: a percentage must be above 0 and below 100", f)
		}
		rf.disk.FloorPercent = p
	} else if f != "" {
		n, err := bench.ParseSize(f)
		if err != nil {
			return fmt.Errorf("-disk-floor: %w", err)
		}
		if n == 0 {
			// Zero would mean the default to the server: take the floor
			// at its word, as one byte.
			n = 1
		}
		rf.disk.Floor = n
	}
	for _, sz := range []struct {
		flag  string
		value string
		dst   *int64
	}{{"disk-ballast", *rf.diskBallast, &rf.disk.Ballast}, {"disk-meta-reserve", *rf.diskMetaReserve, &rf.disk.MetaReserve}} {
		if sz.value == "" {
			continue
		}
		n, err := bench.ParseSize(sz.value)
		if err != nil {
			return fmt.Errorf("-%s: %w", sz.flag, err)
		}
		if n == 0 {
			n = -1 // none
		}
		*sz.dst = n
	}
	return nil
}

// prepare parses args and sets up what a running command needs: profiling
// and the logger. check validates the parsed flags before anything is
// written to the data directory.
func (m *Main) prepare(ctx context.Context, fs *flag.FlagSet, rf runFlags, args []string, check func() error) (*slog.Logger, credentials, error) {
	if err := parse(fs, args); err != nil {
		return nil, credentials{}, err
	}
	if err := rf.parseDisk(); err != nil {
		return nil, credentials{}, err
	}
	if check != nil {
		if err := check(); err != nil {
			return nil, credentials{}, err
		}
	}
	if err := startPprof(ctx, *rf.pprof); err != nil {
		return nil, credentials{}, err
	}
	log, err := m.logger(*rf.logLevel)
	if err != nil {
		return nil, credentials{}, err
	}
	creds, err := m.loadCredentials(*rf.data, log)
	return log, creds, err
}

func (m *Main) logger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level %q: %w", level, err)
	}
	return slog.New(slog.NewTextHandler(m.Stderr, &slog.HandlerOptions{Level: l})), nil
}
