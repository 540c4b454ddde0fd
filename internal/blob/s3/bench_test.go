package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
)

// BenchmarkFSvsS3 measures Create and Open (a whole read) of 4 KiB and
// 8 MiB blobs in the fs store and in the S3 store over a Bulwark region on
// loopback, in one run on one machine, and logs the S3 store's time per
// operation as a multiple of the fs store's.
func BenchmarkFSvsS3(b *testing.B) {
	e := startEndpoint(b)
	fsStore, err := blobfs.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	stores := []struct {
		name string
		s    blob.Store
	}{{"fs", fsStore}, {"s3", open(b, e.config(""))}}
	for _, size := range []int{4 << 10, 8 << 20} {
		data := make([]byte, size)
		rand.Read(data)
		for _, op := range []string{"create", "open"} {
			var perOp [2]time.Duration
			for i, st := range stores {
				b.Run(fmt.Sprintf("%s/%s/%s", op, sizeName(size), st.name), func(b *testing.B) {
					benchOp(b, st.s, op, data)
					perOp[i] = b.Elapsed() / time.Duration(b.N)
				})
			}
			if perOp[0] > 0 {
				b.Logf("%s %s: fs %v/op, s3 %v/op, s3/fs %.1f", op, sizeName(size), perOp[0], perOp[1], float64(perOp[1])/float64(perOp[0]))
			}
		}
	}
}

func benchOp(b *testing.B, s blob.Store, op string, data []byte) {
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	if op == "open" {
		if _, err := s.Create(ctx, "bench-open", bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Delete(ctx, "bench-open") })
	}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if op == "create" {
			id := fmt.Sprintf("bench-%d", i)
			if _, err := s.Create(ctx, id, bytes.NewReader(data)); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if err := s.Delete(ctx, id); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			continue
		}
		o, err := s.Open(ctx, "bench-open")
		if err != nil {
			b.Fatal(err)
		}
		if n, err := io.Copy(io.Discard, o); err != nil || n != int64(len(data)) {
			b.Fatalf("read %d, %v", n, err)
		}
		o.Close()
	}
}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}
