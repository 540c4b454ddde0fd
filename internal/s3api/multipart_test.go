package s3api_test

import (
	"bytes"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

func setVersioning(t *testing.T, c *s3.Client, bucket, status string) {
	t.Helper()
	if status == "" {
		return
	}
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(bucket), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatus(status)}}))
}

// multipartUpload uploads data in parts of partSize with the SDK and
// returns the completed parts' output.
func multipartUpload(t *testing.T, c *s3.Client, bucket, key string, data []byte, partSize int, alg types.ChecksumAlgorithm) (*s3.CompleteMultipartUploadOutput, []types.CompletedPart, string) {
	t.Helper()
	cr := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), ChecksumAlgorithm: alg,
		ContentType: aws.String("application/x-mp"), Metadata: map[string]string{"origin": "multipart"},
	}))
	var parts []types.CompletedPart
	for n, off := int32(1), 0; off < len(data); n, off = n+1, off+partSize {
		chunk := data[off:min(off+partSize, len(data))]
		out := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(bucket), Key: aws.String(key), UploadId: cr.UploadId, PartNumber: aws.Int32(n),
			Body: bytes.NewReader(chunk), ChecksumAlgorithm: alg,
		}))
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag,
			ChecksumCRC32: out.ChecksumCRC32, ChecksumSHA256: out.ChecksumSHA256, ChecksumCRC32C: out.ChecksumCRC32C})
	}
	done := must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}))
	return done, parts, aws.ToString(cr.UploadId)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

func TestMultipartUpload(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	data := randomBytes(2*5<<20 + 1234)
	for _, status := range []string{"", "Enabled", "Suspended"} {
		t.Run("versioning="+status, func(t *testing.T) {
			bucket := "mp-" + map[string]string{"": "none", "Enabled": "on", "Suspended": "off"}[status]
			createBucket(t, c, bucket)
			setVersioning(t, c, bucket, status)
			done, parts, uploadID := multipartUpload(t, c, bucket, "big.bin", data, 5<<20, "")
			sums := md5.New()
			for _, p := range [][]byte{data[:5<<20], data[5<<20 : 10<<20], data[10<<20:]} {
				s := md5.Sum(p)
				sums.Write(s[:])
			}
			if want := fmt.Sprintf(`"%x-3"`, sums.Sum(nil)); aws.ToString(done.ETag) != want {
				t.Fatalf("etag %s, want %s", aws.ToString(done.ETag), want)
			}
			switch status {
			case "Enabled":
				if v := aws.ToString(done.VersionId); v == "" || v == "null" {
					t.Fatalf("version %q", v)
				}
			case "Suspended":
				if aws.ToString(done.VersionId) != "null" {
					t.Fatalf("version %q", aws.ToString(done.VersionId))
				}
			}
			got, out := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("big.bin")})
			if got != string(data) || out.Metadata["origin"] != "multipart" || aws.ToString(out.ContentType) != "application/x-mp" {
				t.Fatal("multipart object reads back different")
			}
			part2, out := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("big.bin"), PartNumber: aws.Int32(2)})
			if part2 != string(data[5<<20:10<<20]) || aws.ToInt32(out.PartsCount) != 3 {
				t.Fatalf("part 2: %d bytes, parts count %d", len(part2), aws.ToInt32(out.PartsCount))
			}
			head := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(bucket), Key: aws.String("big.bin"), PartNumber: aws.Int32(3)}))
			if aws.ToInt64(head.ContentLength) != 1234 {
				t.Fatalf("head part 3 length %d", aws.ToInt64(head.ContentLength))
			}
			_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("big.bin"), PartNumber: aws.Int32(4)})
			wantCode(t, err, "InvalidPartNumber", 416)
			// Completing again returns the same result.
			again := must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
				Bucket: aws.String(bucket), Key: aws.String("big.bin"), UploadId: aws.String(uploadID),
				MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			}))
			if aws.ToString(again.ETag) != aws.ToString(done.ETag) || aws.ToString(again.VersionId) != aws.ToString(done.VersionId) {
				t.Fatalf("retried complete: %v %v", aws.ToString(again.ETag), aws.ToString(again.VersionId))
			}
		})
	}
}

func TestMultipartErrorsAndListings(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "mperr")
	b := aws.String("mperr")
	cr := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String("k")}))
	var parts []types.CompletedPart
	for n := int32(1); n <= 3; n++ {
		out := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(randomBytes(1000))}))
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag})
	}
	complete := func(ps ...types.CompletedPart) error {
		_, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: ps}})
		return err
	}
	wantCode(t, complete(parts[0], parts[1]), "EntityTooSmall", 400)
	wantCode(t, complete(parts[1], parts[0]), "InvalidPartOrder", 400)
	wantCode(t, complete(types.CompletedPart{PartNumber: aws.Int32(1), ETag: aws.String(`"0123"`)}), "InvalidPart", 400)
	wantCode(t, complete(types.CompletedPart{PartNumber: aws.Int32(9), ETag: parts[0].ETag}), "InvalidPart", 400)
	_, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId, PartNumber: aws.Int32(10001), Body: bytes.NewReader([]byte("x"))})
	wantCode(t, err, "InvalidArgument", 400)
	_, err = c.UploadPart(ctx, &s3.UploadPartInput{Bucket: b, Key: aws.String("k"), UploadId: aws.String("0036000000000000000000000A"), PartNumber: aws.Int32(1), Body: bytes.NewReader([]byte("x"))})
	wantCode(t, err, "NoSuchUpload", 404)

	lp := must[*s3.ListPartsOutput](t)(c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId, MaxParts: aws.Int32(2)}))
	if len(lp.Parts) != 2 || !aws.ToBool(lp.IsTruncated) || aws.ToString(lp.NextPartNumberMarker) != "2" {
		t.Fatalf("list parts: %d truncated=%v next=%v", len(lp.Parts), aws.ToBool(lp.IsTruncated), aws.ToString(lp.NextPartNumberMarker))
	}
	lp = must[*s3.ListPartsOutput](t)(c.ListParts(ctx, &s3.ListPartsInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId, PartNumberMarker: lp.NextPartNumberMarker}))
	if len(lp.Parts) != 1 || aws.ToInt32(lp.Parts[0].PartNumber) != 3 {
		t.Fatalf("list parts page 2: %+v", lp.Parts)
	}
	for _, k := range []string{"a/1", "a/2", "b"} {
		must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(k)}))
	}
	lu := must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b, Delimiter: aws.String("/")}))
	if len(lu.Uploads) != 2 || len(lu.CommonPrefixes) != 1 {
		t.Fatalf("list uploads: %d uploads, %d prefixes", len(lu.Uploads), len(lu.CommonPrefixes))
	}
	lu = must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b, MaxUploads: aws.Int32(2)}))
	if len(lu.Uploads) != 2 || !aws.ToBool(lu.IsTruncated) {
		t.Fatalf("paged uploads: %d", len(lu.Uploads))
	}
	lu = must[*s3.ListMultipartUploadsOutput](t)(c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: b, KeyMarker: lu.NextKeyMarker, UploadIdMarker: lu.NextUploadIdMarker}))
	if len(lu.Uploads) != 2 {
		t.Fatalf("second page of uploads: %d", len(lu.Uploads))
	}
	_, err = c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: b})
	wantCode(t, err, "BucketNotEmpty", 409)
	must[*s3.AbortMultipartUploadOutput](t)(c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId}))
	_, err = c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String("k"), UploadId: cr.UploadId})
	wantCode(t, err, "NoSuchUpload", 404)
	wantCode(t, complete(parts...), "NoSuchUpload", 404)
}

func TestMultipartChecksums(t *testing.T) {
	r := servertest.Start(t, servertest.Options{TLS: true})
	c := r.Client(t)
	createBucket(t, c, "mpck")
	data := randomBytes(5<<20 + 77)
	for _, alg := range []types.ChecksumAlgorithm{types.ChecksumAlgorithmCrc32, types.ChecksumAlgorithmSha256} {
		done, _, _ := multipartUpload(t, c, "mpck", "ck-"+string(alg), data, 5<<20, alg)
		head := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("mpck"), Key: aws.String("ck-" + string(alg)), ChecksumMode: types.ChecksumModeEnabled}))
		switch alg {
		case types.ChecksumAlgorithmCrc32:
			if aws.ToString(done.ChecksumCRC32) == "" || aws.ToString(head.ChecksumCRC32) != aws.ToString(done.ChecksumCRC32) {
				t.Fatalf("crc32: complete %q head %q", aws.ToString(done.ChecksumCRC32), aws.ToString(head.ChecksumCRC32))
			}
		case types.ChecksumAlgorithmSha256:
			if s := aws.ToString(done.ChecksumSHA256); len(s) < 3 || s[len(s)-2:] != "-2" || done.ChecksumType != types.ChecksumTypeComposite {
				t.Fatalf("sha256 composite: %q %q", s, done.ChecksumType)
			}
		}
		if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("mpck"), Key: aws.String("ck-" + string(alg))}); got != string(data) {
			t.Fatal("content differs")
		}
	}
}

// TestAWSCLIMultipartCopy: aws s3 cp of a 100 MiB file goes up in parts and
// comes back identical.
func TestAWSCLIMultipartCopy(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	cli := servertest.AWSCLI(t, r)
	dir := t.TempDir()
	src := filepath.Join(dir, "big.bin")
	data := randomBytes(100 << 20)
	if err := os.WriteFile(src, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cli.Run("s3api", "create-bucket", "--bucket", "cli-mp", "--create-bucket-configuration", "LocationConstraint=us-west-2")
	cli.Run("s3", "cp", src, "s3://cli-mp/big.bin")
	head := cli.Run("s3api", "head-object", "--bucket", "cli-mp", "--key", "big.bin")
	if etag, _ := head["ETag"].(string); len(etag) < 4 || etag[len(etag)-4:] != `-13"` {
		t.Fatalf("100 MiB in 8 MiB parts should have a 13-part ETag, got %v", head["ETag"])
	}
	back := filepath.Join(dir, "back.bin")
	cli.Run("s3", "cp", "s3://cli-mp/big.bin", back)
	want := sha256.Sum256(data)
	f, err := os.Open(back)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	_, _ = io.Copy(h, f)
	if hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want[:]) {
		t.Fatal("100 MiB round trip through aws s3 cp differs")
	}
}

// TestBoto3TransferManager uploads with boto3's upload_file (multipart with
// its default checksums) and downloads with download_file.
func TestBoto3TransferManager(t *testing.T) {
	python := servertest.RequireTool(t, "python3")
	if err := exec.Command(python, "-c", "import boto3").Run(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("boto3 is required under CI=true")
		}
		t.Skip("boto3 not installed")
	}
	r := servertest.Start(t, servertest.Options{TLS: true})
	dir := t.TempDir()
	src := filepath.Join(dir, "src.bin")
	if err := os.WriteFile(src, randomBytes(30<<20+5), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `
import boto3, hashlib, sys
from boto3.s3.transfer import TransferConfig
endpoint, ca, src, dst = sys.argv[1:5]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-west-2", verify=ca,
    aws_access_key_id="` + servertest.AccessKey + `", aws_secret_access_key="` + servertest.SecretKey + `")
s3.create_bucket(Bucket="boto", CreateBucketConfiguration={"LocationConstraint": "us-west-2"})
cfg = TransferConfig(multipart_threshold=8*1024*1024, multipart_chunksize=8*1024*1024)
s3.upload_file(src, "boto", "big.bin", Config=cfg)
head = s3.head_object(Bucket="boto", Key="big.bin", ChecksumMode="ENABLED")
assert head["ETag"].endswith('-4"'), head["ETag"]
s3.download_file("boto", "big.bin", dst, Config=cfg)
a = hashlib.sha256(open(src, "rb").read()).hexdigest()
b = hashlib.sha256(open(dst, "rb").read()).hexdigest()
assert a == b, (a, b)
print("ok", head["ETag"], {k: v for k, v in head.items() if k.startswith("Checksum")})
`
	out, err := exec.Command(python, "-c", script, r.URL(), r.CAFile, src, filepath.Join(dir, "dst.bin")).CombinedOutput()
	if err != nil {
		t.Fatalf("boto3: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}

func TestUploadPartCopy(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	createBucket(t, c, "pcsrc")
	createBucket(t, c, "pcdst")
	setVersioning(t, c, "pcsrc", "Enabled")
	src := randomBytes(6<<20 + 10)
	old := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("pcsrc"), Key: aws.String("src"), Body: bytes.NewReader(src)}))
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("pcsrc"), Key: aws.String("src"), Body: bytes.NewReader([]byte("newer"))}))
	cr := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("pcdst"), Key: aws.String("assembled")}))
	copyPart := func(n int32, rng string) (*s3.UploadPartCopyOutput, error) {
		in := &s3.UploadPartCopyInput{Bucket: aws.String("pcdst"), Key: aws.String("assembled"), UploadId: cr.UploadId, PartNumber: aws.Int32(n),
			CopySource: aws.String("pcsrc/src?versionId=" + aws.ToString(old.VersionId))}
		if rng != "" {
			in.CopySourceRange = aws.String(rng)
		}
		return c.UploadPartCopy(ctx, in)
	}
	p1 := must[*s3.UploadPartCopyOutput](t)(copyPart(1, "bytes=0-5242879"))
	p2 := must[*s3.UploadPartCopyOutput](t)(copyPart(2, fmt.Sprintf("bytes=5242880-%d", len(src)-1)))
	if aws.ToString(p1.CopySourceVersionId) != aws.ToString(old.VersionId) {
		t.Fatalf("copy source version %q", aws.ToString(p1.CopySourceVersionId))
	}
	_, err := copyPart(3, fmt.Sprintf("bytes=0-%d", len(src)))
	wantCode(t, err, "InvalidRange", 416)
	_, err = copyPart(3, "bytes=5-")
	wantCode(t, err, "InvalidArgument", 400)
	must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String("pcdst"), Key: aws.String("assembled"), UploadId: cr.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{
			{PartNumber: aws.Int32(1), ETag: p1.CopyPartResult.ETag}, {PartNumber: aws.Int32(2), ETag: p2.CopyPartResult.ETag},
		}},
	}))
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String("pcdst"), Key: aws.String("assembled")}); got != string(src) {
		t.Fatal("assembled object differs from the copied version")
	}
}
