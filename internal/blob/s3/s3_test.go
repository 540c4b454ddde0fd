package s3_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/blob/blobtest"
	blobs3 "github.com/bulwark/bulwark/internal/blob/s3"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// endpoint is a Bulwark region with a bucket for blobs: a real S3 endpoint.
type endpoint struct {
	r      *servertest.Region
	bucket string
	n      atomic.Int64
}

func startEndpoint(t testing.TB) *endpoint {
	t.Helper()
	r := servertest.Start(t, servertest.Options{})
	e := &endpoint{r: r, bucket: "blobs"}
	if _, err := r.Client(t).CreateBucket(context.Background(), &awss3.CreateBucketInput{Bucket: aws.String(e.bucket)}); err != nil {
		t.Fatal(err)
	}
	return e
}

// config returns the configuration of a store under a prefix no other
// store of the test uses, unless prefix is given.
func (e *endpoint) config(prefix string) blobs3.Config {
	if prefix == "" {
		prefix = fmt.Sprintf("store%03d/", e.n.Add(1))
	}
	return blobs3.Config{
		Bucket: e.bucket, Prefix: prefix, Endpoint: e.r.URL(), Region: e.r.Store.Region(),
		AccessKey: servertest.AccessKey, SecretKey: servertest.SecretKey,
	}
}

func open(t testing.TB, cfg blobs3.Config) *blobs3.Store {
	t.Helper()
	s, err := blobs3.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	e := startEndpoint(t)
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t, e.config("")) })
}

// TestShared runs two stores over one bucket and prefix, as two processes
// do.
func TestShared(t *testing.T) {
	e := startEndpoint(t)
	blobtest.RunShared(t, func(t *testing.T) (blob.Store, blob.Store) {
		cfg := e.config("")
		return open(t, cfg), open(t, cfg)
	})
}

// TestMultipart writes blobs larger than a part: read back at the part
// boundary, refused when the ID is taken, and leaving no upload behind
// when they fail.
func TestMultipart(t *testing.T) {
	ctx := context.Background()
	e := startEndpoint(t)
	cfg := e.config("")
	cfg.PartSize = 5 << 20
	a, b := open(t, cfg), open(t, cfg)
	data := make([]byte, 11<<20+17)
	rand.Read(data)
	if n, err := a.Create(ctx, "big", bytes.NewReader(data)); err != nil || n != int64(len(data)) {
		t.Fatalf("create: %d, %v", n, err)
	}
	if _, err := b.Create(ctx, "big", bytes.NewReader(data[:6<<20])); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("second multipart create: %v, want ErrExists", err)
	}
	o, err := b.Open(ctx, "big")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	buf := make([]byte, 1000)
	for _, off := range []int64{0, 5<<20 - 500, 10<<20 - 1, int64(len(data)) - 1000} {
		if n, err := o.ReadAt(buf, off); n != len(buf) || (err != nil && err != io.EOF) || !bytes.Equal(buf, data[off:off+1000]) {
			t.Fatalf("ReadAt(%d): %d, %v", off, n, err)
		}
	}
	got, err := io.ReadAll(o)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read all: %d bytes, %v", len(got), err)
	}
	// At and around the part size, where one PutObject gives way to parts.
	for _, size := range []int{5 << 20, 5<<20 + 1, 10 << 20} {
		id := fmt.Sprintf("edge%d", size)
		if n, err := a.Create(ctx, id, bytes.NewReader(data[:size])); err != nil || n != int64(size) {
			t.Fatalf("create %s: %d, %v", id, n, err)
		}
		o, err := b.Open(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(o)
		o.Close()
		if err != nil || !bytes.Equal(got, data[:size]) {
			t.Fatalf("%s: read %d bytes, %v", id, len(got), err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	r := io.MultiReader(bytes.NewReader(data[:7<<20]), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, errors.New("client went away")
	}))
	if _, err := a.Create(cctx, "cut", r); err == nil {
		t.Fatal("create from a failing reader succeeded")
	}
	if _, err := a.Open(ctx, "cut"); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("open after a failed multipart create: %v", err)
	}
	ups, err := e.r.Client(t).ListMultipartUploads(ctx, &awss3.ListMultipartUploadsInput{Bucket: aws.String(e.bucket)})
	if err != nil || len(ups.Uploads) != 0 {
		t.Fatalf("uploads left: %v, %v", ups, err)
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// lostReply performs the first conditional PUT and then reports the
// connection reset, as a reply lost on the way does; the SDK sends it again.
type lostReply struct {
	next http.RoundTripper
	lost atomic.Bool
}

func (l *lostReply) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err == nil && req.Method == http.MethodPut && req.Header.Get("If-None-Match") == "*" && l.lost.CompareAndSwap(false, true) {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil, &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	}
	return resp, err
}

// TestRetriedCreate checks that a Create whose first request succeeded but
// whose reply was lost succeeds: the retry fails its condition on the
// Create's own blob.
func TestRetriedCreate(t *testing.T) {
	ctx := context.Background()
	e := startEndpoint(t)
	cfg := e.config("")
	lr := &lostReply{next: http.DefaultTransport}
	cfg.HTTPClient = &http.Client{Transport: lr}
	s := open(t, cfg)
	if _, err := s.Create(ctx, "retried", bytes.NewReader([]byte("written once"))); err != nil {
		t.Fatalf("create whose reply was lost: %v", err)
	}
	if !lr.lost.Load() {
		t.Fatal("no reply was lost")
	}
	o, err := s.Open(ctx, "retried")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if got, _ := io.ReadAll(o); string(got) != "written once" {
		t.Fatalf("blob holds %q", got)
	}
	// Another writer's blob under the ID is still ErrExists.
	if _, err := s.Create(ctx, "retried", bytes.NewReader([]byte("again"))); !errors.Is(err, blob.ErrExists) {
		t.Fatalf("create of a taken ID: %v", err)
	}
}
