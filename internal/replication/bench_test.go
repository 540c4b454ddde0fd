package replication_test

import (
	"bytes"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

// twoRegions starts us-west-2 and us-east-1 on loopback with a versioned
// "src" in the first, replicating with the article's rule to a versioned
// "dst" in the second.
func twoRegions(tb testing.TB, configure func(*server.Config)) (west, east *servertest.Region, topo *topology.Topology) {
	topo, err := topology.New(topology.Region{Name: "us-west-2"}, topology.Region{Name: "us-east-1"})
	if err != nil {
		tb.Fatal(err)
	}
	west = servertest.Start(tb, servertest.Options{Region: "us-west-2", Topology: topo, Configure: configure})
	east = servertest.Start(tb, servertest.Options{Region: "us-east-1", Topology: topo, Configure: configure})
	bucket(tb, west.Client(tb), "src")
	bucket(tb, east.Client(tb), "dst")
	putReplication(tb, west.Client(tb), "src", v1Rule("dst"))
	return west, east, topo
}

func percentile(l []time.Duration, q float64) time.Duration {
	slices.Sort(l)
	return l[min(len(l)-1, int(q*float64(len(l))))]
}

// BenchmarkReplicationLag measures, per object, the time from the source
// PUT's response to the replica being readable in the other region:
// 1,000 objects of 4 KiB, at 1 and at 16 concurrent writers. Run with
// -benchtime=1x; the figures are the reported p50/p99 metrics.
func BenchmarkReplicationLag(b *testing.B) {
	for _, writers := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", writers), func(b *testing.B) {
			west, east, _ := twoRegions(b, nil)
			src, dst := west.Client(b), east.Client(b)
			data := random(4 << 10)
			const objects = 1000
			for range b.N {
				lat := make([]time.Duration, 0, objects)
				var mu sync.Mutex
				var wg sync.WaitGroup
				for w := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						for i := w; i < objects; i += writers {
							key := fmt.Sprintf("lag/%d/%d", b.N, i)
							out, err := src.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String(key), Body: bytes.NewReader(data)})
							if err != nil {
								b.Error(err)
								return
							}
							acked := time.Now()
							for {
								_, err := dst.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String(key), VersionId: out.VersionId})
								if err == nil {
									break
								}
								time.Sleep(200 * time.Microsecond)
							}
							mu.Lock()
							lat = append(lat, time.Since(acked))
							mu.Unlock()
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(percentile(lat, 0.50).Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(percentile(lat, 0.99).Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkReplicationCatchUp writes 10,000 objects of 4 KiB with 16
// writers while the destination region is down (the direct PUT rate), then
// brings it back and measures how fast the backlog drains (the catch-up
// rate). Run with -benchtime=1x.
func BenchmarkReplicationCatchUp(b *testing.B) {
	const objects = 10000
	for range b.N {
		fast := func(c *server.Config) { c.Replication.RetryMax = 200 * time.Millisecond }
		west, east, topo := twoRegions(b, fast)
		dir := east.Dir
		if err := east.Close(ctx); err != nil {
			b.Fatal(err)
		}
		src := west.Client(b)
		data := random(4 << 10)
		start := time.Now()
		var wg sync.WaitGroup
		for w := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < objects; i += 16 {
					if _, err := src.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String(fmt.Sprintf("k/%d", i)), Body: bytes.NewReader(data)}); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		putRate := objects / time.Since(start).Seconds()
		changes, tasks, _ := west.Replication.Backlog(ctx)
		for changes > 0 {
			time.Sleep(time.Millisecond)
			changes, tasks, _ = west.Replication.Backlog(ctx)
		}
		if tasks != objects {
			b.Fatalf("backlog %d tasks, want %d", tasks, objects)
		}
		restart := time.Now()
		servertest.Start(b, servertest.Options{Region: "us-east-1", Topology: topo, Dir: dir, Configure: fast})
		for {
			changes, tasks, err := west.Replication.Backlog(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if changes == 0 && tasks == 0 {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		catchUp := objects / time.Since(restart).Seconds()
		b.ReportMetric(putRate, "put-obj/s")
		b.ReportMetric(catchUp, "catchup-obj/s")
		b.ReportMetric(catchUp/putRate, "catchup/put")
	}
}
