package s3api_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// onePartUpload starts an upload of key and uploads data as its only part.
func onePartUpload(t *testing.T, c *s3.Client, bucket, key, data string) (*string, []types.CompletedPart) {
	t.Helper()
	cr := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)}))
	p := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{
		Bucket: aws.String(bucket), Key: aws.String(key), UploadId: cr.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader(data),
	}))
	return cr.UploadId, []types.CompletedPart{{PartNumber: aws.Int32(1), ETag: p.ETag}}
}

func TestConditionalWrites(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	for _, mode := range versioningModes {
		t.Run("versioning="+string(mode), func(t *testing.T) {
			bucket := "cond-" + strings.ToLower(string(mode))
			if mode == "" {
				bucket += "none"
			}
			bucketIn(t, c, bucket, mode)
			b, k := aws.String(bucket), aws.String("obj")
			putIf := func(data string, in *s3.PutObjectInput) (*s3.PutObjectOutput, error) {
				in.Bucket, in.Key, in.Body = b, k, strings.NewReader(data)
				return c.PutObject(ctx, in)
			}
			read := func() string {
				body, _ := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k})
				return body
			}

			_, err := putIf("x", &s3.PutObjectInput{IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
			wantCode(t, err, "NoSuchKey", 404)
			first := must[*s3.PutObjectOutput](t)(putIf("first", &s3.PutObjectInput{IfNoneMatch: aws.String("*")}))
			_, err = putIf("second", &s3.PutObjectInput{IfNoneMatch: aws.String("*")})
			wantCode(t, err, "PreconditionFailed", 412)
			_, err = putIf("second", &s3.PutObjectInput{IfMatch: aws.String(`"0123456789abcdef0123456789abcdef"`)})
			wantCode(t, err, "PreconditionFailed", 412)
			_, err = putIf("second", &s3.PutObjectInput{IfNoneMatch: first.ETag})
			wantCode(t, err, "NotImplemented", 501)
			if got := read(); got != "first" {
				t.Fatalf("refused writes changed the object: %q", got)
			}
			second := must[*s3.PutObjectOutput](t)(putIf("second", &s3.PutObjectInput{IfMatch: first.ETag}))
			if got := read(); got != "second" {
				t.Fatalf("content %q", got)
			}

			// CompleteMultipartUpload: refused while the key exists, the
			// upload left to complete under a condition that holds.
			upload, parts := onePartUpload(t, c, bucket, "obj", "multipart")
			complete := func(in *s3.CompleteMultipartUploadInput) error {
				in.Bucket, in.Key, in.UploadId = b, k, upload
				in.MultipartUpload = &types.CompletedMultipartUpload{Parts: parts}
				_, err := c.CompleteMultipartUpload(ctx, in)
				return err
			}
			wantCode(t, complete(&s3.CompleteMultipartUploadInput{IfNoneMatch: aws.String("*")}), "PreconditionFailed", 412)
			wantCode(t, complete(&s3.CompleteMultipartUploadInput{IfMatch: first.ETag}), "PreconditionFailed", 412)
			if err := complete(&s3.CompleteMultipartUploadInput{IfMatch: second.ETag}); err != nil {
				t.Fatal(err)
			}
			if got := read(); got != "multipart" {
				t.Fatalf("content %q", got)
			}

			// CopyObject's destination.
			src := source(bucket, "obj", "")
			_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: k, CopySource: src, IfNoneMatch: aws.String("*"), MetadataDirective: types.MetadataDirectiveReplace})
			wantCode(t, err, "PreconditionFailed", 412)
			must[*s3.CopyObjectOutput](t)(c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: src, IfNoneMatch: aws.String("*")}))
			_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: b, Key: aws.String("copy"), CopySource: src, IfNoneMatch: aws.String("*")})
			wantCode(t, err, "PreconditionFailed", 412)

			// After a delete (a delete marker where versioning is on) the
			// key has no current object.
			must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: b, Key: k}))
			_, err = putIf("x", &s3.PutObjectInput{IfMatch: second.ETag})
			wantCode(t, err, "NoSuchKey", 404)
			must[*s3.PutObjectOutput](t)(putIf("reborn", &s3.PutObjectInput{IfNoneMatch: aws.String("*")}))
			if got := read(); got != "reborn" {
				t.Fatalf("content %q", got)
			}
		})
	}
}

// TestConditionalPutRace has 16 clients create the same key at once with
// If-None-Match: exactly one wins, and its data is what is stored.
func TestConditionalPutRace(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	for _, mode := range versioningModes {
		bucket := "race-" + strings.ToLower(string(mode)) + "x"
		bucketIn(t, c, bucket, mode)
		const writers = 16
		var wg sync.WaitGroup
		errs := make([]error, writers)
		start := make(chan struct{})
		for i := range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				_, errs[i] = c.PutObject(ctx, &s3.PutObjectInput{
					Bucket: aws.String(bucket), Key: aws.String("claim"),
					Body: strings.NewReader(fmt.Sprintf("writer %d", i)), IfNoneMatch: aws.String("*"),
				})
			}()
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, err := range errs {
			if err == nil {
				if winner >= 0 {
					t.Fatalf("%s: writers %d and %d both won", mode, winner, i)
				}
				winner = i
				continue
			}
			wantCode(t, err, "PreconditionFailed", 412)
		}
		if winner < 0 {
			t.Fatalf("%s: no writer won", mode)
		}
		if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("claim")}); got != fmt.Sprintf("writer %d", winner) {
			t.Fatalf("%s: stored %q, winner %d", mode, got, winner)
		}
	}
}

// TestCompareAndSwap has 8 clients increment one counter 10 times each,
// reading it and writing it back under If-Match, retrying when another
// write came first. No increment is lost.
func TestCompareAndSwap(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	bucketIn(t, c, "counter", types.BucketVersioningStatusEnabled)
	b, k := aws.String("counter"), aws.String("n")
	must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader("0")}))
	const workers, increments = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for done := 0; done < increments; {
				out, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: k})
				if err != nil {
					errs <- err
					return
				}
				var n int
				_, err = fmt.Fscan(out.Body, &n)
				out.Body.Close()
				if err != nil {
					errs <- err
					return
				}
				// The value only grows, so an ETag never comes back and
				// If-Match cannot be fooled by an old value returning.
				_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: b, Key: k, Body: strings.NewReader(strconv.Itoa(n + 1)), IfMatch: out.ETag})
				if code, _ := apiCode(err); code == "PreconditionFailed" {
					continue
				}
				if err != nil {
					errs <- err
					return
				}
				done++
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got, _ := getBody(t, c, &s3.GetObjectInput{Bucket: b, Key: k}); got != strconv.Itoa(workers*increments) {
		t.Fatalf("counter %s, want %d", got, workers*increments)
	}
	versions := must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: b}))
	if len(versions.Versions) != workers*increments+1 {
		t.Fatalf("%d versions, want one per successful write (%d)", len(versions.Versions), workers*increments+1)
	}
}
