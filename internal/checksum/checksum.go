// Package checksum implements the object checksums S3 supports (CRC32,
// CRC32C, CRC64NVME, SHA1 and SHA256) together with a Reader that computes
// them, plus the MD5 behind ETags and Content-MD5, while an object body
// streams through it.
//
// Bulwark stores an object only after its body has been read to a clean
// io.EOF, so every integrity check the client asked for is made at the end of
// the stream and reported in place of io.EOF: a consumer that commits on
// io.EOF alone can never commit a body that failed one.
package checksum

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"strings"
)

// Algorithm names a checksum algorithm, spelled as S3 spells it in the
// x-amz-checksum-algorithm and x-amz-sdk-checksum-algorithm headers.
type Algorithm string

// The algorithms S3 supports.
const (
	CRC32     Algorithm = "CRC32"
	CRC32C    Algorithm = "CRC32C"
	SHA1      Algorithm = "SHA1"
	SHA256    Algorithm = "SHA256"
	CRC64NVME Algorithm = "CRC64NVME"
)

// Errors reported by this package. They are wrapped with detail, so compare
// with errors.Is.
var (
	// ErrInvalidAlgorithm: a checksum algorithm name S3 does not know.
	ErrInvalidAlgorithm = errors.New("invalid checksum algorithm")
	// ErrInvalidDigest: a Content-MD5 header that is not base64 of 16 bytes.
	ErrInvalidDigest = errors.New("the Content-MD5 you specified is not valid")
	// ErrBadDigest: the body does not match its Content-MD5.
	ErrBadDigest = errors.New("the Content-MD5 you specified did not match what was received")
	// ErrInvalidChecksum: a checksum value that is not base64 of a digest of
	// the algorithm's size.
	ErrInvalidChecksum = errors.New("invalid checksum value")
	// ErrChecksumMismatch: the body does not match the checksum sent for it.
	ErrChecksumMismatch = errors.New("the checksum you specified did not match what was received")
	// ErrIncompleteBody: fewer bytes arrived than the client announced.
	ErrIncompleteBody = errors.New("the request body is shorter than its declared length")
	// ErrTooLong: more bytes arrived than the client announced.
	ErrTooLong = errors.New("the request body is longer than its declared length")
)

// crc64NVMEPoly is the NVMe CRC-64 polynomial in the reflected form
// hash/crc64 expects; crc64 already applies the all-ones init and xorout that
// AWS's CRC64NVME uses.
const crc64NVMEPoly = 0x9a6c9329ac4bc9b5

var (
	castagnoliTable = crc32.MakeTable(crc32.Castagnoli)
	nvmeTable       = crc64.MakeTable(crc64NVMEPoly)
)

// All returns every supported algorithm, in a stable order.
func All() []Algorithm {
	return []Algorithm{CRC32, CRC32C, SHA1, SHA256, CRC64NVME}
}

// ParseAlgorithm parses an algorithm name without regard to case, as S3
// accepts "crc32c" as readily as "CRC32C".
func ParseAlgorithm(s string) (Algorithm, error) {
	for _, a := range All() {
		if strings.EqualFold(string(a), s) {
			return a, nil
		}
	}
	return "", fmt.Errorf("parse checksum algorithm %q: %w", s, ErrInvalidAlgorithm)
}

// Valid reports whether a is one of the supported algorithms.
func (a Algorithm) Valid() bool {
	switch a {
	case CRC32, CRC32C, SHA1, SHA256, CRC64NVME:
		return true
	}
	return false
}

// String returns the S3 spelling of the algorithm.
func (a Algorithm) String() string { return string(a) }

// New returns a fresh hash for the algorithm. It panics on an algorithm that
// is not Valid: names from clients go through ParseAlgorithm first, so an
// invalid one here is a programming error.
func (a Algorithm) New() hash.Hash {
	switch a {
	case CRC32:
		return crc32.NewIEEE()
	case CRC32C:
		return crc32.New(castagnoliTable)
	case SHA1:
		return sha1.New()
	case SHA256:
		return sha256.New()
	case CRC64NVME:
		return crc64.New(nvmeTable)
	}
	panic(fmt.Sprintf("checksum: unknown algorithm %q", string(a)))
}

// Size returns the length in bytes of the algorithm's digest, or 0 for an
// algorithm that is not Valid.
func (a Algorithm) Size() int {
	switch a {
	case CRC32, CRC32C:
		return crc32.Size
	case SHA1:
		return sha1.Size
	case SHA256:
		return sha256.Size
	case CRC64NVME:
		return crc64.Size
	}
	return 0
}

// HeaderName returns the header (and trailer) that carries the algorithm's
// value, e.g. "x-amz-checksum-crc32c".
func (a Algorithm) HeaderName() string {
	return "x-amz-checksum-" + strings.ToLower(string(a))
}

// AlgorithmForHeader maps a checksum header name, in any case, back to its
// algorithm. Other x-amz-checksum-* headers (-type, -mode) are not
// algorithms and yield false.
func AlgorithmForHeader(name string) (Algorithm, bool) {
	for _, a := range All() {
		if strings.EqualFold(name, a.HeaderName()) {
			return a, true
		}
	}
	return "", false
}

// Sum returns the checksum of p, in the base64 form S3 sends it.
func (a Algorithm) Sum(p []byte) string {
	h := a.New()
	h.Write(p)
	return Encode(h.Sum(nil))
}

// Encode renders a digest the way S3 sends checksums: standard, padded
// base64 of the big-endian digest bytes.
func Encode(digest []byte) string {
	return base64.StdEncoding.EncodeToString(digest)
}

// Decode checks that value is a well-formed checksum for a and returns its
// digest bytes. Checking the decoded length catches a value sent under the
// wrong algorithm's header before any body is read.
func (a Algorithm) Decode(value string) ([]byte, error) {
	if !a.Valid() {
		return nil, fmt.Errorf("decode checksum: %w", ErrInvalidAlgorithm)
	}
	b, err := base64.StdEncoding.Strict().DecodeString(value)
	if err != nil {
		return nil, fmt.Errorf("decode %s checksum: %w", a, ErrInvalidChecksum)
	}
	if len(b) != a.Size() {
		return nil, fmt.Errorf("decode %s checksum: %d bytes, want %d: %w", a, len(b), a.Size(), ErrInvalidChecksum)
	}
	return b, nil
}

// Validate reports whether value is a well-formed checksum for a, so a
// header can be refused with ErrInvalidChecksum before its body is read.
func (a Algorithm) Validate(value string) error {
	_, err := a.Decode(value)
	return err
}

// ParseContentMD5 decodes a Content-MD5 header value.
func ParseContentMD5(headerValue string) ([]byte, error) {
	b, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(headerValue))
	if err != nil || len(b) != md5.Size {
		return nil, fmt.Errorf("parse content-md5: %w", ErrInvalidDigest)
	}
	return b, nil
}
