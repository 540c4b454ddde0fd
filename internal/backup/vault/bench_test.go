package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/kopia/kopia/repo/compression"
)

// BenchmarkWriteRead writes a point of 1,000 objects of 64 KiB of random
// data and reads them back.
func BenchmarkWriteRead(b *testing.B) {
	ctx := context.Background()
	const n, size = 1000, 64 << 10
	objs := make([]obj, n)
	for i := range objs {
		objs[i] = obj{n: i, size: size}
	}
	var wTime, rTime time.Duration
	for i := 0; i < b.N; i++ {
		v := openVault(b, b.TempDir())
		start := time.Now()
		p := writePoint(b, v, fmt.Sprint("p", i), nil, objs)
		wTime += time.Since(start)
		start = time.Now()
		buf := make([]byte, size)
		err := v.Entries(ctx, p.ID, func(_ Entry, ref ObjectRef) error {
			rd, err := v.Open(ctx, ref)
			if err != nil {
				return err
			}
			defer rd.Close()
			_, err = io.ReadFull(rd, buf)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
		rTime += time.Since(start)
		v.Close(ctx)
	}
	total := float64(n*size*b.N) / 1e6
	b.ReportMetric(total/wTime.Seconds(), "write-MB/s")
	b.ReportMetric(total/rTime.Seconds(), "read-MB/s")
}

// BenchmarkCompressors compares the compressors considered for Compressor
// on compressible, backup-like data (JSON lines).
func BenchmarkCompressors(b *testing.B) {
	var in bytes.Buffer
	for i := 0; in.Len() < 4<<20; i++ {
		fmt.Fprintf(&in, `{"key":"logs/2025/11/25/app-%06d.json","size":%d,"etag":"%x","owner":"svc-%d"}`+"\n", i, i*37%100000, i*7919, i%17)
	}
	for _, name := range []compression.Name{"zstd-fastest", "s2-default", "pgzip-best-speed"} {
		c := compression.ByName[name]
		b.Run(string(name), func(b *testing.B) {
			var out bytes.Buffer
			b.SetBytes(int64(in.Len()))
			for i := 0; i < b.N; i++ {
				out.Reset()
				if err := c.Compress(&out, bytes.NewReader(in.Bytes())); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(out.Len())/float64(in.Len())*100, "%size")
		})
	}
}
