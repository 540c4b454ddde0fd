package sigv4

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// knownErrors are the sentinels Verify and the bodies may report; a fuzz
// input must fail with one of them, never with something unclassified.
var knownErrors = []error{
	ErrInvalidAccessKeyID, ErrSignatureDoesNotMatch, ErrAuthorizationHeaderMalformed,
	ErrAuthorizationQueryParametersError, ErrAccessDenied, ErrRequestExpired,
	ErrRequestTimeTooSkewed, ErrContentSHA256Mismatch, ErrInvalidContentSHA256,
	ErrInvalidRequest, ErrInvalidArgument, ErrIncompleteBody, ErrMalformedChunk,
	ErrMalformedTrailer, ErrNotImplemented,
}

func classified(err error) bool {
	for _, e := range knownErrors {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

func FuzzParseAuthorization(f *testing.F) {
	f.Add("AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20240301/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=" + strings.Repeat("ab", 32))
	f.Fuzz(func(t *testing.T, auth string) {
		if _, err := parseAuthorization(auth); err != nil && !classified(err) {
			t.Fatalf("unclassified error %v", err)
		}
		req := httptest.NewRequest("GET", "http://example.com/b/k", nil)
		req.Header.Set("X-Amz-Content-Sha256", EmptySHA256)
		req.Header.Set("X-Amz-Date", "20240301T120000Z")
		req.Header["Authorization"] = []string{auth}
		res, err := newVerifier(signTime).Verify(context.Background(), req)
		if err == nil {
			t.Fatalf("fuzzed Authorization %q verified: %+v", auth, res)
		}
		if !classified(err) {
			t.Fatalf("unclassified error %v", err)
		}
	})
}

func FuzzPresignedQuery(f *testing.F) {
	u, _ := url.Parse(presignSeedURL(f))
	f.Add(u.EscapedPath(), u.RawQuery)
	f.Add("/b/a%2Fb/%E2%82%AC", "prefix=a+b&x&y=&&z=%20")
	f.Fuzz(func(t *testing.T, path, rawQuery string) {
		for _, p := range canonicalURIs(path) {
			if p == "" {
				t.Fatalf("empty canonical URI for %q", path)
			}
		}
		req := httptest.NewRequest("GET", "http://example.com/", nil)
		req.RequestURI = path + "?" + rawQuery
		req.URL.RawQuery = rawQuery
		res, err := newVerifier(signTime.Add(time.Minute)).Verify(context.Background(), req)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !res.Anonymous && !res.Presigned {
			t.Fatalf("query-only request verified as header-signed: %+v", res)
		}
		// Only the seed's own path carries its signature, give or take an
		// encoding that names the same key.
		n1, _ := normalizePath(path)
		n2, _ := normalizePath(u.EscapedPath())
		if res.Presigned && path != u.EscapedPath() && n1 != n2 {
			t.Fatalf("presigned URL verified for another path %q", path)
		}
	})
}

func presignSeedURL(tb testing.TB) string {
	req := httptest.NewRequest("GET", "http://example.com/b/k%20ey", nil)
	signed, _ := sdkPresign(tb, req, time.Hour, "", signTime)
	return signed
}

// FuzzChunkedReader feeds arbitrary bodies to the aws-chunked decoder in
// every mode. Signed modes use a fixed key and seed, which the seed corpus
// signs with, so mutations of valid bodies reach the trailer parsing.
func FuzzChunkedReader(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"), uint8(2), "x-amz-checksum-crc32", int64(5))
	f.Fuzz(func(t *testing.T, body []byte, mode uint8, declared string, decoded int64) {
		kinds := []payloadKind{payloadChunkedSigned, payloadChunkedSignedTrailer, payloadChunkedUnsignedTrailer}
		kind := kinds[int(mode)%len(kinds)]
		var chain *chunkSigner
		if kind != payloadChunkedUnsignedTrailer {
			chain = &chunkSigner{key: []byte("key"), amzDate: "20240301T120000Z", scope: "20240301/us-east-1/s3/aws4_request", prev: EmptySHA256}
		}
		if decoded < -1 {
			decoded = -1
		}
		cr := newChunkedReader(io.NopCloser(bytes.NewReader(body)), chunkedOptions{
			chain:     chain,
			trailers:  kind != payloadChunkedSigned,
			declared:  parseTrailerNames([]string{declared}),
			maxChunk:  1 << 16,
			wantTotal: decoded,
		})
		out, err := io.ReadAll(cr)
		if err != nil && !classified(err) {
			t.Fatalf("unclassified error %v", err)
		}
		if len(out) > len(body) {
			t.Fatalf("decoded %d bytes from %d", len(out), len(body))
		}
		if err == nil {
			if decoded >= 0 && int64(len(out)) != decoded {
				t.Fatalf("decoded %d bytes, announced %d", len(out), decoded)
			}
			if cr.trailers() == nil {
				t.Fatal("clean EOF without trailers map")
			}
		} else if cr.trailers() != nil {
			t.Fatal("trailers exposed after a failure")
		}
	})
}

// FuzzSignedChunked builds a validly signed aws-chunked body with trailer,
// flips one byte, and checks the decoder's promise: a clean EOF means the
// data and trailers are exactly what was signed.
func FuzzSignedChunked(f *testing.F) {
	f.Add([]byte("some data for a few chunks of aws-chunked encoding"), uint16(7), uint32(30), byte(1))
	f.Fuzz(func(t *testing.T, data []byte, chunkSize uint16, flipAt uint32, flipXor byte) {
		if chunkSize == 0 {
			chunkSize = 1
		}
		var chunks [][]byte
		for rest := data; len(rest) > 0; {
			n := min(int(chunkSize), len(rest))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		c := chunkedCase{mode: StreamingPayloadTrailer, chunks: chunks, decoded: int64(len(data)),
			trailers: []string{"x-amz-checksum-crc32c:sOO8/Q=="}, declare: "x-amz-checksum-crc32c"}
		req, body := c.build(t)
		body[int(flipAt)%len(body)] ^= flipXor
		req.Body = io.NopCloser(bytes.NewReader(body))
		res, err := newVerifier(signTime).Verify(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(res.Body)
		if err != nil {
			if !classified(err) {
				t.Fatalf("unclassified error %v", err)
			}
			return
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("clean EOF with altered data: %q, want %q", out, data)
		}
		if got := res.Trailer(); len(got) != 1 || got.Get("x-amz-checksum-crc32c") != "sOO8/Q==" {
			t.Fatalf("clean EOF with altered trailers %v", got)
		}
	})
}
