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

// Store holds blobs. Implementations are safe for concurrent use.
type Store interface {
	// Create stores everything r yields under id and makes it durable. On
	// any error, including a read error from r, no blob is left under id.
	Create(ctx context.Context, id string, r io.Reader) (size int64, err error)
	// Open returns the blob's content.
	Open(ctx context.Context, id string) (Object, error)
	// Delete removes a blob; deleting a missing blob is not an error.
	Delete(ctx context.Context, id string) error
	// Walk calls fn for every blob, in no particular order.
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
