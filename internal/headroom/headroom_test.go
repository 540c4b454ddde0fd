package headroom

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	tib = 1 << 40
)

// fakeDisk is a filesystem whose free space the test sets.
type fakeDisk struct {
	size int64
	free atomic.Int64
}

func (d *fakeDisk) statfs(string) (Usage, error) {
	return Usage{Size: d.size, Free: d.free.Load()}, nil
}

func openGuard(t *testing.T, d *fakeDisk, cfg Config) (*Guard, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Region, cfg.Statfs, cfg.Registerer = "us-west-2", d.statfs, reg
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	g, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, reg
}

func TestDefaultSizes(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		cfg                     Config
		size                    int64
		floor, ballast, reserve int64
	}{
		{"small disk: a quarter", Config{}, 2 * gib, 512 * mib, 128 * mib, 64 * mib},
		{"tiny disk", Config{}, 64 * mib, 16 * mib, 4 * mib, 2 * mib},
		{"medium disk: 1 GiB", Config{}, 20 * gib, 1 * gib, 256 * mib, 64 * mib},
		{"large disk: 2 %", Config{}, 1 * tib, 1 * tib / 100 * 2, 256 * mib, 64 * mib},
		{"huge disk: at most 100 GiB", Config{}, 100 * tib, 100 * gib, 256 * mib, 64 * mib},
		{"given in bytes", Config{Floor: 3 * mib}, 1 * tib, 3 * mib, 768 * kib, 384 * kib},
		{"given in percent", Config{FloorPercent: 10}, 10 * gib, 1 * gib, 256 * mib, 64 * mib},
		{"reserves given", Config{Floor: 4 * mib, Ballast: 1 * mib, Reserve: 2 * mib}, 1 * gib, 4 * mib, 1 * mib, 2 * mib},
		{"reserves off", Config{Floor: 4 * mib, Ballast: -1, Reserve: -1}, 1 * gib, 4 * mib, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, b, r := sizes(tc.cfg, tc.size)
			if f != tc.floor || b != tc.ballast || r != tc.reserve {
				t.Fatalf("floor, ballast, reserve = %d, %d, %d; want %d, %d, %d", f, b, r, tc.floor, tc.ballast, tc.reserve)
			}
		})
	}
}

func TestAdmitRefusesBelowFloor(t *testing.T) {
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(10 * mib)
	g, reg := openGuard(t, d, Config{Floor: 4 * mib, Ballast: -1, Reserve: -1})

	release, err := g.Admit(5 * mib)
	if err != nil {
		t.Fatalf("5 MiB with 10 MiB free and a 4 MiB floor: %v", err)
	}
	// The admitted 5 MiB are not written yet, but they count: 2 MiB more
	// would leave 3 MiB, under the floor.
	_, err = g.Admit(2 * mib)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrLowSpace) {
		t.Fatalf("second write: got %v, want a low-space error", err)
	}
	want := fmt.Sprintf("region us-west-2 is low on disk space: %d bytes free, floor %d, this write needs %d; deletes still work", 5*mib, 4*mib, 2*mib)
	if e.Message() != want {
		t.Fatalf("message %q\nwant    %q", e.Message(), want)
	}
	if got := metricValue(t, reg, "bulwark_disk_refused_writes_total"); got != 1 {
		t.Fatalf("refused counter %v, want 1", got)
	}
	release()
	release() // a second call changes nothing
	if _, err := g.Admit(2 * mib); err != nil {
		t.Fatalf("after the first write released its room: %v", err)
	}

	d.free.Store(3 * mib)
	_, err = g.Admit(0)
	if !errors.As(err, &e) || e.Need != 0 || e.Free != 3*mib-2*mib {
		t.Fatalf("below the floor, a write of unknown size: got %v", err)
	}
	if !strings.HasSuffix(e.Message(), "1048576 bytes free, floor 4194304; deletes still work") {
		t.Fatalf("message %q", e.Message())
	}
	if v := metricValue(t, reg, "bulwark_disk_refusing_writes"); v != 1 {
		t.Fatalf("bulwark_disk_refusing_writes = %v, want 1", v)
	}
	if v := metricValue(t, reg, "bulwark_disk_floor_bytes"); v != 4*mib {
		t.Fatalf("bulwark_disk_floor_bytes = %v", v)
	}
	if v := metricValue(t, reg, "bulwark_disk_free_bytes"); v != 3*mib {
		t.Fatalf("bulwark_disk_free_bytes = %v", v)
	}
}

// TestAdmitConcurrent: however many writers race for the last room, what
// is admitted never goes below the floor.
func TestAdmitConcurrent(t *testing.T) {
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(20 * mib)
	g, _ := openGuard(t, d, Config{Floor: 4 * mib, Ballast: -1, Reserve: -1})
	var admitted atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			if _, err := g.Admit(1 * mib); err == nil {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if n := admitted.Load(); n != 16 {
		t.Fatalf("%d writes of 1 MiB admitted with 20 MiB free and a 4 MiB floor, want 16", n)
	}
}

func TestExplain(t *testing.T) {
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(0)
	g, _ := openGuard(t, d, Config{Floor: 4 * mib, Ballast: -1, Reserve: -1})
	other := errors.New("bad disk")
	if got := g.Explain(other); got != other {
		t.Fatalf("Explain changed an unrelated error: %v", got)
	}
	if g.Explain(nil) != nil {
		t.Fatal("Explain(nil) is not nil")
	}
	enospc := fmt.Errorf("write blob x: %w", &os.PathError{Op: "write", Path: "/d/x", Err: syscall.ENOSPC})
	err := g.Explain(enospc)
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, ErrLowSpace) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Explain(ENOSPC) = %v", err)
	}
	if want := "region us-west-2 ran out of disk space: 0 bytes free, floor 4194304; the request was not carried out"; e.Message() != want {
		t.Fatalf("message %q", e.Message())
	}
	if again := g.Explain(fmt.Errorf("wrapped: %w", err)); !errors.As(again, &e) || e.Err != enospc {
		t.Fatalf("an explained error explained again: %v", again)
	}
	// bbolt's file growth loses the errno; its text is recognized.
	if !errors.Is(g.Explain(errors.New("file resize error: truncate: no space left on device")), ErrLowSpace) {
		t.Fatal("bbolt's grow error not recognized")
	}
	if !errors.Is(g.Explain(syscall.EDQUOT), ErrLowSpace) {
		t.Fatal("EDQUOT not recognized")
	}
	var nilGuard *Guard
	if nilGuard.Explain(enospc) != enospc {
		t.Fatal("a nil guard changed an error")
	}
	if _, err := nilGuard.Admit(1 << 40); err != nil {
		t.Fatalf("a nil guard refused: %v", err)
	}
}

// TestBallast: made when there is room for it above the floor, released
// when free space drops below its size, made again when space returns;
// Open releases it before anything else when the disk is full.
func TestBallast(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, BallastFile)
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(4*mib + 512*kib) // not room for floor + ballast
	g, reg := openGuard(t, d, Config{Dir: dir, Floor: 4 * mib, Ballast: 1 * mib, Reserve: -1})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast made without room for it: %v", err)
	}
	d.free.Store(6 * mib)
	g.check()
	if fi, err := os.Stat(path); err != nil || fi.Size() != 1*mib {
		t.Fatalf("ballast not made with room for it: %v", err)
	}
	if v := metricValue(t, reg, "bulwark_disk_ballast_bytes"); v != 1*mib {
		t.Fatalf("bulwark_disk_ballast_bytes = %v", v)
	}
	d.free.Store(2 * mib) // below the floor, above the ballast: kept
	g.check()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ballast released while free space is above its size: %v", err)
	}
	d.free.Store(512 * kib)
	g.check()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast kept on a nearly full disk: %v", err)
	}
	if v := metricValue(t, reg, "bulwark_disk_ballast_bytes"); v != 0 {
		t.Fatalf("bulwark_disk_ballast_bytes = %v after release", v)
	}
	d.free.Store(4*mib + 512*kib) // above the floor, not above floor + ballast
	g.check()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("ballast made again before there is room for it: %v", err)
	}
	d.free.Store(5 * mib)
	g.check()
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("ballast not made again: %v", err)
	}

	// A restart on a full disk: Open releases the ballast at once.
	d.free.Store(0)
	if _, err := Open(Config{Region: "us-west-2", Dir: dir, Floor: 4 * mib, Ballast: 1 * mib, Reserve: -1, Statfs: d.statfs}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("Open on a full disk kept the ballast: %v", err)
	}
}

// TestRunReleasesOnENOSPC: a write that met ENOSPC has the ballast
// released without waiting for the next interval.
func TestRunReleasesOnENOSPC(t *testing.T) {
	dir := t.TempDir()
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(10 * mib)
	g, _ := openGuard(t, d, Config{Dir: dir, Floor: 4 * mib, Ballast: 1 * mib, Reserve: -1, Interval: time.Hour})
	if _, err := os.Stat(filepath.Join(dir, BallastFile)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	defer func() { cancel(); <-done }()
	d.free.Store(0)
	_ = g.Explain(syscall.ENOSPC)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, BallastFile)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ballast not released after ENOSPC")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// fakeMeta is a metadata file with room ahead of it, which commits use.
type fakeMeta struct {
	mu    sync.Mutex
	asked []int64
	ahead int64
	full  bool // Preallocate fails with ENOSPC
}

func (m *fakeMeta) Ahead() (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ahead, nil
}

func (m *fakeMeta) Preallocate(n int64) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.asked = append(m.asked, n)
	if m.full {
		return m.ahead, syscall.ENOSPC
	}
	m.ahead = max(m.ahead, n)
	return m.ahead, nil
}

func (m *fakeMeta) use(n int64) {
	m.mu.Lock()
	m.ahead -= n
	m.mu.Unlock()
}

func TestKeepAhead(t *testing.T) {
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(10 * mib)
	g, reg := openGuard(t, d, Config{Floor: 4 * mib, Ballast: -1, Reserve: 512 * kib})
	m := &fakeMeta{}
	g.KeepAhead(m)
	g.check()
	if len(m.asked) != 2 || m.asked[0] != 512*kib {
		t.Fatalf("preallocations asked: %v", m.asked)
	}
	if v := metricValue(t, reg, "bulwark_disk_meta_reserve_bytes"); v != 512*kib {
		t.Fatalf("bulwark_disk_meta_reserve_bytes = %v", v)
	}
}

// metricValue reads a gauge or counter as a scrape would.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestReserveUsedCountsAsTaken: commits that use the metadata reserve
// (small objects live in the metadata) take space statfs does not show
// until the reserve is refilled; admission counts it as taken, so a run of
// small objects cannot push the disk below the floor by the reserve's size.
func TestReserveUsedCountsAsTaken(t *testing.T) {
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(6 * mib)
	g, reg := openGuard(t, d, Config{Floor: 4 * mib, Ballast: -1, Reserve: 1 * mib, Interval: time.Hour})
	m := &fakeMeta{}
	g.KeepAhead(m)
	if _, err := g.Admit(1 * mib); err != nil {
		t.Fatalf("with the reserve whole: %v", err)
	}
	m.use(768 * kib)
	_, err := g.Admit(1 * mib)
	var e *Error
	if !errors.As(err, &e) || e.Free != 6*mib-1*mib-768*kib {
		t.Fatalf("with three quarters of the reserve used: %v", err)
	}
	if v := metricValue(t, reg, "bulwark_disk_refusing_writes"); v != 0 {
		t.Fatalf("bulwark_disk_refusing_writes = %v: a 0-byte write still fits", v)
	}
	select {
	case <-g.kick:
	default:
		t.Fatal("a reserve three quarters used does not wake the check that refills it")
	}
}

// TestRunWaitsOnFullDisk: with the disk full and the reserve used up,
// nothing can be refilled; the guard tries again at its interval (or when
// a write asks), not in a loop.
func TestRunWaitsOnFullDisk(t *testing.T) {
	d := &fakeDisk{size: 100 * mib}
	d.free.Store(0)
	g, _ := openGuard(t, d, Config{Floor: 4 * mib, Ballast: -1, Reserve: 1 * mib, Interval: time.Hour})
	m := &fakeMeta{full: true}
	g.KeepAhead(m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	if _, err := g.Admit(1); err == nil {
		t.Fatal("admitted on a full disk")
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	<-done
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := len(m.asked); n > 3 {
		t.Fatalf("%d attempts to refill the reserve in 200 ms on a full disk", n)
	}
}
