package topology

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// Timeouts of calls between regions. A region that does not accept a
// connection within DialTimeout is taken for down: requests for its buckets
// must fail in seconds with a clear error, not hang until the client gives
// up. A partition drops packets rather than refusing them, which leaves
// connections opened before it waiting for answers that never come; those
// are bounded by StallTimeout:
//
//   - data sent that the peer does not acknowledge (a request written to a
//     connection opened before the partition, an upload cut off midway) ends
//     the connection StallTimeout after it was sent (TCP_USER_TIMEOUT, on
//     Linux);
//   - a response that stops coming, with nothing left to send, is noticed
//     by keepalive probes, sent from keepAliveIdle of silence on, which end
//     the connection StallTimeout after the peer last answered (on other
//     systems, after keepAliveProbes probes go unanswered).
//
// A peer that is slow but reachable is not cut off: its kernel
// acknowledges data and answers probes however long it takes to answer
// the request, and a transfer over a slow link goes on while it moves.
const (
	DialTimeout  = 2 * time.Second
	StallTimeout = 10 * time.Second
	// CallTimeout bounds a whole call of Client.Do, body included; those
	// calls are small lookups.
	CallTimeout = 10 * time.Second
	// DataIdleTimeout bounds a call of Client.DoData by progress instead:
	// it ends when neither its request body is taken nor its answer
	// arrives for this long, however long it moves. It covers what the
	// stall bounds do not: a peer whose process hangs while its kernel
	// still acknowledges.
	DataIdleTimeout = 60 * time.Second

	keepAliveIdle     = 5 * time.Second
	keepAliveInterval = 5 * time.Second
	keepAliveProbes   = 2
)

// NewTransport returns the HTTP transport for traffic between regions:
// quick to give up on a peer that does not answer (see DialTimeout and
// StallTimeout), and with no transparent compression, so bodies and
// Content-Length pass through as sent. tlsConf may be nil.
func NewTransport(tlsConf *tls.Config) *http.Transport {
	d := &net.Dialer{
		Timeout: DialTimeout,
		KeepAliveConfig: net.KeepAliveConfig{
			Enable: true, Idle: keepAliveIdle, Interval: keepAliveInterval, Count: keepAliveProbes,
		},
		Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			if cerr := c.Control(func(fd uintptr) { err = setUserTimeout(fd, StallTimeout) }); cerr != nil {
				return cerr
			}
			return err
		},
	}
	return &http.Transport{
		Proxy:               nil, // peers are addressed directly
		DialContext:         d.DialContext,
		TLSClientConfig:     tlsConf,
		TLSHandshakeTimeout: DialTimeout,
		DisableCompression:  true,
		MaxIdleConns:        256,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Client calls Bulwark's own API (/_bulwark/) of other regions, signing
// each call with SigV4 for the peer's region, as every region accepts any
// key of the deployment. It is safe for concurrent use.
type Client struct {
	topo   *Topology
	creds  aws.Credentials
	signer *v4.Signer
	http   *http.Client
	data   *http.Client // no total timeout: DoData bounds its calls by progress
}

// NewClient returns a client that signs with the given key and sends
// through rt (NewTransport's, typically).
func NewClient(t *Topology, accessKey, secretKey string, rt http.RoundTripper) *Client {
	return &Client{
		topo:   t,
		creds:  aws.Credentials{AccessKeyID: accessKey, SecretAccessKey: secretKey, Source: "bulwark"},
		signer: v4.NewSigner(),
		http:   &http.Client{Transport: rt, Timeout: CallTimeout},
		data:   &http.Client{Transport: rt},
	}
}

// DoData is Do for calls that carry data (chunks of a recovery point, an
// object's bytes), which take as long as the link needs: the call ends
// only when it makes no progress for DataIdleTimeout (see there).
func (c *Client) DoData(ctx context.Context, region, method, path string, body []byte) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	idle := time.AfterFunc(DataIdleTimeout, cancel)
	var r io.Reader = bytes.NewReader(body) // an empty one: sent as no body
	if len(body) > 0 {
		r = &progressReader{r: r, idle: idle}
	}
	resp, err := c.do(ctx, c.data, region, method, path, r, body)
	if err != nil {
		idle.Stop()
		cancel()
		return nil, err
	}
	resp.Body = &progressBody{ReadCloser: resp.Body, idle: idle, cancel: cancel}
	return resp, nil
}

// progressReader puts the idle deadline off each time the request body
// is taken from.
type progressReader struct {
	r    io.Reader
	idle *time.Timer
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.idle.Reset(DataIdleTimeout)
	}
	return n, err
}

// progressBody puts the idle deadline off each time the answer brings
// bytes, and ends the call's context when closed.
type progressBody struct {
	io.ReadCloser
	idle   *time.Timer
	cancel context.CancelFunc
}

func (p *progressBody) Read(b []byte) (int, error) {
	n, err := p.ReadCloser.Read(b)
	if n > 0 {
		p.idle.Reset(DataIdleTimeout)
	}
	return n, err
}

func (p *progressBody) Close() error {
	p.idle.Stop()
	err := p.ReadCloser.Close()
	p.cancel()
	return err
}

// Do sends a signed request to path (escaped, starting with "/") on
// region's endpoint. Any status is a response; an error means the region
// did not answer and wraps ErrRegionUnreachable, naming the region. The
// caller closes the body.
func (c *Client) Do(ctx context.Context, region, method, path string, body []byte) (*http.Response, error) {
	return c.do(ctx, c.http, region, method, path, bytes.NewReader(body), body)
}

func (c *Client) do(ctx context.Context, hc *http.Client, region, method, path string, r io.Reader, body []byte) (*http.Response, error) {
	endpoint, ok := c.topo.Endpoint(region)
	if !ok {
		return nil, fmt.Errorf("%w: region %s has no endpoint", ErrRegionUnreachable, region)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint+path, r)
	if err == nil && len(body) > 0 {
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	}
	if err != nil {
		return nil, fmt.Errorf("call region %s: %w", region, err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("x-amz-content-sha256", hash)
	if len(body) > 0 {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.signer.SignHTTP(ctx, c.creds, req, hash, "s3", region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign call to region %s: %w", region, err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: region %s at %s: %v", ErrRegionUnreachable, region, endpoint, err)
	}
	return resp, nil
}
