package s3api_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// signed builds a request signed with the test root key. payloadHash is the
// x-amz-content-sha256 value; "" means the body's real SHA-256.
func signed(t *testing.T, method, url string, body []byte, payloadHash string, hdr map[string]string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if payloadHash == "" {
		payloadHash = fmt.Sprintf("%x", sha256.Sum256(body))
	}
	req.Header.Set("x-amz-content-sha256", payloadHash)
	creds := aws.Credentials{AccessKeyID: servertest.AccessKey, SecretAccessKey: servertest.SecretKey}
	if err := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }).SignHTTP(ctx, creds, req, payloadHash, "s3", "us-west-2", time.Now()); err != nil {
		t.Fatal(err)
	}
	return req
}

func do(t *testing.T, r *servertest.Region, req *http.Request) (int, string, http.Header) {
	t.Helper()
	resp, err := r.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("x-amz-request-id") == "" {
		t.Errorf("%s %s: no x-amz-request-id", req.Method, req.URL.Path)
	}
	return resp.StatusCode, string(b), resp.Header
}

func wantXMLError(t *testing.T, status int, body string, wantStatus int, code string) {
	t.Helper()
	if status != wantStatus || !strings.Contains(body, "<Code>"+code+"</Code>") || !strings.Contains(body, "<RequestId>") {
		t.Fatalf("got %d %s, want %d %s", status, body, wantStatus, code)
	}
}

func TestWireErrors(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "errs")
	u := r.URL() + "/errs"

	st, body, _ := do(t, r, signed(t, "PUT", u+"?versioning", []byte("<VersioningConfiguration><Status>Enabled"), "", nil))
	wantXMLError(t, st, body, 400, "MalformedXML")
	st, body, _ = do(t, r, signed(t, "PUT", u+"?versioning", []byte("<VersioningConfiguration><Status>Sometimes</Status></VersioningConfiguration>"), "", nil))
	wantXMLError(t, st, body, 400, "MalformedXML")
	st, body, _ = do(t, r, signed(t, "PUT", u+"/k", []byte("actual body"), fmt.Sprintf("%x", sha256.Sum256([]byte("other body"))), nil))
	wantXMLError(t, st, body, 400, "XAmzContentSHA256Mismatch")
	st, body, _ = do(t, r, signed(t, "GET", u+"?lifecycle", nil, "", nil))
	wantXMLError(t, st, body, 501, "NotImplemented")
	st, body, _ = do(t, r, signed(t, "GET", u+"/k?legal-hold", nil, "", nil))
	wantXMLError(t, st, body, 501, "NotImplemented")
	st, body, _ = do(t, r, signed(t, "PUT", u+"/k", []byte("x"), "", map[string]string{"x-amz-copy-source": "/errs/other"}))
	wantXMLError(t, st, body, 404, "NoSuchKey")
	st, body, _ = do(t, r, signed(t, "PUT", u+"/k", []byte("x"), "", map[string]string{"x-amz-checksum-crc32": "AAAAAA==", "x-amz-checksum-sha1": "AAAAAAAAAAAAAAAAAAAAAAAAAAA="}))
	wantXMLError(t, st, body, 400, "InvalidRequest")

	// A declared size over the single-PUT limit is refused before any byte
	// is read.
	status, b := rawRequest(t, r, signed(t, "PUT", u+"/huge", nil, "UNSIGNED-PAYLOAD", nil), 6<<30, []byte("only the start"))
	wantXMLError(t, status, b, 400, "EntityTooLarge")

	// Version listing, bucket deletion and key errors carry S3's names.
	st, body, _ = do(t, r, signed(t, "GET", r.URL()+"/nosuchbucket?versions", nil, "", nil))
	wantXMLError(t, st, body, 404, "NoSuchBucket")
	if !strings.Contains(body, "<BucketName>nosuchbucket</BucketName>") {
		t.Fatalf("NoSuchBucket without BucketName: %s", body)
	}
	st, body, _ = do(t, r, signed(t, "GET", u+"?max-keys=-1", nil, "", nil))
	wantXMLError(t, st, body, 400, "InvalidArgument")
	st, body, _ = do(t, r, signed(t, "GET", u+"?encoding-type=base64", nil, "", nil))
	wantXMLError(t, st, body, 400, "InvalidArgument")
}

// TestTruncatedUploadLeavesNoTrace cuts a PUT off mid-body: no object, no
// blob, no change record may remain.
func TestTruncatedUploadLeavesNoTrace(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "trunc")
	before, _ := r.Store.FeedStats(ctx)

	for _, size := range []int{10 << 10, 1 << 20} { // inline and blob paths
		req := signed(t, "PUT", r.URL()+"/trunc/partial", nil, "UNSIGNED-PAYLOAD", nil)
		req.ContentLength = int64(size)
		conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		// Write the headers and half the body, then hang up.
		var head bytes.Buffer
		fmt.Fprintf(&head, "PUT /trunc/partial HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.Host, size)
		for k, vs := range req.Header {
			fmt.Fprintf(&head, "%s: %s\r\n", k, vs[0])
		}
		head.WriteString("\r\n")
		head.Write(make([]byte, size/2))
		if _, err := conn.Write(head.Bytes()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
		conn.Close()
	}
	// The short Content-Length case: the server answers IncompleteBody.
	time.Sleep(200 * time.Millisecond)
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("trunc"), Key: aws.String("partial")})
	wantCode(t, err, "NotFound", 404)
	after, _ := r.Store.FeedStats(ctx)
	if after.Last != before.Last {
		t.Fatalf("change feed grew from %d to %d", before.Last, after.Last)
	}
	n := 0
	_ = filepath.WalkDir(filepath.Join(r.Dir, "blobs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	if n != 0 {
		t.Fatalf("%d blob files left by truncated uploads", n)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "metered")
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("metered"), Key: aws.String("k"), Body: strings.NewReader("12345")}))
	_, _ = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("metered"), Key: aws.String("missing")})
	resp := r.Metrics(t)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`bulwark_s3_requests_total{operation="PutObject",status="200"} 1`,
		`bulwark_s3_requests_total{operation="GetObject",status="404"} 1`,
		`bulwark_s3_request_duration_seconds_count{operation="CreateBucket"} 1`,
		`bulwark_objectstore_feed_records 1`,
		`bulwark_s3_received_bytes_total`,
		`bulwark_s3_sent_bytes_total`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// TestVirtualHostedStyle addresses the bucket by host name, as SDKs do by
// default.
func TestVirtualHostedStyle(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(r.URL(), "http://"))
	tr := http.DefaultTransport.(*http.Transport).Clone()
	dialer := &net.Dialer{}
	tr.DialContext = func(ctx2 context.Context, network, addr string) (net.Conn, error) {
		return dialer.DialContext(ctx2, network, "127.0.0.1:"+port) // *.localhost is loopback
	}
	c := servertest.NewClient("http://localhost:"+port, "us-west-2", servertest.AccessKey, servertest.SecretKey, &http.Client{Transport: tr}, func(o *s3.Options) {
		o.UsePathStyle = false
	})
	createBucket(t, c, "vhost")
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("vhost"), Key: aws.String("dir/a b.txt"), Body: strings.NewReader("virtual")}))
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("vhost"), Key: aws.String("dir/a b.txt")}); got != "virtual" {
		t.Fatalf("got %q", got)
	}
	// The same object by path style.
	if got, _ := getBody(t, r.Client(t), &s3.GetObjectInput{Bucket: aws.String("vhost"), Key: aws.String("dir/a b.txt")}); got != "virtual" {
		t.Fatalf("path style got %q", got)
	}
}

// TestIncompleteBody sends fewer bytes than Content-Length and half-closes
// the connection: the answer is IncompleteBody and nothing is stored.
func TestIncompleteBody(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "short")
	status, b := rawRequest(t, r, signed(t, "PUT", r.URL()+"/short/k", nil, "UNSIGNED-PAYLOAD", nil), 100, []byte(strings.Repeat("x", 50)))
	wantXMLError(t, status, b, 400, "IncompleteBody")
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("short"), Key: aws.String("k")})
	wantCode(t, err, "NotFound", 404)
}

// rawRequest writes req's headers with the given Content-Length and then
// body (which may be shorter), half-closes the connection, and reads the
// answer: what a client that stops sending looks like to the server.
func rawRequest(t *testing.T, r *servertest.Region, req *http.Request, contentLength int64, body []byte) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(r.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n", req.Method, req.URL.RequestURI(), req.Host, contentLength)
	for k, vs := range req.Header {
		fmt.Fprintf(&msg, "%s: %s\r\n", k, vs[0])
	}
	msg.WriteString("\r\n")
	msg.Write(body)
	if _, err := conn.Write(msg.Bytes()); err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestAccountsAreSeparate: bucket names are shared by everyone, but another
// account's buckets are neither listed, creatable, readable nor writable.
func TestAccountsAreSeparate(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	other := servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, r.HTTPClient(t))
	createBucket(t, c, "taken")
	_, err := other.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("taken")})
	wantCode(t, err, "BucketAlreadyExists", 409)
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("taken"), Key: aws.String("private"), Body: strings.NewReader("mine")}))
	// Without a policy granting it, another account gets nothing.
	_, err = other.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("taken"), Key: aws.String("private")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("taken"), Key: aws.String("intruder"), Body: strings.NewReader("x")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("taken")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("taken")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("taken"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("taken")})
	wantCode(t, err, "Forbidden", 403)
	lb := must[*s3.ListBucketsOutput](t)(other.ListBuckets(ctx, &s3.ListBucketsInput{}))
	if len(lb.Buckets) != 0 || aws.ToString(lb.Owner.ID) != servertest.OtherAccountID {
		t.Fatalf("other account lists %d buckets, owner %q", len(lb.Buckets), aws.ToString(lb.Owner.ID))
	}
}

// TestHostileKeys: keys S3 cannot store are refused and leave nothing.
func TestHostileKeys(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "hostile")
	st, body, _ := do(t, r, signed(t, "PUT", r.URL()+"/hostile/bad%FFkey", []byte("x"), "", nil))
	wantXMLError(t, st, body, 400, "InvalidArgument")
	st, body, _ = do(t, r, signed(t, "PUT", r.URL()+"/hostile/"+strings.Repeat("k", 1025), []byte("x"), "", nil))
	wantXMLError(t, st, body, 400, "KeyTooLongError")
	// A 1,024-byte key of multi-byte characters is fine.
	key := strings.Repeat("é", 512)
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("hostile"), Key: aws.String(key), Body: strings.NewReader("ok")}))
	lo := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("hostile")}))
	if len(lo.Contents) != 1 || aws.ToString(lo.Contents[0].Key) != key {
		t.Fatalf("listing after hostile puts: %d objects", len(lo.Contents))
	}
}

// TestOversizeHeaders: a PUT whose headers exceed S3's 8 KB gets S3's error
// and stores nothing.
func TestOversizeHeaders(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "hdrs")
	hdr := map[string]string{}
	for i := 0; i < 10; i++ {
		hdr[fmt.Sprintf("x-amz-meta-h%d", i)] = strings.Repeat("v", 1000)
	}
	st, body, _ := do(t, r, signed(t, "PUT", r.URL()+"/hdrs/k", []byte("x"), "", hdr))
	wantXMLError(t, st, body, 400, "RequestHeaderSectionTooLarge")
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("hdrs"), Key: aws.String("k")})
	wantCode(t, err, "NotFound", 404)
}
