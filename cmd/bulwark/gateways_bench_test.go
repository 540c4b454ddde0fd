package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/bench"
	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// rates are one setup's figures: operations per second.
type rates struct{ put, get, list float64 }

// measure runs 4 KiB PUTs and GETs, 16 at a time spread over the
// endpoints, then full listings of the bucket (objects listed per second,
// one listing per endpoint at a time).
func measure(t *testing.T, endpoints []string, count int) rates {
	t.Helper()
	ctx := context.Background()
	var (
		mu  sync.Mutex
		sum rates
		wg  sync.WaitGroup
	)
	prefix := fmt.Sprintf("bench/%d/", time.Now().UnixNano())
	for i, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := bench.Run(ctx, bench.Config{Endpoint: ep, Region: "us-east-1", AccessKey: servertest.AccessKey, SecretKey: servertest.SecretKey,
				Bucket: "bench", Prefix: fmt.Sprintf("%s%d/", prefix, i), Size: 4 << 10, Count: count / len(endpoints), Concurrency: 16 / len(endpoints), Cleanup: true})
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			sum.put += res.Put.OpsPerSec
			sum.get += res.Get.OpsPerSec
			mu.Unlock()
		}()
	}
	wg.Wait()
	// The objects are gone (bench cleans up): list a bucket of count
	// objects written for it.
	if _, err := bench.Run(ctx, bench.Config{Endpoint: endpoints[0], Region: "us-east-1", AccessKey: servertest.AccessKey, SecretKey: servertest.SecretKey,
		Bucket: "bench", Prefix: "list/", Size: 16, Count: count, Concurrency: 16, Cleanup: false}); err != nil {
		t.Fatal(err)
	}
	const rounds = 4
	start := time.Now()
	for i, ep := range endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lc := servertest.NewClient(ep, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
			for range rounds {
				p := s3.NewListObjectsV2Paginator(lc, &s3.ListObjectsV2Input{Bucket: aws.String("bench"), Prefix: aws.String("list/")})
				for p.HasMorePages() {
					if _, err := p.NextPage(ctx); err != nil {
						t.Errorf("list through endpoint %d: %v", i, err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	sum.list = float64(rounds*len(endpoints)*count) / time.Since(start).Seconds()
	return sum
}

// TestGatewayRates measures 4 KiB PUT, GET and LIST rates of one process
// on bbolt, one gateway on PostgreSQL and two gateways on PostgreSQL, in
// one run; set BULWARK_BENCH_GATEWAYS=1 to run it (a minute or two).
func TestGatewayRates(t *testing.T) {
	if os.Getenv("BULWARK_BENCH_GATEWAYS") == "" {
		t.Skip("a measurement: set BULWARK_BENCH_GATEWAYS=1")
	}
	const count = 4000
	bin := buildBinary(t)
	dir := t.TempDir()
	results := map[string]rates{}

	bolt := startServe(t, bin, filepath.Join(dir, "bolt"))
	results["bbolt, 1 process"] = measure(t, []string{bolt.url}, count)
	bolt.kill(t)

	dsn1 := pgtest.Database(t)
	one := startProcess(t, bin, "serve", "--region", "us-east-1", "--data", filepath.Join(dir, "pg1"), "--meta", dsn1, "--listen", "127.0.0.1:0")
	results["PostgreSQL, 1 gateway"] = measure(t, []string{one.url}, count)
	one.kill(t)

	dsn2 := pgtest.Database(t)
	shared := filepath.Join(dir, "shared")
	g1 := startProcess(t, bin, "serve", "--region", "us-east-1", "--data", filepath.Join(dir, "g1"), "--shared", shared, "--meta", dsn2, "--listen", "127.0.0.1:0")
	g2 := startProcess(t, bin, "serve", "--region", "us-east-1", "--data", filepath.Join(dir, "g2"), "--shared", shared, "--meta", dsn2, "--listen", "127.0.0.1:0")
	results["PostgreSQL, 2 gateways"] = measure(t, []string{g1.url, g2.url}, count)

	base := results["bbolt, 1 process"]
	for _, name := range []string{"bbolt, 1 process", "PostgreSQL, 1 gateway", "PostgreSQL, 2 gateways"} {
		r := results[name]
		t.Logf("%-24s PUT %6.0f/s (%.2f)  GET %6.0f/s (%.2f)  LIST %7.0f objects/s (%.2f)", name,
			r.put, r.put/base.put, r.get, r.get/base.get, r.list, r.list/base.list)
	}
}
