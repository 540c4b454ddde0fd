package sigv4

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/bulwark/bulwark/internal/checksum"
)

// The aws-chunked example from the S3 documentation ("Signature
// Calculations for the Authorization Header: Transferring Payload in
// Multiple Chunks"): 66560 bytes of 'a' in a 64 KiB and a 1 KiB chunk.
const (
	docSeedSignature   = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
	docChunk1Signature = "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"
	docChunk2Signature = "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"
	docFinalSignature  = "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"
)

var docTime = time.Date(2013, 5, 24, 0, 0, 0, 0, time.UTC)

func docChunkedBody(sig1, sig2, final string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "10000;chunk-signature=%s\r\n%s\r\n", sig1, strings.Repeat("a", 65536))
	fmt.Fprintf(&b, "400;chunk-signature=%s\r\n%s\r\n", sig2, strings.Repeat("a", 1024))
	fmt.Fprintf(&b, "0;chunk-signature=%s\r\n\r\n", final)
	return b.Bytes()
}

func docChunkedRequest(body []byte) *http.Request {
	req := httptest.NewRequest("PUT", "http://s3.amazonaws.com/examplebucket/chunkObject.txt", bytes.NewReader(body))
	req.Header.Set("X-Amz-Date", "20130524T000000Z")
	req.Header.Set("X-Amz-Storage-Class", "REDUCED_REDUNDANCY")
	req.Header.Set("X-Amz-Content-Sha256", StreamingPayload)
	req.Header.Set("Content-Encoding", "aws-chunked")
	req.Header.Set("X-Amz-Decoded-Content-Length", "66560")
	req.Header.Set("Content-Length", "66824")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature="+docSeedSignature)
	return req
}

func TestAWSDocumentedChunkedExample(t *testing.T) {
	body := docChunkedBody(docChunk1Signature, docChunk2Signature, docFinalSignature)
	if len(body) != 66824 {
		t.Fatalf("encoded length %d, want 66824", len(body))
	}
	v := newVerifier(docTime)
	res, err := v.Verify(context.Background(), docChunkedRequest(body))
	if err != nil {
		t.Fatal(err)
	}
	if !res.Chunked || res.DecodedLength != 66560 || res.PayloadHash != StreamingPayload {
		t.Errorf("result = %+v", res)
	}
	got, err := readAllBody(res)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != strings.Repeat("a", 66560) {
		t.Errorf("decoded %d bytes", len(got))
	}
	if h := res.Trailer(); h == nil || len(h) != 0 {
		t.Errorf("Trailer() = %v, want empty", h)
	}
}

// A chunk whose signature fails is never handed out, not even in part.
func TestAWSDocumentedChunkedTampered(t *testing.T) {
	flip := func(sig string) string {
		if sig[63] == '0' {
			return sig[:63] + "1"
		}
		return sig[:63] + "0"
	}
	tests := []struct {
		name     string
		body     []byte
		wantErr  error
		wantRead int
	}{
		{"first chunk signature", docChunkedBody(flip(docChunk1Signature), docChunk2Signature, docFinalSignature), ErrSignatureDoesNotMatch, 0},
		{"second chunk signature", docChunkedBody(docChunk1Signature, flip(docChunk2Signature), docFinalSignature), ErrSignatureDoesNotMatch, 65536},
		{"final signature", docChunkedBody(docChunk1Signature, docChunk2Signature, flip(docFinalSignature)), ErrSignatureDoesNotMatch, 66560},
		{"chunks swapped", docChunkedBody(docChunk2Signature, docChunk1Signature, docFinalSignature), ErrSignatureDoesNotMatch, 0},
		{"data byte", func() []byte {
			b := docChunkedBody(docChunk1Signature, docChunk2Signature, docFinalSignature)
			b[65626+100] = 'b' // inside the second chunk
			return b
		}(), ErrSignatureDoesNotMatch, 65536},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := newVerifier(docTime).Verify(context.Background(), docChunkedRequest(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := readAllBody(res)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(got) != tt.wantRead {
				t.Errorf("handed out %d bytes, want %d", len(got), tt.wantRead)
			}
			if res.Trailer() != nil {
				t.Error("trailers exposed after a failure")
			}
		})
	}
	// The seed must be the request signature: a different request
	// signature cannot be paired with the same chunks.
	req := docChunkedRequest(docChunkedBody(docChunk1Signature, docChunk2Signature, docFinalSignature))
	req.Header.Set("X-Amz-Storage-Class", "STANDARD")
	if _, err := newVerifier(docTime).Verify(context.Background(), req); !errors.Is(err, ErrSignatureDoesNotMatch) {
		t.Errorf("altered header: %v", err)
	}
}

// chunkSigning is the client side of the chunk signature chain.
type chunkSigning struct {
	key     []byte
	amzDate string
	scope   string
	prev    string
}

func (c *chunkSigning) link(algorithm, last string) string {
	m := hmac.New(sha256.New, c.key)
	io.WriteString(m, algorithm+"\n"+c.amzDate+"\n"+c.scope+"\n"+c.prev+"\n"+last)
	c.prev = hex.EncodeToString(m.Sum(nil))
	return c.prev
}

func (c *chunkSigning) chunk(data []byte) string {
	return c.link("AWS4-HMAC-SHA256-PAYLOAD", EmptySHA256+"\n"+hexSHA256(data))
}

func (c *chunkSigning) trailer(lines []string) string {
	var canon strings.Builder
	for _, l := range lines {
		canon.WriteString(l + "\n")
	}
	return c.link("AWS4-HMAC-SHA256-TRAILER", hexSHA256([]byte(canon.String())))
}

// chunkedCase describes an aws-chunked upload to build and sign.
type chunkedCase struct {
	mode     string // x-amz-content-sha256
	chunks   [][]byte
	trailers []string // "name:value" lines
	declare  string   // x-amz-trailer, "" for none
	decoded  int64    // x-amz-decoded-content-length, -1 to omit
}

// encode renders the body; cs nil means unsigned chunks.
func (c chunkedCase) encode(cs *chunkSigning) []byte {
	var b bytes.Buffer
	sig := func(data []byte) string {
		if cs == nil {
			return ""
		}
		return ";chunk-signature=" + cs.chunk(data)
	}
	for _, ch := range c.chunks {
		fmt.Fprintf(&b, "%x%s\r\n%s\r\n", len(ch), sig(ch), ch)
	}
	fmt.Fprintf(&b, "0%s\r\n", sig(nil))
	for _, l := range c.trailers {
		b.WriteString(l + "\r\n")
	}
	if cs != nil && c.mode == StreamingPayloadTrailer {
		b.WriteString("x-amz-trailer-signature:" + cs.trailer(c.trailers) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// build returns a signed server-side request (without body) and the
// encoded body to send with it.
func (c chunkedCase) build(t testing.TB) (*http.Request, []byte) {
	t.Helper()
	signed := c.mode != StreamingUnsignedPayloadTrailer
	dummy := &chunkSigning{}
	var size int
	if signed {
		size = len(c.encode(dummy))
	} else {
		size = len(c.encode(nil))
	}
	req := httptest.NewRequest("PUT", "http://bulwark.example/bucket/chunked%20key", nil)
	req.ContentLength = int64(size)
	req.Header.Set("Content-Encoding", "aws-chunked")
	if c.decoded >= 0 {
		req.Header.Set("X-Amz-Decoded-Content-Length", strconv.FormatInt(c.decoded, 10))
	}
	if c.declare != "" {
		req.Header.Set("X-Amz-Trailer", c.declare)
	}
	sdkSign(t, req, c.mode, signTime)
	if !signed {
		return req, c.encode(nil)
	}
	auth := req.Header.Get("Authorization")
	seed := auth[strings.LastIndex(auth, "=")+1:]
	cs := &chunkSigning{
		key:     signingKey(testCred.Secret, "20240301", "us-east-1", "s3"),
		amzDate: "20240301T120000Z",
		scope:   "20240301/us-east-1/s3/aws4_request",
		prev:    seed,
	}
	return req, c.encode(cs)
}

func decodedSize(chunks [][]byte) int64 {
	var n int64
	for _, c := range chunks {
		n += int64(len(c))
	}
	return n
}

// verifyBody runs Verify on req with body and reads the result in reads of
// readSize bytes, the server side delivering one byte at a time when slow.
func verifyBody(t testing.TB, req *http.Request, body []byte, slow bool, readSize int) (*Result, []byte, error) {
	t.Helper()
	var rd io.Reader = bytes.NewReader(body)
	if slow {
		rd = iotest.OneByteReader(rd)
	}
	req.Body = io.NopCloser(rd)
	res, err := newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var out []byte
	buf := make([]byte, readSize)
	for {
		n, err := res.Body.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if err == io.EOF {
				err = nil
			}
			return res, out, err
		}
	}
}

func testChunks() [][]byte {
	return [][]byte{
		bytes.Repeat([]byte("x"), 8192),
		[]byte("second chunk, short"),
		bytes.Repeat([]byte{0, 1, 2, 3, '\r', '\n'}, 3000),
	}
}

func TestChunkedModes(t *testing.T) {
	chunks := testChunks()
	all := bytes.Join(chunks, nil)
	tests := []struct {
		name string
		c    chunkedCase
	}{
		{"signed", chunkedCase{mode: StreamingPayload, chunks: chunks, decoded: decodedSize(chunks)}},
		{"signed no decoded length", chunkedCase{mode: StreamingPayload, chunks: chunks, decoded: -1}},
		{"signed trailer", chunkedCase{mode: StreamingPayloadTrailer, chunks: chunks, decoded: decodedSize(chunks),
			trailers: []string{"x-amz-checksum-crc32c:sOO8/Q=="}, declare: "x-amz-checksum-crc32c"}},
		{"signed trailer none declared", chunkedCase{mode: StreamingPayloadTrailer, chunks: chunks, decoded: decodedSize(chunks)}},
		{"signed trailer two", chunkedCase{mode: StreamingPayloadTrailer, chunks: chunks, decoded: decodedSize(chunks),
			trailers: []string{"x-amz-checksum-crc32:AAAAAA==", "x-amz-checksum-sha1:2jmj7l5rSw0yVb/vlWAYkK/YBwk="},
			declare:  "x-amz-checksum-crc32, x-amz-checksum-sha1"}},
		{"unsigned trailer", chunkedCase{mode: StreamingUnsignedPayloadTrailer, chunks: chunks, decoded: decodedSize(chunks),
			trailers: []string{"x-amz-checksum-crc64nvme:AAAAAAAAAAA="}, declare: "x-amz-checksum-crc64nvme"}},
		{"unsigned single chunk", chunkedCase{mode: StreamingUnsignedPayloadTrailer, chunks: [][]byte{all}, decoded: int64(len(all)),
			trailers: []string{"x-amz-checksum-crc32:AAAAAA=="}, declare: "x-amz-checksum-crc32"}},
		{"unsigned empty", chunkedCase{mode: StreamingUnsignedPayloadTrailer, decoded: 0,
			trailers: []string{"x-amz-checksum-crc32:AAAAAA=="}, declare: "x-amz-checksum-crc32"}},
		{"signed empty", chunkedCase{mode: StreamingPayload, decoded: 0}},
	}
	for _, tt := range tests {
		for _, read := range []struct {
			slow bool
			size int
		}{{false, 32 << 10}, {true, 7}, {false, 1}} {
			t.Run(fmt.Sprintf("%s/slow=%v/read=%d", tt.name, read.slow, read.size), func(t *testing.T) {
				req, body := tt.c.build(t)
				res, got, err := verifyBody(t, req, body, read.slow, read.size)
				if err != nil {
					t.Fatal(err)
				}
				if want := bytes.Join(tt.c.chunks, nil); !bytes.Equal(got, want) {
					t.Fatalf("decoded %d bytes, want %d", len(got), len(want))
				}
				if !res.Chunked || res.DecodedLength != tt.c.decoded {
					t.Errorf("Chunked %v DecodedLength %d", res.Chunked, res.DecodedLength)
				}
				tr := res.Trailer()
				if tr == nil || len(tr) != len(tt.c.trailers) {
					t.Fatalf("Trailer() = %v", tr)
				}
				for _, l := range tt.c.trailers {
					name, value, _ := strings.Cut(l, ":")
					if tr.Get(name) != value {
						t.Errorf("trailer %s = %q, want %q", name, tr.Get(name), value)
					}
				}
			})
		}
	}
}

// Through a real server, with net/http's own framing underneath.
func TestChunkedOverHTTP(t *testing.T) {
	ts := newTestServer(t, newVerifier(signTime), false)
	c := chunkedCase{mode: StreamingPayloadTrailer, chunks: testChunks(), decoded: decodedSize(testChunks()),
		trailers: []string{"x-amz-checksum-crc32c:sOO8/Q=="}, declare: "x-amz-checksum-crc32c"}
	sreq, body := c.build(t)
	req, _ := http.NewRequest("PUT", ts.URL+sreq.URL.RequestURI(), bytes.NewReader(body))
	req.Host = sreq.Host
	req.Header = sreq.Header
	s := ts.do(t, req)
	if s.err != nil || s.bodyErr != nil {
		t.Fatalf("Verify %v, body %v", s.err, s.bodyErr)
	}
	if !bytes.Equal(s.body, bytes.Join(c.chunks, nil)) || s.trailer.Get("x-amz-checksum-crc32c") != "sOO8/Q==" {
		t.Errorf("body %d bytes, trailer %v", len(s.body), s.trailer)
	}
}

func TestChunkedTampering(t *testing.T) {
	chunks := testChunks()
	trailerCase := chunkedCase{mode: StreamingPayloadTrailer, chunks: chunks, decoded: decodedSize(chunks),
		trailers: []string{"x-amz-checksum-crc32c:sOO8/Q=="}, declare: "x-amz-checksum-crc32c"}
	unsignedCase := chunkedCase{mode: StreamingUnsignedPayloadTrailer, chunks: chunks, decoded: decodedSize(chunks),
		trailers: []string{"x-amz-checksum-crc32c:sOO8/Q=="}, declare: "x-amz-checksum-crc32c"}
	replace := func(old, new string) func([]byte) []byte {
		return func(b []byte) []byte { return bytes.Replace(b, []byte(old), []byte(new), 1) }
	}
	tests := []struct {
		name    string
		c       chunkedCase
		modify  func([]byte) []byte
		header  map[string]string
		wantErr error
	}{
		{name: "trailer value", c: trailerCase, modify: replace("sOO8/Q==", "AAAAAA=="), wantErr: ErrSignatureDoesNotMatch},
		{name: "trailer name case", c: trailerCase, modify: replace("x-amz-checksum-crc32c:", "X-Amz-Checksum-Crc32c:"), wantErr: ErrSignatureDoesNotMatch},
		{name: "trailer signature", c: trailerCase, modify: func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-trailer-signature:")) + len("x-amz-trailer-signature:")
			b[i] ^= 1
			if b[i] > 'f' || (b[i] > '9' && b[i] < 'a') {
				b[i] = '0'
			}
			return b
		}, wantErr: ErrSignatureDoesNotMatch},
		{name: "trailer signature missing", c: trailerCase, modify: func(b []byte) []byte {
			i := bytes.Index(b, []byte("x-amz-trailer-signature:"))
			return append(b[:i:i], "\r\n"...)
		}, wantErr: ErrMalformedTrailer},
		{name: "trailer after signature", c: trailerCase, modify: func(b []byte) []byte {
			return append(b[:len(b)-2:len(b)-2], "x-amz-checksum-crc32c:AAAAAA==\r\n\r\n"...)
		}, wantErr: ErrMalformedTrailer},
		{name: "undeclared trailer", c: trailerCase, header: map[string]string{"X-Amz-Trailer": "x-amz-checksum-sha1"}, wantErr: ErrSignatureDoesNotMatch},
		{name: "unsigned undeclared trailer", c: unsignedCase, modify: replace("x-amz-checksum-crc32c:", "x-amz-checksum-crc32:"), wantErr: ErrMalformedTrailer},
		{name: "unsigned missing trailer", c: unsignedCase, modify: replace("x-amz-checksum-crc32c:sOO8/Q==\r\n", ""), wantErr: ErrMalformedTrailer},
		{name: "unsigned trailer without colon", c: unsignedCase, modify: replace("x-amz-checksum-crc32c:", "x-amz-checksum-crc32c="), wantErr: ErrMalformedTrailer},
		{name: "unsigned trailer signature line", c: unsignedCase, modify: replace("sOO8/Q==\r\n", "sOO8/Q==\r\nx-amz-trailer-signature:00\r\n"), wantErr: ErrMalformedTrailer},
		{name: "unsigned data byte", c: unsignedCase, modify: replace("second", "sec0nd")},
		{name: "bad hex size", c: unsignedCase, modify: replace("2000\r\n", "2z00\r\n"), wantErr: ErrMalformedChunk},
		{name: "signed size sign", c: trailerCase, modify: replace("2000;", "+2000;"), wantErr: ErrMalformedChunk},
		{name: "size too long", c: unsignedCase, modify: replace("2000\r\n", "00000000000000002000\r\n"), wantErr: ErrMalformedChunk},
		{name: "size mismatch", c: unsignedCase, modify: replace("2000\r\n", "1fff\r\n"), wantErr: ErrMalformedChunk},
		{name: "missing CRLF after data", c: trailerCase, modify: replace("short\r\n", "short\n\n"), wantErr: ErrMalformedChunk},
		{name: "bare LF header", c: unsignedCase, modify: replace("2000\r\n", "2000\n"), wantErr: ErrMalformedChunk},
		{name: "missing chunk signature", c: trailerCase, modify: replace(";chunk-signature=", ";chunk-signatur="), wantErr: ErrMalformedChunk},
		{name: "short chunk signature", c: trailerCase, modify: func(b []byte) []byte {
			i := bytes.Index(b, []byte(";chunk-signature=")) + len(";chunk-signature=")
			return append(b[:i+62:i+62], b[i+64:]...)
		}, wantErr: ErrMalformedChunk},
		{name: "data after end", c: trailerCase, modify: func(b []byte) []byte { return append(b, "extra"...) }, wantErr: ErrMalformedChunk},
		{name: "trailer in plain signed mode", c: chunkedCase{mode: StreamingPayload, chunks: chunks, decoded: decodedSize(chunks)},
			modify: func(b []byte) []byte {
				return append(b[:len(b)-2:len(b)-2], "x-amz-checksum-crc32:AAAAAA==\r\n\r\n"...)
			}, wantErr: ErrMalformedChunk},
		{name: "decoded length short", c: unsignedCase, header: map[string]string{"X-Amz-Decoded-Content-Length": strconv.FormatInt(decodedSize(chunks)+1, 10)}, wantErr: ErrIncompleteBody},
		{name: "decoded length long", c: unsignedCase, header: map[string]string{"X-Amz-Decoded-Content-Length": strconv.FormatInt(decodedSize(chunks)-1, 10)}, wantErr: ErrIncompleteBody},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, body := tt.c.build(t)
			if tt.modify != nil {
				body = tt.modify(bytes.Clone(body))
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.header != nil && tt.c.mode != StreamingUnsignedPayloadTrailer {
				// The header is signed: changing it breaks the request
				// signature before any chunk is read.
				_, err := newVerifier(signTime).Verify(context.Background(), req)
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Verify err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if tt.header != nil {
				// Unsigned trailer requests still sign their headers; re-sign.
				req.Header.Del("Authorization")
				sdkSign(t, req, tt.c.mode, signTime)
			}
			res, got, err := verifyBody(t, req, body, false, 4096)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("body err = %v, want %v", err, tt.wantErr)
			}
			if err != nil && res.Trailer() != nil {
				t.Error("trailers exposed after a failure")
			}
			if tt.wantErr == nil && bytes.Equal(got, bytes.Join(chunks, nil)) {
				t.Error("unsigned tampering not visible in data")
			}
		})
	}
}

// Cutting a body short anywhere is never a clean EOF.
func TestChunkedTruncation(t *testing.T) {
	chunks := [][]byte{[]byte("hello, "), []byte("world")}
	for _, c := range []chunkedCase{
		{mode: StreamingPayloadTrailer, chunks: chunks, decoded: 12, trailers: []string{"x-amz-checksum-crc32:AAAAAA=="}, declare: "x-amz-checksum-crc32"},
		{mode: StreamingUnsignedPayloadTrailer, chunks: chunks, decoded: 12, trailers: []string{"x-amz-checksum-crc32:AAAAAA=="}, declare: "x-amz-checksum-crc32"},
		{mode: StreamingPayload, chunks: chunks, decoded: 12},
		{mode: StreamingPayload, chunks: chunks, decoded: -1},
	} {
		req, body := c.build(t)
		finalEnd := bytes.LastIndex(body, []byte("\r\n\r\n")) + 2 // after the final chunk or the last trailer
		for cut := 0; cut < len(body)-2; cut++ {
			r := req.Clone(context.Background())
			_, _, err := verifyBody(t, r, body[:cut], false, 64)
			if c.mode == StreamingPayload && c.decoded < 0 && cut == finalEnd {
				// Everything signed has arrived; only the last CRLF is
				// missing, which some clients omit.
				if err != nil {
					t.Errorf("%s cut %d: %v", c.mode, cut, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s cut at %d of %d: clean EOF", c.mode, cut, len(body))
				continue
			}
			if !errors.Is(err, ErrIncompleteBody) && !errors.Is(err, ErrMalformedTrailer) {
				t.Errorf("%s cut at %d: %v", c.mode, cut, err)
			}
		}
	}
}

func TestChunkSizeLimit(t *testing.T) {
	big := bytes.Repeat([]byte("z"), 4096)
	c := chunkedCase{mode: StreamingPayload, chunks: [][]byte{big}, decoded: 4096}
	req, body := c.build(t)
	req.Body = io.NopCloser(bytes.NewReader(body))
	v := newVerifier(signTime)
	v.MaxChunkSize = 4095
	res, err := v.Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAllBody(res); !errors.Is(err, ErrMalformedChunk) {
		t.Fatalf("err = %v", err)
	}
	// Announcing a huge chunk allocates nothing up front and fails when
	// the body runs out.
	huge := []byte("ffffff;chunk-signature=" + strings.Repeat("0", 64) + "\r\nabc")
	req, _ = c.build(t)
	req.Header.Del("X-Amz-Decoded-Content-Length")
	req.Header.Del("Authorization")
	sdkSign(t, req, StreamingPayload, signTime)
	req.Body = io.NopCloser(bytes.NewReader(huge))
	res, err = newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readAllBody(res); !errors.Is(err, ErrIncompleteBody) {
		t.Fatalf("huge chunk: %v", err)
	}
}

func TestChunkedBadDecodedLength(t *testing.T) {
	c := chunkedCase{mode: StreamingUnsignedPayloadTrailer, chunks: testChunks(), decoded: -1}
	req, _ := c.build(t)
	req.Header.Set("X-Amz-Decoded-Content-Length", "-1")
	req.Header.Del("Authorization")
	sdkSign(t, req, c.mode, signTime)
	if _, err := newVerifier(signTime).Verify(context.Background(), req); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("err = %v", err)
	}
}

// Anonymous clients may still send unsigned aws-chunked bodies.
func TestChunkedAnonymous(t *testing.T) {
	c := chunkedCase{mode: StreamingUnsignedPayloadTrailer, chunks: testChunks(), decoded: decodedSize(testChunks()),
		trailers: []string{"x-amz-checksum-crc32:AAAAAA=="}, declare: "x-amz-checksum-crc32"}
	req, body := c.build(t)
	req.Header.Del("Authorization")
	req.Body = io.NopCloser(bytes.NewReader(body))
	res, err := newVerifier(signTime).Verify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAllBody(res)
	if err != nil || !res.Anonymous || !bytes.Equal(got, bytes.Join(c.chunks, nil)) || res.Trailer().Get("x-amz-checksum-crc32") != "AAAAAA==" {
		t.Fatalf("anonymous chunked: %v, %+v", err, res)
	}
}

// The way Bulwark's PUT path composes the two packages: the checksum
// reader takes its expected value from the trailer once the body ends.
func TestTrailerFeedsChecksumReader(t *testing.T) {
	chunks := testChunks()
	data := bytes.Join(chunks, nil)
	for _, value := range []string{checksum.CRC32C.Sum(data), checksum.CRC32C.Sum([]byte("other"))} {
		c := chunkedCase{mode: StreamingUnsignedPayloadTrailer, chunks: chunks, decoded: int64(len(data)),
			trailers: []string{"x-amz-checksum-crc32c:" + value}, declare: "x-amz-checksum-crc32c"}
		req, body := c.build(t)
		req.Body = io.NopCloser(bytes.NewReader(body))
		res, err := newVerifier(signTime).Verify(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		alg, ok := checksum.AlgorithmForHeader(res.DeclaredTrailers[0])
		if !ok {
			t.Fatalf("declared %v", res.DeclaredTrailers)
		}
		cr := checksum.NewReader(res.Body, checksum.ReaderOptions{
			WantMD5:   true,
			Algorithm: alg,
			Expected: func() (string, bool) {
				v := res.Trailer().Get(alg.HeaderName())
				return v, v != ""
			},
			ExpectedSize: res.DecodedLength,
		})
		_, err = io.Copy(io.Discard, cr)
		if match := value == checksum.CRC32C.Sum(data); match != (err == nil) || !match && !errors.Is(err, checksum.ErrChecksumMismatch) {
			t.Errorf("trailer %s: err = %v", value, err)
		}
	}
}
