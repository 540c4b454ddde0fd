package checksum

import (
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func hexToB64(t *testing.T, h string) string {
	t.Helper()
	b, err := hex.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestKnownVectors(t *testing.T) {
	tests := []struct {
		alg   Algorithm
		input string
		hex   string
	}{
		{CRC32, "123456789", "cbf43926"},
		{CRC32, "", "00000000"},
		{CRC32C, "123456789", "e3069283"},
		{CRC32C, "", "00000000"},
		{CRC64NVME, "123456789", "ae8b14860a799888"},
		{CRC64NVME, "", "0000000000000000"},
		{SHA1, "123456789", "f7c3bc1d808e04732adf679965ccc34ca7ae3441"},
		{SHA1, "", "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		{SHA256, "123456789", "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225"},
		{SHA256, "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	}
	for _, tt := range tests {
		t.Run(string(tt.alg)+"/"+tt.input, func(t *testing.T) {
			want := hexToB64(t, tt.hex)
			if got := tt.alg.Sum([]byte(tt.input)); got != want {
				t.Errorf("Sum = %s, want %s", got, want)
			}
			if len(tt.hex)/2 != tt.alg.Size() {
				t.Errorf("Size = %d, want %d", tt.alg.Size(), len(tt.hex)/2)
			}
			if _, err := tt.alg.Decode(want); err != nil {
				t.Errorf("Decode(%s): %v", want, err)
			}
		})
	}
}

// The values the AWS SDKs send for the same payloads: the SDK's
// documentation example and values from S3's own documentation.
func TestAWSDocumentedValues(t *testing.T) {
	if got := SHA256.Sum([]byte("Hello world")); got != "ZOyIygCyaOW6GjVnihtTFtIS9PNmskdyMlNKiuyjfzw=" {
		t.Errorf("sha256(Hello world) = %s", got)
	}
	if got := CRC32C.Sum([]byte("Hello world")); got != "crUfeA==" {
		t.Errorf("crc32c(Hello world) = %s", got)
	}
}

func TestParseAlgorithm(t *testing.T) {
	for _, a := range All() {
		for _, s := range []string{string(a), strings.ToLower(string(a)), " " + string(a)} {
			got, err := ParseAlgorithm(s)
			if s[0] == ' ' {
				if !errors.Is(err, ErrInvalidAlgorithm) {
					t.Errorf("ParseAlgorithm(%q) err = %v, want ErrInvalidAlgorithm", s, err)
				}
				continue
			}
			if err != nil || got != a {
				t.Errorf("ParseAlgorithm(%q) = %q, %v", s, got, err)
			}
		}
	}
	for _, s := range []string{"", "MD5", "SHA512", "crc", "CRC32CC"} {
		if _, err := ParseAlgorithm(s); !errors.Is(err, ErrInvalidAlgorithm) {
			t.Errorf("ParseAlgorithm(%q) err = %v", s, err)
		}
	}
}

func TestHeaderNames(t *testing.T) {
	want := map[Algorithm]string{
		CRC32:     "x-amz-checksum-crc32",
		CRC32C:    "x-amz-checksum-crc32c",
		SHA1:      "x-amz-checksum-sha1",
		SHA256:    "x-amz-checksum-sha256",
		CRC64NVME: "x-amz-checksum-crc64nvme",
	}
	if len(All()) != len(want) {
		t.Fatalf("All() = %v", All())
	}
	for a, h := range want {
		if a.HeaderName() != h {
			t.Errorf("%s.HeaderName() = %s, want %s", a, a.HeaderName(), h)
		}
		for _, name := range []string{h, strings.ToUpper(h), "X-Amz-Checksum-" + strings.ToLower(string(a))} {
			if got, ok := AlgorithmForHeader(name); !ok || got != a {
				t.Errorf("AlgorithmForHeader(%q) = %q, %v", name, got, ok)
			}
		}
	}
	for _, name := range []string{"x-amz-checksum-type", "x-amz-checksum-mode", "x-amz-checksum-", "content-md5"} {
		if _, ok := AlgorithmForHeader(name); ok {
			t.Errorf("AlgorithmForHeader(%q) matched", name)
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		alg   Algorithm
		value string
		ok    bool
	}{
		{CRC32, "AAAAAA==", true},
		{CRC32, "AAAAAAAAAAA=", false},    // 8 bytes: a CRC64 value
		{CRC64NVME, "AAAAAA==", false},    // 4 bytes
		{CRC64NVME, "AAAAAAAAAAA=", true}, // 8 bytes
		{CRC32C, "AAAAAA", false},         // unpadded
		{CRC32C, "AAAA AA==", false},      // not base64
		{SHA256, "", false},               // empty
		{SHA1, hexToB64(t, strings.Repeat("ab", 20)), true},
		{SHA1, hexToB64(t, strings.Repeat("ab", 32)), false},
	}
	for _, tt := range tests {
		_, err := tt.alg.Decode(tt.value)
		if (tt.alg.Validate(tt.value) == nil) != (err == nil) {
			t.Errorf("%s.Validate(%q) disagrees with Decode", tt.alg, tt.value)
		}
		if tt.ok && err != nil {
			t.Errorf("%s.Decode(%q) = %v", tt.alg, tt.value, err)
		}
		if !tt.ok && !errors.Is(err, ErrInvalidChecksum) {
			t.Errorf("%s.Decode(%q) = %v, want ErrInvalidChecksum", tt.alg, tt.value, err)
		}
	}
	if _, err := Algorithm("MD5").Decode("AAAAAA=="); !errors.Is(err, ErrInvalidAlgorithm) {
		t.Errorf("Decode with bad algorithm: %v", err)
	}
}

func TestNewPanicsOnUnknown(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("New on unknown algorithm did not panic")
		}
	}()
	Algorithm("MD5").New()
}

func TestParseContentMD5(t *testing.T) {
	sum := md5.Sum([]byte("hello"))
	good := base64.StdEncoding.EncodeToString(sum[:])
	got, err := ParseContentMD5(good)
	if err != nil || !bytes.Equal(got, sum[:]) {
		t.Fatalf("ParseContentMD5(%q) = %x, %v", good, got, err)
	}
	for _, bad := range []string{"", "abc", hex.EncodeToString(sum[:]), base64.StdEncoding.EncodeToString(sum[:15]), good[:len(good)-2]} {
		if _, err := ParseContentMD5(bad); !errors.Is(err, ErrInvalidDigest) {
			t.Errorf("ParseContentMD5(%q) = %v, want ErrInvalidDigest", bad, err)
		}
	}
}

func md5Of(s string) []byte {
	sum := md5.Sum([]byte(s))
	return sum[:]
}

func constExpected(v string) func() (string, bool) {
	return func() (string, bool) { return v, true }
}

func TestReaderClean(t *testing.T) {
	body := strings.Repeat("bulwark ", 5000)
	for _, a := range All() {
		t.Run(string(a), func(t *testing.T) {
			r := NewReader(iotest.OneByteReader(strings.NewReader(body)), ReaderOptions{
				WantMD5:      true,
				ExpectedMD5:  md5Of(body),
				Algorithm:    a,
				Expected:     constExpected(a.Sum([]byte(body))),
				ExpectedSize: int64(len(body)),
			})
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != body {
				t.Fatal("body altered")
			}
			if !bytes.Equal(r.MD5(), md5Of(body)) {
				t.Errorf("MD5 = %x", r.MD5())
			}
			if r.Checksum() != a.Sum([]byte(body)) {
				t.Errorf("Checksum = %s", r.Checksum())
			}
			if r.Size() != int64(len(body)) {
				t.Errorf("Size = %d", r.Size())
			}
			// The error state is sticky: a second read is still a clean EOF.
			if n, err := r.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Errorf("read after EOF = %d, %v", n, err)
			}
		})
	}
}

func TestReaderIOTest(t *testing.T) {
	body := strings.Repeat("0123456789", 1000)
	r := NewReader(strings.NewReader(body), ReaderOptions{WantMD5: true, Algorithm: CRC32C, ExpectedSize: -1})
	if err := iotest.TestReader(r, []byte(body)); err != nil {
		t.Fatal(err)
	}
}

func TestReaderNoExpectations(t *testing.T) {
	r := NewReader(strings.NewReader("abc"), ReaderOptions{ExpectedSize: -1})
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if r.MD5() != nil || r.Checksum() != "" || r.Size() != 3 {
		t.Errorf("MD5 %x Checksum %q Size %d", r.MD5(), r.Checksum(), r.Size())
	}
	// An algorithm without an expected value is computed, not checked.
	r = NewReader(strings.NewReader("abc"), ReaderOptions{Algorithm: SHA1, Expected: func() (string, bool) { return "", false }, ExpectedSize: -1})
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if r.Checksum() != SHA1.Sum([]byte("abc")) {
		t.Errorf("Checksum = %q", r.Checksum())
	}
}

// Expected is consulted only at EOF, as a trailer becomes known only then.
func TestReaderExpectedEvaluatedAtEOF(t *testing.T) {
	body := "trailing checksum"
	var trailer string
	calls := 0
	r := NewReader(strings.NewReader(body), ReaderOptions{
		Algorithm:    CRC32,
		Expected:     func() (string, bool) { calls++; return trailer, trailer != "" },
		ExpectedSize: -1,
	})
	buf := make([]byte, 4)
	if _, err := r.Read(buf); err != nil {
		t.Fatal(err)
	}
	if calls != 0 {
		t.Fatal("Expected called before EOF")
	}
	trailer = CRC32.Sum([]byte(body))
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Errorf("Expected called %d times", calls)
	}
}

func TestReaderErrors(t *testing.T) {
	body := "the quick brown fox"
	tests := []struct {
		name    string
		src     io.Reader
		opts    ReaderOptions
		wantErr error
		maxOut  int // at most this many bytes may be handed out; -1: no limit
	}{
		{
			name:    "md5 mismatch",
			opts:    ReaderOptions{ExpectedMD5: md5Of(body + "!"), ExpectedSize: -1},
			maxOut:  -1,
			wantErr: ErrBadDigest,
		},
		{
			name:    "checksum mismatch",
			opts:    ReaderOptions{Algorithm: CRC32C, Expected: constExpected(CRC32C.Sum([]byte("other"))), ExpectedSize: -1},
			maxOut:  -1,
			wantErr: ErrChecksumMismatch,
		},
		{
			name:    "checksum malformed",
			opts:    ReaderOptions{Algorithm: CRC32C, Expected: constExpected(SHA1.Sum([]byte(body))), ExpectedSize: -1},
			maxOut:  -1,
			wantErr: ErrInvalidChecksum,
		},
		{
			name:    "fewer bytes",
			opts:    ReaderOptions{ExpectedSize: int64(len(body)) + 1},
			maxOut:  -1,
			wantErr: ErrIncompleteBody,
		},
		{
			name:    "more bytes",
			opts:    ReaderOptions{ExpectedSize: int64(len(body)) - 3},
			wantErr: ErrTooLong,
			maxOut:  len(body) - 3,
		},
		{
			name:    "empty expected but body",
			opts:    ReaderOptions{ExpectedSize: 0},
			wantErr: ErrTooLong,
			maxOut:  0,
		},
		{
			name:    "unexpected EOF",
			src:     io.MultiReader(strings.NewReader(body), iotest.ErrReader(io.ErrUnexpectedEOF)),
			opts:    ReaderOptions{ExpectedSize: -1},
			maxOut:  -1,
			wantErr: ErrIncompleteBody,
		},
		{
			name:    "bad expected md5 length",
			opts:    ReaderOptions{ExpectedMD5: []byte{1, 2, 3}, ExpectedSize: -1},
			wantErr: ErrInvalidDigest,
			maxOut:  0,
		},
		{
			name:    "bad algorithm",
			opts:    ReaderOptions{Algorithm: "MD5", ExpectedSize: -1},
			wantErr: ErrInvalidAlgorithm,
			maxOut:  0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := tt.src
			if src == nil {
				src = strings.NewReader(body)
			}
			r := NewReader(src, tt.opts)
			got, err := io.ReadAll(r)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.maxOut >= 0 && len(got) > tt.maxOut {
				t.Errorf("handed out %d bytes, want at most %d", len(got), tt.maxOut)
			}
			// Sticky: the failure is never followed by a clean EOF.
			if _, err2 := r.Read(make([]byte, 1)); !errors.Is(err2, tt.wantErr) {
				t.Errorf("second read err = %v", err2)
			}
			if r.MD5() != nil || r.Checksum() != "" {
				t.Error("results exposed after a failed read")
			}
		})
	}
}

// A final read that returns data together with io.EOF is verified before
// the EOF is passed on.
func TestReaderDataWithEOF(t *testing.T) {
	body := "data and EOF together"
	r := NewReader(iotest.DataErrReader(strings.NewReader(body)), ReaderOptions{
		ExpectedMD5:  md5Of("different"),
		ExpectedSize: int64(len(body)),
	})
	_, err := io.ReadAll(r)
	if !errors.Is(err, ErrBadDigest) {
		t.Fatalf("err = %v", err)
	}
}

func BenchmarkReaderMD5CRC32C(b *testing.B) {
	const size = 16 << 20
	data := bytes.Repeat([]byte("bulwark-object-store"), size/20+1)[:size]
	buf := make([]byte, 256<<10)
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		r := NewReader(bytes.NewReader(data), ReaderOptions{WantMD5: true, Algorithm: CRC32C, ExpectedSize: size})
		if _, err := io.CopyBuffer(io.Discard, r, buf); err != nil {
			b.Fatal(err)
		}
	}
}
