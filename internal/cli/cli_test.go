package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// startMain runs the command in the background and returns its endpoints
// and a function that stops it (as SIGTERM does) and returns the exit code.
func startMain(t *testing.T, env map[string]string, args ...string) (map[string]string, *bytes.Buffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	out := &bytes.Buffer{}
	m := &Main{Stdout: out, Stderr: &bytes.Buffer{}, Getenv: func(k string) string { return env[k] }, Ready: func(u map[string]string) { ready <- u }}
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, args) }()
	select {
	case urls := <-ready:
		return urls, out, func() int { cancel(); return <-done }
	case code := <-done:
		cancel()
		t.Fatalf("exited with %d: %s", code, m.Stderr)
	case <-time.After(20 * time.Second):
		t.Fatal("did not start")
	}
	return nil, nil, nil
}

func TestUpGeneratesCredentialsOnceAndShutsDownCleanly(t *testing.T) {
	dir := t.TempDir()
	urls, out, stop := startMain(t, nil, "up", "--data", dir, "--listen", "127.0.0.1:0")
	var creds credentials
	raw, err := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &creds); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"us-west-2", urls["us-west-2"], creds.AccessKey, creds.SecretKey} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("up output lacks %q:\n%s", want, out)
		}
	}
	c := servertest.NewClient(urls["us-west-2"], "us-west-2", creds.AccessKey, creds.SecretKey, nil)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("first")}); err != nil {
		t.Fatal(err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after shutdown", code)
	}
	// The store was closed: its file lock is free.
	m, err := bolt.Open(filepath.Join(dir, "us-west-2", "meta.db"))
	if err != nil {
		t.Fatalf("metadata still locked after shutdown: %v", err)
	}
	m.Close()
	// A second start reuses the stored pair and keeps the data.
	urls, _, stop = startMain(t, nil, "up", "--data", dir, "--listen", "127.0.0.1:0")
	defer stop()
	c = servertest.NewClient(urls["us-west-2"], "us-west-2", creds.AccessKey, creds.SecretKey, nil)
	if _, err := c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("first")}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestServeTakesCredentialsFromEnvironment(t *testing.T) {
	env := map[string]string{"BULWARK_ACCESS_KEY": "AKIAENVKEY0000000000", "BULWARK_SECRET_KEY": "env-secret"}
	urls, _, stop := startMain(t, env, "serve", "--region", "eu-west-1", "--data", t.TempDir(), "--listen", "127.0.0.1:0")
	defer stop()
	c := servertest.NewClient(urls["eu-west-1"], "eu-west-1", "AKIAENVKEY0000000000", "env-secret", nil)
	if _, err := c.ListBuckets(context.Background(), &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err)
	}
}

func TestUpTLS(t *testing.T) {
	dir := t.TempDir()
	urls, out, stop := startMain(t, nil, "up", "--tls", "--data", dir, "--listen", "127.0.0.1:0")
	defer stop()
	if !strings.HasPrefix(urls["us-west-2"], "https://") || !strings.Contains(out.String(), "AWS_CA_BUNDLE="+filepath.Join(dir, "tls", "cert.pem")) {
		t.Fatalf("tls up: %v\n%s", urls, out)
	}
}

func TestUsageErrors(t *testing.T) {
	m := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	if code := m.Run(context.Background(), []string{"nonsense"}); code != 2 {
		t.Fatalf("unknown command exit %d", code)
	}
	if code := m.Run(context.Background(), []string{"serve", "--tls-cert", "x"}); code != 1 {
		t.Fatalf("half TLS config exit %d", code)
	}
}
