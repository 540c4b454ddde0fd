package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"
)

type payloadKind int

const (
	payloadUnsigned payloadKind = iota
	payloadSHA256
	payloadChunkedSigned
	payloadChunkedSignedTrailer
	payloadChunkedUnsignedTrailer
)

// payloadMode is what x-amz-content-sha256 says about the body.
type payloadMode struct {
	kind payloadKind
	sum  []byte // payloadSHA256 only
}

func (m payloadMode) signedChunks() bool {
	return m.kind == payloadChunkedSigned || m.kind == payloadChunkedSignedTrailer
}

func (m payloadMode) trailers() bool {
	return m.kind == payloadChunkedSignedTrailer || m.kind == payloadChunkedUnsignedTrailer
}

func parsePayloadMode(v string) (payloadMode, error) {
	switch v {
	case UnsignedPayload:
		return payloadMode{kind: payloadUnsigned}, nil
	case StreamingPayload:
		return payloadMode{kind: payloadChunkedSigned}, nil
	case StreamingPayloadTrailer:
		return payloadMode{kind: payloadChunkedSignedTrailer}, nil
	case StreamingUnsignedPayloadTrailer:
		return payloadMode{kind: payloadChunkedUnsignedTrailer}, nil
	case StreamingECDSAPayload, StreamingECDSAPayloadTrailer:
		return payloadMode{}, fmt.Errorf("%w: %s (signature version 4a)", ErrNotImplemented, v)
	}
	sum, err := hex.DecodeString(v)
	if err != nil || len(sum) != sha256.Size {
		return payloadMode{}, fmt.Errorf("%w: got %q", ErrInvalidContentSHA256, v)
	}
	return payloadMode{kind: payloadSHA256, sum: sum}, nil
}

// attachBody fills in Result.Body and what goes with it. chain is nil
// unless the chunks are signed.
func (v *Verifier) attachBody(res *Result, r *http.Request, mode payloadMode, chain *chunkSigner) error {
	body := r.Body
	if body == nil {
		body = http.NoBody
	}
	res.DecodedLength = r.ContentLength
	res.Trailer = func() http.Header { return nil }
	switch mode.kind {
	case payloadUnsigned:
		res.Body = body
		return nil
	case payloadSHA256:
		res.Body = &sha256Reader{body: body, h: sha256.New(), want: mode.sum}
		return nil
	}
	decoded := int64(-1)
	if s := r.Header.Get(headerDecodedLength); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: invalid x-amz-decoded-content-length %q", ErrInvalidArgument, s)
		}
		decoded = n
	}
	if !mode.signedChunks() {
		chain = nil
	}
	cr := newChunkedReader(body, chunkedOptions{
		chain:     chain,
		trailers:  mode.trailers(),
		declared:  parseTrailerNames(r.Header.Values(headerTrailer)),
		maxChunk:  v.maxChunkSize(),
		wantTotal: decoded,
	})
	res.Chunked = true
	res.DecodedLength = decoded
	res.DeclaredTrailers = cr.opts.declared
	res.Body = cr
	res.Trailer = cr.trailers
	return nil
}

// parseTrailerNames reads x-amz-trailer, which may list several names and
// may be repeated.
func parseTrailerNames(values []string) []string {
	var names []string
	for _, v := range values {
		for n := range strings.SplitSeq(v, ",") {
			if n = strings.ToLower(strings.TrimSpace(n)); n != "" {
				names = append(names, n)
			}
		}
	}
	return names
}

// sha256Reader checks a body against the hex sha256 it was signed with.
type sha256Reader struct {
	body io.ReadCloser
	h    hash.Hash
	want []byte
	err  error
}

func (s *sha256Reader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.body.Read(p)
	s.h.Write(p[:n])
	switch {
	case err == io.EOF:
		if !hmac.Equal(s.h.Sum(nil), s.want) {
			err = fmt.Errorf("%w: computed %x", ErrContentSHA256Mismatch, s.h.Sum(nil))
		}
	case err != nil:
		err = bodyError(err)
	}
	s.err = err
	return n, err
}

func (s *sha256Reader) Close() error { return s.body.Close() }

// bodyError maps a body cut short (net/http reports it as
// io.ErrUnexpectedEOF) to S3's IncompleteBody.
func bodyError(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %w", ErrIncompleteBody, err)
	}
	return err
}
