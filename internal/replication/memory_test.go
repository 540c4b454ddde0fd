package replication_test

import (
	"bytes"
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

var backlogSize = flag.Int("replication.backlog", 800, "writes queued while the destination is down, in TestBacklogStaysInWindow")

// heapMiB returns the live heap after a collection.
func heapMiB() float64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return float64(m.HeapAlloc) / (1 << 20)
}

// putMany writes n objects of data to bucket with 16 writers; every third
// write makes a new version of an earlier key, so that a key's versions
// fall on both sides of the window.
func putMany(t testing.TB, c *s3.Client, bucket string, n int, data []byte) {
	t.Helper()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < n; i += 16 {
				k := i
				if i%3 == 2 {
					k = i / 3
				}
				_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("k/%07d", k)), Body: bytes.NewReader(data)})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// waitTasks waits until every change is dispatched and want tasks are
// queued.
func waitTasks(t testing.TB, e *replication.Engine, want int) {
	t.Helper()
	eventually(t, "backlog of tasks", func() error {
		changes, tasks, err := e.Backlog(ctx)
		if err == nil && (changes > 0 || tasks != want) {
			err = fmt.Errorf("%d changes, %d tasks; want 0 and %d", changes, tasks, want)
		}
		return err
	})
}

// TestBacklogStaysInWindow queues writes while the destination region is
// down and checks that the engine holds only its window of them in
// memory, whatever their number, before and after a restart and while the
// backlog drains; that status still counts them all; and that every
// version arrives once the destination is back.
func TestBacklogStaysInWindow(t *testing.T) {
	const window = 64
	defer replication.SetLaneDefaults(window, time.Hour)()
	n := *backlogSize
	// One deployment key, as a real deployment has: sessions of the
	// source's replication role stay valid across the regions' restarts.
	key := random(32)
	fast := func(c *server.Config) { c.Replication.RetryMax, c.DeploymentKey = 100*time.Millisecond, key }
	west, east, topo := twoRegions(t, fast)
	eastDir := east.Dir
	if err := east.Close(ctx); err != nil {
		t.Fatal(err)
	}
	data := random(1 << 10)
	heap0 := heapMiB()
	putMany(t, west.Client(t), "src", n, data)
	waitTasks(t, west.Replication, n)
	if tasks, _, _ := west.Replication.Resident(); tasks > window {
		t.Fatalf("%d tasks in memory with %d queued, want at most the window of %d", tasks, n, window)
	}
	t.Logf("%d tasks queued: heap %.1f MiB -> %.1f MiB after GC", n, heap0, heapMiB())
	st := must[[]replication.RuleStatus](t)(west.Replication.Status(ctx, "src"))
	if len(st) != 1 || st[0].PendingOps != int64(n) || st[0].PendingBytes != int64(n*len(data)) || st[0].OldestPendingAge <= 0 {
		t.Fatalf("status %+v, want %d operations and %d bytes pending, and an age", st, n, n*len(data))
	}

	east = servertest.Start(t, servertest.Options{Region: "us-east-1", Topology: topo, Dir: eastDir, Configure: fast})
	most := 0
	eventually(t, "backlog to drain", func() error {
		tasks, _, _ := west.Replication.Resident()
		most = max(most, tasks)
		_, queued, err := west.Replication.Backlog(ctx)
		if err == nil && queued > 0 {
			err = fmt.Errorf("%d tasks left, %d in memory", queued, tasks)
		}
		return err
	})
	if most > window {
		t.Errorf("%d tasks in memory while draining, want at most %d", most, window)
	}
	if st := must[[]replication.RuleStatus](t)(west.Replication.Status(ctx, "src")); st[0].FailedOps > 0 {
		t.Fatalf("failures: %+v", st[0].Failures)
	}
	got := 0
	p := s3.NewListObjectVersionsPaginator(east.Client(t), &s3.ListObjectVersionsInput{Bucket: aws.String("dst")})
	for p.HasMorePages() {
		got += len(must[*s3.ListObjectVersionsOutput](t)(p.NextPage(ctx)).Versions)
	}
	if got != n {
		t.Fatalf("destination holds %d versions, want %d", got, n)
	}
	last := must[*s3.HeadObjectOutput](t)(west.Client(t).HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("k/0000000")}))
	if last.ReplicationStatus != types.ReplicationStatusCompleted {
		t.Errorf("source status %q, want COMPLETED", last.ReplicationStatus)
	}
	// A second outage, then a restart of the source region: it sums the
	// backlog up from the store and pages only the window in.
	if err := east.Close(ctx); err != nil {
		t.Fatal(err)
	}
	putMany(t, west.Client(t), "src", n, data)
	waitTasks(t, west.Replication, n)
	westDir := west.Dir
	if err := west.Close(ctx); err != nil {
		t.Fatal(err)
	}
	west = servertest.Start(t, servertest.Options{Region: "us-west-2", Topology: topo, Dir: westDir, Configure: fast})
	waitTasks(t, west.Replication, n)
	eventually(t, "window paged in", func() error {
		if tasks, lanes, _ := west.Replication.Resident(); tasks != min(n, window) || lanes != 1 {
			return fmt.Errorf("%d tasks in memory in %d lanes, want %d in 1", tasks, lanes, min(n, window))
		}
		return nil
	})
	st = must[[]replication.RuleStatus](t)(west.Replication.Status(ctx, "src"))
	if len(st) != 1 || st[0].PendingOps != int64(n) || st[0].PendingBytes != int64(n*len(data)) || st[0].OldestPendingAge <= 0 {
		t.Fatalf("status after restart %+v, want %d operations and %d bytes pending, and an age", st, n, n*len(data))
	}
}

// TestLaneRetires checks that a destination's lane and its workers stop
// once idle, and that the next write makes a new one.
func TestLaneRetires(t *testing.T) {
	defer replication.SetLaneDefaults(64, 20*time.Millisecond)()
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	putReplication(t, c, "src", v1Rule("dst"))
	retired := func() error {
		if _, lanes, workers := r.Replication.Resident(); lanes+workers > 0 {
			return fmt.Errorf("%d lanes and %d workers left", lanes, workers)
		}
		return nil
	}
	for i := range 2 {
		out := put(t, c, "src", "k", []byte{byte(i)})
		waitReplica(t, c, "dst", "k", *out.VersionId)
		waitStatus(t, c, "src", "k", *out.VersionId, types.ReplicationStatusCompleted)
		eventually(t, "lane to retire", retired)
	}
}

// TestDiffStreams compares a bucket with its destination a page at a
// time: the destination's listing never holds more than about two pages,
// and the differences are exactly the versions planted on either side.
func TestDiffStreams(t *testing.T) {
	const page = 20
	defer replication.SetDiffPage(page)()
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	putReplication(t, c, "src", v1Rule("dst"))
	const n = 150
	var seventh string
	for i := range n {
		out := put(t, c, "src", fmt.Sprintf("k/%04d", i), []byte{byte(i)})
		if i == 7 {
			seventh = *out.VersionId
		}
	}
	quiet(t, r.Replication)
	// Only in the destination: before, among and after the source's keys.
	for _, k := range []string{"a", "k/0050x", "z"} {
		put(t, c, "dst", k, []byte("x"))
	}
	// Deleted by ID at the source: its replica is left over.
	gone := put(t, c, "src", "k/0100", []byte("new"))
	quiet(t, r.Replication)
	del(t, c, "src", "k/0100", *gone.VersionId)
	// A replica deleted by ID: missing.
	del(t, c, "dst", "k/0007", seventh)

	rep := must[*replication.DiffReport](t)(r.Replication.Diff(ctx, "src"))
	var got []string
	for _, d := range rep.Differences {
		got = append(got, d.Kind+" "+d.Key)
	}
	want := []string{"EXTRA a", "MISSING k/0007", "EXTRA k/0050x", "EXTRA k/0100", "EXTRA z"}
	if fmt.Sprint(got) != fmt.Sprint(want) || rep.Compared != n {
		t.Errorf("differences %v over %d versions, want %v over %d", got, rep.Compared, want, n)
	}
	if b := replication.DiffBuffered(); b > 2*page+page/2 || b == 0 {
		t.Errorf("a destination listing held %d versions at once, want at most about two pages of %d", b, page)
	}
}
