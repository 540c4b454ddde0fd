// Package headroom keeps a region's data directory from filling up, and
// keeps the operations that free space working when it has filled up all
// the same.
//
// New data (object bodies, parts, replicas, backups) is admitted only while
// the filesystem keeps a floor of free space above it; a write that would
// go below is refused with an error of kind ErrLowSpace, which the wire
// packages answer with 503 ServiceUnavailable. Deletes never ask. But a
// delete writes metadata too (bbolt is copy-on-write; in a versioned bucket
// a delete even adds a delete marker), so refusing writes early is not
// enough: something other than Bulwark may fill the disk to the last byte.
// Two reserves cover that:
//
//   - room preallocated ahead of the metadata store's file (meta/bolt's
//     Preallocate): pages bbolt writes next are already allocated, so a
//     commit that frees space never needs space. No other writer can take
//     this room, and it survives a kill -9 and a restart.
//   - a ballast file in the data directory, released when free space drops
//     below its size, so that everything else a region writes while it
//     frees space (vault indexes, a directory block, the sweeper's work)
//     finds room; it is made again once free space is back above the
//     floor plus its size.
//
// A write that meets ENOSPC all the same (a floor set too low, a disk
// filled between the check and the write) is turned by Explain into the
// same kind of error, so clients see 503, never a bare 500.
package headroom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults. The floor is the larger of DefaultFloorMin and
// DefaultFloorPercent of the filesystem, at most DefaultFloorMax and never
// more than a quarter of the filesystem (a small disk still takes writes).
// 1 GiB leaves room for what is written without asking (metadata, bbolt's
// 16 MiB growth steps, vault maintenance, logs of other programs) and for
// the ballast to be made again; 2 % keeps a large filesystem out of the
// nearly-full range where allocators fragment and slow down, without
// holding back more than 100 GiB on the largest ones.
const (
	DefaultFloorMin     = 1 << 30
	DefaultFloorPercent = 2
	DefaultFloorMax     = 100 << 30
	// DefaultBallast is the ballast file's size, at most a quarter of the
	// floor.
	DefaultBallast = 256 << 20
	// DefaultReserve is the room kept preallocated ahead of the metadata
	// file, at most an eighth of the floor. A delete marker grows the
	// metadata by about 500 bytes (measured: 1,843 to 2,269 per MiB, for
	// keys of 100 and 20 bytes; docs/design/disk-space.md), so 64 MiB
	// takes over 100,000 of them on a disk with no byte free; a permanent
	// delete frees more than it takes.
	DefaultReserve = 64 << 20
	// DefaultInterval is the time between two looks at the filesystem.
	DefaultInterval = time.Second
)

// BallastFile is the name of the ballast file in the data directory. It
// may be deleted by hand at any time; the guard makes it again.
const BallastFile = "ballast"

// ErrLowSpace is the kind of every error this package returns: the region
// has too little disk space for the write. It is transient: the write can
// succeed once space is freed.
var ErrLowSpace = errors.New("low on disk space")

// Error refuses a write for want of disk space.
type Error struct {
	Region string
	Free   int64 // bytes free for new data when the write was refused
	Floor  int64
	Need   int64 // bytes the write asked for; 0 when it did not say
	// Err is the no-space error the write met (ENOSPC); nil when the
	// write was refused before it started.
	Err error
}

// Message is what a client is told: the cause and, for a refusal, that
// deletes work (a write that ran out of space may have been a delete that
// found the reserve used up).
func (e *Error) Message() string {
	if e.Err != nil {
		return fmt.Sprintf("region %s ran out of disk space: %d bytes free, floor %d; the request was not carried out",
			e.Region, e.Free, e.Floor)
	}
	if e.Need > 0 {
		return fmt.Sprintf("region %s is low on disk space: %d bytes free, floor %d, this write needs %d; deletes still work",
			e.Region, e.Free, e.Floor, e.Need)
	}
	return fmt.Sprintf("region %s is low on disk space: %d bytes free, floor %d; deletes still work", e.Region, e.Free, e.Floor)
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message() + ": " + e.Err.Error()
	}
	return e.Message()
}

// Is makes every Error match ErrLowSpace.
func (e *Error) Is(target error) bool { return target == ErrLowSpace }

func (e *Error) Unwrap() error { return e.Err }

// NoSpace reports whether err says the filesystem is full (ENOSPC) or the
// writer's quota is (EDQUOT).
func NoSpace(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return true
	}
	// bbolt formats the errors of growing its file with %s, which drops
	// the errno; its text is all that is left of it.
	return strings.Contains(err.Error(), syscall.ENOSPC.Error())
}

// Usage is what the filesystem says about its space.
type Usage struct {
	Size int64 // bytes in the filesystem
	Free int64 // bytes an unprivileged writer may still take
}

// Statfs reports the usage of the filesystem holding path.
type Statfs func(path string) (Usage, error)

// Preallocator is a file that grows by commits which must never fail for
// want of space: the metadata store.
type Preallocator interface {
	// Preallocate makes sure n bytes past the file's data are allocated
	// and returns how many are.
	Preallocate(n int64) (int64, error)
	// Ahead returns how many bytes past the file's data are allocated.
	Ahead() (int64, error)
}

// Config configures a Guard.
type Config struct {
	Region string
	Dir    string // the data directory
	// Floor is the free space, in bytes, below which new data is refused.
	// 0 takes FloorPercent of the filesystem, or when that is 0 too, the
	// default (see DefaultFloorMin).
	Floor        int64
	FloorPercent float64
	// Ballast is the ballast file's size: 0 takes the default, a negative
	// value keeps none.
	Ballast int64
	// Reserve is the room kept preallocated ahead of the metadata file
	// (see KeepAhead): 0 takes the default, a negative value keeps none.
	Reserve int64
	// Interval is the time between two looks at the filesystem;
	// DefaultInterval when 0. Admission looks at every write anyway.
	Interval time.Duration
	// Statfs reads the filesystem's usage; nil asks the operating system.
	// Tests give their own.
	Statfs     Statfs
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Guard admits new data while the disk has room for it and keeps the
// reserves. Its methods are safe for concurrent use; a nil Guard admits
// everything.
type Guard struct {
	region   string
	dir      string
	ballastP string
	statfs   Statfs
	log      *slog.Logger
	interval time.Duration
	kick     chan struct{}
	metrics  *metrics

	// Fixed at Open from the filesystem's size.
	floor, ballast, reserve int64
	disabled                bool // the platform cannot tell free space

	mu       sync.Mutex
	inflight int64 // bytes admitted and not yet released
	held     int64 // the ballast file's size; 0 when released
	ahead    int64 // bytes preallocated ahead of the metadata file
	meta     Preallocator
	refusing bool
}

// Open looks at the data directory's filesystem, works out the floor and
// reserves, and releases the ballast at once when the disk is already
// full, before anything else of the region opens: a region restarted on a
// full disk must be able to open and delete. It makes the ballast when
// there is room. Run keeps watch afterwards.
func Open(cfg Config) (*Guard, error) {
	g := &Guard{
		region: cfg.Region, dir: cfg.Dir, ballastP: filepath.Join(cfg.Dir, BallastFile),
		statfs: cfg.Statfs, log: cfg.Logger, interval: cfg.Interval, kick: make(chan struct{}, 1),
	}
	if g.statfs == nil {
		g.statfs = statfs
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.interval <= 0 {
		g.interval = DefaultInterval
	}
	u, err := g.statfs(cfg.Dir)
	if errors.Is(err, errors.ErrUnsupported) {
		g.disabled = true
		g.log.Warn("free disk space cannot be read on this platform: new data is admitted without a floor", "dir", cfg.Dir)
		return g, nil
	}
	if err != nil {
		return nil, fmt.Errorf("disk space of %s: %w", cfg.Dir, err)
	}
	g.floor, g.ballast, g.reserve = sizes(cfg, u.Size)
	g.metrics = newMetrics(g)
	if cfg.Registerer != nil {
		if err := g.metrics.register(cfg.Registerer); err != nil {
			return nil, fmt.Errorf("register disk metrics: %w", err)
		}
	}
	if fi, err := os.Stat(g.ballastP); err == nil {
		g.held = fi.Size()
		if g.held != g.ballast {
			// Made with another size, or cut short by a crash: made again
			// by the next check when there is room.
			g.releaseBallast("its size is not the configured one")
		}
	}
	g.check()
	return g, nil
}

// sizes works out the floor, ballast and reserve for a filesystem of size
// bytes.
func sizes(cfg Config, size int64) (floor, ballast, reserve int64) {
	switch {
	case cfg.Floor > 0:
		floor = cfg.Floor
	case cfg.FloorPercent > 0:
		floor = int64(float64(size) * cfg.FloorPercent / 100)
	default:
		floor = min(max(DefaultFloorMin, size/100*DefaultFloorPercent), DefaultFloorMax, size/4)
	}
	switch {
	case cfg.Ballast > 0:
		ballast = cfg.Ballast
	case cfg.Ballast == 0:
		ballast = min(DefaultBallast, floor/4)
	}
	switch {
	case cfg.Reserve > 0:
		reserve = cfg.Reserve
	case cfg.Reserve == 0:
		reserve = min(DefaultReserve, floor/8)
	}
	return floor, ballast, reserve
}

// KeepAhead keeps the configured reserve preallocated ahead of p, now and
// at every check, until Run ends.
func (g *Guard) KeepAhead(p Preallocator) {
	if g == nil || g.disabled || g.reserve <= 0 {
		return
	}
	g.mu.Lock()
	g.meta = p
	g.mu.Unlock()
	g.preallocate()
}

// Admit reserves room for size bytes of new data (0 when unknown) until
// release is called, or refuses them with an *Error when they would leave
// less than the floor free. Writes admitted and not yet released count
// against the free space, so concurrent writers cannot all take the last
// room.
func (g *Guard) Admit(size int64) (release func(), err error) {
	if g == nil || g.disabled {
		return func() {}, nil
	}
	size = max(size, 0)
	u, err := g.statfs(g.dir)
	if err != nil {
		// A filesystem that cannot be read is no reason to refuse; the
		// write meets its own error if there is one.
		g.log.Warn("read free disk space", "dir", g.dir, "err", err)
		return func() {}, nil
	}
	deficit := g.deficit()
	if deficit > g.reserve/4 {
		g.wake() // refill it soon, so that statfs shows what is used
	}
	g.mu.Lock()
	free := u.Free - g.inflight - deficit
	if free-size < g.floor {
		g.setRefusing(true, free)
		g.mu.Unlock()
		g.metrics.refused.Inc()
		if u.Free < g.ballast {
			g.wake()
		}
		return nil, &Error{Region: g.region, Free: max(free, 0), Floor: g.floor, Need: size}
	}
	g.inflight += size
	g.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			g.mu.Lock()
			g.inflight -= size
			g.mu.Unlock()
		})
	}, nil
}

// deficit is the part of the metadata reserve that commits have used and
// the next check will allocate again: free space as good as taken. Small
// objects are stored inside the metadata, so without it a run of them
// would use the reserve, invisibly to statfs, and each check would then
// take its refill from below the floor.
func (g *Guard) deficit() int64 {
	g.mu.Lock()
	p, ahead := g.meta, g.ahead
	g.mu.Unlock()
	if p == nil {
		return 0
	}
	if a, err := p.Ahead(); err == nil {
		ahead = a
	}
	return max(g.reserve-ahead, 0)
}

// Explain turns an error of a write that ran out of space (ENOSPC, EDQUOT)
// into an *Error, and has the ballast released at once; any other error
// is returned as it is.
func (g *Guard) Explain(err error) error {
	if g == nil || err == nil || errors.Is(err, ErrLowSpace) || !NoSpace(err) {
		return err
	}
	e := &Error{Region: g.region, Floor: g.floor, Err: err}
	if !g.disabled {
		if u, serr := g.statfs(g.dir); serr == nil {
			e.Free = u.Free
		}
		g.metrics.full.Inc()
		g.wake()
	}
	return e
}

// Run watches the filesystem every interval until ctx ends: it releases
// the ballast when free space drops below its size, makes it again when
// free space is back above the floor plus its size, and tops up the
// metadata reserve.
func (g *Guard) Run(ctx context.Context) {
	if g == nil || g.disabled {
		return
	}
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-g.kick:
		}
		g.check()
	}
}

func (g *Guard) wake() {
	select {
	case g.kick <- struct{}{}:
	default:
	}
}

// check is one look at the filesystem.
func (g *Guard) check() {
	u, err := g.statfs(g.dir)
	if err != nil {
		g.log.Warn("read free disk space", "dir", g.dir, "err", err)
		return
	}
	g.mu.Lock()
	held, inflight := g.held, g.inflight
	g.mu.Unlock()
	switch {
	case held > 0 && u.Free < g.ballast:
		g.releaseBallast(fmt.Sprintf("%d bytes free", u.Free))
	case held == 0 && g.ballast > 0 && u.Free-inflight-g.deficit() >= g.floor+g.ballast:
		g.makeBallast()
	}
	g.preallocate()
	if u, err = g.statfs(g.dir); err != nil {
		return
	}
	deficit := g.deficit()
	g.mu.Lock()
	free := u.Free - g.inflight - deficit
	g.setRefusing(free < g.floor, free)
	g.mu.Unlock()
}

// setRefusing records whether new data is refused, logging the changes.
// g.mu is held.
func (g *Guard) setRefusing(refusing bool, free int64) {
	if refusing == g.refusing {
		return
	}
	g.refusing = refusing
	if refusing {
		g.log.Warn("refusing new data: free disk space is below the floor; deletes still work",
			"dir", g.dir, "free_bytes", free, "floor_bytes", g.floor)
	} else {
		g.log.Info("accepting new data again: free disk space is above the floor",
			"dir", g.dir, "free_bytes", free, "floor_bytes", g.floor)
	}
}

func (g *Guard) releaseBallast(why string) {
	if err := os.Remove(g.ballastP); err != nil && !errors.Is(err, os.ErrNotExist) {
		g.log.Error("release ballast file", "path", g.ballastP, "err", err)
		return
	}
	g.mu.Lock()
	held := g.held
	g.held = 0
	g.mu.Unlock()
	g.log.Warn("released the ballast file: the disk is nearly full", "path", g.ballastP, "bytes", held, "why", why)
}

func (g *Guard) makeBallast() {
	if err := writeBallast(g.ballastP, g.ballast); err != nil {
		_ = os.Remove(g.ballastP)
		g.log.Warn("make ballast file", "path", g.ballastP, "bytes", g.ballast, "err", err)
		return
	}
	g.mu.Lock()
	g.held = g.ballast
	g.mu.Unlock()
	g.log.Info("made the ballast file", "path", g.ballastP, "bytes", g.ballast)
}

// writeBallast makes a file of n allocated bytes: fallocated where the
// filesystem can, else written.
func writeBallast(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = allocate(f, n)
	if errors.Is(err, errors.ErrUnsupported) {
		_, err = io.Copy(f, io.LimitReader(zeros{}, n))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// preallocate tops up the metadata reserve.
func (g *Guard) preallocate() {
	g.mu.Lock()
	p := g.meta
	g.mu.Unlock()
	if p == nil {
		return
	}
	ahead, err := p.Preallocate(g.reserve)
	g.mu.Lock()
	g.ahead = ahead
	if errors.Is(err, errors.ErrUnsupported) {
		g.meta = nil // said once, not every interval
	}
	g.mu.Unlock()
	switch {
	case err == nil:
	case errors.Is(err, errors.ErrUnsupported):
		g.log.Warn("the filesystem cannot preallocate: no room is kept ahead of the metadata file, deletes on a full disk rely on the ballast",
			"dir", g.dir, "err", err)
	case NoSpace(err):
		// Nothing to take it from now; the next check tries again.
		g.log.Debug("top up metadata reserve", "ahead_bytes", ahead, "err", err)
	default:
		g.log.Warn("top up metadata reserve", "ahead_bytes", ahead, "err", err)
	}
}

// Preallocate allocates n bytes of f from off without changing the file's
// size or content (FALLOC_FL_KEEP_SIZE), so that later writes there need
// no free space. It returns an error wrapping errors.ErrUnsupported where
// the filesystem or platform cannot.
func Preallocate(f *os.File, off, n int64) error { return preallocate(f, off, n) }

// Allocated returns the bytes the filesystem has allocated to f, which may
// be more than its size.
func Allocated(f *os.File) (int64, error) { return allocated(f) }
