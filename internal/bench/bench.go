// Package bench drives an S3 endpoint (Bulwark or any other) with a fixed
// workload: PUT N objects of one size at a given concurrency, then GET them
// back, and reports throughput and latency percentiles for each phase.
//
// The client is configured so that the figures measure the server rather
// than the SDK: no retries (a retried op would hide a failure inside a
// latency), no request checksums unless asked for, one payload buffer shared
// by every PUT, and GET bodies discarded as they arrive.
package bench

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// DefaultRegion is used when Config.Region is empty.
const DefaultRegion = "us-west-2"

// Config describes one benchmark run.
type Config struct {
	Endpoint  string // e.g. http://127.0.0.1:9000
	Region    string // default us-west-2
	AccessKey string
	SecretKey string
	// Bucket is created if missing (with LocationConstraint = Region unless
	// Region is us-east-1); objects are written under Prefix.
	Bucket      string
	Prefix      string // default "bench/<unix time>/"
	Size        int64  // bytes per object
	Count       int    // objects
	Concurrency int    // default 1
	Insecure    bool   // skip TLS verification (self-signed local certs)
	CAFile      string // or trust this PEM
	Cleanup     bool   // delete the objects afterwards (not timed)
	// Checksum lets the SDK send its default CRC32 (WhenSupported). Off by
	// default (WhenRequired) so that the figure measures the server, not the
	// client's hashing.
	Checksum   bool
	HTTPClient *http.Client // optional; replaces the client built from Insecure/CAFile
	// PartSize, when set, moves each object as transfer tools do: a
	// multipart upload and parallel ranged GETs of this size, with
	// Concurrency parts in flight; objects then go one at a time.
	PartSize int64
}

// PhaseResult is the outcome of one phase. Count is the number of ops
// attempted; Bytes, the rates and the latencies cover successful ops only.
type PhaseResult struct {
	Op         string
	Count      int
	Errors     int
	FirstError error // the first failure, if Errors > 0
	Bytes      int64
	Elapsed    time.Duration
	OpsPerSec  float64
	MiBPerSec  float64
	P50        time.Duration
	P90        time.Duration
	P99        time.Duration
	Max        time.Duration
}

// Result is the outcome of a run. Concurrency and Size echo the effective
// configuration so that Print can show them.
type Result struct {
	Put, Get    PhaseResult
	Concurrency int
	Size        int64
}

// Run creates the bucket if needed, PUTs cfg.Count objects, GETs the ones
// that were written, and with cfg.Cleanup deletes them again. A phase in
// which every op fails is an error; partial failures are counted in the
// result. If only the cleanup fails, Run returns both the result and the
// error. Cleanup uses ctx too, so a cancelled run leaves its objects behind
// under the prefix rather than blocking the caller.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := withDefaults(cfg)
	if err != nil {
		return nil, err
	}
	client, err := newClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := ensureBucket(ctx, client, cfg.Bucket, cfg.Region); err != nil {
		return nil, err
	}
	keys := make([]string, cfg.Count)
	for i := range keys {
		keys[i] = fmt.Sprintf("%s%08d", cfg.Prefix, i)
	}
	res, attempted, err := runPhases(ctx, client, cfg, keys)
	if cfg.Cleanup && len(attempted) > 0 {
		if cerr := cleanup(ctx, client, cfg, attempted); cerr != nil {
			if err != nil {
				return nil, errors.Join(err, cerr)
			}
			return res, cerr
		}
	}
	if err != nil {
		return nil, err
	}
	return res, nil
}

// runPhases runs the timed PUT and GET phases. It also returns the keys a
// PUT was attempted for: a failed PUT may still have stored its object, so
// those are the ones cleanup has to remove.
func runPhases(ctx context.Context, client *s3.Client, cfg Config, keys []string) (*Result, []string, error) {
	// Random so that neither compression nor deduplication on the server
	// flatters the figures.
	payload := make([]byte, cfg.Size)
	rand.Read(payload)

	res := &Result{Concurrency: cfg.Concurrency, Size: cfg.Size}
	put, get, conc := putOp(client, cfg.Bucket, payload), getOp(client, cfg.Bucket, cfg.Size), cfg.Concurrency
	if cfg.PartSize > 0 {
		put = multipartPutOp(client, cfg.Bucket, payload, cfg.PartSize, cfg.Concurrency)
		get = rangedGetOp(client, cfg.Bucket, cfg.Size, cfg.PartSize, cfg.Concurrency)
		conc = 1
	}
	var states []opState
	res.Put, states = runPhase(ctx, "put", keys, conc, cfg.Size, put)
	attempted := pick(keys, states, opOK, opFailed)
	if err := phaseErr(ctx, res.Put); err != nil {
		return nil, attempted, err
	}
	// Only objects that were written are read back, so GET errors are the
	// server's failures to return stored data, not echoes of PUT failures.
	written := pick(keys, states, opOK)
	res.Get, _ = runPhase(ctx, "get", written, conc, cfg.Size, get)
	if err := phaseErr(ctx, res.Get); err != nil {
		return nil, attempted, err
	}
	return res, attempted, nil
}

// withDefaults validates cfg and fills in its defaults.
func withDefaults(cfg Config) (Config, error) {
	switch {
	case cfg.Endpoint == "":
		return cfg, errors.New("bench: no endpoint")
	case cfg.Bucket == "":
		return cfg, errors.New("bench: no bucket")
	case cfg.Count < 1:
		return cfg, fmt.Errorf("bench: count %d: must be at least 1", cfg.Count)
	case cfg.Size < 0:
		return cfg, fmt.Errorf("bench: size %d: must not be negative", cfg.Size)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	if cfg.Prefix == "" {
		cfg.Prefix = fmt.Sprintf("bench/%d/", time.Now().Unix())
	}
	// More workers than objects would only sit idle.
	cfg.Concurrency = max(1, cfg.Concurrency)
	if cfg.PartSize <= 0 {
		cfg.Concurrency = min(cfg.Concurrency, cfg.Count)
	} else if cfg.PartSize < 5<<20 && cfg.Size > cfg.PartSize {
		return cfg, fmt.Errorf("bench: part size %d: S3 needs at least 5 MiB for all but the last part", cfg.PartSize)
	}
	return cfg, nil
}

// newClient builds an S3 client that measures the server: path-style so any
// endpoint works without DNS, one attempt per op, and checksums only where
// the API demands them unless cfg.Checksum asks for the SDK default.
func newClient(cfg Config) (*s3.Client, error) {
	hc := cfg.HTTPClient
	if hc == nil {
		var err error
		if hc, err = newHTTPClient(cfg); err != nil {
			return nil, err
		}
	}
	sum := aws.RequestChecksumCalculationWhenRequired
	if cfg.Checksum {
		sum = aws.RequestChecksumCalculationWhenSupported
	}
	return s3.New(s3.Options{
		BaseEndpoint:               aws.String(cfg.Endpoint),
		Region:                     cfg.Region,
		Credentials:                credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, ""),
		UsePathStyle:               true,
		HTTPClient:                 hc,
		RequestChecksumCalculation: sum,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
		RetryMaxAttempts:           1,
	}), nil
}

// newHTTPClient keeps one idle connection per worker, so that steady-state
// ops reuse connections instead of paying for TCP and TLS handshakes.
func newHTTPClient(cfg Config) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = max(tr.MaxIdleConns, cfg.Concurrency)
	tr.MaxIdleConnsPerHost = cfg.Concurrency
	switch {
	case cfg.Insecure:
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	case cfg.CAFile != "":
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s: no PEM certificates", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	return &http.Client{Transport: tr}, nil
}

// ensureBucket creates bucket unless it already exists. HeadBucket comes
// first so that a key allowed to write an existing bucket, but not to create
// buckets, can still run.
func ensureBucket(ctx context.Context, client *s3.Client, bucket, region string) error {
	_, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return nil
	}
	var nf *types.NotFound
	var nsb *types.NoSuchBucket
	if !errors.As(err, &nf) && !errors.As(err, &nsb) {
		return fmt.Errorf("head bucket %s: %w", bucket, err)
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(bucket)}
	// us-east-1 is the one region that rejects its own name as a constraint.
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(region),
		}
	}
	_, err = client.CreateBucket(ctx, in)
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) { // a concurrent run may have won
		return fmt.Errorf("create bucket %s: %w", bucket, err)
	}
	return nil
}

// cleanup deletes keys with the same worker pool as the timed phases; its
// timing is discarded.
func cleanup(ctx context.Context, client *s3.Client, cfg Config, keys []string) error {
	del := func(ctx context.Context, key string) error {
		_, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(cfg.Bucket), Key: aws.String(key)})
		if err != nil {
			return fmt.Errorf("delete %s: %w", key, err)
		}
		return nil
	}
	r, _ := runPhase(ctx, "delete", keys, cfg.Concurrency, 0, del)
	if r.Errors > 0 {
		return fmt.Errorf("cleanup: %d of %d deletes failed: %w", r.Errors, r.Count, r.FirstError)
	}
	if r.Count < len(keys) {
		return fmt.Errorf("cleanup: %w", ctx.Err())
	}
	return nil
}
