package s3api_test

import (
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// versioningModes are the three states a bucket can be in.
var versioningModes = []types.BucketVersioningStatus{"", types.BucketVersioningStatusEnabled, types.BucketVersioningStatusSuspended}

// bucketIn creates a bucket in the given versioning state. A suspended
// bucket has had versioning enabled first, as it must have.
func bucketIn(t *testing.T, c *s3.Client, name string, mode types.BucketVersioningStatus) {
	t.Helper()
	createBucket(t, c, name)
	if mode == "" {
		return
	}
	for _, st := range []types.BucketVersioningStatus{types.BucketVersioningStatusEnabled, mode} {
		must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{
			Bucket: aws.String(name), VersioningConfiguration: &types.VersioningConfiguration{Status: st},
		}))
	}
}

// wantVersionID checks a version ID header as S3 sends it for a version
// written in the given state: none when unversioned, "null" when suspended.
func wantVersionID(t *testing.T, got *string, mode types.BucketVersioningStatus, id string) {
	t.Helper()
	switch {
	case mode == "" && got != nil:
		t.Fatalf("unversioned bucket answered version %q", *got)
	case mode == types.BucketVersioningStatusSuspended && aws.ToString(got) != "null":
		t.Fatalf("suspended bucket answered version %q, want null", aws.ToString(got))
	case mode == types.BucketVersioningStatusEnabled && aws.ToString(got) != id:
		t.Fatalf("versioned bucket answered version %q, want %q", aws.ToString(got), id)
	}
}

func wantMessage(t *testing.T, err error, code string, status int, msg string) {
	t.Helper()
	wantCode(t, err, code, status)
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorMessage() != msg {
		t.Fatalf("%s message %q, want %q", code, ae.ErrorMessage(), msg)
	}
}

func tagSet(kv ...string) *types.Tagging {
	tg := &types.Tagging{TagSet: []types.Tag{}}
	for i := 0; i+1 < len(kv); i += 2 {
		tg.TagSet = append(tg.TagSet, types.Tag{Key: aws.String(kv[i]), Value: aws.String(kv[i+1])})
	}
	return tg
}

func tagString(set []types.Tag) string {
	var parts []string
	for _, tg := range set {
		parts = append(parts, aws.ToString(tg.Key)+"="+aws.ToString(tg.Value))
	}
	return strings.Join(parts, ",")
}

func TestObjectTagging(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	for _, mode := range versioningModes {
		t.Run(fmt.Sprintf("versioning=%q", mode), func(t *testing.T) {
			bucket := "tags-" + strings.ToLower(string(mode)+"x")
			bucketIn(t, c, bucket, mode)
			b, k := aws.String(bucket), aws.String("obj")
			p1 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("one"), Tagging: aws.String("b=two%20words&a=1&empty")}))
			h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k}))
			if aws.ToInt32(h.TagCount) != 3 {
				t.Fatalf("head tag count %v", h.TagCount)
			}
			if _, out := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k}); aws.ToInt32(out.TagCount) != 3 {
				t.Fatalf("get tag count %v", out.TagCount)
			}
			got := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k}))
			if tagString(got.TagSet) != "a=1,b=two words,empty=" {
				t.Fatalf("tags from the header: %s", tagString(got.TagSet))
			}
			wantVersionID(t, got.VersionId, mode, aws.ToString(p1.VersionId))

			pt := must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: tagSet("Ünï", "ß/é", "x", "")}))
			wantVersionID(t, pt.VersionId, mode, aws.ToString(p1.VersionId))
			got = must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k}))
			if tagString(got.TagSet) != "x=,Ünï=ß/é" {
				t.Fatalf("replaced tags: %s", tagString(got.TagSet))
			}
			dt := must[*s3.DeleteObjectTaggingOutput](t)(c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: b, Key: k}))
			wantVersionID(t, dt.VersionId, mode, aws.ToString(p1.VersionId))
			got = must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k}))
			if len(got.TagSet) != 0 {
				t.Fatalf("tags after delete: %s", tagString(got.TagSet))
			}
			if h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: k})); h.TagCount != nil {
				t.Fatalf("tag count after delete: %d", *h.TagCount)
			}
			// An empty tag set removes the tags, as S3 does.
			must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: tagSet("a", "b")}))
			must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: tagSet()}))
			if got := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k})); len(got.TagSet) != 0 {
				t.Fatalf("tags after an empty set: %s", tagString(got.TagSet))
			}

			// A delete marker: no such key without a version, 405 by its ID.
			del := must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}))
			_, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: tagSet("a", "b")})
			wantCode(t, err, "NoSuchKey", 404)
			if mode != "" {
				_, err = c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, VersionId: del.VersionId, Tagging: tagSet("a", "b")})
				wantCode(t, err, "MethodNotAllowed", 405)
				_, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k, VersionId: del.VersionId})
				wantCode(t, err, "MethodNotAllowed", 405)
				_, err = c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: b, Key: k, VersionId: del.VersionId})
				wantCode(t, err, "MethodNotAllowed", 405)
			}
			_, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: aws.String("missing")})
			wantCode(t, err, "NoSuchKey", 404)
			_, err = c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k, VersionId: aws.String("0036000000000000000000000A")})
			wantCode(t, err, "NoSuchVersion", 404)
		})
	}
}

// TestTaggingOldVersion tags a version that is no longer the latest and
// checks that the change feed records every tag change.
func TestTaggingOldVersion(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	bucketIn(t, c, "history", types.BucketVersioningStatusEnabled)
	b, k := aws.String("history"), aws.String("doc")
	v1 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v1")}))
	v2 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("v2"), Tagging: aws.String("gen=2")}))
	pt := must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, VersionId: v1.VersionId, Tagging: tagSet("gen", "1")}))
	if aws.ToString(pt.VersionId) != aws.ToString(v1.VersionId) {
		t.Fatalf("tagged version %q, want %q", aws.ToString(pt.VersionId), aws.ToString(v1.VersionId))
	}
	for _, tc := range []struct {
		vid  *string
		want string
	}{{v1.VersionId, "gen=1"}, {v2.VersionId, "gen=2"}, {nil, "gen=2"}} {
		got := must[*s3.GetObjectTaggingOutput](t)(c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: b, Key: k, VersionId: tc.vid}))
		if tagString(got.TagSet) != tc.want {
			t.Fatalf("version %v: %s, want %s", aws.ToString(tc.vid), tagString(got.TagSet), tc.want)
		}
	}
	if body, _ := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k, VersionId: v1.VersionId}); body != "v1" {
		t.Fatalf("tagged version reads %q", body)
	}
	must[*s3.DeleteObjectTaggingOutput](t)(c.DeleteObjectTagging(ctx, &s3.DeleteObjectTaggingInput{Bucket: b, Key: k, VersionId: v2.VersionId}))
	changes := must[[]objectstore.Change](t)(r.Store.Changes(ctx, 0, 1000))
	var kinds []string
	for _, ch := range changes {
		kinds = append(kinds, fmt.Sprintf("%s:%s", ch.Kind, ch.VersionID))
	}
	want := fmt.Sprintf("[put:%s put:%s tags:%s tags:%s]", *v1.VersionId, *v2.VersionId, *v1.VersionId, *v2.VersionId)
	if fmt.Sprint(kinds) != want {
		t.Fatalf("change feed %v, want %v", kinds, want)
	}
}

func TestTaggingErrors(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "tagerrs")
	b, k := aws.String("tagerrs"), aws.String("k")
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("x")}))
	eleven := tagSet()
	var header []string
	for i := range 11 {
		eleven.TagSet = append(eleven.TagSet, types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("v")})
		header = append(header, fmt.Sprintf("k%d=v", i))
	}
	for _, tc := range []struct {
		name        string
		tags        *types.Tagging
		code, msg   string
		headerValue string
	}{
		{"eleven", eleven, "BadRequest", "Object tags cannot be greater than 10", strings.Join(header, "&")},
		{"long key", tagSet(strings.Repeat("k", 129), "v"), "InvalidTag", "The TagKey you have provided is too long, max 128", strings.Repeat("k", 129) + "=v"},
		{"long value", tagSet("k", strings.Repeat("v", 257)), "InvalidTag", "The TagValue you have provided is too long, max 256", "k=" + strings.Repeat("v", 257)},
		{"duplicate", tagSet("k", "1", "k", "2"), "InvalidTag", "Cannot provide multiple Tags with the same key", ""},
		{"aws prefix", tagSet("aws:k", "1"), "InvalidTag", "Your TagKey cannot be prefixed with aws:", "aws%3Ak=1"},
		{"bad character", tagSet("a{b}", "1"), "InvalidTag", "The TagKey you have provided is invalid", "a%7Bb%7D=1"},
	} {
		_, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: tc.tags})
		wantMessage(t, err, tc.code, 400, tc.msg)
		if tc.headerValue == "" {
			continue
		}
		_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("new"), Body: strings.NewReader("x"), Tagging: aws.String(tc.headerValue)})
		wantMessage(t, err, tc.code, 400, tc.msg)
	}
	// At the limits is fine.
	ten := tagSet(strings.Repeat("k", 128), strings.Repeat("v", 256))
	ten.TagSet = append(ten.TagSet, eleven.TagSet[:9]...)
	must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: b, Key: k, Tagging: ten}))

	// A header with a key twice, or a pair with two '='.
	for _, hv := range []string{"a=1&a=2", "TagSet=[{Key=x,Value=y}]"} {
		_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("new"), Body: strings.NewReader("x"), Tagging: aws.String(hv)})
		wantMessage(t, err, "InvalidArgument", 400, "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.")
	}
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: b, Key: aws.String("new")})
	wantCode(t, err, "NotFound", 404)

	// The body must come with an integrity check that holds, and be well formed.
	u := r.URL() + "/tagerrs/k?tagging"
	doc := []byte("<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>")
	st, body, _ := do(t, r, signed(t, "PUT", u, doc, "", nil))
	wantXMLError(t, st, body, 400, "InvalidRequest")
	if !strings.Contains(body, "Missing required header for this request: Content-MD5") {
		t.Fatalf("missing Content-MD5: %s", body)
	}
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"x-amz-sdk-checksum-algorithm": "CRC32"}))
	wantXMLError(t, st, body, 400, "InvalidRequest")
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"Content-MD5": md5Header([]byte("other"))}))
	wantXMLError(t, st, body, 400, "BadDigest")
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"x-amz-checksum-crc32": "AAAAAA=="}))
	wantXMLError(t, st, body, 400, "BadDigest")
	for _, bad := range []string{"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>", "<Tagging/>", "<Tagging><TagSet>", "<Other/>"} {
		st, body, _ = do(t, r, signed(t, "PUT", u, []byte(bad), "", map[string]string{"Content-MD5": md5Header([]byte(bad))}))
		wantXMLError(t, st, body, 400, "MalformedXML")
	}
	st, body, _ = do(t, r, signed(t, "PUT", u, doc, "", map[string]string{"Content-MD5": md5Header(doc)}))
	if st != 200 {
		t.Fatalf("with Content-MD5: %d %s", st, body)
	}
	st, body, _ = do(t, r, signed(t, "GET", r.URL()+"/tagerrs/k?tagging&versionId=", nil, "", nil))
	wantXMLError(t, st, body, 400, "InvalidArgument")
}

func md5Header(b []byte) string {
	sum := md5.Sum(b)
	return base64.StdEncoding.EncodeToString(sum[:])
}

func TestBucketTagging(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "tagged")
	b := aws.String("tagged")
	_, err := c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
	wantMessage(t, err, "NoSuchTagSet", 404, "The TagSet does not exist")
	must[*s3.PutBucketTaggingOutput](t)(c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet("team", "storage", "cost-centre", "42")}))
	got := must[*s3.GetBucketTaggingOutput](t)(c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b}))
	if tagString(got.TagSet) != "cost-centre=42,team=storage" {
		t.Fatalf("bucket tags %s", tagString(got.TagSet))
	}
	// Put replaces the whole set.
	fifty := tagSet()
	for i := range 50 {
		fifty.TagSet = append(fifty.TagSet, types.Tag{Key: aws.String(fmt.Sprint("k", i)), Value: aws.String("")})
	}
	must[*s3.PutBucketTaggingOutput](t)(c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: fifty}))
	if got := must[*s3.GetBucketTaggingOutput](t)(c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})); len(got.TagSet) != 50 {
		t.Fatalf("%d tags, want 50", len(got.TagSet))
	}
	fifty.TagSet = append(fifty.TagSet, types.Tag{Key: aws.String("one-more"), Value: aws.String("")})
	_, err = c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: fifty})
	wantMessage(t, err, "BadRequest", 400, "Bucket tag count cannot be greater than 50")
	_, err = c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet("k", "1", "k", "2")})
	wantMessage(t, err, "InvalidTag", 400, "Cannot provide multiple Tags with the same key")
	must[*s3.DeleteBucketTaggingOutput](t)(c.DeleteBucketTagging(ctx, &s3.DeleteBucketTaggingInput{Bucket: b}))
	_, err = c.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
	wantCode(t, err, "NoSuchTagSet", 404)
	_, err = c.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: aws.String("nobucket"), Tagging: tagSet("a", "b")})
	wantCode(t, err, "NoSuchBucket", 404)
	other := servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, r.HTTPClient(t))
	_, err = other.PutBucketTagging(ctx, &s3.PutBucketTaggingInput{Bucket: b, Tagging: tagSet("a", "b")})
	wantCode(t, err, "AccessDenied", 403)
	_, err = other.GetBucketTagging(ctx, &s3.GetBucketTaggingInput{Bucket: b})
	wantCode(t, err, "AccessDenied", 403)
}
