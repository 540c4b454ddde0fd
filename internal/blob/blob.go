// Package blob defines where object data lives: write-once blobs named by
// unique IDs that Bulwark generates, never by object key. A blob is durable
// before Create returns, so metadata that points to it may then be committed;
// a blob that no metadata points to (a crash between the two) is an orphan
// that the object store's sweeper removes.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

var (
	// ErrNotFound is returned for a blob that does not exist.
	ErrNotFound = errors.New("blob: not found")
	// ErrExists is returned by Create for an ID already in use.
	ErrExists = errors.New("blob: already exists")
	// ErrInvalidID is returned for an ID outside the allowed alphabet.
	ErrInvalidID = errors.New("blob: invalid id")
)

// Store holds blobs. Implementations are safe for concurrent use, also by
// several instances (processes) over the same storage: every guarantee
// below holds between instances as it does within one. blobtest checks
// each of them.
//
//   - Write-once. Create of an ID that exists fails with ErrExists and
//     leaves the existing blob as it was. Of several Creates of one ID
//     racing, from any instances, exactly one succeeds.
//   - Durable. When Create returns nil, the blob survives a crash of the
//     process and of the machine; metadata naming it may then commit.
//   - All or nothing. A blob becomes visible (Open, Walk) only once it is
//     complete. A Create that fails or whose context is cancelled leaves
//     nothing under the ID, except that a crash may leave a blob no
//     metadata names: an orphan, which the sweeper removes.
//   - Ages. Info.ModTime is not earlier than the start of the Create that
//     wrote the blob, as read from the storage's clock. The orphan sweeper
//     relies on it: a blob younger than its grace time may belong to a
//     write whose metadata is not committed yet.
//   - Errors. A missing blob is ErrNotFound (Open), a taken ID ErrExists
//     (Create), a malformed ID ErrInvalidID; anything else is transient or
//     a fault of the storage, and the caller may retry the whole call.
//   - Context. Every method stops with the context's error once it ends.
type Store interface {
	// Create stores everything r yields under id and makes it durable. On
	// any error, including a read error from r, no blob is left under id.
	Create(ctx context.Context, id string, r io.Reader) (size int64, err error)
	// Open returns the blob's content, which may be read in any order
	// (Read, Seek, ReadAt at any offset) until Close.
	Open(ctx context.Context, id string) (Object, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, id string) error
	// Walk calls fn for every blob, in no particular order. Every blob
	// complete before Walk starts and not deleted before it ends is seen
	// once; blobs created or deleted while it runs may or may not be.
	Walk(ctx context.Context, fn func(Info) error) error
}

// Object is an open blob.
type Object interface {
	io.ReadSeekCloser
	io.ReaderAt
	Size() int64
}

// Info describes a stored blob.
type Info struct {
	ID      string
	Size    int64
	ModTime time.Time
}

// ValidateID checks that id is 1–128 characters of [A-Za-z0-9_-], so that it
// is safe as a file name everywhere.
func ValidateID(id string) error {
	if len(id) == 0 || len(id) > 128 {
		return fmt.Errorf("%w: length %d", ErrInvalidID, len(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return fmt.Errorf("%w: %q", ErrInvalidID, id)
		}
	}
	return nil
}

// ContextReader reads r until ctx ends, then fails with ctx's error: a
// store's Create stops a long copy when the request that drives it goes
// away.
func ContextReader(ctx context.Context, r io.Reader) io.Reader { return ctxReader{ctx, r} }

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
