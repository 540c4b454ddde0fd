package s3api_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/url"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

func source(bucket, key, versionID string) *string {
	s := bucket + "/" + url.PathEscape(key)
	if versionID != "" {
		s += "?versionId=" + url.QueryEscape(versionID)
	}
	return aws.String(s)
}

func TestCopyObject(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "copy-elsewhere")
	for _, mode := range versioningModes {
		t.Run(fmt.Sprintf("versioning=%q", mode), func(t *testing.T) {
			bucket := "copy-" + strings.ToLower(string(mode)+"x")
			bucketIn(t, c, bucket, mode)
			b, k := aws.String(bucket), "dir/a b+ü.txt"
			p := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
				Bucket: b, Key: aws.String(k), Body: strings.NewReader("source data"),
				ContentType: aws.String("text/plain"), CacheControl: aws.String("max-age=5"),
				Metadata: map[string]string{"colour": "blue"}, Tagging: aws.String("t=1"),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c, StorageClass: types.StorageClassStandardIa,
			}))
			// Within the bucket: content headers, metadata, tags and the
			// checksum algorithm come along; the storage class does not.
			out := must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: source(bucket, k, "")}))
			wantVersionID(t, out.CopySourceVersionId, mode, aws.ToString(p.VersionId))
			if mode == types.BucketVersioningStatusEnabled && (aws.ToString(out.VersionId) == "" || out.VersionId == p.VersionId) {
				t.Fatalf("copy version %q", aws.ToString(out.VersionId))
			}
			if aws.ToString(out.CopyObjectResult.ETag) != aws.ToString(p.ETag) || aws.ToString(out.CopyObjectResult.ChecksumCRC32C) != aws.ToString(p.ChecksumCRC32C) ||
				out.CopyObjectResult.LastModified == nil || out.CopyObjectResult.ChecksumType != types.ChecksumTypeFullObject {
				t.Fatalf("copy result %+v", out.CopyObjectResult)
			}
			body, g := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: aws.String("copy"), ChecksumMode: types.ChecksumModeEnabled})
			if body != "source data" || aws.ToString(g.ContentType) != "text/plain" || aws.ToString(g.CacheControl) != "max-age=5" ||
				g.Metadata["colour"] != "blue" || aws.ToInt32(g.TagCount) != 1 || aws.ToString(g.ChecksumCRC32C) != aws.ToString(p.ChecksumCRC32C) || g.StorageClass != "" {
				t.Fatalf("copy reads %q %+v", body, g)
			}
			// Across buckets, replacing metadata and tags.
			out = must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{
				Bucket: aws.String("copy-elsewhere"), Key: aws.String(bucket), CopySource: source(bucket, k, ""),
				MetadataDirective: types.MetadataDirectiveReplace, ContentType: aws.String("app/new"), Metadata: map[string]string{"shape": "round"},
				TaggingDirective: types.TaggingDirectiveReplace, Tagging: aws.String("n=2&m=3"), StorageClass: types.StorageClassGlacierIr,
			}))
			if out.VersionId != nil {
				t.Fatalf("copy into an unversioned bucket answered version %q", *out.VersionId)
			}
			h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("copy-elsewhere"), Key: aws.String(bucket)}))
			if aws.ToString(h.ContentType) != "app/new" || h.Metadata["shape"] != "round" || h.Metadata["colour"] != "" || h.CacheControl != nil ||
				aws.ToInt32(h.TagCount) != 2 || h.StorageClass != types.StorageClassGlacierIr {
				t.Fatalf("replaced copy %+v", h)
			}
			// Onto itself: refused without a change, a new version with one.
			_, err := c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: source(bucket, "copy", "")})
			wantMessage(t, err, "InvalidRequest", 400, "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.")
			_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: source(bucket, "copy", ""), TaggingDirective: types.TaggingDirectiveReplace})
			wantCode(t, err, "InvalidRequest", 400)
			self := must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{
				Bucket: b, Key: aws.String("copy"), CopySource: source(bucket, "copy", ""),
				MetadataDirective: types.MetadataDirectiveReplace, Metadata: map[string]string{"colour": "red"},
			}))
			h = must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("copy")}))
			if h.Metadata["colour"] != "red" || aws.ToString(self.CopyObjectResult.ETag) != aws.ToString(p.ETag) || aws.ToInt32(h.TagCount) != 1 {
				t.Fatalf("metadata replaced in place: %+v", h)
			}
			must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: source(bucket, "copy", ""), StorageClass: types.StorageClassOnezoneIa}))
			lv := must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b, Prefix: aws.String("copy")}))
			if want := map[types.BucketVersioningStatus]int{"": 1, "Enabled": 3, "Suspended": 1}[mode]; len(lv.Versions) != want {
				t.Fatalf("%d versions of the copy, want %d", len(lv.Versions), want)
			}
		})
	}
}

func TestCopyObjectVersionsAndErrors(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	bucketIn(t, c, "cpv", types.BucketVersioningStatusEnabled)
	b := aws.String("cpv")
	v1 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("old"), Tagging: aws.String("gen=1")}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("k"), Body: strings.NewReader("new")}))

	// A specific old version, and restoring it onto its own key.
	out := must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("old"), CopySource: source("cpv", "k", *v1.VersionId)}))
	if aws.ToString(out.CopySourceVersionId) != *v1.VersionId {
		t.Fatalf("source version %q", aws.ToString(out.CopySourceVersionId))
	}
	if body, g := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: aws.String("old")}); body != "old" || aws.ToInt32(g.TagCount) != 1 {
		t.Fatalf("copy of the old version: %q", body)
	}
	restore := must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("k"), CopySource: aws.String("/cpv/k?versionId=" + *v1.VersionId)}))
	if body, g := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: aws.String("k")}); body != "old" || aws.ToString(g.VersionId) != aws.ToString(restore.VersionId) {
		t.Fatalf("restored: %q", body)
	}

	// Copy conditions: every failure is 412.
	etag := aws.ToString(v1.ETag)
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	for i, in := range []*s3.CopyObjectInput{
		{CopySourceIfMatch: aws.String(`"nope"`)},
		{CopySourceIfNoneMatch: aws.String(etag)},
		{CopySourceIfModifiedSince: aws.Time(future)},
		{CopySourceIfUnmodifiedSince: aws.Time(past)},
		{CopySourceIfNoneMatch: aws.String(etag), CopySourceIfModifiedSince: aws.Time(past)},
	} {
		in.Bucket, in.Key, in.CopySource = b, aws.String("cond"), source("cpv", "k", "")
		_, err := c.CopyObject(ctx, in)
		if code, status := apiCode(err); code != "PreconditionFailed" || status != 412 {
			t.Fatalf("condition %d: %v", i, err)
		}
	}
	for i, in := range []*s3.CopyObjectInput{
		{CopySourceIfMatch: aws.String(etag), CopySourceIfUnmodifiedSince: aws.Time(past)},
		{CopySourceIfNoneMatch: aws.String(`"other"`), CopySourceIfModifiedSince: aws.Time(past)},
		{CopySourceIfUnmodifiedSince: aws.Time(future)},
	} {
		in.Bucket, in.Key, in.CopySource = b, aws.String("cond"), source("cpv", "k", "")
		if _, err := c.CopyObject(ctx, in); err != nil {
			t.Fatalf("condition %d that holds: %v", i, err)
		}
	}

	// Sources that are not there.
	del := must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: aws.String("k")}))
	for _, tc := range []struct {
		src        *string
		code       string
		status     int
		msgPrefix  string
		dstBucket  string
		directives func(*s3.CopyObjectInput)
	}{
		{src: source("cpv", "k", *del.VersionId), code: "InvalidRequest", status: 400, msgPrefix: "The source of a copy request may not specifically refer to a delete marker by version id."},
		{src: source("cpv", "k", ""), code: "NoSuchKey", status: 404},
		{src: source("cpv", "never", ""), code: "NoSuchKey", status: 404},
		{src: source("cpv", "k", "0036000000000000000000000A"), code: "NoSuchVersion", status: 404},
		{src: source("cpv", "k", "bogus"), code: "InvalidArgument", status: 400},
		{src: source("nobucket", "k", ""), code: "NoSuchBucket", status: 404},
		{src: aws.String("just-a-bucket"), code: "InvalidArgument", status: 400, msgPrefix: "Copy Source must mention the source bucket and key: sourcebucket/sourcekey"},
		{src: source("cpv", "old", ""), dstBucket: "nobucket", code: "NoSuchBucket", status: 404},
		{src: source("cpv", "old", ""), code: "InvalidArgument", status: 400, directives: func(in *s3.CopyObjectInput) { in.MetadataDirective = "MERGE" }},
		{src: source("cpv", "old", ""), code: "InvalidArgument", status: 400, directives: func(in *s3.CopyObjectInput) { in.TaggingDirective = "MERGE" }},
		{src: source("cpv", "old", ""), code: "InvalidTag", status: 400, directives: func(in *s3.CopyObjectInput) {
			in.TaggingDirective, in.Tagging = types.TaggingDirectiveReplace, aws.String("aws:x=1")
		}},
	} {
		in := &s3.CopyObjectInput{Bucket: b, Key: aws.String("dst"), CopySource: tc.src}
		if tc.dstBucket != "" {
			in.Bucket = aws.String(tc.dstBucket)
		}
		if tc.directives != nil {
			tc.directives(in)
		}
		_, err := c.CopyObject(ctx, in)
		if tc.msgPrefix != "" {
			wantMessage(t, err, tc.code, tc.status, tc.msgPrefix)
		} else {
			wantCode(t, err, tc.code, tc.status)
		}
	}
	// Nothing refused made a version.
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("dst")})
	wantCode(t, err, "NotFound", 404)
}

// TestCopyObjectLarge copies 20 MiB and checks that the data streams rather
// than being held in memory.
func TestCopyObjectLarge(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "large")
	createBucket(t, c, "large-copy")
	data := make([]byte, 20<<20)
	_, _ = rand.Read(data)
	p := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("large"), Key: aws.String("big"), Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmSha256}))
	before, _ := r.Store.FeedStats(ctx)
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	out := must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("large-copy"), Key: aws.String("big"), CopySource: aws.String("large/big")}))
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("copy of 20 MiB allocated %d KiB", alloc>>10)
	if alloc > 8<<20 {
		t.Errorf("copy of 20 MiB allocated %d bytes", alloc)
	}
	if aws.ToString(out.CopyObjectResult.ETag) != aws.ToString(p.ETag) || aws.ToString(out.CopyObjectResult.ChecksumSHA256) != aws.ToString(p.ChecksumSHA256) {
		t.Fatalf("copy result %+v, source %v %v", out.CopyObjectResult, aws.ToString(p.ETag), aws.ToString(p.ChecksumSHA256))
	}
	got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("large-copy"), Key: aws.String("big")})
	if got != string(data) {
		t.Fatal("copied data differs")
	}
	changes := must[[]objectstore.Change](t)(r.Store.Changes(ctx, before.Last, 10))
	if len(changes) != 1 || changes[0].Kind != objectstore.ChangePut || changes[0].Bucket != "large-copy" || changes[0].Size != 20<<20 {
		t.Fatalf("change feed %+v", changes)
	}
}

// TestCopyObjectAcrossAccounts: reading the source needs its owner's
// permission, as writing the destination does.
func TestCopyObjectAcrossAccounts(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	other := servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, r.HTTPClient(t))
	createBucket(t, c, "mine")
	createBucket(t, other, "theirs")
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("mine"), Key: aws.String("secret"), Body: strings.NewReader("mine")}))
	must[*s3.PutObjectOutput](t)(other.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("theirs"), Key: aws.String("public"), Body: strings.NewReader("theirs")}))

	_, err := other.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("theirs"), Key: aws.String("stolen"), CopySource: aws.String("mine/secret")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("theirs"), Key: aws.String("stolen"), CopySource: aws.String("mine/secret?versionId=null")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("theirs"), Key: aws.String("pushed"), CopySource: aws.String("mine/secret")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("theirs"), Key: aws.String("stolen")})
	wantCode(t, err, "NotFound", 404)
	// Within one's own account, copying works.
	must[*s3.CopyObjectOutput](t)(other.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("theirs"), Key: aws.String("again"), CopySource: aws.String("theirs/public")}))
}
