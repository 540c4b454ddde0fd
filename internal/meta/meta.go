// Package meta defines Bulwark's metadata store: an ordered key-value store
// with serializable, durable transactions, divided into named keyspaces.
//
// Everything a region knows about its objects (buckets, versions, the change
// feed, multipart uploads, IAM and the backup catalog) is encoded by the
// domain packages into keys and values of this store. Keeping the interface at
// the key-value level lets one conformance suite (package metatest) prove
// every implementation, and lets the domain keep multi-record invariants
// (a version and its change record) inside one transaction.
//
// The interface is implemented by an embedded engine (package bolt) and by
// PostgreSQL (package pg), for a region served by several gateways over one
// database. The contract below is everything the rest of Bulwark relies on;
// an implementation that passes metatest keeps it.
//
// # Isolation
//
// Update transactions are serializable: the outcome of concurrent Updates is
// that of some serial order. A read-modify-write (read a counter, write it
// plus one; insert a key only if a range is empty) never loses a concurrent
// one. View sees a consistent snapshot of committed transactions: every write
// of a transaction or none of it, and nothing committed after the snapshot.
//
// # Sequences and the change feed
//
// NextSeq numbers records within a keyspace, and the change feed takes its
// positions from it inside the writing transaction. Its ordering guarantee is
// what lets a feed consumer keep a single cursor: once a transaction that drew
// n from NextSeq(space) is visible to a View, every transaction that drew a
// number below n from the same space has committed or rolled back. So a reader
// that has seen every record up to n never later sees a record below n commit.
// (A single-writer engine gets this for free; a database with concurrent
// commits must order them, see package pg.)
//
// # Errors from reads
//
// Get and iterators return no error, yet a networked store can fail in the
// middle of a transaction. Such a failure is sticky: the read returns nil (an
// iterator its end), the transaction records the error, every later operation
// of the transaction fails with it, and View or Update returns it whatever fn
// returned, an Update rolling back. So no decision made on a failed read is
// ever committed or returned as a result: the caller sees an error. Inside fn,
// Tx.Err reports the recorded error, for loops that want to stop early.
//
// # Cancellation and failure
//
// A ctx that ends before fn returns ends View or Update with ctx's error,
// and an Update so ended commits nothing. Once fn has returned nil, Update
// reports the commit's outcome. When the store goes away before the commit
// (a dropped connection, a database restart), Update returns an error and
// nothing of the transaction is kept. When it goes away during the commit,
// the outcome can be unknown: Update then returns an error wrapping
// ErrUnknownOutcome, and the transaction's writes may or may not be durable.
// A caller must not undo what the transaction would have made safe (delete a
// blob it references) on such an error: it leaves that to the sweepers,
// which look at what was committed.
package meta

import (
	"context"
	"errors"
)

// ErrClosed is returned by operations on a closed store.
var ErrClosed = errors.New("meta: store closed")

// ErrReadOnly is returned when a write is attempted in a View transaction.
var ErrReadOnly = errors.New("meta: read-only transaction")

// ErrUnavailable is wrapped by the error of a View or Update that could not
// reach the store (a database that is down, restarting or cut off): nothing
// of the transaction was kept, and the same call may succeed later.
var ErrUnavailable = errors.New("meta: store unavailable")

// ErrUnknownOutcome is wrapped by the error of an Update whose commit was
// sent but whose result never came back: the writes may or may not be
// durable.
var ErrUnknownOutcome = errors.New("meta: commit outcome unknown")

// Store is a transactional ordered key-value store.
//
// Update is the only way to write. When Update returns nil, the transaction's
// writes are durable on stable storage: a crash afterwards cannot lose them.
// fn may be called more than once (implementations group concurrent Updates
// into one commit, or retry a transaction that lost a conflict), so it must
// not have effects outside the transaction it is given; when fn returns an
// error, none of its writes are kept and Update returns that error unchanged,
// unless the transaction recorded a store error (see the package doc).
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
// non-empty; keyspaces are created on first write. A Tx is used by one
// goroutine at a time.
type Tx interface {
	// Get returns the value stored at key, or nil if there is none or the
	// read failed (then Err says why).
	Get(space string, key []byte) []byte
	// Put stores value at key, replacing any previous value.
	Put(space string, key, value []byte) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(space string, key []byte) error
	// Iter returns an iterator over space in ascending key order. Keys
	// written by the transaction ahead of an iterator's position may or may
	// not be seen by it; keys it has passed can be deleted safely.
	Iter(space string) Iterator
	// NextSeq returns the next value of the keyspace's sequence, starting at 1.
	// A value is never handed out again once a transaction that drew it has
	// committed, even after the keys using it are deleted; values drawn by
	// transactions that did not commit may be skipped. See the package doc
	// for the order in which transactions that drew values become visible.
	NextSeq(space string) (uint64, error)
	// Err returns the store error the transaction recorded, if any: once
	// set, every operation fails or reads nothing, and View or Update
	// returns it.
	Err() error
}

// Iterator walks a keyspace in key order. Each positioning method returns the
// key and value it lands on, or a nil key when it runs off the end or a read
// fails (the transaction's Err says which). After a nil key, only First,
// Last and Seek reposition the iterator.
type Iterator interface {
	First() (key, value []byte)
	Last() (key, value []byte)
	// Seek moves to the first key >= key.
	Seek(key []byte) (k, v []byte)
	Next() (key, value []byte)
	Prev() (key, value []byte)
}
