package sigv4

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/checksum"
)

// newS3Client points the SDK's real S3 client at ts, path-style.
func newS3Client(ts *testServer) *s3.Client {
	cfg := aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(testCred.AccessKey, testCred.Secret, ""),
		HTTPClient:  ts.Client(),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint = aws.String(ts.URL)
		o.UsePathStyle = true
	})
}

func realClock() *Verifier {
	return &Verifier{Lookup: testLookup, Regions: []string{"us-east-1"}}
}

// Over TLS the SDK sends checksummed uploads as aws-chunked bodies with the
// checksum in an unsigned trailer; the trailer must come through and match
// Bulwark's own computation for every algorithm.
func TestS3ClientPutObjectTrailers(t *testing.T) {
	ts := newTestServer(t, realClock(), true)
	client := newS3Client(ts)
	body := bytes.Repeat([]byte("bulwark trailer test "), 10000) // > 64 KiB: several chunks
	algs := map[checksum.Algorithm]types.ChecksumAlgorithm{
		checksum.CRC32:     types.ChecksumAlgorithmCrc32,
		checksum.CRC32C:    types.ChecksumAlgorithmCrc32c,
		checksum.SHA1:      types.ChecksumAlgorithmSha1,
		checksum.SHA256:    types.ChecksumAlgorithmSha256,
		checksum.CRC64NVME: types.ChecksumAlgorithmCrc64nvme,
	}
	for alg, sdkAlg := range algs {
		for _, bodyKind := range []string{"seekable", "stream"} {
			t.Run(string(alg)+"/"+bodyKind, func(t *testing.T) {
				var rd io.Reader = bytes.NewReader(body)
				if bodyKind == "stream" {
					rd = io.MultiReader(bytes.NewReader(body)) // hides Seek and Len
				}
				in := &s3.PutObjectInput{
					Bucket:            aws.String("bucket"),
					Key:               aws.String("trailer/a b+c/ü%2F~*'()!"),
					Body:              rd,
					ChecksumAlgorithm: sdkAlg,
				}
				if bodyKind == "stream" {
					in.ContentLength = aws.Int64(int64(len(body)))
				}
				_, err := client.PutObject(context.Background(), in)
				s := <-ts.seen
				if s.err != nil || s.bodyErr != nil {
					t.Fatalf("Verify: %v, body: %v", s.err, s.bodyErr)
				}
				if err != nil {
					t.Fatalf("PutObject: %v", err)
				}
				if !bytes.Equal(s.body, body) {
					t.Fatalf("body differs: %d bytes", len(s.body))
				}
				if !s.res.Chunked || s.res.PayloadHash != StreamingUnsignedPayloadTrailer {
					t.Fatalf("SDK used %q (chunked %v)", s.res.PayloadHash, s.res.Chunked)
				}
				{
					if got, want := s.trailer.Get(alg.HeaderName()), alg.Sum(body); got != want {
						t.Errorf("trailer %s = %q, want %q", alg.HeaderName(), got, want)
					}
					if s.res.DecodedLength != int64(len(body)) {
						t.Errorf("DecodedLength = %d", s.res.DecodedLength)
					}
					if len(s.res.DeclaredTrailers) != 1 || s.res.DeclaredTrailers[0] != alg.HeaderName() {
						t.Errorf("DeclaredTrailers = %v", s.res.DeclaredTrailers)
					}
				}
			})
		}
	}
}

// Over plain HTTP the SDK signs the payload hash instead.
func TestS3ClientPlainHTTP(t *testing.T) {
	ts := newTestServer(t, realClock(), false)
	ts.reply = func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("list-type") == "2" {
			w.Header().Set("Content-Type", "application/xml")
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>bucket</Name><KeyCount>0</KeyCount></ListBucketResult>`)
			return
		}
		if r.Method == http.MethodGet {
			io.WriteString(w, "object data")
		}
	}
	client := newS3Client(ts)
	ctx := context.Background()
	body := []byte("plain http body")
	key := "http/a b+c/ü%2F~*'()!&=;:@$,"

	_, err := client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("bucket"), Key: aws.String(key), Body: bytes.NewReader(body),
		Metadata: map[string]string{"Owner": "alice  and   bob"}, ContentType: aws.String("text/plain"),
	})
	s := <-ts.seen
	if s.err != nil || s.bodyErr != nil || err != nil {
		t.Fatalf("PutObject: Verify %v, body %v, client %v", s.err, s.bodyErr, err)
	}
	if !bytes.Equal(s.body, body) {
		t.Errorf("body = %q (payload hash %q)", s.body, s.res.PayloadHash)
	}
	if m, err := parsePayloadMode(s.res.PayloadHash); err != nil || m.kind != payloadSHA256 {
		t.Errorf("PutObject over HTTP sent x-amz-content-sha256 %q, want a hex sha256", s.res.PayloadHash)
	}

	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key), Range: aws.String("bytes=0-3")})
	if s := <-ts.seen; s.err != nil {
		t.Fatalf("GetObject: Verify %v", s.err)
	}
	if err != nil {
		t.Fatalf("GetObject: %v", err)
	}
	out.Body.Close()

	_, err = client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String("bucket"), Prefix: aws.String("a b+c/ü~*'()"), Delimiter: aws.String("/"),
		StartAfter: aws.String("x=y&z"),
	})
	if s := <-ts.seen; s.err != nil {
		t.Fatalf("ListObjectsV2: Verify %v (%s)", s.err, s.uri)
	}
	if err != nil {
		t.Fatalf("ListObjectsV2: %v", err)
	}

	_, err = client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String("bucket"),
		Delete: &types.Delete{Objects: []types.ObjectIdentifier{{Key: aws.String(key)}}},
	})
	if s := <-ts.seen; s.err != nil || s.bodyErr != nil {
		t.Fatalf("DeleteObjects: Verify %v, body %v", s.err, s.bodyErr)
	}
	_ = err // the empty reply is not a valid DeleteObjects response; only the request matters
}

func TestS3PresignClient(t *testing.T) {
	ts := newTestServer(t, realClock(), false)
	presign := s3.NewPresignClient(newS3Client(ts), s3.WithPresignExpires(5*time.Minute))
	ctx := context.Background()
	key := "presigned/a b+c/ü%2F~*'()!"

	get, err := presign.PresignGetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key)})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(get.Method, get.URL, nil)
	for k, v := range get.SignedHeader {
		if k != "Host" {
			req.Header[k] = v
		}
	}
	if s := ts.do(t, req); s.err != nil || !s.res.Presigned {
		t.Fatalf("presigned GET: %v", s.err)
	}

	put, err := presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bucket"), Key: aws.String(key), ContentType: aws.String("text/plain")})
	if err != nil {
		t.Fatal(err)
	}
	req, _ = http.NewRequest(put.Method, put.URL, strings.NewReader("uploaded"))
	for k, v := range put.SignedHeader {
		if k != "Host" {
			req.Header[k] = v
		}
	}
	s := ts.do(t, req)
	if s.err != nil || s.bodyErr != nil {
		t.Fatalf("presigned PUT: %v, body %v (signed headers %v)", s.err, s.bodyErr, put.SignedHeader)
	}
	if string(s.body) != "uploaded" {
		t.Errorf("body = %q", s.body)
	}
}
