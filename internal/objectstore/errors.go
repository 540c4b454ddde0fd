package objectstore

import (
	"errors"
	"time"
)

// Domain errors. The S3 wire package maps each to its AWS error code; nothing
// below it knows those codes.
var (
	ErrNoSuchBucket      = errors.New("bucket does not exist")
	ErrNoSuchKey         = errors.New("key does not exist")
	ErrNoSuchVersion     = errors.New("version does not exist")
	ErrBucketExists      = errors.New("bucket name is taken")
	ErrBucketOwnedByYou  = errors.New("bucket already owned by you")
	ErrBucketNotEmpty    = errors.New("bucket is not empty")
	ErrInvalidBucketName = errors.New("invalid bucket name")
	ErrInvalidKey        = errors.New("invalid object key")
	ErrKeyTooLong        = errors.New("object key too long")
	ErrInvalidVersionID  = errors.New("invalid version id")
	ErrInvalidArgument   = errors.New("invalid argument")
	ErrMethodNotAllowed  = errors.New("method not allowed on a delete marker")
	ErrWrongRegion       = errors.New("bucket belongs to another region")
	ErrMetadataTooLarge  = errors.New("metadata too large")
	ErrInvalidRequest    = errors.New("invalid request")
	ErrMalformedRequest  = errors.New("malformed request")
	ErrNoSuchUpload      = errors.New("multipart upload does not exist")
	ErrInvalidPart       = errors.New("part not found or its ETag does not match")
	ErrInvalidPartOrder  = errors.New("parts are not in ascending order")
	ErrEntityTooSmall    = errors.New("part smaller than the minimum allowed size")
	ErrChecksumMismatch  = errors.New("checksum mismatch")
	// ErrReplicationKeepsVersioning refuses suspending versioning on a
	// bucket that replicates.
	ErrReplicationKeepsVersioning = errors.New("versioning cannot be suspended while replication is configured")
	// ErrPreconditionFailed is a conditional write (WriteCondition) whose
	// condition did not hold.
	ErrPreconditionFailed = errors.New("precondition failed")
)

// Errors of tagging and copying.
var (
	ErrInvalidTag           = errors.New("invalid tag")
	ErrTooManyTags          = errors.New("too many tags")
	ErrCopyToItself         = errors.New("copy onto itself changes nothing")
	ErrCopyFromDeleteMarker = errors.New("copy source names a delete marker")
	ErrCopySourceTooLarge   = errors.New("copy source too large")
)

// DeleteMarkerError is returned when the version a request resolves to is a
// delete marker: S3 answers such requests with the marker's identity in
// headers. It wraps ErrNoSuchKey (no version named) or ErrMethodNotAllowed
// (the marker named by version ID).
type DeleteMarkerError struct {
	Err          error
	VersionID    string
	LastModified time.Time
}

func (e *DeleteMarkerError) Error() string { return e.Err.Error() + " (delete marker)" }
func (e *DeleteMarkerError) Unwrap() error { return e.Err }
