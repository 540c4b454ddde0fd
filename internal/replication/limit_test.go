package replication

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

// The bandwidth cap holds: a body read through it cannot go faster than
// the limit allows (a lower bound, which no slow machine can break).
func TestBandwidthCap(t *testing.T) {
	const limit = 256 << 10
	l := rate.NewLimiter(rate.Limit(limit), limit/4)
	data := make([]byte, 3*limit/2)
	start := time.Now()
	n, err := io.Copy(io.Discard, &limitedReader{ctx: context.Background(), r: bytes.NewReader(data), l: l})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	// The burst goes at once; the rest at the limit.
	if min := time.Duration(float64(len(data)-limit/4) / limit * float64(time.Second)); time.Since(start) < min*9/10 {
		t.Fatalf("%d bytes in %v: faster than %d B/s", len(data), time.Since(start), limit)
	}
}
