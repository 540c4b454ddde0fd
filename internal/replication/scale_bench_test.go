package replication_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

var (
	scaleObjects  = flag.Int("scale.objects", 10000, "objects BenchmarkScale grows the bucket to")
	scaleVersions = flag.Int("scale.versions", 10000, "versions BenchmarkScale piles on one key")
	scaleBacklog  = flag.Int("scale.backlog", 10000, "writes BenchmarkScale queues while the destination is down")
	scaleMeta     = flag.String("scale.meta", "", "postgres:// URL of an empty database to keep the grown region's metadata in (default bbolt)")
	scaleProfile  = flag.String("scale.profile", "", "directory for a heap profile at each decade of the bucket, and a CPU profile of the start that follows")
)

// rssAnonMiB reads the process's anonymous resident memory (RssAnon):
// heap and stacks, not the metadata store's mapped file pages.
func rssAnonMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "RssAnon:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return -1
}

// putRange writes keys [from, to) of 4 KiB with 16 writers and returns the
// rate.
func putRange(b *testing.B, c *s3.Client, bucket, prefix string, from, to int, data []byte) float64 {
	return parallel(b, from, to, func(i int) error {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("%s%09d", prefix, i)), Body: bytes.NewReader(data)})
		return err
	})
}

// parallel runs fn for [from, to) with 16 workers and returns the rate.
func parallel(b *testing.B, from, to int, fn func(i int) error) float64 {
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + w; i < to; i += 16 {
				if err := fn(i); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	return float64(to-from) / time.Since(start).Seconds()
}

// readObject reads an object to its end and closes it. A body left open
// keeps its connection, with the buffers and goroutines of both ends, for
// as long as the process lives.
func readObject(b *testing.B, c *s3.Client, in *s3.GetObjectInput) {
	out, err := c.GetObject(ctx, in)
	if err != nil {
		b.Fatal(err)
	}
	_, err = io.Copy(io.Discard, out.Body)
	if cerr := out.Body.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		b.Fatal(err)
	}
}

const mib = 1 << 20

// heapLine reports the Go heap after a collection: live bytes, and of the
// spans the runtime holds, those in use, those idle and those already
// returned to the system (idle minus released is still in RssAnon).
func heapLine() string {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return fmt.Sprintf("live %4.0f, in use %4.0f, idle %4.0f, released %4.0f MiB; %d goroutines",
		float64(m.HeapAlloc)/mib, float64(m.HeapInuse)/mib, float64(m.HeapIdle)/mib, float64(m.HeapReleased)/mib, runtime.NumGoroutine())
}

// sampleRSS samples RssAnon every 100 ms until stop is called, which
// returns the highest sample.
func sampleRSS() (stop func() float64) {
	done, most := make(chan struct{}), make(chan float64)
	go func() {
		top := rssAnonMiB()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				top = max(top, rssAnonMiB())
			case <-done:
				most <- max(top, rssAnonMiB())
				return
			}
		}
	}()
	return func() float64 { close(done); return <-most }
}

// scaleRegion is one region the benchmark opens, closes and opens again on
// the same data, which servertest (closing at the end of the test) does
// not do.
type scaleRegion struct {
	cfg server.Config
	r   *server.Region
	c   *s3.Client
}

func newScaleRegion(b *testing.B, key []byte) *scaleRegion {
	cfg := server.Config{
		Region: "us-west-2", DataDir: b.TempDir(), Listen: "127.0.0.1:0",
		MetricsToken: servertest.MetricsToken, DeploymentKey: key, MetaDSN: *scaleMeta,
		Keys: []iam.Key{iam.RootKey(servertest.AccountID, servertest.AccessKey, servertest.SecretKey)},
		Disk: server.DiskConfig{Ballast: 1 << 20, MetaReserve: 1 << 20},
	}
	s := &scaleRegion{cfg: cfg}
	s.open(b)
	b.Cleanup(func() {
		if s.r != nil {
			s.close(b)
		}
	})
	return s
}

// open opens and starts the region and returns the time until it answers
// a request.
func (s *scaleRegion) open(b *testing.B) time.Duration {
	start := time.Now()
	r, err := server.Open(ctx, s.cfg)
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Start(); err != nil {
		b.Fatal(err)
	}
	s.r, s.c = r, servertest.NewClient(r.URL(), "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	if _, err := s.c.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		b.Fatal(err)
	}
	return time.Since(start)
}

func (s *scaleRegion) close(b *testing.B) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.r.Close(cctx); err != nil {
		b.Fatal(err)
	}
	s.r = nil
}

// metaBytes is the size of the region's metadata: the bbolt file, or the
// PostgreSQL table with its indexes and TOAST.
func (s *scaleRegion) metaBytes(b *testing.B) int64 {
	if s.cfg.MetaDSN == "" {
		fi, err := os.Stat(filepath.Join(s.cfg.DataDir, "meta.db"))
		if err != nil {
			b.Fatal(err)
		}
		return fi.Size()
	}
	conn, err := pgx.Connect(ctx, s.cfg.MetaDSN)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT pg_total_relation_size('meta_kv')`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkScale measures Bulwark as a bucket grows. Run with
// -benchtime=1x; the figures are in the log. CI does not run benchmarks.
//
//	go test -run '^$' -bench Scale -benchtime 1x -timeout 2h ./internal/replication \
//	    -scale.objects 1000000 -scale.versions 100000 -scale.backlog 200000 -scale.profile /tmp/heap
//
// It grows a bucket to -scale.objects objects of 4 KiB with 16 writers
// and, at each decade, reports the PUT rate of the decade, the GET rate of
// 1,000 reads, the rate of listing the whole bucket, the rate of 1,000
// DELETEs without a version ID (delete markers), the metadata bytes per
// version, RssAnon and the Go heap, then the time the region takes to
// close and serve again on the same data (which empties whatever the
// process held). It piles -scale.versions versions on one key, reporting
// the PUT rate, GETs of the latest and of the first version, and the rate
// of listing the key's versions a page at a time, at each decade. It backs
// the bucket up, changes 1% of it and backs it up again, sampling RssAnon
// every 100 ms. Last, it queues -scale.backlog writes while a destination
// region is down and drains them, sampling memory and the tasks held in
// memory; both regions run in this process.
func BenchmarkScale(b *testing.B) {
	for range b.N {
		key := random(32)
		s := newScaleRegion(b, key)
		bucket(b, s.c, "scale")
		scaleBucket(b, s)
		scaleVersionsOfOneKey(b, s)
		scaleBackup(b, s)
		s.close(b)
		debug.FreeOSMemory()
		scaleBacklogDrain(b, key)
	}
}

// scaleBucket grows the bucket decade by decade.
func scaleBucket(b *testing.B, s *scaleRegion) {
	data := random(4 << 10)
	deleted := map[int]bool{}
	report("%9s %7s %7s %9s %8s %9s %8s %8s  %s", "objects", "put/s", "get/s", "list/s", "delete/s", "B/version", "RssAnon", "startup", "Go heap after GC")
	done := 0
	for dec := 1000; done < *scaleObjects; dec *= 10 {
		to := min(dec, *scaleObjects)
		put := putRange(b, s.c, "scale", "o/", done, to, data)
		done = to
		start := time.Now()
		for i := range 1000 {
			k := i * done / 1000
			for deleted[k] {
				k++
			}
			readObject(b, s.c, &s3.GetObjectInput{Bucket: aws.String("scale"), Key: aws.String(fmt.Sprintf("o/%09d", k))})
		}
		get := 1000 / time.Since(start).Seconds()
		start, n := time.Now(), 0
		p := s3.NewListObjectsV2Paginator(s.c, &s3.ListObjectsV2Input{Bucket: aws.String("scale")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Contents)
		}
		list := float64(n) / time.Since(start).Seconds()
		// Delete markers on 1,000 keys spread over the decade just written.
		first := to / 10
		if to <= 1000 {
			first = 0
		}
		var mu sync.Mutex
		del := parallel(b, 0, 1000, func(i int) error {
			k := first + 1 + i*(to-first)/1000
			k = min(k, to-1)
			mu.Lock()
			deleted[k] = true
			mu.Unlock()
			_, err := s.c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("scale"), Key: aws.String(fmt.Sprintf("o/%09d", k))})
			return err
		})
		perVersion := float64(s.metaBytes(b)) / float64(done+len(deleted))
		rss, heap := rssAnonMiB(), heapLine()
		if *scaleProfile != "" {
			writeHeapProfile(b, filepath.Join(*scaleProfile, fmt.Sprintf("heap-%d.pb.gz", done)))
		}
		s.close(b)
		var startup time.Duration
		if *scaleProfile != "" {
			cpu, err := os.Create(filepath.Join(*scaleProfile, fmt.Sprintf("startup-%d.pb.gz", done)))
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(cpu); err != nil {
				b.Fatal(err)
			}
			startup = s.open(b)
			pprof.StopCPUProfile()
			cpu.Close()
		} else {
			startup = s.open(b)
		}
		report("%9d %7.0f %7.0f %9.0f %8.0f %9.0f %4.0f MiB %8s  %s", done, put, get, list, del, perVersion, rss, startup.Round(time.Millisecond), heap)
	}
}

func writeHeapProfile(b *testing.B, path string) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// scaleVersionsOfOneKey piles versions on one key of its own bucket.
func scaleVersionsOfOneKey(b *testing.B, s *scaleRegion) {
	bucket(b, s.c, "versions")
	data := random(4 << 10)
	in := func() *s3.PutObjectInput {
		return &s3.PutObjectInput{Bucket: aws.String("versions"), Key: aws.String("one"), Body: bytes.NewReader(data)}
	}
	out, err := s.c.PutObject(ctx, in())
	if err != nil {
		b.Fatal(err)
	}
	oldest := aws.ToString(out.VersionId)
	report("%9s %7s %10s %10s %13s %10s", "versions", "put/s", "latest/s", "oldest/s", "list vers./s", "RssAnon")
	done := 1
	for dec := 1000; done < *scaleVersions; dec *= 10 {
		to := min(dec, *scaleVersions)
		put := parallel(b, done, to, func(int) error { _, err := s.c.PutObject(ctx, in()); return err })
		done = to
		get := func(version *string) float64 {
			start := time.Now()
			for range 500 {
				readObject(b, s.c, &s3.GetObjectInput{Bucket: aws.String("versions"), Key: aws.String("one"), VersionId: version})
			}
			return 500 / time.Since(start).Seconds()
		}
		latest, old := get(nil), get(aws.String(oldest))
		start, n := time.Now(), 0
		p := s3.NewListObjectVersionsPaginator(s.c, &s3.ListObjectVersionsInput{Bucket: aws.String("versions"), Prefix: aws.String("one")})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				b.Fatal(err)
			}
			n += len(page.Versions)
		}
		if n != done {
			b.Fatalf("listed %d versions, want %d", n, done)
		}
		list := float64(n) / time.Since(start).Seconds()
		report("%9d %7.0f %10.0f %10.0f %13.0f %6.0f MiB", done, put, latest, old, list, rssAnonMiB())
	}
}

// scaleBackup backs the grown bucket up, changes 1% of it and backs it up
// again (incrementally), sampling RssAnon while each job runs.
func scaleBackup(b *testing.B, s *scaleRegion) {
	in := backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::scale",
		IAMRoleARN: "arn:aws:iam::" + servertest.AccountID + ":role/service-role/AWSBackupDefaultServiceRole"}
	report("%12s %9s %9s %10s %10s", "backup", "objects/s", "time", "RssAnon at start", "at most")
	for _, name := range []string{"full", "after 1%"} {
		if name != "full" {
			data := random(4 << 10)
			n := max(1, *scaleObjects/100)
			parallel(b, 0, n, func(i int) error {
				_, err := s.c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("scale"), Key: aws.String(fmt.Sprintf("o/%09d", i*100+50)), Body: bytes.NewReader(data)})
				return err
			})
		}
		debug.FreeOSMemory()
		before := rssAnonMiB()
		stop := sampleRSS()
		start := time.Now()
		j, err := s.r.Jobs.StartBackupJob(ctx, servertest.AccountID, in)
		if err != nil {
			b.Fatal(err)
		}
		for j.State != backup.JobCompleted {
			if j.State == backup.JobFailed || j.State == backup.JobAborted {
				b.Fatalf("backup %s: %s %s", name, j.State, j.StatusMessage)
			}
			time.Sleep(20 * time.Millisecond)
			if j, err = s.r.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID); err != nil {
				b.Fatal(err)
			}
		}
		took := time.Since(start)
		most := stop()
		report("%12s %9.0f %9s %10.0f MiB %6.0f MiB", name, float64(*scaleObjects)/took.Seconds(), took.Round(time.Millisecond), before, most)
	}
}

// scaleBacklogDrain queues writes while the destination region is down
// and drains them.
func scaleBacklogDrain(b *testing.B, key []byte) {
	fast := func(c *server.Config) { c.Replication.RetryMax, c.DeploymentKey = 200*time.Millisecond, key }
	west, east, topo := twoRegions(b, fast)
	c := west.Client(b)
	data := random(4 << 10)
	eastDir := east.Dir
	if err := east.Close(ctx); err != nil {
		b.Fatal(err)
	}
	report("%10s %9s %12s %9s", "backlog", "put/s", "in memory", "RssAnon")
	queued := 0
	for dec := 1000; queued < *scaleBacklog; dec *= 10 {
		to := min(dec, *scaleBacklog)
		put := putRange(b, c, "src", "b/", queued, to, data)
		queued = to
		waitTasks(b, west.Replication, queued)
		tasks, _, _ := west.Replication.Resident()
		report("%10d %9.0f %12d %6.0f MiB", queued, put, tasks, rssAnonMiB())
	}
	start := time.Now()
	servertest.Start(b, servertest.Options{Region: "us-east-1", Topology: topo, Dir: eastDir, Configure: fast})
	most, rss := 0, 0.0
	for {
		_, left, err := west.Replication.Backlog(ctx)
		if err != nil {
			b.Fatal(err)
		}
		tasks, _, _ := west.Replication.Resident()
		most, rss = max(most, tasks), max(rss, rssAnonMiB())
		if left == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	drain := float64(queued) / time.Since(start).Seconds()
	report("drained %d tasks at %.0f/s; at most %d in memory, RssAnon at most %.0f MiB", queued, drain, most, rss)
	b.ReportMetric(drain, "drain-tasks/s")
}

// report prints a line of figures; the testing package cuts a
// benchmark's log short, and these are the benchmark's result.
func report(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}
