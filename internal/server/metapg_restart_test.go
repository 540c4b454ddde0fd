package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// requestBound is how long any request may take while the metadata store
// is away: beyond it, the client gives up and the test counts a hang.
const requestBound = 30 * time.Second

// loadResult is what PUT load saw.
type loadResult struct {
	mu       sync.Mutex
	acked    map[string][]byte // keys answered 200, with their bodies
	failures map[string]int    // "status code: message" → count
	ok, bad  atomic.Int64
}

func (l *loadResult) fail(err error) {
	what := "no answer: " + err.Error()
	var re *smithyhttp.ResponseError
	var ae smithy.APIError
	if errors.As(err, &re) && errors.As(err, &ae) {
		what = fmt.Sprintf("%d %s: %s", re.HTTPStatusCode(), ae.ErrorCode(), ae.ErrorMessage())
	}
	l.mu.Lock()
	l.failures[what]++
	l.mu.Unlock()
	l.bad.Add(1)
}

// TestRegionSurvivesPostgresRestart runs a region on a private PostgreSQL
// cluster under PUT load from four writers, stops the cluster (at once, as
// a crash), starts it again, and checks that while it was down every
// request got a 503 ServiceUnavailable naming the metadata store within a
// bound (no 500, no Go error, no hang), that service came back without
// help, and that every PUT answered 200 is there afterwards.
func TestRegionSurvivesPostgresRestart(t *testing.T) {
	cluster := pgtest.StartCluster(t, pgtest.ClusterOptions{})
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) { c.MetaDSN = cluster.DSN() }})
	hc := r.HTTPClient(t)
	hc.Timeout = requestBound
	c := servertest.NewClient(r.URL(), "us-west-2", servertest.AccessKey, servertest.SecretKey, hc,
		func(o *s3.Options) { o.Retryer = aws.NopRetryer{} }) // every 503 seen, none retried away
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("load")}); err != nil {
		t.Fatal(err)
	}

	load := &loadResult{acked: map[string][]byte{}, failures: map[string]int{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Sprintf("w%d/%06d", w, i)
				body := bytes.Repeat([]byte(key+";"), 4096/(len(key)+1))
				_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("load"), Key: aws.String(key), Body: bytes.NewReader(body)})
				if err != nil {
					load.fail(err)
					time.Sleep(5 * time.Millisecond)
					continue
				}
				load.mu.Lock()
				load.acked[key] = body
				load.mu.Unlock()
				load.ok.Add(1)
			}
		}()
	}
	waitCount(t, "PUTs before the stop", &load.ok, 200)
	cluster.Stop()
	failedBefore := load.bad.Load()
	waitCount(t, "failed PUTs while PostgreSQL is down", &load.bad, failedBefore+40)
	// Reads too fail with the same answer.
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("load"), Key: aws.String("w0/000000")})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusServiceUnavailable {
		t.Errorf("GET while PostgreSQL is down: %v", err)
	}
	okBefore := load.ok.Load()
	cluster.Start()
	waitCount(t, "PUTs after PostgreSQL is back", &load.ok, okBefore+200)
	close(stop)
	wg.Wait()

	t.Logf("%d PUTs answered 200, %d failed:", load.ok.Load(), load.bad.Load())
	for what, n := range load.failures {
		t.Logf("  %d× %s", n, what)
		if !strings.HasPrefix(what, "503 ServiceUnavailable: ") || !strings.Contains(what, "metadata store") {
			t.Errorf("a failure other than a 503 naming the metadata store: %s", what)
		}
	}
	for key, body := range load.acked {
		got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("load"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("GET %s, answered 200 on PUT: %v", key, err)
		}
		b, err := io.ReadAll(got.Body)
		got.Body.Close()
		if err != nil || !bytes.Equal(b, body) {
			t.Fatalf("GET %s: %d bytes, %v; want %d", key, len(b), err, len(body))
		}
	}
}

// waitCount waits until n reaches want; the deadline only keeps a broken
// region from hanging the test.
func waitCount(t *testing.T, what string, n *atomic.Int64, want int64) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if n.Load() >= want {
			return
		}
	}
	t.Fatalf("%s: %d, waited for %d", what, n.Load(), want)
}
