package sigv4

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

const (
	// maxChunkHeader bounds "hex-size;chunk-signature=<64 hex>"; real
	// headers are under 100 bytes.
	maxChunkHeader = 4 << 10
	// maxTrailerLine and maxTrailerBytes bound the trailer section, which
	// carries a few checksums and a signature.
	maxTrailerLine  = 16 << 10
	maxTrailerBytes = 64 << 10
	// maxUnsignedChunk caps unsigned chunks, which stream through without
	// buffering: SDKs send a known-length body as one chunk, so only
	// overflow needs guarding against.
	maxUnsignedChunk = 1 << 50
	// chunkGrowStep is how much buffer a signed chunk gets ahead of its
	// data, so a client announcing a huge chunk cannot make Bulwark
	// allocate memory it never fills.
	chunkGrowStep = 64 << 10

	streamingPayloadAlgorithm = "AWS4-HMAC-SHA256-PAYLOAD"
	streamingTrailerAlgorithm = "AWS4-HMAC-SHA256-TRAILER"
	trailerSignatureName      = "x-amz-trailer-signature"
	chunkSignaturePrefix      = "chunk-signature="
)

var emptySHA256 = sha256.Sum256(nil)

// chunkSigner verifies the chain of aws-chunked signatures: each one signs
// its chunk and the signature before it, starting from the request's.
type chunkSigner struct {
	key     []byte
	amzDate string
	scope   string
	prev    string // hex signature of the previous link
}

func (c *chunkSigner) verify(algorithm string, lastLine string, got []byte) bool {
	sts := algorithm + "\n" + c.amzDate + "\n" + c.scope + "\n" + c.prev + "\n" + lastLine
	sig := hmacSHA256(c.key, sts)
	if !hmac.Equal(sig, got) {
		return false
	}
	c.prev = hex.EncodeToString(sig)
	return true
}

func (c *chunkSigner) verifyChunk(sum [sha256.Size]byte, got []byte) bool {
	return c.verify(streamingPayloadAlgorithm, hex.EncodeToString(emptySHA256[:])+"\n"+hex.EncodeToString(sum[:]), got)
}

func (c *chunkSigner) verifyTrailer(canonical string, got []byte) bool {
	return c.verify(streamingTrailerAlgorithm, sha256Hex(canonical), got)
}

type chunkedOptions struct {
	chain     *chunkSigner // nil when chunks carry no signatures
	trailers  bool         // the payload mode allows trailers
	declared  []string     // lower-case names from x-amz-trailer
	maxChunk  int64        // limit for signed chunks
	wantTotal int64        // x-amz-decoded-content-length, -1 unknown
}

// chunkedReader decodes an aws-chunked body. A signed chunk is buffered
// whole and handed out only once its signature holds; unsigned chunks
// stream straight through. Failures are sticky and replace io.EOF.
type chunkedReader struct {
	src  *bufio.Reader
	body io.Closer
	opts chunkedOptions

	total     int64  // decoded bytes so far
	remaining int64  // unsigned: bytes left in the current chunk
	needCRLF  bool   // unsigned: the current chunk's CRLF is unread
	chunk     []byte // signed: storage for the current chunk
	pending   []byte // signed: verified bytes not yet handed out
	done      bool
	err       error
	trailer   http.Header
}

func newChunkedReader(body io.ReadCloser, opts chunkedOptions) *chunkedReader {
	return &chunkedReader{
		src:  bufio.NewReaderSize(body, maxTrailerLine+2),
		body: body,
		opts: opts,
	}
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	for {
		switch {
		case len(c.pending) > 0:
			n := copy(p, c.pending)
			c.pending = c.pending[n:]
			return n, nil
		case c.remaining > 0:
			return c.readUnsigned(p)
		case c.done:
			c.err = io.EOF
			return 0, io.EOF
		}
		if err := c.next(); err != nil {
			c.pending = nil
			c.err = err
			return 0, err
		}
	}
}

func (c *chunkedReader) Close() error { return c.body.Close() }

// trailers returns the trailers once the body has ended cleanly.
func (c *chunkedReader) trailers() http.Header {
	if c.err != io.EOF {
		return nil
	}
	return c.trailer
}

func (c *chunkedReader) readUnsigned(p []byte) (int, error) {
	if int64(len(p)) > c.remaining {
		p = p[:c.remaining]
	}
	n, err := c.src.Read(p)
	c.remaining -= int64(n)
	if err == io.EOF {
		err = nil
		if c.remaining > 0 {
			err = fmt.Errorf("%w: body ended inside a chunk", ErrIncompleteBody)
		}
	}
	if err != nil {
		c.err = bodyError(err)
		return n, c.err
	}
	return n, nil
}

// next reads one chunk header and, for a signed chunk, the whole chunk.
func (c *chunkedReader) next() error {
	if c.needCRLF {
		if err := c.expectCRLF(); err != nil {
			return err
		}
		c.needCRLF = false
	}
	line, err := c.readLine(maxChunkHeader, false)
	if err == io.EOF {
		return fmt.Errorf("%w: body ended before the final chunk", ErrIncompleteBody)
	}
	if err != nil {
		return err
	}
	size, sig, err := c.parseChunkHeader(line)
	if err != nil {
		return err
	}
	if w := c.opts.wantTotal; w >= 0 && c.total+size > w {
		return fmt.Errorf("%w: chunks exceed x-amz-decoded-content-length %d", ErrIncompleteBody, w)
	}
	if size == 0 {
		return c.finish(sig)
	}
	c.total += size
	if c.opts.chain == nil {
		c.remaining, c.needCRLF = size, true
		return nil
	}
	data, err := c.readChunk(size)
	if err != nil {
		return err
	}
	if !c.opts.chain.verifyChunk(sha256.Sum256(data), sig) {
		return fmt.Errorf("%w: chunk signature ending at byte %d", ErrSignatureDoesNotMatch, c.total)
	}
	if err := c.expectCRLF(); err != nil {
		return err
	}
	c.pending = data
	return nil
}

// parseChunkHeader parses "hex-size" plus, for signed chunks, exactly
// ";chunk-signature=<64 hex>". Unsigned chunks may carry extensions, which
// are ignored as HTTP chunked encoding would.
func (c *chunkedReader) parseChunkHeader(line string) (int64, []byte, error) {
	sizeHex, ext, hasExt := strings.Cut(line, ";")
	limit := int64(maxUnsignedChunk)
	if c.opts.chain != nil {
		limit = c.opts.maxChunk
	}
	size, err := strconv.ParseUint(sizeHex, 16, 63)
	if err != nil || len(sizeHex) > 16 {
		return 0, nil, fmt.Errorf("%w: bad chunk size %q", ErrMalformedChunk, truncate(sizeHex))
	}
	if int64(size) > limit {
		return 0, nil, fmt.Errorf("%w: chunk of %d bytes exceeds the limit of %d", ErrMalformedChunk, size, limit)
	}
	if c.opts.chain == nil {
		return int64(size), nil, nil
	}
	sigHex, ok := strings.CutPrefix(ext, chunkSignaturePrefix)
	if !hasExt || !ok {
		return 0, nil, fmt.Errorf("%w: chunk without chunk-signature", ErrMalformedChunk)
	}
	sig, err := hex.DecodeString(sigHex)
	if err != nil || len(sig) != sha256.Size {
		return 0, nil, fmt.Errorf("%w: bad chunk-signature", ErrMalformedChunk)
	}
	return int64(size), sig, nil
}

// readChunk reads a signed chunk, growing the buffer only as data arrives.
func (c *chunkedReader) readChunk(size int64) ([]byte, error) {
	buf := c.chunk[:0]
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, int(min(size-int64(len(buf)), max(int64(len(buf)), chunkGrowStep))))
		}
		n, err := c.src.Read(buf[len(buf):min(int64(cap(buf)), size)])
		buf = buf[:len(buf)+n]
		if err == io.EOF && int64(len(buf)) < size {
			return nil, fmt.Errorf("%w: body ended inside a chunk", ErrIncompleteBody)
		}
		if err != nil && err != io.EOF {
			return nil, bodyError(err)
		}
	}
	c.chunk = buf
	return buf, nil
}

// finish handles the final zero-length chunk and what follows it.
func (c *chunkedReader) finish(sig []byte) error {
	if c.opts.chain != nil && !c.opts.chain.verifyChunk(emptySHA256, sig) {
		return fmt.Errorf("%w: final chunk signature", ErrSignatureDoesNotMatch)
	}
	trailer, err := c.readTrailers()
	if err != nil {
		return err
	}
	if w := c.opts.wantTotal; w >= 0 && c.total != w {
		return fmt.Errorf("%w: got %d bytes, x-amz-decoded-content-length is %d", ErrIncompleteBody, c.total, w)
	}
	if _, err := c.src.ReadByte(); err != io.EOF {
		if err != nil {
			return bodyError(err)
		}
		return fmt.Errorf("%w: data after the final chunk", ErrMalformedChunk)
	}
	c.trailer = trailer
	c.done = true
	return nil
}

// readTrailers reads "name:value" lines up to an empty line. A body that
// simply ends after the final chunk is accepted: nothing is missing that a
// signature covers, and some clients omit the last CRLF.
func (c *chunkedReader) readTrailers() (http.Header, error) {
	h := http.Header{}
	var canonical strings.Builder
	var sig []byte
	for n := 0; ; n++ {
		line, err := c.readLine(maxTrailerLine, true)
		if err == io.EOF && n == 0 {
			break
		}
		if err == io.EOF {
			return nil, fmt.Errorf("%w: body ended inside the trailers", ErrIncompleteBody)
		}
		if err != nil {
			return nil, err
		}
		if line == "" {
			break
		}
		if !c.opts.trailers {
			return nil, fmt.Errorf("%w: data after the final chunk", ErrMalformedChunk)
		}
		if sig != nil || canonical.Len()+len(line) > maxTrailerBytes {
			return nil, fmt.Errorf("%w: unexpected trailer line", ErrMalformedTrailer)
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if !ok || name == "" {
			return nil, fmt.Errorf("%w: trailer line without a name", ErrMalformedTrailer)
		}
		if c.opts.chain != nil && name == trailerSignatureName {
			if sig, err = hex.DecodeString(strings.TrimSpace(value)); err != nil || len(sig) != sha256.Size {
				return nil, fmt.Errorf("%w: bad %s", ErrMalformedTrailer, trailerSignatureName)
			}
			continue
		}
		if !slices.Contains(c.opts.declared, name) {
			return nil, fmt.Errorf("%w: trailer %q not declared in x-amz-trailer", ErrMalformedTrailer, truncate(name))
		}
		canonical.WriteString(line)
		canonical.WriteByte('\n')
		h.Add(name, strings.TrimSpace(value))
	}
	return h, c.checkTrailers(h, canonical.String(), sig)
}

func (c *chunkedReader) checkTrailers(h http.Header, canonical string, sig []byte) error {
	for _, name := range c.opts.declared {
		if len(h.Values(name)) == 0 {
			return fmt.Errorf("%w: declared trailer %q missing", ErrMalformedTrailer, name)
		}
	}
	if c.opts.chain == nil || !c.opts.trailers {
		return nil
	}
	if sig == nil {
		return fmt.Errorf("%w: missing %s", ErrMalformedTrailer, trailerSignatureName)
	}
	if !c.opts.chain.verifyTrailer(canonical, sig) {
		return fmt.Errorf("%w: trailer signature", ErrSignatureDoesNotMatch)
	}
	return nil
}

// readLine returns a line without its terminator, or io.EOF if the body
// ends before any byte of it. Chunk headers must end in CRLF; trailer
// lines may end in a bare LF.
func (c *chunkedReader) readLine(limit int, allowLF bool) (string, error) {
	line, err := c.src.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull || len(line) > limit+2:
		return "", fmt.Errorf("%w: line longer than %d bytes", ErrMalformedChunk, limit)
	case err == io.EOF && len(line) == 0:
		return "", io.EOF
	case err == io.EOF:
		return "", fmt.Errorf("%w: body ended inside a line", ErrIncompleteBody)
	case err != nil:
		return "", bodyError(err)
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		return string(line[:n-1]), nil
	}
	if !allowLF {
		return "", fmt.Errorf("%w: line not terminated by CRLF", ErrMalformedChunk)
	}
	return string(line), nil
}

func (c *chunkedReader) expectCRLF() error {
	var b [2]byte
	if _, err := io.ReadFull(c.src, b[:]); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("%w: body ended after chunk data", ErrIncompleteBody)
		}
		return bodyError(err)
	}
	if b != [2]byte{'\r', '\n'} {
		return fmt.Errorf("%w: chunk data not followed by CRLF", ErrMalformedChunk)
	}
	return nil
}

// truncate keeps client-controlled text in errors short.
func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
