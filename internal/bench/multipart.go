package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// In multipart mode an op moves one whole object the way transfer tools
// do: the upload's parts, or the download's ranges, go in parallel over
// `parallel` connections.

// forEachPart runs fn for every part of an object of size bytes with at
// most parallel calls at once, and returns the first error.
func forEachPart(ctx context.Context, size, partSize int64, parallel int, fn func(ctx context.Context, n int32, off, length int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type part struct {
		n           int32
		off, length int64
	}
	work := make(chan part)
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
	)
	for i := 0; i < parallel; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				if err := fn(ctx, p.n, p.off, p.length); err != nil {
					once.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	n := int32(1)
	for off := int64(0); off < size || (size == 0 && n == 1); off, n = off+partSize, n+1 {
		select {
		case work <- part{n, off, min(partSize, size-off)}:
		case <-ctx.Done():
		}
		if size == 0 {
			break
		}
	}
	close(work)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// multipartPutOp uploads the payload as one multipart object.
func multipartPutOp(client *s3.Client, bucket string, payload []byte, partSize int64, parallel int) opFunc {
	b := aws.String(bucket)
	return func(ctx context.Context, key string) error {
		cr, err := client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: b, Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("create upload %s: %w", key, err)
		}
		count := (int64(len(payload)) + partSize - 1) / partSize
		parts := make([]types.CompletedPart, max(count, 1))
		err = forEachPart(ctx, int64(len(payload)), partSize, parallel, func(ctx context.Context, n int32, off, length int64) error {
			out, err := client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: b, Key: aws.String(key), UploadId: cr.UploadId, PartNumber: aws.Int32(n),
				Body: bytes.NewReader(payload[off : off+length]), ContentLength: aws.Int64(length),
			})
			if err != nil {
				return fmt.Errorf("upload part %d of %s: %w", n, key, err)
			}
			parts[n-1] = types.CompletedPart{PartNumber: aws.Int32(n), ETag: out.ETag}
			return nil
		})
		if err != nil {
			_, _ = client.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: b, Key: aws.String(key), UploadId: cr.UploadId})
			return err
		}
		_, err = client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
			Bucket: b, Key: aws.String(key), UploadId: cr.UploadId,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		})
		if err != nil {
			return fmt.Errorf("complete upload %s: %w", key, err)
		}
		return nil
	}
}

// rangedGetOp downloads an object as parallel ranged GETs of partSize.
func rangedGetOp(client *s3.Client, bucket string, size, partSize int64, parallel int) opFunc {
	b := aws.String(bucket)
	return func(ctx context.Context, key string) error {
		return forEachPart(ctx, size, partSize, parallel, func(ctx context.Context, n int32, off, length int64) error {
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: b, Key: aws.String(key), Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+length-1))})
			if err != nil {
				return fmt.Errorf("get %s range %d: %w", key, off, err)
			}
			got, err := io.Copy(io.Discard, out.Body)
			out.Body.Close()
			if err != nil || got != length {
				return fmt.Errorf("get %s range %d: %d of %d bytes: %v", key, off, got, length, err)
			}
			return nil
		})
	}
}
