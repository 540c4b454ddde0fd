// Package s3 stores blobs as objects of a bucket on any S3-compatible
// endpoint: AWS S3, another Bulwark region, MinIO, Ceph RGW. Several
// processes may share one bucket and prefix.
//
// A blob is the object <prefix><id>. Write-once is the endpoint's: every
// write is conditional (If-None-Match: *, on PutObject and on
// CompleteMultipartUpload), which AWS S3 and Bulwark evaluate atomically, so
// of two writers of one ID exactly one wins, and an object appears only
// whole. An endpoint that ignores the condition breaks write-once; one that
// refuses it (501) cannot be used. Blobs up to Config.PartSize go in one
// PutObject; larger ones in a multipart upload of parts of that size, one
// buffer per Create in flight.
//
// Every write carries a nonce in its metadata, so that a write the SDK
// retried after a lost reply, which then fails its own condition, is
// recognised as done; and a Create that fails after sending removes the
// object only if the nonce says it wrote it.
//
// Reads are ranged GETs bound to the ETag seen at Open: a sequential reader
// is served from one streaming GET, a jump in position starts another, and
// ReadAt away from the stream asks for exactly the bytes it wants. Nothing
// downloads a blob to read part of it. Retries are the SDK's.
//
// Info.ModTime is the object's LastModified, which the endpoint sets when
// the write completes (AWS may give a multipart upload the time it began): either is
// after the Create started, by the endpoint's clock.
//
// The bucket should not have versioning on: Delete would leave the data as a
// noncurrent version. Parts of an upload whose abort failed stay until the
// endpoint expires them (a lifecycle rule with
// AbortIncompleteMultipartUpload on AWS; Bulwark aborts them after its
// upload expiry).
package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/bulwark/bulwark/internal/blob"
)

// DefaultPartSize is the largest blob written in one PutObject, and the
// part size of larger ones.
const DefaultPartSize = 8 << 20

// nonceKey is the user metadata that names the Create that wrote a blob.
const nonceKey = "bulwark-writer"

// Config says where the blobs are and how to reach them.
type Config struct {
	Bucket string
	// Prefix is put before every blob ID; a "/" is added if it lacks one.
	Prefix string
	// Endpoint is the S3 endpoint's URL; empty means AWS's for Region.
	Endpoint string
	Region   string
	// AccessKey and SecretKey (and SessionToken) sign requests; empty
	// takes AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN
	// from the environment.
	AccessKey, SecretKey, SessionToken string
	// VirtualHosted addresses the bucket as a host name rather than in the
	// path; path style is what most S3-compatible endpoints expect.
	VirtualHosted bool
	// PartSize overrides DefaultPartSize; S3 needs at least 5 MiB.
	PartSize int64
	// HTTPClient, when set, carries the requests (a custom CA, a proxy).
	HTTPClient *http.Client
}

// Store is a blob.Store over one bucket and prefix.
type Store struct {
	client   *awss3.Client
	bucket   string
	prefix   string
	partSize int64
	bufs     sync.Pool // *[]byte of partSize
}

// Open returns a store over cfg's bucket after checking that it can be
// reached.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("open s3 blob store: no bucket")
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	ak, sk, tok := cfg.AccessKey, cfg.SecretKey, cfg.SessionToken
	if ak == "" {
		ak, sk, tok = envCredentials()
	}
	if ak == "" || sk == "" {
		return nil, fmt.Errorf("open s3 blob store %q: no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)", cfg.Bucket)
	}
	client := awss3.New(awss3.Options{
		Region:       cfg.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(ak, sk, tok),
		UsePathStyle: !cfg.VirtualHosted,
		HTTPClient:   httpClient(cfg.HTTPClient),
	}, func(o *awss3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
	})
	s := New(client, cfg.Bucket, cfg.Prefix, cfg.PartSize)
	if _, err := client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(cfg.Bucket)}); err != nil {
		return nil, fmt.Errorf("open s3 blob store %q: %w", cfg.Bucket, err)
	}
	return s, nil
}

// httpClient returns hc, or one whose pool keeps connections to the one
// endpoint a store talks to.
func httpClient(hc *http.Client) *http.Client {
	if hc != nil {
		return hc
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	return &http.Client{Transport: tr}
}

// New returns a store over a client that is already configured.
func New(client *awss3.Client, bucket, prefix string, partSize int64) *Store {
	if prefix != "" && !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	if partSize <= 0 {
		partSize = DefaultPartSize
	}
	s := &Store{client: client, bucket: bucket, prefix: prefix, partSize: partSize}
	s.bufs.New = func() any { b := make([]byte, partSize); return &b }
	return s
}

func (s *Store) key(id string) *string { return aws.String(s.prefix + id) }

// Create implements blob.Store.
func (s *Store) Create(ctx context.Context, id string, r io.Reader) (int64, error) {
	if err := blob.ValidateID(id); err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("create blob %s: %w", id, err)
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	r = blob.ContextReader(ctx, r)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return 0, fmt.Errorf("write blob %s: %w", id, err)
	}
	nonce := newNonce()
	if err == nil {
		// The buffer is full: one more byte says whether there is more.
		var one [1]byte
		k, err := io.ReadFull(r, one[:])
		if err != nil && err != io.EOF {
			return 0, fmt.Errorf("write blob %s: %w", id, err)
		}
		if k == 0 {
			return s.put(ctx, id, nonce, buf)
		}
		size, err := s.multipart(ctx, id, nonce, buf, io.MultiReader(bytes.NewReader(one[:]), r))
		if err != nil {
			return 0, s.failed(ctx, id, nonce, err)
		}
		return size, nil
	}
	return s.put(ctx, id, nonce, buf[:n])
}

// put writes data in one conditional PutObject.
func (s *Store) put(ctx context.Context, id, nonce string, data []byte) (int64, error) {
	_, err := s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket: aws.String(s.bucket), Key: s.key(id), Body: bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))), IfNoneMatch: aws.String("*"),
		Metadata: map[string]string{nonceKey: nonce},
	})
	if err != nil {
		return 0, s.failed(ctx, id, nonce, err)
	}
	return int64(len(data)), nil
}

// failed turns the error of a write into Create's. A failed condition is
// ErrExists unless the object is this Create's own (a retried request
// whose first try succeeded); any other failure removes the object if this
// Create wrote it, since the request may have succeeded after all.
func (s *Store) failed(ctx context.Context, id, nonce string, err error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	mine := func() bool {
		h, herr := s.client.HeadObject(cctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)})
		return herr == nil && h.Metadata[nonceKey] == nonce
	}
	if status(err) == http.StatusPreconditionFailed {
		if mine() {
			return nil
		}
		return fmt.Errorf("create blob %s: %w", id, blob.ErrExists)
	}
	if mine() {
		_, _ = s.client.DeleteObject(cctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)})
	}
	return fmt.Errorf("write blob %s: %w", id, err)
}

// multipart uploads first and the rest of r as one multipart upload,
// completed only if the key is still free.
func (s *Store) multipart(ctx context.Context, id, nonce string, first []byte, r io.Reader) (int64, error) {
	up, err := s.client.CreateMultipartUpload(ctx, &awss3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: s.key(id), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		Metadata: map[string]string{nonceKey: nonce},
	})
	if err != nil {
		return 0, err
	}
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		_, _ = s.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
			Bucket: aws.String(s.bucket), Key: s.key(id), UploadId: up.UploadId,
		})
	}
	var parts []types.CompletedPart
	var size int64
	buf, n := first, len(first)
	for num := int32(1); n > 0; num++ {
		out, err := s.client.UploadPart(ctx, &awss3.UploadPartInput{
			Bucket: aws.String(s.bucket), Key: s.key(id), UploadId: up.UploadId, PartNumber: aws.Int32(num),
			Body: bytes.NewReader(buf[:n]), ContentLength: aws.Int64(int64(n)),
			ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
		})
		if err != nil {
			abort()
			return 0, err
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
		size += int64(n)
		n, err = io.ReadFull(r, buf)
		if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			abort()
			return 0, err
		}
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &awss3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.bucket), Key: s.key(id), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfNoneMatch: aws.String("*"),
	})
	if err != nil {
		abort()
		return 0, err
	}
	return size, nil
}

// Open implements blob.Store.
func (s *Store) Open(ctx context.Context, id string) (blob.Object, error) {
	if err := blob.ValidateID(id); err != nil {
		return nil, err
	}
	h, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)})
	if err != nil {
		return nil, fmt.Errorf("open blob %s: %w", id, kind(err))
	}
	return &object{ctx: ctx, s: s, id: id, size: aws.ToInt64(h.ContentLength), etag: aws.ToString(h.ETag)}, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := blob.ValidateID(id); err != nil {
		return err
	}
	_, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: s.key(id)})
	if err != nil && !errors.Is(kind(err), blob.ErrNotFound) {
		return fmt.Errorf("delete blob %s: %w", id, err)
	}
	return nil
}

// Walk implements blob.Store. Keys under the prefix that are not blob IDs
// (another "directory", a stray file) are skipped.
func (s *Store) Walk(ctx context.Context, fn func(blob.Info) error) error {
	pages := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix), Delimiter: aws.String("/"),
	})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("walk blobs: %w", err)
		}
		for _, o := range page.Contents {
			id := strings.TrimPrefix(aws.ToString(o.Key), s.prefix)
			if blob.ValidateID(id) != nil {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("walk blobs: %w", err)
			}
			if err := fn(blob.Info{ID: id, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// status returns the HTTP status of an API error, or 0.
func status(err error) int {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// kind adds blob.ErrNotFound to an error that says the object is missing.
func kind(err error) error {
	var ae smithy.APIError
	if status(err) == http.StatusNotFound || (errors.As(err, &ae) && ae.ErrorCode() == "NoSuchKey") {
		return fmt.Errorf("%w: %w", blob.ErrNotFound, err)
	}
	return err
}

func newNonce() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func envCredentials() (ak, sk, token string) {
	return os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")
}
