package s3api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

var ctx = context.Background()

// apiCode returns the error code of err and its HTTP status.
func apiCode(err error) (string, int) { return servertest.APICode(err) }

func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	servertest.WantCode(t, err, code, status)
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func createBucket(t *testing.T, c *s3.Client, name string) {
	t.Helper()
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
	if err != nil {
		t.Fatal(err)
	}
}

func getBody(t *testing.T, c *s3.Client, in *s3.GetObjectInput) (string, *s3.GetObjectOutput) {
	t.Helper()
	out, err := c.GetObject(ctx, in)
	if err != nil {
		t.Fatalf("get %s: %v", aws.ToString(in.Key), err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), out
}

// TestBothTransports runs the object round trip over HTTP and over HTTPS,
// where the SDK switches to aws-chunked bodies with a trailing CRC32.
func TestBothTransports(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			r := servertest.Start(t, servertest.Options{TLS: tlsOn})
			c := r.Client(t)
			createBucket(t, c, "transport")
			for _, size := range []int{0, 1, 1000, 70 << 10, 3<<20 + 17} {
				data := bytes.Repeat([]byte{byte(size)}, size)
				out := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String("transport"), Key: aws.String(fmt.Sprintf("obj-%d", size)), Body: bytes.NewReader(data),
				}))
				if out.ChecksumCRC32 == nil {
					t.Errorf("size %d: no CRC32 echoed (SDK default checksum)", size)
				}
				got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("transport"), Key: aws.String(fmt.Sprintf("obj-%d", size)), ChecksumMode: types.ChecksumModeEnabled})
				if got != string(data) {
					t.Fatalf("size %d: content differs", size)
				}
			}
			// Every algorithm, computed by the SDK and verified by the server.
			for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmCrc32c, types.ChecksumAlgorithmSha1, types.ChecksumAlgorithmSha256, types.ChecksumAlgorithmCrc64nvme} {
				_, err := c.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String("transport"), Key: aws.String("alg-" + string(alg)),
					Body: strings.NewReader("checksummed"), ChecksumAlgorithm: alg,
				})
				if err != nil {
					t.Fatalf("%s: %v", alg, err)
				}
				h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("transport"), Key: aws.String("alg-" + string(alg)), ChecksumMode: types.ChecksumModeEnabled}))
				if h.ChecksumCRC32 == nil && h.ChecksumCRC32C == nil && h.ChecksumSHA1 == nil && h.ChecksumSHA256 == nil && h.ChecksumCRC64NVME == nil {
					t.Fatalf("%s: checksum not returned", alg)
				}
			}
		})
	}
}

func TestUnsignedPayloadAndWrongChecksum(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "payloads")
	unsigned := r.Client(t, func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	})
	must[*s3.PutObjectOutput](t)(unsigned.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("payloads"), Key: aws.String("u"), Body: strings.NewReader("unsigned body")}))
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("payloads"), Key: aws.String("u")}); got != "unsigned body" {
		t.Fatalf("got %q", got)
	}
	// A checksum header that does not match the body: BadDigest, nothing stored.
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("payloads"), Key: aws.String("bad"), Body: strings.NewReader("data"), ChecksumCRC32: aws.String("AAAAAA==")})
	wantCode(t, err, "BadDigest", 400)
	_, err = c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("payloads"), Key: aws.String("bad")})
	wantCode(t, err, "NotFound", 404)
	// A wrong Content-MD5.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("payloads"), Key: aws.String("bad"), Body: strings.NewReader("data"), ContentMD5: aws.String("1B2M2Y8AsgTpgAmY7PhCfg==")})
	wantCode(t, err, "BadDigest", 400)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("payloads"), Key: aws.String("bad"), Body: strings.NewReader("data"), ContentMD5: aws.String("not-base64")})
	wantCode(t, err, "InvalidDigest", 400)
}

func TestBuckets(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "alpha")
	_, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("alpha"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintUsWest2}})
	wantCode(t, err, "BucketAlreadyOwnedByYou", 409)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("Bad_Name")})
	wantCode(t, err, "InvalidBucketName", 400)
	_, err = c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("elsewhere"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraintEuWest1}})
	wantCode(t, err, "IllegalLocationConstraintException", 400)
	// No constraint: the endpoint's own region.
	must[*s3.CreateBucketOutput](t)(c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("beta")}))
	loc := must[*s3.GetBucketLocationOutput](t)(c.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("beta")}))
	if loc.LocationConstraint != types.BucketLocationConstraintUsWest2 {
		t.Fatalf("location %q", loc.LocationConstraint)
	}
	hb := must[*s3.HeadBucketOutput](t)(c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("beta")}))
	if aws.ToString(hb.BucketRegion) != "us-west-2" {
		t.Fatalf("head bucket region %q", aws.ToString(hb.BucketRegion))
	}
	_, err = c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("missing")})
	wantCode(t, err, "NotFound", 404)
	lb := must[*s3.ListBucketsOutput](t)(c.ListBuckets(ctx, &s3.ListBucketsInput{}))
	if len(lb.Buckets) != 2 || aws.ToString(lb.Buckets[0].Name) != "alpha" || aws.ToString(lb.Owner.ID) != servertest.AccountID {
		t.Fatalf("list buckets %+v", lb.Buckets)
	}
	// Versioning and DeleteBucket only when no version is left.
	vs := must[*s3.GetBucketVersioningOutput](t)(c.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: aws.String("alpha")}))
	if vs.Status != "" {
		t.Fatalf("new bucket versioning %q", vs.Status)
	}
	_, err = c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("alpha"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled, MFADelete: types.MFADeleteEnabled}})
	wantCode(t, err, "InvalidArgument", 400)
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("alpha"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	put := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("alpha"), Key: aws.String("k"), Body: strings.NewReader("x")}))
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("alpha"), Key: aws.String("k")}))
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("alpha")})
	wantCode(t, err, "BucketNotEmpty", 409)
	lv := must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("alpha")}))
	for _, dm := range lv.DeleteMarkers {
		must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("alpha"), Key: dm.Key, VersionId: dm.VersionId}))
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("alpha")})
	wantCode(t, err, "BucketNotEmpty", 409)
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("alpha"), Key: aws.String("k"), VersionId: put.VersionId}))
	must[*s3.DeleteBucketOutput](t)(c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("alpha")}))
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String("alpha")})
	wantCode(t, err, "NoSuchBucket", 404)
}

func TestVersioningSemantics(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "ver")
	b, k := aws.String("ver"), aws.String("doc.txt")
	p0 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v0-null")}))
	if p0.VersionId != nil {
		t.Fatalf("unversioned put returned version %q", *p0.VersionId)
	}
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	p1 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v1"), Metadata: map[string]string{"color": "blue"}, ContentType: aws.String("text/plain")}))
	p2 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v2")}))
	if aws.ToString(p1.VersionId) == "" || aws.ToString(p1.VersionId) == aws.ToString(p2.VersionId) {
		t.Fatalf("version ids %v %v", p1.VersionId, p2.VersionId)
	}
	got, out := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: p1.VersionId})
	if got != "v1" || out.Metadata["color"] != "blue" || aws.ToString(out.ContentType) != "text/plain" {
		t.Fatalf("old version: %q %v %v", got, out.Metadata, aws.ToString(out.ContentType))
	}
	if got, out := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: aws.String("null")}); got != "v0-null" || aws.ToString(out.VersionId) != "null" {
		t.Fatalf("null version: %q %q", got, aws.ToString(out.VersionId))
	}
	del := must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}))
	if !aws.ToBool(del.DeleteMarker) || aws.ToString(del.VersionId) == "" {
		t.Fatalf("delete: marker=%v version=%v", aws.ToBool(del.DeleteMarker), aws.ToString(del.VersionId))
	}
	// GET of a key whose latest version is a delete marker: 404 with headers.
	resp := rawGet(t, r, c, "ver", "doc.txt", "")
	if resp.StatusCode != 404 || resp.Header.Get("x-amz-delete-marker") != "true" || resp.Header.Get("x-amz-version-id") != aws.ToString(del.VersionId) {
		t.Fatalf("get after delete: %d %v", resp.StatusCode, resp.Header)
	}
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
	wantCode(t, err, "NoSuchKey", 404)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: del.VersionId})
	wantCode(t, err, "MethodNotAllowed", 405)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: aws.String("0036000000000000000000000A")})
	wantCode(t, err, "NoSuchVersion", 404)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: aws.String("bogus")})
	wantCode(t, err, "InvalidArgument", 400)
	// Removing the marker by version ID brings v2 back.
	d2 := must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k, VersionId: del.VersionId}))
	if !aws.ToBool(d2.DeleteMarker) || aws.ToString(d2.VersionId) != aws.ToString(del.VersionId) {
		t.Fatalf("delete marker removal headers: %v %v", d2.DeleteMarker, d2.VersionId)
	}
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k}); got != "v2" {
		t.Fatalf("after removing marker: %q", got)
	}
	// Suspended: writes replace the null version, versioned ones stay.
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}))
	p3 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v3-suspended")}))
	if aws.ToString(p3.VersionId) != "null" {
		t.Fatalf("suspended put version %q", aws.ToString(p3.VersionId))
	}
	lv := must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b}))
	var ids []string
	for _, v := range lv.Versions {
		ids = append(ids, aws.ToString(v.VersionId))
	}
	want := []string{"null", aws.ToString(p2.VersionId), aws.ToString(p1.VersionId)}
	if fmt.Sprint(ids) != fmt.Sprint(want) || !aws.ToBool(lv.Versions[0].IsLatest) || len(lv.DeleteMarkers) != 0 {
		t.Fatalf("versions %v, want %v", ids, want)
	}
	sd := must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}))
	if aws.ToString(sd.VersionId) != "null" || !aws.ToBool(sd.DeleteMarker) {
		t.Fatalf("suspended delete: %v %v", sd.VersionId, sd.DeleteMarker)
	}
	lv = must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b}))
	if len(lv.Versions) != 2 || len(lv.DeleteMarkers) != 1 || aws.ToString(lv.DeleteMarkers[0].VersionId) != "null" {
		t.Fatalf("after suspended delete: %d versions %d markers", len(lv.Versions), len(lv.DeleteMarkers))
	}
	// Enabled again: new versions get IDs, the null delete marker stays in
	// history under them.
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	p4 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v4")}))
	if v := aws.ToString(p4.VersionId); v == "" || v == "null" {
		t.Fatalf("re-enabled put version %q", v)
	}
	lv = must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b}))
	if len(lv.Versions) != 3 || len(lv.DeleteMarkers) != 1 || aws.ToBool(lv.DeleteMarkers[0].IsLatest) || !aws.ToBool(lv.Versions[0].IsLatest) {
		t.Fatalf("after re-enabling: %d versions %d markers", len(lv.Versions), len(lv.DeleteMarkers))
	}
}

// rawGet sends a presigned GET with a plain HTTP client, to see raw headers.
func rawGet(t *testing.T, r *servertest.Region, c *s3.Client, bucket, key, versionID string) *http.Response {
	t.Helper()
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)}
	if versionID != "" {
		in.VersionId = aws.String(versionID)
	}
	ps := must[*v4.PresignedHTTPRequest](t)(s3.NewPresignClient(c).PresignGetObject(ctx, in))
	resp, err := r.HTTPClient(t).Get(ps.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestGetObjectFeatures(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "feat")
	b, k := aws.String("feat"), aws.String("dir/file.bin")
	data := []byte("0123456789abcdefghij")
	put := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: b, Key: k, Body: bytes.NewReader(data),
		ContentType: aws.String("application/x-test"), ContentEncoding: aws.String("identity"),
		ContentDisposition: aws.String(`attachment; filename="f.bin"`), CacheControl: aws.String("max-age=60"),
		ContentLanguage: aws.String("en"), StorageClass: types.StorageClassStandardIa,
		Metadata: map[string]string{"a": "1", "b-c": "two words"},
	}))
	for _, tc := range []struct{ rng, want, cr string }{
		{"bytes=0-3", "0123", "bytes 0-3/20"},
		{"bytes=18-", "ij", "bytes 18-19/20"},
		{"bytes=-5", "fghij", "bytes 15-19/20"},
		{"bytes=10-100", "abcdefghij", "bytes 10-19/20"},
	} {
		got, out := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, Range: aws.String(tc.rng)})
		if got != tc.want || aws.ToString(out.ContentRange) != tc.cr {
			t.Errorf("range %s: %q %q", tc.rng, got, aws.ToString(out.ContentRange))
		}
	}
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, Range: aws.String("bytes=20-")})
	wantCode(t, err, "InvalidRange", 416)

	h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k}))
	if aws.ToString(h.ContentType) != "application/x-test" || aws.ToString(h.ContentDisposition) != `attachment; filename="f.bin"` ||
		aws.ToString(h.CacheControl) != "max-age=60" || aws.ToString(h.ContentLanguage) != "en" || h.StorageClass != types.StorageClassStandardIa ||
		h.Metadata["b-c"] != "two words" || aws.ToInt64(h.ContentLength) != 20 || aws.ToString(h.ETag) != aws.ToString(put.ETag) {
		t.Fatalf("head: %+v", h)
	}
	// Conditions.
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, IfMatch: aws.String(`"nope"`)})
	wantCode(t, err, "PreconditionFailed", 412)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, IfNoneMatch: put.ETag})
	wantCode(t, err, "NotModified", 304)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, IfModifiedSince: aws.Time(time.Now().Add(time.Hour))})
	wantCode(t, err, "NotModified", 304)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k, IfUnmodifiedSince: aws.Time(time.Now().Add(-time.Hour))})
	wantCode(t, err, "PreconditionFailed", 412)
	// If-Match holding wins over a failing If-Unmodified-Since.
	getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, IfMatch: put.ETag, IfUnmodifiedSince: aws.Time(time.Now().Add(-time.Hour))})
	getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, IfMatch: aws.String("*")})
	// response-* overrides.
	_, out := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, ResponseContentType: aws.String("text/csv"), ResponseContentDisposition: aws.String("inline"), ResponseCacheControl: aws.String("no-cache")})
	if aws.ToString(out.ContentType) != "text/csv" || aws.ToString(out.ContentDisposition) != "inline" || aws.ToString(out.CacheControl) != "no-cache" {
		t.Fatalf("overrides: %v %v %v", aws.ToString(out.ContentType), aws.ToString(out.ContentDisposition), aws.ToString(out.CacheControl))
	}
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String("missing")})
	wantCode(t, err, "NoSuchKey", 404)
	_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("nobucket"), Key: k})
	wantCode(t, err, "NoSuchBucket", 404)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("x"), Body: strings.NewReader("x"), StorageClass: "PLATINUM"})
	wantCode(t, err, "InvalidStorageClass", 400)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(strings.Repeat("k", 1025)), Body: strings.NewReader("x")})
	wantCode(t, err, "KeyTooLongError", 400)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("meta"), Body: strings.NewReader("x"), Metadata: map[string]string{"big": strings.Repeat("m", 2100)}})
	wantCode(t, err, "MetadataTooLarge", 400)
}

func TestListings(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "lists")
	b := aws.String("lists")
	keys := []string{"a.txt", "photos/2024/jan.jpg", "photos/2024/feb.jpg", "photos/2025/mar.jpg", "photos/cover.jpg", "z z+ü&.txt", "zz/deep/x"}
	for _, k := range keys {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String(k), Body: strings.NewReader(k)}))
	}
	// V2 with delimiter, paged one entry at a time.
	var seen []string
	var token *string
	for pages := 0; ; pages++ {
		out := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Delimiter: aws.String("/"), MaxKeys: aws.Int32(1), ContinuationToken: token}))
		for _, o := range out.Contents {
			seen = append(seen, aws.ToString(o.Key))
		}
		for _, p := range out.CommonPrefixes {
			seen = append(seen, aws.ToString(p.Prefix))
		}
		if aws.ToInt32(out.KeyCount) != 1 && aws.ToBool(out.IsTruncated) {
			t.Fatalf("key count %d", aws.ToInt32(out.KeyCount))
		}
		if !aws.ToBool(out.IsTruncated) {
			break
		}
		token = out.NextContinuationToken
	}
	if fmt.Sprint(seen) != "[a.txt photos/ z z+ü&.txt zz/]" {
		t.Fatalf("v2 delimiter pages: %q", seen)
	}
	out := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("photos/"), Delimiter: aws.String("/"), StartAfter: aws.String("photos/2024/zzz")}))
	if len(out.CommonPrefixes) != 1 || aws.ToString(out.CommonPrefixes[0].Prefix) != "photos/2025/" || len(out.Contents) != 1 {
		t.Fatalf("start-after: %+v %+v", out.CommonPrefixes, out.Contents)
	}
	// encoding-type=url: the SDK decodes keys back.
	enc := must[*s3.ListObjectsV2Output](t)(c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, Prefix: aws.String("z "), EncodingType: types.EncodingTypeUrl}))
	// aws-sdk-go-v2 leaves decoding to the caller; botocore uses unquote_plus.
	if len(enc.Contents) != 1 || aws.ToString(enc.Contents[0].Key) != url.QueryEscape("z z+ü&.txt") {
		t.Fatalf("encoded listing: %+v", enc.Contents)
	}
	// V1 with marker paging.
	var v1 []string
	marker := ""
	for {
		o := must[*s3.ListObjectsOutput](t)(c.ListObjects(ctx, &s3.ListObjectsInput{Bucket: b, Marker: aws.String(marker), MaxKeys: aws.Int32(3)}))
		for _, x := range o.Contents {
			v1 = append(v1, aws.ToString(x.Key))
			marker = aws.ToString(x.Key)
		}
		if !aws.ToBool(o.IsTruncated) {
			break
		}
	}
	if len(v1) != len(keys) {
		t.Fatalf("v1 listed %d keys: %v", len(v1), v1)
	}
	_, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: b, ContinuationToken: aws.String("garbage!")})
	wantCode(t, err, "InvalidArgument", 400)
	// ListObjectVersions paging across keys and versions.
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: b, VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	for i := 0; i < 3; i++ {
		must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("a.txt"), Body: strings.NewReader(fmt.Sprint(i))}))
	}
	must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("a.txt")}))
	var entries []string
	var km, vm *string
	for {
		o := must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("a"), MaxKeys: aws.Int32(2), KeyMarker: km, VersionIdMarker: vm}))
		for _, d := range o.DeleteMarkers {
			entries = append(entries, fmt.Sprintf("dm:%v", aws.ToBool(d.IsLatest)))
		}
		for _, v := range o.Versions {
			entries = append(entries, fmt.Sprintf("v:%v", aws.ToBool(v.IsLatest)))
		}
		if !aws.ToBool(o.IsTruncated) {
			break
		}
		km, vm = o.NextKeyMarker, o.NextVersionIdMarker
	}
	if len(entries) != 5 || entries[0] != "dm:true" {
		t.Fatalf("versions of a.txt: %v", entries)
	}
}

func TestAuthFailures(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "auth")
	bad := servertest.NewClient(r.URL(), "us-west-2", servertest.AccessKey, "wrong-secret", r.HTTPClient(t))
	_, err := bad.ListBuckets(ctx, &s3.ListBucketsInput{})
	wantCode(t, err, "SignatureDoesNotMatch", 403)
	unknown := servertest.NewClient(r.URL(), "us-west-2", "AKIAUNKNOWN000000000", "x", r.HTTPClient(t))
	_, err = unknown.ListBuckets(ctx, &s3.ListBucketsInput{})
	wantCode(t, err, "InvalidAccessKeyId", 403)
	wrongRegion := servertest.NewClient(r.URL(), "eu-central-1", servertest.AccessKey, servertest.SecretKey, r.HTTPClient(t))
	_, err = wrongRegion.ListBuckets(ctx, &s3.ListBucketsInput{})
	wantCode(t, err, "AuthorizationHeaderMalformed", 400)
	// Clock skew beyond 15 minutes.
	skewReq, _ := http.NewRequest(http.MethodGet, r.URL()+"/auth", nil)
	empty := fmt.Sprintf("%x", sha256.Sum256(nil))
	skewReq.Header.Set("x-amz-content-sha256", empty)
	creds := aws.Credentials{AccessKeyID: servertest.AccessKey, SecretAccessKey: servertest.SecretKey}
	if err := v4.NewSigner().SignHTTP(ctx, creds, skewReq, empty, "s3", "us-west-2", time.Now().Add(-20*time.Minute)); err != nil {
		t.Fatal(err)
	}
	skewResp, err := r.HTTPClient(t).Do(skewReq)
	if err != nil {
		t.Fatal(err)
	}
	skewBody, _ := io.ReadAll(skewResp.Body)
	skewResp.Body.Close()
	if skewResp.StatusCode != 403 || !strings.Contains(string(skewBody), "<Code>RequestTimeTooSkewed</Code>") {
		t.Fatalf("skewed request: %d %s", skewResp.StatusCode, skewBody)
	}
	resp, err := r.HTTPClient(t).Get(r.URL() + "/auth")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 || resp.Header.Get("x-amz-request-id") == "" {
		t.Fatalf("anonymous list: %d", resp.StatusCode)
	}
	// Presigned URLs: valid, then tampered, then expired.
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("auth"), Key: aws.String("p"), Body: strings.NewReader("presigned!")}))
	ps := s3.NewPresignClient(c)
	req := must[*v4.PresignedHTTPRequest](t)(ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("auth"), Key: aws.String("p")}))
	resp, err = r.HTTPClient(t).Get(req.URL)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "presigned!" {
		t.Fatalf("presigned get: %d %q", resp.StatusCode, body)
	}
	resp, _ = r.HTTPClient(t).Get(strings.Replace(req.URL, "/p?", "/q?", 1))
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Fatalf("tampered presigned: %d", resp.StatusCode)
	}
	past := must[*v4.PresignedHTTPRequest](t)(ps.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("auth"), Key: aws.String("p")}, func(o *s3.PresignOptions) {
		o.Expires = time.Second
	}))
	time.Sleep(1100 * time.Millisecond)
	resp, _ = r.HTTPClient(t).Get(past.URL)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "Request has expired") {
		t.Fatalf("expired presigned: %d %s", resp.StatusCode, b)
	}
	// A presigned PUT.
	pput := must[*v4.PresignedHTTPRequest](t)(ps.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("auth"), Key: aws.String("uploaded")}))
	hreq, _ := http.NewRequest(http.MethodPut, pput.URL, strings.NewReader("via presigned put"))
	resp, err = r.HTTPClient(t).Do(hreq)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("presigned put: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("auth"), Key: aws.String("uploaded")}); got != "via presigned put" {
		t.Fatalf("presigned put stored %q", got)
	}
}
