package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// The commands that call a running deployment's admin API (replication,
// admin) share this client: its flags, where its key comes from, and
// SigV4 signing as for S3 calls.

// writeRaw prints an answer's JSON as it came (-json).
func (m *Main) writeRaw(raw []byte) error {
	_, err := m.Stdout.Write(raw)
	return err
}

// adminFlags are the flags of every command that calls the admin API.
type adminFlags struct {
	endpoint, region, caBundle, data *string
	json                             *bool
}

func (m *Main) addAdminFlags(fs *flag.FlagSet) adminFlags {
	endpoint := m.Getenv("BULWARK_ENDPOINT")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:9000"
	}
	region := m.Getenv("AWS_REGION")
	if region == "" {
		region = m.Getenv("AWS_DEFAULT_REGION")
	}
	if region == "" {
		region = "us-west-2"
	}
	return adminFlags{
		endpoint: fs.String("endpoint", endpoint, "URL of any region of the deployment ($BULWARK_ENDPOINT)"),
		region:   fs.String("region", region, "region to sign for ($AWS_REGION, $AWS_DEFAULT_REGION); any region of the deployment will do"),
		caBundle: fs.String("ca-bundle", m.Getenv("AWS_CA_BUNDLE"), "PEM certificate to trust, for a self-signed one ($AWS_CA_BUNDLE)"),
		data:     fs.String("data", "./bulwark-data", "data directory of bulwark up, whose credentials.json names the admin key when no key is in the environment"),
		json:     fs.Bool("json", false, "print the API's JSON instead of a table"),
	}
}

// client makes a client of the admin API under api (a path under
// /_bulwark/) that the flags describe. The key comes from
// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, else BULWARK_ACCESS_KEY /
// BULWARK_SECRET_KEY.
func (af adminFlags) client(m *Main, api string) (*adminClient, error) {
	creds, err := m.adminCredentials(*af.data)
	if err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if *af.caBundle != "" {
		pem, err := os.ReadFile(*af.caBundle)
		if err != nil {
			return nil, fmt.Errorf("read CA bundle: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA bundle %s holds no PEM certificate", *af.caBundle)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &adminClient{
		endpoint: strings.TrimRight(*af.endpoint, "/"),
		api:      api,
		region:   *af.region,
		creds:    creds,
		signer:   v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
		http:     &http.Client{Transport: tr},
	}, nil
}

// adminCredentials takes the key from the environment. The data
// directory's credentials.json holds no secret: it only names, in the
// error, the key whose secret bulwark up showed when it made it.
func (m *Main) adminCredentials(dataDir string) (aws.Credentials, error) {
	pick := func(akVar, skVar string) (aws.Credentials, bool, error) {
		ak, sk := m.Getenv(akVar), m.Getenv(skVar)
		switch {
		case ak != "" && sk != "":
			return aws.Credentials{AccessKeyID: ak, SecretAccessKey: sk, Source: akVar}, true, nil
		case ak != "" || sk != "":
			return aws.Credentials{}, false, fmt.Errorf("set both %s and %s, or neither", akVar, skVar)
		}
		return aws.Credentials{}, false, nil
	}
	for _, vars := range [][2]string{{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}, {"BULWARK_ACCESS_KEY", "BULWARK_SECRET_KEY"}} {
		if c, ok, err := pick(vars[0], vars[1]); ok || err != nil {
			return c, err
		}
	}
	const set = "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or BULWARK_ACCESS_KEY and BULWARK_SECRET_KEY)"
	path := filepath.Join(dataDir, "credentials.json")
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return aws.Credentials{}, errors.New(set)
	}
	var c credentials
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	if err == nil && c.AccessKey == "" {
		err = errors.New("no accessKeyId")
	}
	switch {
	case err != nil:
		return aws.Credentials{}, fmt.Errorf("%s (%s is not a credentials file: %v)", set, path, err)
	case c.SecretKey != "":
		return aws.Credentials{}, fmt.Errorf("%s: %s still holds the secret of key %s in the clear, as older versions wrote it; start bulwark up once to move it into IAM, sealed (it shows it one last time)",
			set, path, c.AccessKey)
	}
	return aws.Credentials{}, fmt.Errorf("%s: %s names the admin key %s of account %s, whose secret bulwark up showed once, when it made it (it keeps it sealed, never in the clear)",
		set, path, c.AccessKey, c.AccountID)
}

// adminClient calls one API under /_bulwark/, signing each call with
// SigV4 as an S3 call is signed.
type adminClient struct {
	endpoint, api, region string
	creds                 aws.Credentials
	signer                *v4.Signer
	http                  *http.Client
}

// apiError is an error answer of the admin API.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	// Arn names the resource that exists already (AlreadyExistsException).
	Arn string `json:"arn"`
}

func (e *apiError) Error() string {
	if e.Arn != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, e.Arn)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// call sends a signed request to path (under the client's API) and
// decodes a 2xx answer into out; it returns the answer's body as it came.
func (c *adminClient) call(ctx context.Context, method, path string, q url.Values, body []byte, out any) ([]byte, error) {
	u := c.endpoint + c.api + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", c.endpoint, err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if err := c.signer.SignHTTP(ctx, c.creds, req, hash, "s3", c.region, time.Now()); err != nil {
		return nil, fmt.Errorf("sign request: %w", err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("no answer from %s (set -endpoint or BULWARK_ENDPOINT): %w", c.endpoint, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", c.endpoint, err)
	}
	if resp.StatusCode/100 != 2 {
		e := &apiError{Status: resp.StatusCode}
		if json.Unmarshal(raw, e) != nil || e.Code == "" {
			return nil, fmt.Errorf("%s answered %s: %.200s", c.endpoint, resp.Status, raw)
		}
		return nil, e
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("%s: malformed answer: %w", c.endpoint, err)
	}
	return raw, nil
}

// parseArgs parses flags given before, between or after the positional
// arguments, and returns those.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, errUsage
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
