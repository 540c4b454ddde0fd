package checksum

import (
	"bytes"
	"crypto/md5"
	"crypto/subtle"
	"errors"
	"fmt"
	"hash"
	"io"
)

// ReaderOptions says what a Reader computes and what it checks at EOF.
type ReaderOptions struct {
	// WantMD5 computes the MD5 of the body, which Bulwark needs for the
	// ETag even when the client sent no Content-MD5.
	WantMD5 bool
	// ExpectedMD5 is the decoded Content-MD5, or nil when the client sent
	// none. A non-nil value implies WantMD5.
	ExpectedMD5 []byte
	// Algorithm is the additional checksum to compute, or "" for none.
	Algorithm Algorithm
	// Expected returns the base64 value the Algorithm's checksum must
	// have, and false when the client sent none. It is called only once the
	// body has ended, because the value may arrive in a trailer after it.
	// Nil means no expected value.
	Expected func() (string, bool)
	// ExpectedSize is the number of body bytes announced, or -1 when
	// unknown. Note that 0 means an empty body is expected.
	ExpectedSize int64
}

// Reader passes a body through while hashing it. When the underlying reader
// ends it verifies size, MD5 and checksum and returns the first failure in
// place of io.EOF; errors are sticky.
type Reader struct {
	r    io.Reader
	opts ReaderOptions
	md5  hash.Hash
	sum  hash.Hash
	n    int64
	err  error

	md5Sum   []byte
	checksum string
}

// NewReader wraps r. Options that cannot work (an unknown algorithm, an
// ExpectedMD5 that is not 16 bytes) make the first Read fail, which keeps
// construction infallible for callers that build the reader before they
// have decided whether to read at all.
func NewReader(r io.Reader, opts ReaderOptions) *Reader {
	cr := &Reader{r: r, opts: opts}
	if opts.ExpectedMD5 != nil || opts.WantMD5 {
		cr.md5 = md5.New()
	}
	if opts.ExpectedMD5 != nil && len(opts.ExpectedMD5) != md5.Size {
		cr.err = fmt.Errorf("new checksum reader: %w", ErrInvalidDigest)
	}
	if opts.Algorithm != "" {
		if !opts.Algorithm.Valid() {
			cr.err = fmt.Errorf("new checksum reader: %q: %w", string(opts.Algorithm), ErrInvalidAlgorithm)
		} else {
			cr.sum = opts.Algorithm.New()
		}
	}
	return cr
}

// Read implements io.Reader.
func (cr *Reader) Read(p []byte) (int, error) {
	if cr.err != nil {
		return 0, cr.err
	}
	n, err := cr.r.Read(p)
	if limit := cr.opts.ExpectedSize; limit >= 0 && cr.n+int64(n) > limit {
		// Hand out no byte past the announced size, so that nothing beyond
		// what the client declared reaches storage.
		n = int(limit - cr.n)
		cr.hash(p[:n])
		cr.err = fmt.Errorf("read body: more than %d bytes: %w", limit, ErrTooLong)
		return n, cr.err
	}
	cr.hash(p[:n])
	switch {
	case err == io.EOF:
		cr.err = cr.finish()
		return n, cr.err
	case errors.Is(err, io.ErrUnexpectedEOF):
		// net/http reports a body cut short of its Content-Length this way.
		cr.err = fmt.Errorf("read body: %w: %w", ErrIncompleteBody, err)
		return n, cr.err
	case err != nil:
		cr.err = err
		return n, err
	}
	return n, nil
}

func (cr *Reader) hash(p []byte) {
	if len(p) == 0 {
		return
	}
	cr.n += int64(len(p))
	if cr.md5 != nil {
		cr.md5.Write(p)
	}
	if cr.sum != nil {
		cr.sum.Write(p)
	}
}

// finish runs the end-of-body checks and returns io.EOF only if all pass.
func (cr *Reader) finish() error {
	if want := cr.opts.ExpectedSize; want >= 0 && cr.n < want {
		return fmt.Errorf("read body: got %d of %d bytes: %w", cr.n, want, ErrIncompleteBody)
	}
	if cr.md5 != nil {
		cr.md5Sum = cr.md5.Sum(nil)
		if cr.opts.ExpectedMD5 != nil && subtle.ConstantTimeCompare(cr.md5Sum, cr.opts.ExpectedMD5) != 1 {
			return fmt.Errorf("verify content-md5: %w", ErrBadDigest)
		}
	}
	if cr.sum == nil {
		return io.EOF
	}
	got := cr.sum.Sum(nil)
	cr.checksum = Encode(got)
	if cr.opts.Expected == nil {
		return io.EOF
	}
	value, ok := cr.opts.Expected()
	if !ok {
		return io.EOF
	}
	want, err := cr.opts.Algorithm.Decode(value)
	if err != nil {
		return fmt.Errorf("verify checksum: %w", err)
	}
	if !bytes.Equal(got, want) {
		return fmt.Errorf("verify %s checksum: %w", cr.opts.Algorithm, ErrChecksumMismatch)
	}
	return io.EOF
}

// MD5 returns the body's MD5, or nil if it was not computed or the body has
// not ended cleanly.
func (cr *Reader) MD5() []byte {
	if cr.err != io.EOF {
		return nil
	}
	return cr.md5Sum
}

// Checksum returns the base64 checksum of the body for the chosen
// Algorithm, or "" if there is none or the body has not ended cleanly.
func (cr *Reader) Checksum() string {
	if cr.err != io.EOF {
		return ""
	}
	return cr.checksum
}

// Size returns the number of body bytes read so far.
func (cr *Reader) Size() int64 { return cr.n }
