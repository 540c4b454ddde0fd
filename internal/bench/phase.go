package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// opFunc performs one op on key; its whole duration is the op's latency.
type opFunc func(ctx context.Context, key string) error

// opState records what happened to each key of a phase.
type opState uint8

const (
	opSkipped opState = iota // never started: the context ended first
	opOK
	opFailed
)

// runPhase applies fn to every key from conc workers and summarises the
// timings. The indexes are queued up front so that handing out work costs
// the workers a channel receive and nothing else; each worker writes only
// its own slots of the preallocated latency and state slices, so no locking
// is needed on the success path.
func runPhase(ctx context.Context, op string, keys []string, conc int, size int64, fn opFunc) (PhaseResult, []opState) {
	lat := make([]time.Duration, len(keys))
	states := make([]opState, len(keys))
	queue := make(chan int, len(keys))
	for i := range keys {
		queue <- i
	}
	close(queue)

	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range conc {
		wg.Go(func() {
			for i := range queue {
				if ctx.Err() != nil {
					return
				}
				t0 := time.Now()
				err := fn(ctx, keys[i])
				lat[i] = time.Since(t0)
				if err == nil {
					states[i] = opOK
					continue
				}
				states[i] = opFailed
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	r := summarise(op, lat, states, size, time.Since(start))
	r.FirstError = firstErr
	return r, states
}

// summarise computes a phase's rates and percentiles. Failed ops count
// towards Count and Errors only: their latencies (often a fast refusal)
// would otherwise make the percentiles look better than the service is.
func summarise(op string, lat []time.Duration, states []opState, size int64, elapsed time.Duration) PhaseResult {
	r := PhaseResult{Op: op, Elapsed: elapsed}
	ok := make([]time.Duration, 0, len(lat))
	for i, s := range states {
		switch s {
		case opOK:
			ok = append(ok, lat[i])
		case opFailed:
			r.Errors++
		}
	}
	r.Count = len(ok) + r.Errors
	r.Bytes = int64(len(ok)) * size
	if secs := elapsed.Seconds(); secs > 0 {
		r.OpsPerSec = float64(len(ok)) / secs
		r.MiBPerSec = float64(r.Bytes) / (1 << 20) / secs
	}
	slices.Sort(ok)
	r.P50 = percentile(ok, 50)
	r.P90 = percentile(ok, 90)
	r.P99 = percentile(ok, 99)
	r.Max = percentile(ok, 100)
	return r
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest sample that at least p% of the samples do not exceed. Unlike
// interpolation it always reports a latency that was actually observed.
func percentile(sorted []time.Duration, p float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(n)))
	rank = max(1, min(rank, n))
	return sorted[rank-1]
}

// phaseErr turns a cancelled phase, or one in which every op failed, into
// an error; a run with some failures still has figures worth reporting.
func phaseErr(ctx context.Context, r PhaseResult) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s phase: %w", r.Op, err)
	}
	if r.Count > 0 && r.Errors == r.Count {
		return fmt.Errorf("%s phase: all %d ops failed: %w", r.Op, r.Count, r.FirstError)
	}
	return nil
}

// pick returns the keys whose state is one of want.
func pick(keys []string, states []opState, want ...opState) []string {
	var out []string
	for i, s := range states {
		if slices.Contains(want, s) {
			out = append(out, keys[i])
		}
	}
	return out
}

// putOp uploads the shared payload. Every op reads the same buffer through
// its own bytes.Reader, so a PUT allocates no payload and the client's
// memory stays flat whatever Count is.
func putOp(client *s3.Client, bucket string, payload []byte) opFunc {
	b, n := aws.String(bucket), aws.Int64(int64(len(payload)))
	return func(ctx context.Context, key string) error {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{
			Bucket:        b,
			Key:           aws.String(key),
			Body:          bytes.NewReader(payload),
			ContentLength: n,
		})
		if err != nil {
			return fmt.Errorf("put %s: %w", key, err)
		}
		return nil
	}
}

// getOp downloads an object and discards it; the latency runs to the last
// byte, and a short or long body is an error rather than a fast op.
func getOp(client *s3.Client, bucket string, size int64) opFunc {
	b := aws.String(bucket)
	return func(ctx context.Context, key string) error {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		n, err := io.Copy(io.Discard, out.Body)
		out.Body.Close()
		if err != nil {
			return fmt.Errorf("get %s: read body: %w", key, err)
		}
		if n != size {
			return fmt.Errorf("get %s: got %d bytes, want %d", key, n, size)
		}
		return nil
	}
}
