package replication_test

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

var (
	scaleObjects = flag.Int("scale.objects", 10000, "objects BenchmarkScale grows the bucket to")
	scaleBacklog = flag.Int("scale.backlog", 10000, "writes BenchmarkScale queues while the destination is down")
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
	start := time.Now()
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := from + w; i < to; i += 16 {
				if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(fmt.Sprintf("%s%09d", prefix, i)), Body: bytes.NewReader(data)}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(to-from) / time.Since(start).Seconds()
}

// BenchmarkScale grows a bucket to -scale.objects objects of 4 KiB and, at
// each decade, reports the PUT rate of the last decade, the GET rate of
// 1,000 reads, the rate of listing the whole bucket and the process's
// anonymous memory. Then it queues -scale.backlog writes while the
// destination region is down and drains them, sampling memory and the
// tasks held in memory. Both regions run in this process, so the memory
// figures cover both. Run with -benchtime=1x; CI runs the small defaults.
func BenchmarkScale(b *testing.B) {
	for range b.N {
		key := random(32)
		fast := func(c *server.Config) { c.Replication.RetryMax, c.DeploymentKey = 200*time.Millisecond, key }
		west, east, topo := twoRegions(b, fast)
		c := west.Client(b)
		bucket(b, c, "scale")
		data := random(4 << 10)
		b.Logf("%10s %9s %9s %11s %9s", "objects", "put/s", "get/s", "list keys/s", "RssAnon")
		done := 0
		for dec := 1000; done < *scaleObjects; dec *= 10 {
			to := min(dec, *scaleObjects)
			put := putRange(b, c, "scale", "o/", done, to, data)
			done = to
			start := time.Now()
			for i := range 1000 {
				if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("scale"), Key: aws.String(fmt.Sprintf("o/%09d", i*done/1000))}); err != nil {
					b.Fatal(err)
				}
			}
			get := 1000 / time.Since(start).Seconds()
			start, n := time.Now(), 0
			p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String("scale")})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					b.Fatal(err)
				}
				n += len(page.Contents)
			}
			list := float64(n) / time.Since(start).Seconds()
			b.Logf("%10d %9.0f %9.0f %11.0f %6.0f MiB", done, put, get, list, rssAnonMiB())
		}

		eastDir := east.Dir
		if err := east.Close(ctx); err != nil {
			b.Fatal(err)
		}
		b.Logf("%10s %9s %12s %9s", "backlog", "put/s", "in memory", "RssAnon")
		queued := 0
		for dec := 1000; queued < *scaleBacklog; dec *= 10 {
			to := min(dec, *scaleBacklog)
			put := putRange(b, c, "src", "b/", queued, to, data)
			queued = to
			waitTasks(b, west.Replication, queued)
			tasks, _, _ := west.Replication.Resident()
			b.Logf("%10d %9.0f %12d %6.0f MiB", queued, put, tasks, rssAnonMiB())
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
		b.Logf("drained %d tasks at %.0f/s; at most %d in memory, RssAnon at most %.0f MiB", queued, drain, most, rss)
		b.ReportMetric(drain, "drain-tasks/s")
	}
}
