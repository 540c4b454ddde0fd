package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// startMain runs the command in the background and returns its endpoints,
// what it printed on start, and a function that stops it (as SIGTERM does)
// and returns the exit code.
func startMain(t *testing.T, env map[string]string, args ...string) (map[string]string, *bytes.Buffer, func() int) {
	t.Helper()
	urls, out, _, stop := startMainLogs(t, env, args...)
	return urls, out, stop
}

// startMainLogs is startMain that also returns the command's log, to be
// read once it has stopped.
func startMainLogs(t *testing.T, env map[string]string, args ...string) (map[string]string, *bytes.Buffer, *bytes.Buffer, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan map[string]string, 1)
	out, logs := &bytes.Buffer{}, &bytes.Buffer{}
	m := &Main{Stdout: out, Stderr: logs, Getenv: func(k string) string { return env[k] }, Ready: func(u map[string]string) { ready <- u }}
	done := make(chan int, 1)
	go func() { done <- m.Run(ctx, args) }()
	select {
	case urls := <-ready:
		return urls, out, logs, func() int { cancel(); return <-done }
	case code := <-done:
		cancel()
		t.Fatalf("exited with %d: %s", code, logs)
	case <-time.After(20 * time.Second):
		t.Fatal("did not start")
	}
	return nil, nil, nil, nil
}

// shownSecret is the secret key a start printed, "" when it printed none.
func shownSecret(out string) string {
	for line := range strings.Lines(out) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "secret key "); ok && !strings.Contains(v, " ") {
			return v
		}
	}
	return ""
}

// readCredentials reads the data directory's credentials.json, which must
// name a key and hold no secret.
func readCredentials(t *testing.T, dir string) credentials {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "credentials.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c credentials
	if err := json.Unmarshal(raw, &c); err != nil || c.AccountID == "" || c.AccessKey == "" {
		t.Fatalf("credentials.json: %v\n%s", err, raw)
	}
	if c.SecretKey != "" || strings.Contains(string(raw), "secret") {
		t.Fatalf("credentials.json holds a secret:\n%s", raw)
	}
	return c
}

// noSecretAtRest checks that no file under dir holds secret in the clear:
// metadata pages, logs, credentials.json, anything.
func noSecretAtRest(t *testing.T, dir, secret string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(secret)) {
			t.Errorf("%s holds the secret key in the clear", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestUpGeneratesCredentialsOnceAndShutsDownCleanly makes the admin key at
// the first start, shows its secret then and never again, and keeps the
// secret nowhere in the clear.
func TestUpGeneratesCredentialsOnceAndShutsDownCleanly(t *testing.T) {
	dir := t.TempDir()
	urls, out, logs, stop := startMainLogs(t, nil, "up", "--data", dir, "--listen", "127.0.0.1:0")
	creds := readCredentials(t, dir)
	secret := shownSecret(out.String())
	if len(secret) != 40 {
		t.Fatalf("up shows no secret key:\n%s", out)
	}
	for _, want := range []string{"us-west-2", urls["us-west-2"], creds.AccountID, creds.AccessKey, "only time the secret key is shown",
		"export AWS_ACCESS_KEY_ID=" + creds.AccessKey + " AWS_SECRET_ACCESS_KEY=" + secret + " "} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("up output lacks %q:\n%s", want, out)
		}
	}
	c := servertest.NewClient(urls["us-west-2"], "us-west-2", creds.AccessKey, secret, nil)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("first")}); err != nil {
		t.Fatal(err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d after shutdown", code)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the log shows the secret key:\n%s", logs)
	}
	noSecretAtRest(t, dir, secret)
	// The store was closed: its file lock is free.
	m, err := bolt.Open(filepath.Join(dir, "us-west-2", "meta.db"))
	if err != nil {
		t.Fatalf("metadata still locked after shutdown: %v", err)
	}
	m.Close()
	// A second start reuses the stored key and keeps the data; it names
	// the key, and does not show the secret.
	urls, out, logs, stop = startMainLogs(t, nil, "up", "--data", dir, "--listen", "127.0.0.1:0")
	if s := out.String(); strings.Contains(s, secret) || shownSecret(s) != "" || !strings.Contains(s, creds.AccessKey) ||
		!strings.Contains(s, "shown once, when the key was made") {
		t.Fatalf("second start's output:\n%s", s)
	}
	if readCredentials(t, dir) != creds {
		t.Fatal("credentials.json changed")
	}
	c = servertest.NewClient(urls["us-west-2"], "us-west-2", creds.AccessKey, secret, nil)
	if _, err := c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("first")}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	// A bucket in the other region: the regions sign their calls to each
	// other with the stored key.
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("second-east"),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-east-1"}}); err != nil {
		t.Fatalf("bucket in us-east-1 after restart: %v", err)
	}
	// The key is the deployment's admin's.
	admin := &Main{Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}, Getenv: func(k string) string {
		return map[string]string{"BULWARK_ENDPOINT": urls["us-east-1"], "AWS_ACCESS_KEY_ID": creds.AccessKey, "AWS_SECRET_ACCESS_KEY": secret}[k]
	}}
	if code := admin.Run(context.Background(), []string{"admin", "account", "create", "team-a"}); code != 0 ||
		!strings.Contains(admin.Stdout.(*bytes.Buffer).String(), "(team-a)") {
		t.Fatalf("admin account create: exit %d\n%s%s", code, admin.Stdout, admin.Stderr)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if strings.Contains(logs.String(), secret) {
		t.Fatalf("the log shows the secret key:\n%s", logs)
	}
	noSecretAtRest(t, dir, secret)
}

// TestUpMovesSecretOutOfCredentialsJSON starts on a data directory whose
// credentials.json holds its secret in the clear, as older versions wrote
// it: the key moves into IAM, sealed, and keeps working.
func TestUpMovesSecretOutOfCredentialsJSON(t *testing.T) {
	dir := t.TempDir()
	const ak, secret = "AKIAOLDERVERSION0000", "older-version-secret/0000000000000000000"
	old, _ := json.Marshal(map[string]string{"accountId": "123456789012", "accessKeyId": ak, "secretAccessKey": secret})
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), old, 0o600); err != nil {
		t.Fatal(err)
	}
	urls, out, logs, stop := startMainLogs(t, nil, "up", "--data", dir, "--listen", "127.0.0.1:0")
	// Shown one last time: nowhere else holds it now.
	if shownSecret(out.String()) != secret || !strings.Contains(out.String(), "now kept in IAM, sealed") {
		t.Fatalf("up output:\n%s", out)
	}
	if c := readCredentials(t, dir); c.AccountID != "123456789012" || c.AccessKey != ak {
		t.Fatalf("credentials.json names %+v", c)
	}
	c := servertest.NewClient(urls["us-west-2"], "us-west-2", ak, secret, nil)
	if _, err := c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("kept")}); err != nil {
		t.Fatal(err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if !strings.Contains(logs.String(), "moved the secret key of credentials.json into IAM") || strings.Contains(logs.String(), secret) {
		t.Fatalf("log:\n%s", logs)
	}
	noSecretAtRest(t, dir, secret)

	urls, out, stop = startMain(t, nil, "up", "--data", dir, "--listen", "127.0.0.1:0")
	defer stop()
	if strings.Contains(out.String(), secret) {
		t.Fatalf("the secret is shown again:\n%s", out)
	}
	c = servertest.NewClient(urls["us-west-2"], "us-west-2", ak, secret, nil)
	if _, err := c.HeadBucket(context.Background(), &s3.HeadBucketInput{Bucket: aws.String("kept")}); err != nil {
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

// TestServeMakesKeyOnce runs one region without a key in the environment:
// it makes the admin key as bulwark up does, shown at the first start only.
func TestServeMakesKeyOnce(t *testing.T) {
	dir := t.TempDir()
	args := []string{"serve", "--region", "eu-west-1", "--data", dir, "--listen", "127.0.0.1:0"}
	urls, out, stop := startMain(t, nil, args...)
	// Scripts read the endpoint from the first line.
	if first, _, _ := strings.Cut(out.String(), "\n"); first != "eu-west-1  "+urls["eu-west-1"] {
		t.Fatalf("first line %q", first)
	}
	creds, secret := readCredentials(t, dir), shownSecret(out.String())
	if secret == "" || !strings.Contains(out.String(), "export AWS_ACCESS_KEY_ID="+creds.AccessKey+" AWS_SECRET_ACCESS_KEY="+secret) {
		t.Fatalf("serve output:\n%s", out)
	}
	c := servertest.NewClient(urls["eu-west-1"], "eu-west-1", creds.AccessKey, secret, nil)
	if _, err := c.ListBuckets(context.Background(), &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	noSecretAtRest(t, dir, secret)
	urls, out, stop = startMain(t, nil, args...)
	defer stop()
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), creds.AccessKey) {
		t.Fatalf("second start's output:\n%s", out)
	}
	c = servertest.NewClient(urls["eu-west-1"], "eu-west-1", creds.AccessKey, secret, nil)
	if _, err := c.ListBuckets(context.Background(), &s3.ListBucketsInput{}); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

func TestUpTLS(t *testing.T) {
	dir := t.TempDir()
	urls, out, stop := startMain(t, nil, "up", "--tls", "--data", dir, "--listen", "127.0.0.1:0")
	defer stop()
	if !strings.HasPrefix(urls["us-west-2"], "https://") || !strings.HasPrefix(urls["us-east-1"], "https://") || !strings.Contains(out.String(), "AWS_CA_BUNDLE="+filepath.Join(dir, "tls", "cert.pem")) {
		t.Fatalf("tls up: %v\n%s", urls, out)
	}
	// Forwarding between the regions speaks TLS too.
	pem, err := os.ReadFile(filepath.Join(dir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	creds := readCredentials(t, dir)
	c := servertest.NewClient(urls["us-west-2"], "us-west-2", creds.AccessKey, shownSecret(out.String()), hc)
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("tls-east"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-east-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("tls-east"), Key: aws.String("k"), Body: strings.NewReader("v")}); err != nil {
		t.Fatal(err)
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

// TestUpStartsTwoRegions creates a bucket in us-east-1 through the first
// endpoint (us-west-2) and uses it through both.
func TestUpStartsTwoRegions(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	env := map[string]string{"BULWARK_ACCESS_KEY": "AKIAENVKEY0000000000", "BULWARK_SECRET_KEY": "env-secret"}
	urls, out, stop := startMain(t, env, "up", "--data", dir, "--listen", "127.0.0.1:0")
	west, east := urls["us-west-2"], urls["us-east-1"]
	if west == "" || east == "" || west == east {
		t.Fatalf("endpoints %v", urls)
	}
	for _, want := range []string{"us-west-2  " + west, "us-east-1  " + east, "LocationConstraint=us-east-1"} {
		if !strings.Contains(out.String(), want) {
			t.Fatalf("up output lacks %q:\n%s", want, out)
		}
	}
	wc := servertest.NewClient(west, "us-west-2", env["BULWARK_ACCESS_KEY"], env["BULWARK_SECRET_KEY"], nil)
	ec := servertest.NewClient(east, "us-east-1", env["BULWARK_ACCESS_KEY"], env["BULWARK_SECRET_KEY"], nil)
	if _, err := wc.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("dest-bucket-us-east-1"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-east-1"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := wc.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("dest-bucket-us-east-1"), Key: aws.String("k"), Body: strings.NewReader("east data")}); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*s3.Client{"us-west-2": wc, "us-east-1": ec} {
		head, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("dest-bucket-us-east-1")})
		if err != nil || aws.ToString(head.BucketRegion) != "us-east-1" {
			t.Fatalf("HeadBucket via %s: %v", name, err)
		}
		obj, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("dest-bucket-us-east-1"), Key: aws.String("k")})
		if err != nil {
			t.Fatalf("GetObject via %s: %v", name, err)
		}
		body, _ := io.ReadAll(obj.Body)
		obj.Body.Close()
		if string(body) != "east data" {
			t.Fatalf("GetObject via %s: %q", name, body)
		}
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	// The bucket lives in us-east-1's own data directory only.
	for region, want := range map[string]bool{"us-east-1": true, "us-west-2": false} {
		m, err := bolt.Open(filepath.Join(dir, region, "meta.db"))
		if err != nil {
			t.Fatal(err)
		}
		st := objectstore.New(objectstore.Config{Region: region, Meta: m})
		_, err = st.Bucket(ctx, "dest-bucket-us-east-1")
		m.Close()
		if (err == nil) != want {
			t.Fatalf("%s's store has the bucket: %v, want %v", region, err == nil, want)
		}
	}
}

func TestConsecutiveAddrs(t *testing.T) {
	for listen, want := range map[string][]string{
		"127.0.0.1:9000": {"127.0.0.1:9000", "127.0.0.1:9001"},
		"127.0.0.1:0":    {"127.0.0.1:0", "127.0.0.1:0"},
		":9000":          {":9000", ":9001"},
		"[::1]:9000":     {"[::1]:9000", "[::1]:9001"},
	} {
		got, err := consecutiveAddrs(listen, 2)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("consecutiveAddrs(%q) = %v, %v; want %v", listen, got, err, want)
		}
	}
	for _, bad := range []string{"9000", "127.0.0.1:http", "127.0.0.1:65535"} {
		if _, err := consecutiveAddrs(bad, 2); err == nil {
			t.Errorf("consecutiveAddrs(%q) accepted", bad)
		}
	}
}

// freePort returns a loopback address with a port free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeWithTopologyFile runs two regions as separate servers from one
// topology file, as on two machines.
func TestServeWithTopologyFile(t *testing.T) {
	ctx := context.Background()
	westAddr, eastAddr := freePort(t), freePort(t)
	config := filepath.Join(t.TempDir(), "topology.yaml")
	text := "regions:\n  - name: us-west-2\n    endpoint: http://" + westAddr + "\n  - name: us-east-1\n    endpoint: http://" + eastAddr + "\n"
	if err := os.WriteFile(config, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BULWARK_ACCESS_KEY": "AKIAENVKEY0000000000", "BULWARK_SECRET_KEY": "env-secret", "BULWARK_ACCOUNT_ID": "123456789012"}
	westURLs, _, stopWest := startMain(t, env, "serve", "--region", "us-west-2", "--config", config, "--data", t.TempDir())
	defer stopWest()
	eastURLs, out, stopEast := startMain(t, env, "serve", "--region", "us-east-1", "--config", config, "--data", t.TempDir())
	defer stopEast()
	if westURLs["us-west-2"] != "http://"+westAddr || eastURLs["us-east-1"] != "http://"+eastAddr {
		t.Fatalf("listening on %v and %v, want the file's endpoints", westURLs, eastURLs)
	}
	if !strings.Contains(out.String(), "peer us-west-2  http://"+westAddr) {
		t.Fatalf("serve output:\n%s", out)
	}
	wc := servertest.NewClient("http://"+westAddr, "us-west-2", env["BULWARK_ACCESS_KEY"], env["BULWARK_SECRET_KEY"], nil)
	ec := servertest.NewClient("http://"+eastAddr, "us-east-1", env["BULWARK_ACCESS_KEY"], env["BULWARK_SECRET_KEY"], nil)
	if _, err := ec.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("made-in-west"), CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: "us-west-2"}}); err != nil {
		t.Fatal(err)
	}
	loc, err := wc.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("made-in-west")})
	if err != nil || loc.LocationConstraint != "us-west-2" {
		t.Fatalf("location %q, %v", loc.LocationConstraint, err)
	}
	list, err := ec.ListBuckets(ctx, &s3.ListBucketsInput{})
	if err != nil || len(list.Buckets) != 1 || aws.ToString(list.Buckets[0].BucketRegion) != "us-west-2" {
		t.Fatalf("ListBuckets via us-east-1: %+v, %v", list, err)
	}
}

func TestServeConfigErrors(t *testing.T) {
	config := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(config, []byte("regions:\n  - name: us-west-2\n    endpoint: http://127.0.0.1:1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	two := filepath.Join(t.TempDir(), "topology.yaml")
	if err := os.WriteFile(two, []byte("regions:\n  - name: us-west-2\n    endpoint: http://127.0.0.1:1\n  - name: us-east-1\n    endpoint: http://127.0.0.1:2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "us-east-1", "--config", config}, `region "us-east-1" is not in`},
		{[]string{"--region", "us-west-2", "--config", config + ".missing"}, "read topology"},
		// A region that copies IAM cannot make a key of its own: the
		// home region would not know it.
		{[]string{"--region", "us-east-1", "--config", two}, "region us-east-1 copies IAM from region us-west-2"},
	} {
		stderr := &bytes.Buffer{}
		m := &Main{Stdout: &bytes.Buffer{}, Stderr: stderr}
		args := append([]string{"serve", "--data", t.TempDir()}, tc.args...)
		if code := m.Run(context.Background(), args); code != 1 || !strings.Contains(stderr.String(), tc.want) {
			t.Fatalf("%v: exit %d, %s", tc.args, code, stderr)
		}
	}
}
