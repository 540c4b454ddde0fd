// Package meta defines Bulwark's metadata store: an ordered key-value store
// with serializable, durable transactions, divided into named keyspaces.
//
// Everything a region knows about its objects (buckets, versions, the change
// feed, later multipart uploads, IAM and the backup catalog) is encoded by the
// domain packages into keys and values of this store. Keeping the interface at
// the key-value level lets one conformance suite (package metatest) prove
// every implementation, and lets the domain keep multi-record invariants
// (a version and its change record) inside one transaction.
package meta

import (
	"context"
	"errors"
)

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("meta: store closed")

// ErrReadOnly is returned when a write is attempted in a View transaction.
var ErrReadOnly = errors.New("meta: read-only transaction")

// Store is a transactional ordered key-value store.
//
// Update is the only way to write. When Update returns nil, the transaction's
// writes are durable on stable storage: a crash afterwards cannot lose them.
// Implementations group concurrent Updates into one durable commit (group
// commit), so fn may be called more than once and must not have effects
// outside the transaction it is given; when fn returns an error, none of its
// writes are kept and Update returns that error unchanged.
type Store interface {
	// View runs fn in a read-only, consistent snapshot.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write serializable transaction and commits it durably.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close waits for pending commits and releases the store.
	Close() error
}

// Checker is a Store that can check its own structure on disk (pages,
// free lists, key order): the scrubber runs it on every full pass.
type Checker interface {
	// Check reads the whole store in a consistent snapshot and returns
	// what is wrong with it, nil when nothing is.
	Check(ctx context.Context) error
}

// Tx is a transaction. Byte slices returned by Get and by iterators are valid
// only until the transaction ends; callers copy what they keep. Keys are
// non-empty; keyspaces are created on first write.
type Tx interface {
	// Get returns the value stored at key, or nil if there is none.
	Get(space string, key []byte) []byte
	// Put stores value at key, replacing any previous value.
	Put(space string, key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(space string, key []byte) error
	// Iter returns an iterator over space in ascending key order.
	Iter(space string) Iterator
	// NextSeq returns the next value of the keyspace's sequence, starting at 1.
	// Sequence values are never reused, even after the keys using them are deleted.
	NextSeq(space string) (uint64, error)
}

// Iterator walks a keyspace in key order. Each positioning method returns the
// key and value it lands on, or a nil key when it runs off the end.
type Iterator interface {
	First() (key, value []byte)
	Last() (key, value []byte)
	// Seek moves to the first key >= key.
	Seek(key []byte) (k, v []byte)
	Next() (key, value []byte)
	Prev() (key, value []byte)
}
