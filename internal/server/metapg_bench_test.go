package server_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// BenchmarkRegionMeta measures 4 KiB PUT, GET and LIST (100 keys) rates
// through the S3 API, 16 clients at once, of one region on bbolt and one
// on PostgreSQL in the same run, and logs PostgreSQL's rates as fractions
// of bbolt's.
//
//	go test -run '^$' -bench RegionMeta -benchtime 4000x ./internal/server/
func BenchmarkRegionMeta(b *testing.B) {
	rates := map[string]float64{}
	stores := []struct {
		name string
		cfg  func(b *testing.B) func(*server.Config)
	}{
		{"bbolt", func(*testing.B) func(*server.Config) { return nil }},
		{"postgres", func(b *testing.B) func(*server.Config) {
			dsn := pgtest.Database(b)
			return func(c *server.Config) { c.MetaDSN = dsn }
		}},
	}
	body := bytes.Repeat([]byte("x"), 4096)
	for _, st := range stores {
		r := servertest.Start(b, servertest.Options{Configure: st.cfg(b)})
		c := r.Client(b)
		ctx := context.Background()
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bench")}); err != nil {
			b.Fatal(err)
		}
		var written atomic.Int64 // the highest key PUT: keys 1 to it exist
		parallel := func(op string, fn func(i int64) error) {
			b.Run(st.name+"/"+op, func(b *testing.B) {
				var n atomic.Int64
				b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if err := fn(n.Add(1)); err != nil {
							b.Error(err)
							return
						}
					}
				})
				rate := float64(b.N) / b.Elapsed().Seconds()
				b.ReportMetric(rate, "ops/s")
				rates[st.name+"/"+op] = rate
			})
		}
		key := func(i int64) string { return fmt.Sprintf("dir%02d/obj%08d", i%64, i) }
		parallel("put", func(i int64) error {
			_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bench"), Key: aws.String(key(i)), Body: bytes.NewReader(body)})
			for cur := written.Load(); err == nil && i > cur && !written.CompareAndSwap(cur, i); cur = written.Load() {
			}
			return err
		})
		parallel("get", func(i int64) error {
			out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bench"), Key: aws.String(key(1 + i%written.Load()))})
			if err != nil {
				return err
			}
			_, err = io.Copy(io.Discard, out.Body)
			out.Body.Close()
			return err
		})
		parallel("list", func(i int64) error {
			_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bench"), Prefix: aws.String(fmt.Sprintf("dir%02d/", i%64)), MaxKeys: aws.Int32(100)})
			return err
		})
	}
	for _, op := range []string{"put", "get", "list"} {
		if bb := rates["bbolt/"+op]; bb > 0 {
			b.Logf("%s/s: bbolt %.0f, PostgreSQL %.0f (%.2f× bbolt)", op, bb, rates["postgres/"+op], rates["postgres/"+op]/bb)
		}
	}
}
