package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// object reads a blob with ranged GETs, each bound to the ETag Open saw so
// that a blob deleted meanwhile reads as an error, never as other bytes.
type object struct {
	ctx  context.Context
	s    *Store
	id   string
	size int64
	etag string

	mu     sync.Mutex
	pos    int64         // Read and Seek's position
	stream io.ReadCloser // an open GET from streamAt to the end, or nil
	at     int64         // where stream is
	last   int64         // where the last ReadAt ended
}

func (o *object) Size() int64 { return o.size }

// get starts a GET of the bytes [from, to].
func (o *object) get(from, to int64) (io.ReadCloser, error) {
	out, err := o.s.client.GetObject(o.ctx, &awss3.GetObjectInput{
		Bucket: aws.String(o.s.bucket), Key: o.s.key(o.id), IfMatch: aws.String(o.etag),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", from, to)),
	})
	if err != nil {
		if status(err) == http.StatusPreconditionFailed {
			return nil, fmt.Errorf("read blob %s: replaced since it was opened: %w", o.id, err)
		}
		return nil, fmt.Errorf("read blob %s: %w", o.id, kind(err))
	}
	return out.Body, nil
}

// fromStream reads len(p) bytes (fewer at the end) at off from the
// streaming GET, starting one at off if none is there. o.mu is held.
func (o *object) fromStream(p []byte, off int64) (int, error) {
	if o.stream != nil && o.at != off {
		o.stream.Close()
		o.stream = nil
	}
	if o.stream == nil {
		rc, err := o.get(off, o.size-1)
		if err != nil {
			return 0, err
		}
		o.stream, o.at = rc, off
	}
	want := min(int64(len(p)), o.size-off)
	n, err := io.ReadFull(o.stream, p[:want])
	o.at += int64(n)
	if err != nil {
		o.stream.Close()
		o.stream = nil
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF // the blob is shorter than HEAD said
		}
		return n, fmt.Errorf("read blob %s: %w", o.id, err)
	}
	return n, nil
}

func (o *object) Read(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.pos >= o.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := o.fromStream(p, o.pos)
	o.pos += int64(n)
	return n, err
}

func (o *object) Seek(offset int64, whence int) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += o.pos
	case io.SeekEnd:
		offset += o.size
	default:
		return 0, fmt.Errorf("seek blob %s: whence %d", o.id, whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("seek blob %s: offset %d before the start", o.id, offset)
	}
	o.pos = offset
	return offset, nil
}

// ReadAt serves a caller that reads on from where its last ReadAt ended
// (a part of a multipart object read through) from the streaming GET, and
// any other read with a GET of just the bytes it wants. Parallel calls are
// allowed; those that use the stream take turns.
func (o *object) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read blob %s: negative offset %d", o.id, off)
	}
	if off >= o.size {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	want := min(int64(len(p)), o.size-off)
	var n int
	var err error
	o.mu.Lock()
	if off == o.last || (o.stream != nil && off == o.at) {
		n, err = o.fromStream(p[:want], off)
		o.last = off + int64(n)
		o.mu.Unlock()
	} else {
		o.last = off + want
		o.mu.Unlock()
		n, err = o.exact(p[:want], off)
	}
	if err == nil && int64(n) < int64(len(p)) {
		err = io.EOF
	}
	return n, err
}

// exact reads len(p) bytes at off with a GET of its own.
func (o *object) exact(p []byte, off int64) (int, error) {
	rc, err := o.get(off, off+int64(len(p))-1)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, p)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, fmt.Errorf("read blob %s: %w", o.id, err)
	}
	return n, nil
}

func (o *object) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.stream != nil {
		o.stream.Close()
		o.stream = nil
	}
	return nil
}
