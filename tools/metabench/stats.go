package main

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p * float64(len(sorted)-1))
	return sorted[i]
}

func sortDur(d []time.Duration) []time.Duration {
	slices.Sort(d)
	return d
}

// procStatus returns the named fields (in kB) from /proc/self/status.
func procStatus(fields ...string) map[string]int64 {
	out := map[string]int64{}
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || !slices.Contains(fields, name) {
			continue
		}
		var kb int64
		fmt.Sscanf(strings.TrimSpace(rest), "%d", &kb)
		out[name] = kb
	}
	return out
}

// rssPeaks samples /proc/self/status so the peak RSS can be split into
// anonymous memory (heap, caches) and file-backed pages (bbolt's mmap).
type rssPeaks struct {
	mu         sync.Mutex
	anon, file int64 // kB
}

func (p *rssPeaks) sample() {
	st := procStatus("RssAnon", "RssFile")
	p.mu.Lock()
	p.anon = max(p.anon, st["RssAnon"])
	p.file = max(p.file, st["RssFile"])
	p.mu.Unlock()
}

func (p *rssPeaks) run(every time.Duration) {
	for {
		p.sample()
		time.Sleep(every)
	}
}

func (p *rssPeaks) get() (anon, file int64) {
	p.sample()
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.anon << 10, p.file << 10
}

// ioWritten returns the bytes this process has caused to be written to
// storage (write_bytes in /proc/self/io), including background flushes and
// compactions.
func ioWritten() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "write_bytes: "); ok {
			var n int64
			fmt.Sscanf(v, "%d", &n)
			return n
		}
	}
	return 0
}

// cpuTime is the CPU time (user+system) this process has used so far; unlike
// wall time it is little affected by other work on a shared machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuPressure returns the "some avg60" CPU pressure (PSI): the share of the
// last minute in which runnable tasks waited for a CPU.
func cpuPressure() string {
	b, err := os.ReadFile("/proc/pressure/cpu")
	if err != nil {
		return "?"
	}
	for _, f := range strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) {
		if v, ok := strings.CutPrefix(f, "avg60="); ok {
			return v + "%"
		}
	}
	return "?"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// diskUsage returns allocated bytes (st_blocks) and apparent size under dir.
func diskUsage(dir string) (alloc, apparent int64) {
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		return nil
	})
	return alloc, apparent
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func dur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	default:
		return fmt.Sprintf("%.1f µs", float64(d)/1e3)
	}
}

type table struct{ rows [][3]string }

func (t *table) add(phase, metric, value string, args ...any) {
	t.rows = append(t.rows, [3]string{phase, metric, fmt.Sprintf(value, args...)})
	fmt.Fprintf(os.Stderr, "  %-8s %-50s %s\n", phase, metric, fmt.Sprintf(value, args...))
}

func (t *table) print(title string) {
	fmt.Printf("\n%s\n", title)
	fmt.Printf("| %-8s | %-50s | %-28s |\n", "phase", "metric", "value")
	fmt.Printf("|%s|%s|%s|\n", strings.Repeat("-", 10), strings.Repeat("-", 52), strings.Repeat("-", 30))
	for _, r := range t.rows {
		fmt.Printf("| %-8s | %-50s | %-28s |\n", r[0], r[1], r[2])
	}
}
