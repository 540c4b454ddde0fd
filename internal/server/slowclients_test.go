package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

// Slow and stalled clients, over raw TCP against real regions. The idle
// timeouts are short so that waiting for one is quick; the bounds on the
// waits are generous so that a loaded machine does not fail them.
const (
	clientIdle = time.Second
	waitBound  = 20 * time.Second
)

func shortIdle(c *server.Config) {
	c.Clients.ReadIdleTimeout = clientIdle
	c.Clients.WriteIdleTimeout = clientIdle
}

// rawClient is a client that writes requests by hand, signed with SigV4
// as the SDKs sign them, and sends their bodies as slowly as it likes.
type rawClient struct {
	t      *testing.T
	region *servertest.Region
	conn   net.Conn
	br     *bufio.Reader
}

func dialRaw(t *testing.T, r *servertest.Region) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(r.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, region: r, conn: c, br: bufio.NewReader(c)}
}

// head sends the head of an S3 request; payloadHash is the body's hex
// sha256 or UNSIGNED-PAYLOAD.
func (c *rawClient) head(method, path, payloadHash string, contentLength int) {
	c.t.Helper()
	c.headFor("s3", nil, method, path, payloadHash, contentLength)
}

// headFor sends the head of a request to service, signed as the SDKs sign
// it, with the extra headers hdr.
func (c *rawClient) headFor(service string, hdr http.Header, method, path, payloadHash string, contentLength int) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.region.URL()+path, nil)
	if err != nil {
		c.t.Fatal(err)
	}
	maps.Copy(req.Header, hdr)
	req.ContentLength = int64(contentLength)
	req.Header.Set("x-amz-content-sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: servertest.AccessKey, SecretAccessKey: servertest.SecretKey}
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, payloadHash, service, c.region.Store.Region(), time.Now()); err != nil {
		c.t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, req.URL.RequestURI(), req.URL.Host)
	for k, vs := range req.Header {
		for _, v := range vs {
			fmt.Fprintf(&b, "%s: %s\r\n", k, v)
		}
	}
	if contentLength > 0 {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", contentLength)
	}
	b.WriteString("\r\n")
	c.send([]byte(b.String()))
}

func (c *rawClient) send(p []byte) {
	c.t.Helper()
	if _, err := c.conn.Write(p); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// response reads a whole response, within waitBound.
func (c *rawClient) response() (*http.Response, string) {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(waitBound))
	res, err := http.ReadResponse(c.br, nil)
	if err != nil {
		c.t.Fatalf("read response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	if err != nil {
		c.t.Fatalf("read response body: %v", err)
	}
	return res, string(b)
}

// closedWithin reports whether the server closes the connection within d
// (what is left to read is read and dropped).
func (c *rawClient) closedWithin(d time.Duration) bool {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c.br)
	var ne net.Error
	return !(errors.As(err, &ne) && ne.Timeout())
}

// blobFiles counts the files of a region's blob store.
func blobFiles(t *testing.T, r *servertest.Region) int {
	t.Helper()
	n := 0
	err := filepath.WalkDir(filepath.Join(r.Dir, "blobs"), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// slowRegion starts a region with short idle timeouts and a bucket
// "slow", and returns it with a client.
func slowRegion(t *testing.T) (*servertest.Region, *s3.Client) {
	t.Helper()
	r := servertest.Start(t, servertest.Options{Configure: shortIdle})
	c := r.Client(t)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("slow")}); err != nil {
		t.Fatal(err)
	}
	return r, c
}

func TestStalledUploadTimesOut(t *testing.T) {
	r, c := slowRegion(t)
	ctx := context.Background()
	// Bodies past the inline limit go to a blob of their own, which must
	// not outlive the failed request.
	const size = 128 << 10
	body := randomBytes(size)
	sum := sha256.Sum256(body)
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("slow"), Key: aws.String("parts")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, path, hash string }{
		{"unsigned payload", "/slow/unsigned", "UNSIGNED-PAYLOAD"},
		{"signed payload", "/slow/signed", hex.EncodeToString(sum[:])},
		{"upload part", "/slow/parts?partNumber=1&uploadId=" + aws.ToString(up.UploadId), "UNSIGNED-PAYLOAD"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			blobs := blobFiles(t, r)
			rc := dialRaw(t, r)
			began := time.Now()
			rc.head(http.MethodPut, tc.path, tc.hash, size)
			rc.send(body[:1000])
			res, xml := rc.response()
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(xml, "<Code>RequestTimeout</Code>") ||
				!strings.Contains(xml, "Idle connections will be closed.") {
				t.Fatalf("got %d %s, want 400 RequestTimeout", res.StatusCode, xml)
			}
			if waited := time.Since(began); waited < clientIdle {
				t.Fatalf("answered after %v, before the idle timeout", waited)
			}
			if !rc.closedWithin(waitBound) {
				t.Fatal("the connection stays open")
			}
			if n := blobFiles(t, r); n != blobs {
				t.Fatalf("%d blob files after the request, %d before", n, blobs)
			}
		})
	}
	for _, key := range []string{"unsigned", "signed"} {
		_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("slow"), Key: aws.String(key)})
		if code, status := servertest.APICode(err); status != http.StatusNotFound {
			t.Fatalf("head %s after the timeout: %v (%s/%d), want not found", key, err, code, status)
		}
	}
	parts, err := c.ListParts(ctx, &s3.ListPartsInput{Bucket: aws.String("slow"), Key: aws.String("parts"), UploadId: up.UploadId})
	if err != nil {
		t.Fatal(err)
	}
	if len(parts.Parts) != 0 {
		t.Fatalf("the upload has %d parts after the timeout", len(parts.Parts))
	}
}

// Every API answers a stalled body with its own RequestTimeout.
func TestStalledBodyInEveryAPI(t *testing.T) {
	r := servertest.Start(t, servertest.Options{Configure: shortIdle})
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	jsonType := http.Header{"Content-Type": {"application/json"}}
	for _, tc := range []struct {
		name, service, method, path string
		hdr                         http.Header
		want                        string
	}{
		{"backup", "backup", http.MethodPut, "/backup-vaults/slow", jsonType, `"Code":"RequestTimeoutException"`},
		{"iam", "iam", http.MethodPost, "/", form, "<Code>RequestTimeout</Code>"},
		{"sts", "sts", http.MethodPost, "/", form, "<Code>RequestTimeout</Code>"},
		{"admin", "s3", http.MethodPost, "/_bulwark/v1/replication/jobs", jsonType, `"code": "RequestTimeout"`},
		{"peer", "s3", http.MethodPut, "/_bulwark/v1/backup/copies/slow/chunks", nil, `"code": "RequestTimeout"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rc := dialRaw(t, r)
			rc.headFor(tc.service, tc.hdr, tc.method, tc.path, "UNSIGNED-PAYLOAD", 4096)
			rc.send([]byte("Action=ListUsers&"))
			res, body := rc.response()
			if res.StatusCode != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want 400 %s", res.StatusCode, body, tc.want)
			}
			if !rc.closedWithin(waitBound) {
				t.Fatal("the connection stays open")
			}
		})
	}
}

// A stalled upload to a bucket of another region, which the region passes
// on as it arrives, is answered RequestTimeout too, and leaves nothing.
func TestStalledForwardedUpload(t *testing.T) {
	regions := servertest.StartRegionsWith(t, shortIdle, "us-west-2", "us-east-1")
	west := regions[0]
	wc := west.Client(t)
	createIn(t, wc, "east-bucket", "us-east-1")
	rc := dialRaw(t, west)
	rc.head(http.MethodPut, "/east-bucket/key", "UNSIGNED-PAYLOAD", 128<<10)
	rc.send(randomBytes(1000))
	res, xml := rc.response()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(xml, "<Code>RequestTimeout</Code>") {
		t.Fatalf("got %d %s, want 400 RequestTimeout", res.StatusCode, xml)
	}
	if !rc.closedWithin(waitBound) {
		t.Fatal("the connection stays open")
	}
	_, err := wc.HeadObject(context.Background(), &s3.HeadObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("key")})
	if _, status := servertest.APICode(err); status != http.StatusNotFound {
		t.Fatalf("head after the timeout: %v, want not found", err)
	}
}

// A region that keeps a copy of IAM passes IAM calls on to IAM's home as
// they arrive; a stalled one is answered RequestTimeout in IAM's shape.
func TestStalledForwardedIAMCall(t *testing.T) {
	topo, err := topology.New(topology.Region{Name: "us-west-2"}, topology.Region{Name: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	key := randomBytes(iam.DeploymentKeySize)
	configure := func(c *server.Config) {
		shortIdle(c)
		c.DeploymentKey = key
	}
	servertest.Start(t, servertest.Options{Region: "us-west-2", Topology: topo, Configure: configure})
	east := servertest.Start(t, servertest.Options{Region: "us-east-1", Topology: topo, Configure: configure})
	rc := dialRaw(t, east)
	rc.headFor("iam", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, http.MethodPost, "/", "UNSIGNED-PAYLOAD", 4096)
	rc.send([]byte("Action=CreateUser&"))
	res, xml := rc.response()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(xml, "<Code>RequestTimeout</Code>") {
		t.Fatalf("got %d %s, want 400 RequestTimeout", res.StatusCode, xml)
	}
	if !rc.closedWithin(waitBound) {
		t.Fatal("the connection stays open")
	}
}

func TestStalledHeadersClosed(t *testing.T) {
	r := servertest.Start(t, servertest.Options{Configure: shortIdle})
	rc := dialRaw(t, r)
	rc.send([]byte("PUT /slow/key HTTP/1.1\r\nHost: " + strings.TrimPrefix(r.URL(), "http://") + "\r\n"))
	if !rc.closedWithin(waitBound) {
		t.Fatal("a connection stalled in its headers stays open")
	}
}

// A client that keeps sending, in pieces with pauses shorter than the idle
// timeout, is never cut off, however long the whole body takes.
func TestSlowUploadSucceeds(t *testing.T) {
	r, c := slowRegion(t)
	ctx := context.Background()
	const pieces, piece = 12, 8 << 10
	body := randomBytes(pieces * piece)
	sum := sha256.Sum256(body)
	rc := dialRaw(t, r)
	began := time.Now()
	rc.head(http.MethodPut, "/slow/key", hex.EncodeToString(sum[:]), len(body))
	for i := range pieces {
		time.Sleep(clientIdle * 3 / 10)
		rc.send(body[i*piece : (i+1)*piece])
	}
	if res, xml := rc.response(); res.StatusCode != http.StatusOK {
		t.Fatalf("got %d %s", res.StatusCode, xml)
	}
	if took := time.Since(began); took < 3*clientIdle {
		t.Fatalf("the upload took %v, too short to span several idle periods", took)
	}
	out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("slow"), Key: aws.String("key")})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Body.Close()
	got, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("read back %d bytes, not the %d sent", len(got), len(body))
	}
}

// A client that never reads a large object's response is let go after the
// write idle timeout: the goroutine serving it ends.
func TestStalledDownloadLetGo(t *testing.T) {
	r, c := slowRegion(t)
	ctx := context.Background()
	// Larger than the socket buffers on both sides hold.
	const size = 32 << 20
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("slow"), Key: aws.String("big"), Body: bytes.NewReader(make([]byte, size))}); err != nil {
		t.Fatal(err)
	}
	baseline := settledGoroutines()
	rc := dialRaw(t, r)
	rc.head(http.MethodGet, "/slow/big", "UNSIGNED-PAYLOAD", 0)
	waitFor(t, "the download to be served", func() bool { return runtime.NumGoroutine() > baseline })
	waitFor(t, "the server to let the client go", func() bool { return runtime.NumGoroutine() <= baseline })
	_ = rc.conn.SetReadDeadline(time.Now().Add(waitBound))
	n, _ := io.Copy(io.Discard, rc.conn)
	if n >= size {
		t.Fatalf("the client got the whole object (%d bytes)", n)
	}
	if v := counter(t, r, "bulwark_http_idle_timeouts_total", "direction", "write"); v != 1 {
		t.Fatalf("%v write idle timeouts counted, want 1", v)
	}
}

// settledGoroutines waits for the goroutine count to stop falling and
// returns it.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(20 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m >= n {
			return n
		}
		n = m
	}
	return n
}

// counter reads a counter of the region's metrics, the one with the label
// when label is not "".
func counter(t *testing.T, r *servertest.Region, name, label, value string) float64 {
	t.Helper()
	families, err := r.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" {
				return m.GetCounter().GetValue()
			}
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// stall opens n connections that send a partial request head and nothing
// more, one after another.
func stall(t *testing.T, r *servertest.Region, n int) []*rawClient {
	t.Helper()
	out := make([]*rawClient, n)
	for i := range out {
		out[i] = dialRaw(t, r)
		out[i].send([]byte("GET /slow/key HTTP/1.1\r\n"))
	}
	return out
}

// closedCount counts the connections the server has closed, each given
// up to d to show it.
func closedCount(cs []*rawClient, d time.Duration) int {
	var mu sync.Mutex
	var wg sync.WaitGroup
	n := 0
	for _, c := range cs {
		wg.Go(func() {
			if c.closedWithin(d) {
				mu.Lock()
				n++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return n
}

// Many stalled connections from one address hit the per-client cap: the
// ones waiting longest make room for new ones, so a normal client from the
// same address is still served, long before any idle timeout ends them.
func TestStalledConnectionsHitClientCap(t *testing.T) {
	const capacity, stalled = 8, 40
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.Clients.ReadIdleTimeout = time.Minute
		c.Clients.MaxConnsPerClient = capacity
	}})
	hog := stall(t, r, stalled)
	c := r.Client(t)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("slow")}); err != nil {
		t.Fatal(err)
	}
	put(t, c, "slow", "key", "served")
	if got := get(t, c, "slow", "key"); got != "served" {
		t.Fatalf("got %q", got)
	}
	if n := closedCount(hog, 2*time.Second); n < stalled-capacity {
		t.Fatalf("%d of %d stalled connections closed, want at least %d", n, stalled, stalled-capacity)
	}
	if v := counter(t, r, "bulwark_http_connections_displaced_total", "", ""); v < stalled-capacity {
		t.Fatalf("%v displacements counted", v)
	}
}

// In the local deployment every region and client is 127.0.0.1: stalled
// connections at one region's per-client cap do not starve the other
// region's calls to it (forwarded requests, replication).
func TestStalledClientsDoNotStarvePeers(t *testing.T) {
	const capacity = 8
	regions := servertest.StartRegionsWith(t, func(c *server.Config) {
		c.Clients.ReadIdleTimeout = time.Minute
		c.Clients.MaxConnsPerClient = capacity
	}, "us-west-2", "us-east-1")
	west, east := regions[0], regions[1]
	wc := west.Client(t)
	versionedBucket(t, wc, "west-src", "us-west-2")
	versionedBucket(t, wc, "east-dst", "us-east-1")
	replicateAll(t, wc, "west-src", "east-dst")

	hog := stall(t, east, 3*capacity)
	// Forwarded by us-west-2 to the bucket's home, us-east-1.
	put(t, wc, "east-dst", "direct", "forwarded")
	if got := get(t, wc, "east-dst", "direct"); got != "forwarded" {
		t.Fatalf("forwarded read got %q", got)
	}
	// Replicated by us-west-2's engine into us-east-1.
	putObject(t, wc, "west-src", "copy", "replicated")
	ec := east.Client(t)
	waitFor(t, "the object to replicate", func() bool {
		out, err := ec.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("east-dst"), Key: aws.String("copy")})
		if err != nil {
			return false
		}
		defer out.Body.Close()
		b, _ := io.ReadAll(out.Body)
		return string(b) == "replicated"
	})
	if n := closedCount(hog, 2*time.Second); n < 2*capacity {
		t.Fatalf("%d of %d stalled connections closed: the cap was not reached", n, 3*capacity)
	}
}
