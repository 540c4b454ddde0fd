package s3api_test

import (
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

var allAttributes = []types.ObjectAttributes{
	types.ObjectAttributesEtag, types.ObjectAttributesChecksum, types.ObjectAttributesObjectParts,
	types.ObjectAttributesStorageClass, types.ObjectAttributesObjectSize,
}

func TestObjectAttributesPlain(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "attrs")
	b, k := aws.String("attrs"), aws.String("plain")
	put := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: b, Key: k, Body: strings.NewReader("attribute me"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	}))
	got := must[*s3.GetObjectAttributesOutput](t)(c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, ObjectAttributes: allAttributes}))
	if aws.ToString(got.ETag) != strings.Trim(aws.ToString(put.ETag), `"`) {
		t.Fatalf("ETag %q, want %s unquoted", aws.ToString(got.ETag), aws.ToString(put.ETag))
	}
	if got.Checksum == nil || aws.ToString(got.Checksum.ChecksumCRC32) != aws.ToString(put.ChecksumCRC32) || got.Checksum.ChecksumType != types.ChecksumTypeFullObject {
		t.Fatalf("checksum %+v, want CRC32 %s", got.Checksum, aws.ToString(put.ChecksumCRC32))
	}
	if got.ObjectParts != nil {
		t.Fatalf("parts of a single-part object: %+v", got.ObjectParts)
	}
	if got.StorageClass != types.StorageClassStandard || aws.ToInt64(got.ObjectSize) != int64(len("attribute me")) {
		t.Fatalf("class %s size %d", got.StorageClass, aws.ToInt64(got.ObjectSize))
	}
	if got.LastModified == nil || got.VersionId != nil {
		t.Fatalf("last modified %v, version %v", got.LastModified, aws.ToString(got.VersionId))
	}

	// Only what was asked for.
	got = must[*s3.GetObjectAttributesOutput](t)(c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectSize}}))
	if got.ETag != nil || got.Checksum != nil || got.StorageClass != "" || aws.ToInt64(got.ObjectSize) != 12 {
		t.Fatalf("asked for the size, got %+v", got)
	}

	// An empty object still has a size.
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: aws.String("empty"), Body: strings.NewReader("")}))
	got = must[*s3.GetObjectAttributesOutput](t)(c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("empty"), ObjectAttributes: allAttributes}))
	if got.ObjectSize == nil || *got.ObjectSize != 0 {
		t.Fatalf("size of an empty object: %v", got.ObjectSize)
	}

	_, err := c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("never"), ObjectAttributes: allAttributes})
	wantCode(t, err, "NoSuchKey", 404)

	// The attribute header is required and closed.
	u := r.URL() + "/attrs/plain?attributes"
	st, body, _ := do(t, r, signed(t, "GET", u, nil, "", nil))
	wantXMLError(t, st, body, 400, "InvalidArgument")
	st, body, _ = do(t, r, signed(t, "GET", u, nil, "", map[string]string{"x-amz-object-attributes": "ETag,Colour"}))
	wantXMLError(t, st, body, 400, "InvalidArgument")
	st, body, _ = do(t, r, signed(t, "GET", u, nil, "", map[string]string{"x-amz-object-attributes": "ETag", "x-amz-max-parts": "many"}))
	wantXMLError(t, st, body, 400, "InvalidArgument")
	st, body, _ = do(t, r, signed(t, "GET", u, nil, "", map[string]string{"x-amz-object-attributes": "ETag, ObjectSize"}))
	if st != 200 || !strings.Contains(body, "<ObjectSize>12</ObjectSize>") || !strings.Contains(body, `<GetObjectAttributesResponse xmlns="http://s3.amazonaws.com/doc/2006-03-01/">`) {
		t.Fatalf("%d %s", st, body)
	}
}

func TestObjectAttributesMultipart(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "mpattrs")
	data := randomBytes(2*5<<20 + 1234)
	done, parts, _ := multipartUpload(t, c, "mpattrs", "crc", data, 5<<20, types.ChecksumAlgorithmCrc32)
	b, k := aws.String("mpattrs"), aws.String("crc")

	got := must[*s3.GetObjectAttributesOutput](t)(c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, ObjectAttributes: allAttributes}))
	if aws.ToString(got.ETag) != strings.Trim(aws.ToString(done.ETag), `"`) || !strings.HasSuffix(aws.ToString(got.ETag), "-3") {
		t.Fatalf("ETag %q, completed as %s", aws.ToString(got.ETag), aws.ToString(done.ETag))
	}
	// The composite checksum without its part count, as S3 shows it here.
	want, _, _ := strings.Cut(aws.ToString(done.ChecksumCRC32), "-")
	if got.Checksum == nil || aws.ToString(got.Checksum.ChecksumCRC32) != want || got.Checksum.ChecksumType != types.ChecksumTypeComposite {
		t.Fatalf("checksum %+v, want %s COMPOSITE", got.Checksum, want)
	}
	op := got.ObjectParts
	if op == nil || aws.ToInt32(op.TotalPartsCount) != 3 || aws.ToBool(op.IsTruncated) || len(op.Parts) != 3 {
		t.Fatalf("parts %+v", op)
	}
	for i, p := range op.Parts {
		size := min(len(data)-i*(5<<20), 5<<20)
		if aws.ToInt32(p.PartNumber) != int32(i+1) || aws.ToInt64(p.Size) != int64(size) || aws.ToString(p.ChecksumCRC32) != aws.ToString(parts[i].ChecksumCRC32) {
			t.Fatalf("part %d: %d %d %s, want %d %s", i+1, aws.ToInt32(p.PartNumber), aws.ToInt64(p.Size), aws.ToString(p.ChecksumCRC32), size, aws.ToString(parts[i].ChecksumCRC32))
		}
	}
	if aws.ToInt64(got.ObjectSize) != int64(len(data)) {
		t.Fatalf("size %d", aws.ToInt64(got.ObjectSize))
	}

	// Pages of parts.
	page := func(marker string, max int32) *types.GetObjectAttributesParts {
		in := &s3.GetObjectAttributesInput{Bucket: b, Key: k, ObjectAttributes: []types.ObjectAttributes{types.ObjectAttributesObjectParts}, MaxParts: aws.Int32(max)}
		if marker != "" {
			in.PartNumberMarker = aws.String(marker)
		}
		return must[*s3.GetObjectAttributesOutput](t)(c.GetObjectAttributes(ctx, in)).ObjectParts
	}
	p1 := page("", 2)
	if len(p1.Parts) != 2 || !aws.ToBool(p1.IsTruncated) || aws.ToString(p1.NextPartNumberMarker) != "2" || aws.ToInt32(p1.MaxParts) != 2 {
		t.Fatalf("first page %+v", p1)
	}
	p2 := page("2", 2)
	if len(p2.Parts) != 1 || aws.ToInt32(p2.Parts[0].PartNumber) != 3 || aws.ToBool(p2.IsTruncated) || aws.ToString(p2.PartNumberMarker) != "2" {
		t.Fatalf("second page %+v", p2)
	}

	// Without an additional checksum, S3 gives only the count of parts.
	multipartUpload(t, c, "mpattrs", "plain", data, 5<<20, "")
	got = must[*s3.GetObjectAttributesOutput](t)(c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: aws.String("plain"), ObjectAttributes: allAttributes}))
	if got.Checksum != nil || got.ObjectParts == nil || aws.ToInt32(got.ObjectParts.TotalPartsCount) != 3 || len(got.ObjectParts.Parts) != 0 {
		t.Fatalf("checksum %+v parts %+v", got.Checksum, got.ObjectParts)
	}
}

func TestObjectAttributesVersions(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	bucketIn(t, c, "vattrs", types.BucketVersioningStatusEnabled)
	b, k := aws.String("vattrs"), aws.String("doc")
	v1 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("one")}))
	v2 := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("second"), StorageClass: types.StorageClassStandardIa}))
	attrs := func(vid *string) (*s3.GetObjectAttributesOutput, error) {
		return c.GetObjectAttributes(ctx, &s3.GetObjectAttributesInput{Bucket: b, Key: k, VersionId: vid, ObjectAttributes: allAttributes})
	}
	for _, tc := range []struct {
		vid, wantVID *string
		size         int64
		class        types.StorageClass
	}{{nil, v2.VersionId, 6, types.StorageClassStandardIa}, {v1.VersionId, v1.VersionId, 3, types.StorageClassStandard}} {
		got := must[*s3.GetObjectAttributesOutput](t)(attrs(tc.vid))
		if aws.ToString(got.VersionId) != aws.ToString(tc.wantVID) || aws.ToInt64(got.ObjectSize) != tc.size || got.StorageClass != tc.class {
			t.Fatalf("version %s: %s %d %s", aws.ToString(tc.vid), aws.ToString(got.VersionId), aws.ToInt64(got.ObjectSize), got.StorageClass)
		}
	}

	// A delete marker answers as for GetObject, with the marker's headers.
	dm := must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}))
	_, err := attrs(nil)
	wantCode(t, err, "NoSuchKey", 404)
	_, err = attrs(dm.VersionId)
	wantCode(t, err, "MethodNotAllowed", 405)
	st, _, hdr := do(t, r, signed(t, "GET", r.URL()+"/vattrs/doc?attributes", nil, "", map[string]string{"x-amz-object-attributes": "ETag"}))
	if st != 404 || hdr.Get("x-amz-delete-marker") != "true" || hdr.Get("x-amz-version-id") != aws.ToString(dm.VersionId) || hdr.Get("Last-Modified") == "" {
		t.Fatalf("delete marker: %d %v", st, hdr)
	}
	// The old versions are still there to ask about.
	if got := must[*s3.GetObjectAttributesOutput](t)(attrs(v1.VersionId)); aws.ToInt64(got.ObjectSize) != 3 {
		t.Fatalf("size %d", aws.ToInt64(got.ObjectSize))
	}
}
