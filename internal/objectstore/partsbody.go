package objectstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/bulwark/bulwark/internal/blob"
)

// partsBody reads a multipart object's parts as one stream, opening each
// part's blob when it is first needed.
type partsBody struct {
	ctx    context.Context
	blobs  blob.Store
	parts  []PartRef
	starts []int64 // offset of each part
	size   int64
	off    int64
	// mu guards open: a response's body may be closed (the request
	// cancelled) while another goroutine still reads it.
	mu   sync.Mutex
	open map[int]blob.Object // nil once closed
}

func newPartsBody(ctx context.Context, blobs blob.Store, parts []PartRef) *partsBody {
	b := &partsBody{ctx: ctx, blobs: blobs, parts: parts, starts: make([]int64, len(parts)), open: map[int]blob.Object{}}
	for i, p := range parts {
		b.starts[i] = b.size
		b.size += p.Size
	}
	return b
}

func (b *partsBody) Size() int64 { return b.size }

func (b *partsBody) Read(p []byte) (int, error) {
	n, err := b.ReadAt(p, b.off)
	b.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

func (b *partsBody) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += b.off
	case io.SeekEnd:
		offset += b.size
	}
	if offset < 0 {
		return 0, errors.New("seek before start")
	}
	b.off = offset
	return offset, nil
}

// ReadAt reads from the part holding off, and on into the next ones.
func (b *partsBody) ReadAt(p []byte, off int64) (int, error) {
	total := 0
	for len(p) > 0 {
		if off >= b.size {
			return total, io.EOF
		}
		i := b.partAt(off)
		obj, err := b.object(i)
		if err != nil {
			return total, err
		}
		within := off - b.starts[i]
		want := min(int64(len(p)), b.parts[i].Size-within)
		n, err := obj.ReadAt(p[:want], within)
		total += n
		off += int64(n)
		p = p[n:]
		if err != nil && !(err == io.EOF && int64(n) == want) {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return total, fmt.Errorf("read part %d: %w", b.parts[i].Number, err)
		}
	}
	return total, nil
}

func (b *partsBody) partAt(off int64) int {
	lo, hi := 0, len(b.starts)-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if b.starts[mid] <= off {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	// Skip empty parts, which hold no offset.
	for lo < len(b.parts)-1 && b.parts[lo].Size == 0 {
		lo++
	}
	return lo
}

func (b *partsBody) object(i int) (blob.Object, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.open == nil {
		return nil, os.ErrClosed
	}
	if o, ok := b.open[i]; ok {
		return o, nil
	}
	o, err := b.blobs.Open(b.ctx, b.parts[i].BlobID)
	if err != nil {
		return nil, err
	}
	b.open[i] = o
	return o, nil
}

func (b *partsBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, o := range b.open {
		errs = append(errs, o.Close())
	}
	b.open = nil
	return errors.Join(errs...)
}
