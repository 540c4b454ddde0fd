package server_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

// apiError returns the S3 error code, message and HTTP status of err.
func apiError(err error) (code, msg string, status int) {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, msg = ae.ErrorCode(), ae.ErrorMessage()
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, msg, status
}

func wantError(t *testing.T, err error, code string, status int) {
	t.Helper()
	if c, _, s := apiError(err); c != code || s != status {
		t.Fatalf("got %q/%d (%v), want %s/%d", c, s, err, code, status)
	}
}

func createIn(t *testing.T, c *s3.Client, bucket, region string) {
	t.Helper()
	_, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{
		Bucket:                    aws.String(bucket),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)},
	})
	if err != nil {
		t.Fatalf("create %s in %s: %v", bucket, region, err)
	}
}

func put(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	_, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func get(t *testing.T, c *s3.Client, bucket, key string) string {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s/%s: %v", bucket, key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func keys(t *testing.T, c *s3.Client, bucket string) []string {
	t.Helper()
	out, err := c.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatalf("list %s: %v", bucket, err)
	}
	var ks []string
	for _, o := range out.Contents {
		ks = append(ks, *o.Key)
	}
	return ks
}

// TestBucketInAnotherRegion creates a bucket in us-east-1 through
// us-west-2's endpoint and uses it through both endpoints.
func TestBucketInAnotherRegion(t *testing.T) {
	ctx := context.Background()
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	wc, ec := west.Client(t), east.Client(t)

	createIn(t, wc, "east-bucket", "us-east-1")
	if b, err := east.Store.Bucket(ctx, "east-bucket"); err != nil || b.Region != "us-east-1" || b.Owner != servertest.AccountID {
		t.Fatalf("us-east-1's store: %+v, %v", b, err)
	}
	if _, err := west.Store.Bucket(ctx, "east-bucket"); !errors.Is(err, objectstore.ErrNoSuchBucket) {
		t.Fatalf("us-west-2's store has the bucket too: %v", err)
	}
	createIn(t, ec, "west-bucket", "us-west-2")
	if _, err := west.Store.Bucket(ctx, "west-bucket"); err != nil {
		t.Fatalf("us-west-2's store: %v", err)
	}

	for name, c := range map[string]*s3.Client{"us-west-2": wc, "us-east-1": ec} {
		// S3 reports us-east-1 as an empty constraint.
		for bucket, want := range map[string]string{"east-bucket": "", "west-bucket": "us-west-2"} {
			loc, err := c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)})
			if err != nil || string(loc.LocationConstraint) != want {
				t.Fatalf("GetBucketLocation %s via %s: %q, %v; want %q", bucket, name, loc.LocationConstraint, err, want)
			}
		}
		head, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("east-bucket")})
		if err != nil || aws.ToString(head.BucketRegion) != "us-east-1" {
			t.Fatalf("HeadBucket via %s: %v", name, err)
		}
	}

	// Objects, through either endpoint.
	put(t, wc, "east-bucket", "a/one.txt", "one")
	put(t, ec, "east-bucket", "a/two.txt", "two")
	put(t, wc, "east-bucket", "odd key+with spaces&ünïcode", "odd")
	for _, c := range []*s3.Client{wc, ec} {
		if got := get(t, c, "east-bucket", "a/one.txt"); got != "one" {
			t.Fatalf("get: %q", got)
		}
		if got := get(t, c, "east-bucket", "odd key+with spaces&ünïcode"); got != "odd" {
			t.Fatalf("get odd key: %q", got)
		}
		if ks := keys(t, c, "east-bucket"); !slices.Equal(ks, []string{"a/one.txt", "a/two.txt", "odd key+with spaces&ünïcode"}) {
			t.Fatalf("list: %v", ks)
		}
	}
	if _, err := wc.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("a/two.txt")}); err != nil {
		t.Fatal(err)
	}
	_, err := ec.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("a/two.txt")})
	wantError(t, err, "NoSuchKey", 404)
	_, err = wc.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("a/two.txt")})
	wantError(t, err, "NotFound", 404)

	t.Run("multipart", func(t *testing.T) {
		part1 := bytes.Repeat([]byte("m"), 5<<20)
		part2 := []byte("tail")
		up, err := wc.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("east-bucket"), Key: aws.String("big")})
		if err != nil {
			t.Fatal(err)
		}
		var parts []types.CompletedPart
		for i, data := range [][]byte{part1, part2} {
			n := int32(i + 1)
			out, err := wc.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("east-bucket"), Key: aws.String("big"), UploadId: up.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(data)})
			if err != nil {
				t.Fatal(err)
			}
			parts = append(parts, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
		}
		if _, err := wc.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("east-bucket"), Key: aws.String("big"), UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}); err != nil {
			t.Fatal(err)
		}
		if got := get(t, ec, "east-bucket", "big"); got != string(part1)+string(part2) {
			t.Fatalf("multipart object of %d bytes", len(got))
		}
		// The SDK sent the 5 MiB part with Expect: 100-continue; us-west-2
		// answered it once, not relaying us-east-1's as a response.
		families, err := west.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range families {
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "status" && l.GetValue() == "100" {
						t.Fatalf("%s counted a 100 Continue as a response", f.GetName())
					}
				}
			}
		}
	})

	t.Run("presigned", func(t *testing.T) {
		ps, err := s3.NewPresignClient(wc).PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("a/one.txt")})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ps.URL, west.URL()) {
			t.Fatalf("presigned for %s", ps.URL)
		}
		resp, err := http.Get(ps.URL)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "one" {
			t.Fatalf("presigned GET via the other region: %s %s", resp.Status, body)
		}
	})

	t.Run("virtual-hosted", func(t *testing.T) {
		// "east-bucket.localhost:port" names the bucket; dial us-west-2.
		addr := strings.TrimPrefix(west.URL(), "http://")
		_, port, _ := net.SplitHostPort(addr)
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}
		vc := servertest.NewClient("http://localhost:"+port, "us-west-2", servertest.AccessKey, servertest.SecretKey,
			&http.Client{Transport: tr}, func(o *s3.Options) { o.UsePathStyle = false })
		put(t, vc, "east-bucket", "vhost", "virtual")
		if got := get(t, vc, "east-bucket", "vhost"); got != "virtual" {
			t.Fatalf("virtual-hosted get: %q", got)
		}
		if got := get(t, ec, "east-bucket", "vhost"); got != "virtual" {
			t.Fatalf("path-style get of a virtual-hosted put: %q", got)
		}
	})

	t.Run("names are global", func(t *testing.T) {
		for _, tc := range []struct {
			c      *s3.Client
			region string
		}{{ec, "us-west-2"}, {wc, "us-west-2"}, {wc, ""}, {ec, "us-east-1"}} {
			if tc.c == ec && tc.region == "us-east-1" {
				// The home region answers for its own bucket: us-east-1
				// tells its owner the create succeeded, as S3 does.
				createIn(t, tc.c, "east-bucket", tc.region)
				continue
			}
			in := &s3.CreateBucketInput{Bucket: aws.String("east-bucket")}
			if tc.region != "" {
				in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(tc.region)}
			}
			_, err := tc.c.CreateBucket(ctx, in)
			wantError(t, err, "BucketAlreadyExists", 409)
		}
		// In its own region, the owner hears it already owns it.
		_, err := ec.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("west-bucket"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}})
		wantError(t, err, "BucketAlreadyOwnedByYou", 409)
		// A region outside the topology is refused as before.
		_, err = wc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("nowhere-bucket"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "ap-south-1"}})
		wantError(t, err, "IllegalLocationConstraintException", 400)
	})

	t.Run("list buckets", func(t *testing.T) {
		for name, c := range map[string]*s3.Client{"us-west-2": wc, "us-east-1": ec} {
			out, err := c.ListBuckets(ctx, &s3.ListBucketsInput{})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, b := range out.Buckets {
				got = append(got, *b.Name+"@"+aws.ToString(b.BucketRegion))
			}
			if !slices.Equal(got, []string{"east-bucket@us-east-1", "west-bucket@us-west-2"}) || aws.ToString(out.Owner.ID) != servertest.AccountID {
				t.Fatalf("ListBuckets via %s: %v, owner %v", name, got, aws.ToString(out.Owner.ID))
			}
			// Pages across regions.
			p1, err := c.ListBuckets(ctx, &s3.ListBucketsInput{MaxBuckets: aws.Int32(1)})
			if err != nil || len(p1.Buckets) != 1 || *p1.Buckets[0].Name != "east-bucket" || aws.ToString(p1.ContinuationToken) == "" {
				t.Fatalf("first page via %s: %+v, %v", name, p1, err)
			}
			p2, err := c.ListBuckets(ctx, &s3.ListBucketsInput{MaxBuckets: aws.Int32(1), ContinuationToken: p1.ContinuationToken})
			if err != nil || len(p2.Buckets) != 1 || *p2.Buckets[0].Name != "west-bucket" {
				t.Fatalf("second page via %s: %+v, %v", name, p2, err)
			}
		}
		other := servertest.NewClient(west.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, nil)
		out, err := other.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err != nil || len(out.Buckets) != 0 {
			t.Fatalf("another account sees %+v, %v", out, err)
		}
	})

	t.Run("authentication still applies", func(t *testing.T) {
		other := servertest.NewClient(west.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, nil)
		_, err := other.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("a/one.txt")})
		wantError(t, err, "AccessDenied", 403)
		_, err = other.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("intruder"), Body: strings.NewReader("x")})
		wantError(t, err, "AccessDenied", 403)
		forged := servertest.NewClient(west.URL(), "us-west-2", servertest.AccessKey, "not-the-secret", nil)
		_, err = forged.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("east-bucket"), Key: aws.String("a/one.txt")})
		wantError(t, err, "SignatureDoesNotMatch", 403)
		// An unsigned request is refused too, by the home region.
		resp, err := http.Get(west.URL() + "/east-bucket/a/one.txt")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("anonymous GET: %s", resp.Status)
		}
		// And a forged create cannot learn that a name is taken.
		_, err = forged.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("east-bucket")})
		wantError(t, err, "SignatureDoesNotMatch", 403)
	})

	t.Run("delete", func(t *testing.T) {
		createIn(t, wc, "short-lived", "us-east-1")
		if _, err := wc.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("short-lived")}); err != nil {
			t.Fatal(err)
		}
		if _, err := east.Store.Bucket(ctx, "short-lived"); !errors.Is(err, objectstore.ErrNoSuchBucket) {
			t.Fatalf("deleted bucket still in us-east-1: %v", err)
		}
		_, err := wc.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("short-lived")})
		wantError(t, err, "NotFound", 404)
		// The name is free again, in either region.
		createIn(t, ec, "short-lived", "us-west-2")
	})
}

// TestStaleHomeIsForgotten deletes a bucket behind a region's back: the
// region still remembers the old home, forwards there once, hears
// NoSuchBucket and forgets it.
func TestStaleHomeIsForgotten(t *testing.T) {
	ctx := context.Background()
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	wc, ec := west.Client(t), east.Client(t)
	createIn(t, ec, "moving", "us-east-1")
	if home, err := west.LocateBucket(ctx, "moving"); err != nil || home != "us-east-1" {
		t.Fatalf("locate: %q, %v", home, err)
	}
	if err := east.Store.DeleteBucket(ctx, "moving"); err != nil {
		t.Fatal(err)
	}
	if home, err := west.LocateBucket(ctx, "moving"); err != nil || home != "us-east-1" {
		t.Fatalf("locate before any forward: %q, %v (want the remembered home)", home, err)
	}
	_, err := wc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("moving"), Key: aws.String("k")})
	wantError(t, err, "NoSuchBucket", 404)
	if home, err := west.LocateBucket(ctx, "moving"); !errors.Is(err, objectstore.ErrNoSuchBucket) {
		t.Fatalf("locate after NoSuchBucket: %q, %v", home, err)
	}
	// A create does not trust a remembered home either.
	createIn(t, ec, "moving", "us-east-1")
	if home, err := west.LocateBucket(ctx, "moving"); err != nil || home != "us-east-1" {
		t.Fatal(home, err)
	}
	if err := east.Store.DeleteBucket(ctx, "moving"); err != nil {
		t.Fatal(err)
	}
	createIn(t, wc, "moving", "us-west-2")
	if b, err := west.Store.Bucket(ctx, "moving"); err != nil || b.Region != "us-west-2" {
		t.Fatalf("recreated in us-west-2: %+v, %v", b, err)
	}

	// Concurrent lookups share the memory safely.
	createIn(t, wc, "shared", "us-east-1")
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			if home, err := west.LocateBucket(ctx, "shared"); err != nil || home != "us-east-1" {
				t.Errorf("locate: %q, %v", home, err)
			}
			if _, err := west.LocateBucket(ctx, "absent"); !errors.Is(err, objectstore.ErrNoSuchBucket) {
				t.Errorf("locate absent: %v", err)
			}
		})
	}
	wg.Wait()
}

// TestHomeRegionDown closes us-east-1: requests for its buckets through
// us-west-2 fail quickly with a 503 naming it; us-west-2's own buckets keep
// working.
func TestHomeRegionDown(t *testing.T) {
	ctx := context.Background()
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	wc := west.Client(t)
	createIn(t, wc, "east-data", "us-east-1")
	put(t, wc, "east-data", "k", "v")
	createIn(t, wc, "east-empty", "us-east-1") // remembered from its creation alone
	createIn(t, wc, "west-data", "us-west-2")
	put(t, wc, "west-data", "k", "v")

	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := east.Close(cctx); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	_, err := wc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("east-data"), Key: aws.String("k")})
	code, msg, status := apiError(err)
	if code != "ServiceUnavailable" || status != 503 || !strings.Contains(msg, `bucket "east-data" is served by region us-east-1, which did not answer`) {
		t.Fatalf("GET with the home region down: %q/%d %q (%v)", code, status, msg, err)
	}
	if d := time.Since(start); d > 2*topology.DialTimeout {
		t.Fatalf("took %v to report the region down", d)
	}
	_, err = wc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("east-empty"), Key: aws.String("k2"), Body: strings.NewReader("body")})
	if code, msg, _ := apiError(err); code != "ServiceUnavailable" || !strings.Contains(msg, "served by region us-east-1") {
		t.Fatalf("PUT with the home region down: %q %q", code, msg)
	}
	// HEAD has no body; the header names the region.
	req, _ := http.NewRequest(http.MethodHead, west.URL()+"/east-data", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("x-amz-bucket-region") != "us-east-1" {
		t.Fatalf("HEAD: %s, region %q", resp.Status, resp.Header.Get("x-amz-bucket-region"))
	}

	// A bucket no live region has might be in the dead one.
	_, err = wc.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("unknown-bucket"), Key: aws.String("k")})
	if code, msg, _ := apiError(err); code != "ServiceUnavailable" || !strings.Contains(msg, "us-east-1") {
		t.Fatalf("unknown bucket with a region down: %q %q", code, msg)
	}
	if _, err := west.LocateBucket(ctx, "unknown-bucket"); !errors.Is(err, topology.ErrRegionUnreachable) {
		t.Fatalf("locate: %v", err)
	}

	// us-west-2's own buckets are unaffected.
	if got := get(t, wc, "west-data", "k"); got != "v" {
		t.Fatalf("local get: %q", got)
	}
	put(t, wc, "west-data", "k2", "v2")
	out, err := wc.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(out.Buckets) != 1 || *out.Buckets[0].Name != "west-data" {
		t.Fatalf("ListBuckets with a region down: %+v, %v", out, err)
	}
	createIn(t, wc, "made-while-east-was-down", "us-west-2")
	_, err = wc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("not-now"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-east-1"}})
	wantError(t, err, "ServiceUnavailable", 503)
}

// TestOneRegionUnchanged checks that a region alone neither forwards nor
// asks anyone.
func TestOneRegionUnchanged(t *testing.T) {
	ctx := context.Background()
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("missing"), Key: aws.String("k")})
	wantError(t, err, "NoSuchBucket", 404)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("elsewhere"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-east-1"}})
	wantError(t, err, "IllegalLocationConstraintException", 400)
	if _, err := r.LocateBucket(ctx, "missing"); !errors.Is(err, objectstore.ErrNoSuchBucket) {
		t.Fatal(err)
	}
}

// TestPeerAPI calls GET /_bulwark/v1/buckets/{name} as a peer does.
func TestPeerAPI(t *testing.T) {
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	createIn(t, rs[0].Client(t), "peer-bucket", "us-east-1")
	topo, _ := topology.New(topology.Region{Name: "us-east-1", Endpoint: rs[1].URL()}, topology.Region{Name: "us-west-2", Endpoint: rs[0].URL()})
	c := topology.NewClient(topo, servertest.AccessKey, servertest.SecretKey, topology.NewTransport(nil))
	for region, want := range map[string]int{"us-east-1": 200, "us-west-2": 404} {
		resp, err := c.Do(context.Background(), region, http.MethodGet, "/_bulwark/v1/buckets/"+url.PathEscape("peer-bucket"), nil)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %s %s", region, resp.Status, body)
		}
		if want == 200 && !strings.Contains(string(body), `"region": "us-east-1"`) || !strings.Contains(string(body), servertest.AccountID) && want == 200 {
			t.Fatalf("%s: %s", region, body)
		}
	}
	// Only the regions, which sign with the admin account's root key: not
	// a bad signature, not another account.
	for name, c := range map[string]*topology.Client{
		"badly signed":    topology.NewClient(topo, servertest.AccessKey, "wrong", topology.NewTransport(nil)),
		"another account": topology.NewClient(topo, servertest.OtherAccessKey, servertest.OtherSecretKey, topology.NewTransport(nil)),
	} {
		resp, err := c.Do(context.Background(), "us-east-1", http.MethodGet, "/_bulwark/v1/buckets/peer-bucket", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("%s peer call: %s", name, resp.Status)
		}
	}
}

// TestForwardToAHungRegion forwards to a region whose process hangs: it
// takes connections and requests and answers nothing. The client gets the
// 503 naming the region once forwardAnswerTimeout passes, not never.
func TestForwardToAHungRegion(t *testing.T) {
	defer server.SetForwardAnswerTimeout(2 * time.Second)()
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	createIn(t, west.Client(t), "far-bucket", "us-east-1")
	c := west.Client(t, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	if _, err := c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("far-bucket")}); err != nil {
		t.Fatal(err) // the home is known now
	}
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hung.Close()
	go func() {
		for {
			conn, err := hung.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			go io.Copy(io.Discard, conn) // takes the request, answers nothing
		}
	}()
	topo := server.TopologyOf(east.Region)
	topo.SetEndpoint("us-east-1", "http://"+hung.Addr().String())
	start := time.Now()
	_, err = c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("far-bucket"), Key: aws.String("k")})
	took := time.Since(start)
	if code, status := servertest.APICode(err); code != "ServiceUnavailable" || status != 503 || !strings.Contains(err.Error(), "us-east-1") {
		t.Fatalf("GET through a hung region: %v", err)
	}
	if took > time.Minute {
		t.Fatalf("took %v", took)
	}
	t.Logf("refused after %v", took.Round(time.Millisecond))
}
