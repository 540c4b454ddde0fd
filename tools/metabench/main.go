// Command metabench measures candidate embedded key-value engines for the
// Bulwark metadata store on an S3-shaped workload: durable versioned PUTs
// with a same-commit change-feed append, ListObjectsV2 with and without a
// delimiter, and change-feed churn (append, consume, delete).
//
//	go run . -engine=bbolt|pebble -n=1000000 -dir=/tmp/metabench
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	var (
		engineName = flag.String("engine", "bbolt", "bbolt or pebble")
		n          = flag.Int("n", 1_000_000, "object versions to write")
		dir        = flag.String("dir", "", "data directory (must not exist or be empty; removed afterwards unless -keep)")
		keep       = flag.Bool("keep", false, "keep the data directory")
		writers    = flag.Int("writers", 16, "concurrent writers (PUTs and feed producers)")
		feedN      = flag.Int("feed", 0, "change-feed records produced in the churn phase (default n/2)")
		phases     = flag.String("phases", "write,list,churn", "phases to run")
		listReps   = flag.Int("list-reps", 200, "repetitions of the delimiter listing")
		boltCommit = flag.String("bolt-commit", "group", "bbolt commit path: batch (db.Batch) or group (own group commit)")
		boltBatch  = flag.Int("bolt-batch-size", 0, "db.MaxBatchSize override (0 = bbolt default 1000)")
		groupMax   = flag.Int("group-max", 16, "group commit: max requests per transaction")
		groupWait  = flag.Duration("group-wait", time.Millisecond, "group commit: max wait to fill a transaction (0 = no timer, take what is queued)")
		freelist   = flag.String("bolt-freelist", "array", "bbolt freelist type: array or map")
		noFLSync   = flag.Bool("bolt-no-freelist-sync", false, "bbolt NoFreelistSync")
		mmapMB     = flag.Int("bolt-mmap-mb", 0, "bbolt InitialMmapSize in MiB")
		cacheMB    = flag.Int("pebble-cache-mb", 0, "pebble block cache MiB (0 = pebble default, 8 MiB)")
		rangeDel   = flag.Bool("pebble-range-del", false, "feed consumer deletes with DeleteRange instead of point deletes")
	)
	flag.Parse()
	if *dir == "" {
		fail("-dir is required")
	}
	if ents, err := os.ReadDir(*dir); err == nil && len(ents) > 0 {
		fail("%s is not empty", *dir)
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fail("%v", err)
	}
	if !*keep {
		defer os.RemoveAll(*dir)
	}
	if *feedN == 0 {
		*feedN = *n / 2
	}

	var e engine
	var err error
	config := ""
	switch *engineName {
	case "bbolt":
		e, err = openBolt(*dir, boltOpts{commit: *boltCommit, batchSize: *boltBatch, groupMax: *groupMax,
			groupWait: *groupWait, freelist: *freelist, noFLSync: *noFLSync, mmapMB: *mmapMB})
		config = fmt.Sprintf("commit=%s freelist=%s noFreelistSync=%v mmap=%dMiB", *boltCommit, *freelist, *noFLSync, *mmapMB)
		if *boltCommit == "group" {
			config += fmt.Sprintf(" group-max=%d group-wait=%v", *groupMax, *groupWait)
		} else if *boltBatch > 0 {
			config += fmt.Sprintf(" MaxBatchSize=%d", *boltBatch)
		}
	case "pebble":
		e, err = openPebble(*dir, pebbleOpts{cacheMB: *cacheMB, rangeDel: *rangeDel})
		config = fmt.Sprintf("cache=%dMiB rangeDel=%v lock-stripes=1024", *cacheMB, *rangeDel)
	default:
		fail("unknown engine %q", *engineName)
	}
	if err != nil {
		fail("open: %v", err)
	}

	var peaks rssPeaks
	go peaks.run(100 * time.Millisecond)
	var t table
	t.add("setup", "engine", "%s", *engineName)
	t.add("setup", "config", "%s", config)
	t.add("setup", "go / GOMAXPROCS", "%s / %d", runtime.Version(), runtime.GOMAXPROCS(0))
	t.add("setup", "versions / writers", "%d / %d", *n, *writers)

	objects := uint32(*n)
	if *n >= 5 {
		objects = uint32(*n * 4 / 5)
	}
	has := func(p string) bool { return strings.Contains(*phases, p) }
	if has("write") {
		writePhase(e, &t, *dir, *n, objects, *writers)
	}
	if has("list") {
		listPhase(e, &t, objects, *listReps)
	}
	if has("churn") {
		churnPhase(e, &t, *dir, *feedN, *writers)
	}
	anon, file := peaks.get()
	if err := e.close(); err != nil {
		fail("close: %v", err)
	}
	alloc, _ := diskUsage(*dir)
	t.add("end", "on-disk size after close", "%s", mib(alloc))
	t.add("end", "max RSS (VmHWM)", "%s", mib(procStatus("VmHWM")["VmHWM"]<<10))
	t.add("end", "peak RSS anon / file-backed (sampled)", "%s / %s", mib(anon), mib(file))
	t.add("end", "load avg / CPU pressure(60s) at end", "%s / %s", loadAvg(), cpuPressure())
	t.print(fmt.Sprintf("metabench %s (%s)", *engineName, config))
}

func fail(f string, args ...any) {
	fmt.Fprintf(os.Stderr, "metabench: "+f+"\n", args...)
	os.Exit(1)
}

func writePhase(e engine, t *table, dir string, n int, objects uint32, writers int) {
	// Every object gets one version; the remaining 20% are further
	// versions of random objects. Insertion order is random.
	r := rand.New(rand.NewPCG(42, 1))
	order := make([]uint32, n)
	for i := range order {
		if uint32(i) < objects {
			order[i] = uint32(i)
		} else {
			order[i] = r.Uint32N(objects)
		}
	}
	r.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })

	var next atomic.Int64
	var done atomic.Int64
	lats := make([][]time.Duration, writers)
	var wg sync.WaitGroup
	t.add("write", "load avg / CPU pressure(60s) at start", "%s / %s", loadAvg(), cpuPressure())
	start, cpu0, io0 := time.Now(), cpuTime(), ioWritten()
	stop := make(chan struct{})
	go progress("write", &done, n, stop)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			wr := rand.New(rand.NewPCG(uint64(w), 7))
			l := make([]time.Duration, 0, n/writers+1)
			for {
				i := next.Add(1) - 1
				if i >= int64(n) {
					break
				}
				j := order[i]
				req := &putReq{bucket: benchBucket, key: objectKey(j), meta: makeMeta(wr, j, time.Now().UnixNano())}
				t0 := time.Now()
				if err := e.put(req); err != nil {
					fail("put: %v", err)
				}
				l = append(l, time.Since(t0))
				done.Add(1)
			}
			lats[w] = l
		}()
	}
	wg.Wait()
	elapsed, cpu, written := time.Since(start), cpuTime()-cpu0, ioWritten()-io0
	close(stop)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sortDur(all)
	alloc, _ := diskUsage(dir)
	t.add("write", "durable PUTs/s", "%.0f", float64(n)/elapsed.Seconds())
	t.add("write", "total time", "%s", dur(elapsed))
	t.add("write", "CPU time (user+sys) / per PUT", "%s / %s", dur(cpu), dur(cpu/time.Duration(n)))
	t.add("write", "commit latency p50 / p99 / max", "%s / %s / %s", dur(percentile(all, 0.5)), dur(percentile(all, 0.99)), dur(all[len(all)-1]))
	t.add("write", "on-disk size", "%s", mib(alloc))
	if g, ok := e.(interface{ groupState() string }); ok {
		t.add("write", "group commit", "%s", g.groupState())
	}
	t.add("write", "bytes written to disk / per PUT", "%s / %.1f KiB", mib(written), float64(written)/float64(n)/1024)
	t.add("write", "avg value bytes", "%d", len(makeMeta(r, 123456, time.Now().UnixNano())))
	t.add("write", "max RSS so far (VmHWM)", "%s", mib(procStatus("VmHWM")["VmHWM"]<<10))
	t.add("write", "load avg / CPU pressure(60s) at end", "%s / %s", loadAvg(), cpuPressure())
}

func progress(phase string, done *atomic.Int64, total int, stop chan struct{}) {
	tk := time.NewTicker(15 * time.Second)
	defer tk.Stop()
	last := int64(0)
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			d := done.Load()
			fmt.Fprintf(os.Stderr, "    %s: %d/%d (%.0f/s last 15s) load %s\n", phase, d, total, float64(d-last)/15, loadAvg())
			last = d
		}
	}
}

type lsmStater interface{ lsmState() string }

func listPhase(e engine, t *table, objects uint32, reps int) {
	if l, ok := e.(lsmStater); ok {
		t.add("list", "LSM state at start", "%s", l.lsmState())
	}
	t.add("list", "load avg / CPU pressure(60s) at start", "%s / %s", loadAvg(), cpuPressure())
	// Delimiter listing: prefix dir042/, delimiter "/" → 100 CommonPrefixes.
	run := func(seekSkip bool, reps int) ([]time.Duration, listResult) {
		var ds []time.Duration
		var res listResult
		for range reps {
			t0 := time.Now()
			c, err := e.reader(nsVersions)
			if err != nil {
				fail("reader: %v", err)
			}
			res = listObjects(c, benchBucket, "dir042/", '/', nil, 1000, seekSkip)
			c.close()
			ds = append(ds, time.Since(t0))
		}
		return sortDur(ds), res
	}
	ds, res := run(true, reps)
	t.add("list", "delimiter list dir042/ (seek past CP)", "p50 %s, p99 %s", dur(percentile(ds, 0.5)), dur(percentile(ds, 0.99)))
	t.add("list", "  common prefixes / seeks / steps", "%d / %d / %d", len(res.entries), res.seeks, res.steps)
	nd, nres := run(false, max(reps/20, 3))
	t.add("list", "same, stepping over every key", "p50 %s (%d steps)", dur(percentile(nd, 0.5)), nres.steps)

	// Full listing of latest versions, 1,000 keys per page, each page a new
	// request: fresh read view, seek to the continuation token.
	var pages []time.Duration
	keys := 0
	var resume []byte
	start, cpu0 := time.Now(), cpuTime()
	for {
		t0 := time.Now()
		c, err := e.reader(nsVersions)
		if err != nil {
			fail("reader: %v", err)
		}
		res := listObjects(c, benchBucket, "", 0, resume, 1000, true)
		c.close()
		pages = append(pages, time.Since(t0))
		keys += len(res.entries)
		if !res.truncated {
			break
		}
		resume = res.resume
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	sortDur(pages)
	if uint32(keys) != objects {
		fail("full listing returned %d keys, want %d", keys, objects)
	}
	t.add("list", "full listing: pages / keys", "%d / %d", len(pages), keys)
	t.add("list", "full listing: total time / CPU time", "%s / %s", dur(elapsed), dur(cpu))
	t.add("list", "full listing: keys/s, pages/s", "%.0f, %.0f", float64(keys)/elapsed.Seconds(), float64(len(pages))/elapsed.Seconds())
	t.add("list", "page time p50 / p99", "%s / %s", dur(percentile(pages, 0.5)), dur(percentile(pages, 0.99)))
	t.add("list", "max RSS so far (VmHWM)", "%s", mib(procStatus("VmHWM")["VmHWM"]<<10))
}

func churnPhase(e engine, t *table, dir string, feedN, producers int) {
	t.add("churn", "load avg / CPU pressure(60s) at start", "%s / %s", loadAvg(), cpuPressure())
	var next, produced, consumed atomic.Int64
	var prodDone atomic.Bool
	lats := make([][]time.Duration, producers)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	go progress("churn(produced)", &produced, feedN, stop)
	start, cpu0, io0 := time.Now(), cpuTime(), ioWritten()
	for p := range producers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(p), 99))
			var l []time.Duration
			for next.Add(1) <= int64(feedN) {
				j := r.Uint32N(1 << 20)
				rec := feedRecord(benchBucket, objectKey(j), time.Now().UnixNano(), makeMeta(r, j, 0))
				t0 := time.Now()
				if err := e.appendFeed(rec); err != nil {
					fail("append: %v", err)
				}
				l = append(l, time.Since(t0))
				produced.Add(1)
			}
			lats[p] = l
		}()
	}
	var batches []time.Duration
	var prodElapsed, lagAtProdEnd time.Duration
	var backlogAtProdEnd int64
	consDone := make(chan struct{})
	go func() {
		defer close(consDone)
		for {
			finished := prodDone.Load()
			t0 := time.Now()
			n, err := e.consume(1000)
			if err != nil {
				fail("consume: %v", err)
			}
			if n > 0 {
				batches = append(batches, time.Since(t0))
				consumed.Add(int64(n))
				continue
			}
			if finished {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	prodElapsed = time.Since(start)
	backlogAtProdEnd = consumed.Load()
	prodDone.Store(true)
	<-consDone
	consElapsed, cpu, written := time.Since(start), cpuTime()-cpu0, ioWritten()-io0
	lagAtProdEnd = consElapsed - prodElapsed
	close(stop)

	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	sortDur(all)
	sortDur(batches)
	total := consumed.Load()
	t.add("churn", "appends (durable) / producers", "%d / %d", feedN, producers)
	t.add("churn", "appends/s", "%.0f", float64(feedN)/prodElapsed.Seconds())
	t.add("churn", "append latency p50 / p99", "%s / %s", dur(percentile(all, 0.5)), dur(percentile(all, 0.99)))
	t.add("churn", "consumed (incl. write-phase feed)", "%d in %s", total, dur(consElapsed))
	t.add("churn", "consume rate (records/s)", "%.0f", float64(total)/consElapsed.Seconds())
	t.add("churn", "CPU time (user+sys), whole phase", "%s", dur(cpu))
	t.add("churn", "bytes written to disk, whole phase", "%s", mib(written))
	t.add("churn", "consumed when producers finished", "%d (drained %s later)", backlogAtProdEnd, dur(lagAtProdEnd))
	t.add("churn", "consume batch (1000) p50 / p99", "%s / %s", dur(percentile(batches, 0.5)), dur(percentile(batches, 0.99)))

	a1, f1, err := e.cursorSeek()
	if err != nil {
		fail("cursor seek: %v", err)
	}
	var as, fs []time.Duration
	for range 50 {
		a, f, _ := e.cursorSeek()
		as, fs = append(as, a), append(fs, f)
	}
	sortDur(as)
	sortDur(fs)
	t.add("churn", "seek to cursor: first / p50 of 50", "%s / %s", dur(a1), dur(percentile(as, 0.5)))
	t.add("churn", "first live record from feed start: first / p50", "%s / %s", dur(f1), dur(percentile(fs, 0.5)))
	alloc, _ := diskUsage(dir)
	t.add("churn", "on-disk size after churn", "%s", mib(alloc))
	if l, ok := e.(lsmStater); ok {
		t.add("churn", "LSM state at end", "%s", l.lsmState())
	}
	t.add("churn", "max RSS so far (VmHWM)", "%s", mib(procStatus("VmHWM")["VmHWM"]<<10))
	t.add("churn", "load avg / CPU pressure(60s) at end", "%s / %s", loadAvg(), cpuPressure())
}
