// Package servertest starts real regions on loopback for tests and hands out
// aws-sdk-go-v2 clients for them.
package servertest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/topology"
)

// Test credentials of the region's root user.
const (
	AccountID = "111122223333"
	AccessKey = "AKIATESTBULWARK00001"
	SecretKey = "test-secret-key/with+chars0000000000000"

	// A second account, for what one account must not see of another.
	OtherAccountID = "444455556666"
	OtherAccessKey = "AKIATESTBULWARK00002"
	OtherSecretKey = "other-secret-key0000000000000000000000"
)

// Region is a running region under test.
type Region struct {
	*server.Region
	Dir    string
	CAFile string // the certificate to trust when TLS is on
}

// Options tune Start.
type Options struct {
	Region string // default us-west-2
	TLS    bool
	Dir    string // data directory; default a fresh temporary one
	// Topology, when set, is shared with the other regions of a
	// deployment; the region's endpoint is recorded in it once listening.
	Topology *topology.Topology
	// Configure adjusts the server configuration before the region opens.
	Configure func(*server.Config)
}

// Start opens and starts a region on 127.0.0.1:0; it is closed at the end
// of the test.
func Start(t testing.TB, opts Options) *Region {
	t.Helper()
	if opts.Region == "" {
		opts.Region = "us-west-2"
	}
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	cfg := server.Config{
		Region:       opts.Region,
		DataDir:      opts.Dir,
		Listen:       "127.0.0.1:0",
		MetricsToken: MetricsToken,
		Keys: []iam.Key{
			iam.RootKey(AccountID, AccessKey, SecretKey),
			iam.RootKey(OtherAccountID, OtherAccessKey, OtherSecretKey),
		},
		// The default floor, but small reserves: a test run starts
		// hundreds of regions, and where /tmp is a tmpfs, every byte of
		// their ballast files and metadata reserves is memory.
		Disk: server.DiskConfig{Ballast: 1 << 20, MetaReserve: 1 << 20},
	}
	cfg.Topology = opts.Topology
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	tr := &Region{Dir: opts.Dir}
	if opts.TLS {
		cert, key, err := server.SelfSignedCert(filepath.Join(opts.Dir, "tls"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSCert, cfg.TLSKey, tr.CAFile = cert, key, cert
	}
	r, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	tr.Region = r
	if opts.Topology != nil {
		opts.Topology.SetEndpoint(opts.Region, r.URL())
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := r.Close(ctx); err != nil {
			t.Errorf("close region: %v", err)
		}
	})
	return tr
}

// MetricsToken is the bearer token of the regions' GET /metrics.
const MetricsToken = "servertest-metrics-token"

// Metrics reads the region's GET /metrics as Prometheus does, with the
// bearer token; the caller closes the body.
func (r *Region) Metrics(t testing.TB) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, r.URL()+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+MetricsToken)
	resp, err := r.HTTPClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// StartRegions starts one region per name, each with its own data
// directory, store and listener, all knowing each other through one
// topology: a deployment on loopback.
func StartRegions(t testing.TB, names ...string) []*Region {
	t.Helper()
	return StartRegionsWith(t, nil, names...)
}

// StartRegionsWith is StartRegions with every region's configuration
// adjusted by configure first.
func StartRegionsWith(t testing.TB, configure func(*server.Config), names ...string) []*Region {
	t.Helper()
	regions := make([]topology.Region, len(names))
	for i, n := range names {
		regions[i].Name = n
	}
	topo, err := topology.New(regions...)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*Region, len(names))
	for i, n := range names {
		opts := Options{Region: n, Topology: topo}
		opts.Configure = func(c *server.Config) {
			if configure != nil {
				configure(c)
			}
			if i > 0 {
				// One IAM for the deployment, as bulwark up runs it.
				c.IAM = out[0].IAM
			}
		}
		out[i] = Start(t, opts)
	}
	return out
}

// HTTPClient returns an HTTP client that trusts the region's certificate.
func (r *Region) HTTPClient(t testing.TB) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = 64
	if r.CAFile != "" {
		pem, err := os.ReadFile(r.CAFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr}
}

// Client returns an S3 client for the region, path-style, with the SDK's
// default checksum behaviour. opts adjust it further.
func (r *Region) Client(t testing.TB, opts ...func(*s3.Options)) *s3.Client {
	return NewClient(r.URL(), r.Region.Store.Region(), AccessKey, SecretKey, r.HTTPClient(t), opts...)
}

// NewClient returns an S3 client for any endpoint.
func NewClient(endpoint, region, ak, sk string, hc *http.Client, opts ...func(*s3.Options)) *s3.Client {
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	base := func(o *s3.Options) {
		o.BaseEndpoint = aws.String(endpoint)
		o.Region = region
		o.Credentials = credentials.NewStaticCredentialsProvider(ak, sk, "")
		o.UsePathStyle = true
		o.HTTPClient = hc
		o.RetryMaxAttempts = 1
		// What config.LoadDefaultConfig resolves to: checksums on every
		// operation that supports them, as current SDKs send by default.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenSupported
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenSupported
	}
	return s3.New(s3.Options{}, append([]func(*s3.Options){base}, opts...)...)
}

// RequireTool returns the path of an outside program a test needs. It
// skips the test when the program is missing, except under CI=true, where
// a missing tool means the CI set-up is broken and the test fails.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true but not on PATH", name)
		}
		t.Skipf("%s not on PATH; install it to run this test", name)
	}
	return p
}

// APICode returns the error code an AWS SDK call failed with and the HTTP
// status of the answer ("" and 0 for what is not an API error).
func APICode(err error) (string, int) {
	var ae smithy.APIError
	code := ""
	if errors.As(err, &ae) {
		code = ae.ErrorCode()
	}
	var re *smithyhttp.ResponseError
	status := 0
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	return code, status
}

// WantCode fails the test unless err is the API error code with status.
func WantCode(t testing.TB, err error, code string, status int) {
	t.Helper()
	c, s := APICode(err)
	if c != code || s != status {
		t.Fatalf("got error %q/%d (%v), want %s/%d", c, s, err, code, status)
	}
}
