package bench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1048576, true},
		{"0", 0, true},
		{"4KiB", 4 << 10, true},
		{"16MiB", 16 << 20, true},
		{"4k", 4 << 10, true},
		{"4K", 4 << 10, true},
		{"4kb", 4 << 10, true},
		{"1m", 1 << 20, true},
		{"2GiB", 2 << 30, true},
		{"1t", 1 << 40, true},
		{" 8 MiB ", 8 << 20, true},
		{"512b", 512, true},
		{"", 0, false},
		{"MiB", 0, false},
		{"-1", 0, false},
		{"1.5m", 0, false},
		{"4x", 0, false},
		{"9223372036854775807k", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseSize(tt.in)
		if tt.ok && (err != nil || got != tt.want) {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
		if !tt.ok && err == nil {
			t.Errorf("ParseSize(%q) = %d; want an error", tt.in, got)
		}
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{0: "0B", 100: "100B", 4096: "4KiB", 1536: "1.5KiB", 1 << 20: "1MiB", 16 << 30: "16GiB"} {
		if got := formatSize(n); got != want {
			t.Errorf("formatSize(%d) = %q; want %q", n, got, want)
		}
	}
}

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"single p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"single p99", []time.Duration{ms(7)}, 99, ms(7)},
		{"100 p50", hundred, 50, ms(50)},
		{"100 p90", hundred, 90, ms(90)},
		{"100 p99", hundred, 99, ms(99)},
		{"100 max", hundred, 100, ms(100)},
		{"four p50", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 50, ms(2)},
		{"four p90", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 90, ms(4)},
		{"p0 is the minimum", hundred, 0, ms(1)},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(p%v) = %v; want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestSummariseSkipsFailures(t *testing.T) {
	lat := []time.Duration{3 * time.Millisecond, time.Microsecond, time.Millisecond, 0}
	states := []opState{opOK, opFailed, opOK, opSkipped}
	r := summarise("put", lat, states, 10, time.Second)
	if r.Count != 3 || r.Errors != 1 || r.Bytes != 20 {
		t.Errorf("count %d errors %d bytes %d; want 3 1 20", r.Count, r.Errors, r.Bytes)
	}
	if r.P50 != time.Millisecond || r.Max != 3*time.Millisecond {
		t.Errorf("p50 %v max %v; want 1ms 3ms (the failed op's latency left out)", r.P50, r.Max)
	}
	if r.OpsPerSec != 2 {
		t.Errorf("ops/s %v; want 2", r.OpsPerSec)
	}
}

func TestRunPhaseCountsErrors(t *testing.T) {
	keys := []string{"a", "b", "c", "d", "e"}
	boom := errors.New("boom")
	fn := func(_ context.Context, key string) error {
		if key == "c" {
			return boom
		}
		return nil
	}
	r, states := runPhase(t.Context(), "put", keys, 2, 1, fn)
	if r.Count != 5 || r.Errors != 1 || !errors.Is(r.FirstError, boom) {
		t.Errorf("count %d errors %d first %v; want 5 1 boom", r.Count, r.Errors, r.FirstError)
	}
	if got := pick(keys, states, opOK); strings.Join(got, "") != "abde" {
		t.Errorf("ok keys %q; want abde", got)
	}
	if err := phaseErr(t.Context(), r); err != nil {
		t.Errorf("partial failure: %v; want no error", err)
	}
	all, _ := runPhase(t.Context(), "get", keys, 2, 1, func(context.Context, string) error { return boom })
	if err := phaseErr(t.Context(), all); !errors.Is(err, boom) {
		t.Errorf("all failed: %v; want an error wrapping boom", err)
	}
}

func TestRunBulwark(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	base := Config{
		Endpoint:   r.URL(),
		Region:     "us-west-2",
		AccessKey:  servertest.AccessKey,
		SecretKey:  servertest.SecretKey,
		Bucket:     "bench",
		HTTPClient: r.HTTPClient(t),
	}
	small := base
	small.Size, small.Count, small.Concurrency = 4<<10, 200, 8
	res := runAndCheck(t, small)
	t.Logf("4KiB × 200:\n%s", printed(res))

	// The second run finds the bucket in place, lets the SDK add its
	// checksums, and removes its objects afterwards.
	large := base
	large.Size, large.Count, large.Concurrency = 1<<20, 10, 2
	large.Prefix, large.Checksum, large.Cleanup = "large/", true, true
	res = runAndCheck(t, large)
	t.Logf("1MiB × 10:\n%s", printed(res))

	client := r.Client(t)
	out, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String("bench"), Prefix: aws.String("large/")})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Contents) != 0 {
		t.Errorf("%d objects left under large/ after cleanup", len(out.Contents))
	}

	bad := small
	bad.SecretKey, bad.Count = "wrong", 5
	if _, err := Run(t.Context(), bad); err == nil {
		t.Error("Run with a wrong secret key: want an error")
	}
}

func TestRunBulwarkTLS(t *testing.T) {
	r := servertest.Start(t, servertest.Options{TLS: true})
	if !strings.HasPrefix(r.URL(), "https://") {
		t.Fatalf("URL %s: want https", r.URL())
	}
	cfg := Config{
		Endpoint:    r.URL(),
		AccessKey:   servertest.AccessKey,
		SecretKey:   servertest.SecretKey,
		Bucket:      "bench-tls",
		Size:        4 << 10,
		Count:       50,
		Concurrency: 4,
		HTTPClient:  r.HTTPClient(t),
	}
	runAndCheck(t, cfg)

	// The same endpoint through the client Run builds itself from CAFile.
	cfg.HTTPClient, cfg.CAFile, cfg.Prefix = nil, r.CAFile, "ca/"
	runAndCheck(t, cfg)

	// And skipping verification of the self-signed certificate.
	cfg.CAFile, cfg.Insecure, cfg.Prefix, cfg.Count = "", true, "insecure/", 10
	runAndCheck(t, cfg)
}

func TestRunRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Bucket: "b", Count: 1},
		{Endpoint: "http://127.0.0.1:1", Count: 1},
		{Endpoint: "http://127.0.0.1:1", Bucket: "b"},
		{Endpoint: "http://127.0.0.1:1", Bucket: "b", Count: 1, Size: -1},
	} {
		if _, err := Run(t.Context(), cfg); err == nil {
			t.Errorf("Run(%+v): want an error", cfg)
		}
	}
}

// runAndCheck runs cfg and checks that both phases moved every object.
func runAndCheck(t *testing.T, cfg Config) *Result {
	t.Helper()
	res, err := Run(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []PhaseResult{res.Put, res.Get} {
		if p.Errors != 0 {
			t.Errorf("%s: %d errors, first: %v", p.Op, p.Errors, p.FirstError)
		}
		if p.Count != cfg.Count || p.Bytes != int64(cfg.Count)*cfg.Size {
			t.Errorf("%s: count %d bytes %d; want %d %d", p.Op, p.Count, p.Bytes, cfg.Count, int64(cfg.Count)*cfg.Size)
		}
		if p.P50 <= 0 || p.P50 > p.P90 || p.P90 > p.P99 || p.P99 > p.Max || p.OpsPerSec <= 0 {
			t.Errorf("%s: implausible figures %+v", p.Op, p)
		}
	}
	out := printed(res)
	for _, want := range []string{"phase", "put", "get", formatSize(cfg.Size), "p99"} {
		if !strings.Contains(out, want) {
			t.Errorf("Print output lacks %q:\n%s", want, out)
		}
	}
	return res
}

func printed(r *Result) string {
	var b bytes.Buffer
	r.Print(&b)
	return b.String()
}

func TestDiskBaseline(t *testing.T) {
	rate, err := DiskBaseline(context.Background(), t.TempDir(), 4096, 200*time.Millisecond)
	if err != nil || rate <= 0 {
		t.Fatalf("baseline %v, %v", rate, err)
	}
}

func TestMultipartMode(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	res, err := Run(context.Background(), Config{
		Endpoint: r.URL(), AccessKey: servertest.AccessKey, SecretKey: servertest.SecretKey,
		Bucket: "bench-mp", Size: 12<<20 + 3, Count: 2, Concurrency: 3, PartSize: 5 << 20,
		HTTPClient: r.HTTPClient(t), Cleanup: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Put.Errors+res.Get.Errors != 0 || res.Put.Bytes != 2*(12<<20+3) || res.Get.Bytes != res.Put.Bytes {
		t.Fatalf("multipart mode: %+v", res)
	}
}
