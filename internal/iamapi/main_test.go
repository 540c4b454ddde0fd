package iamapi_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/sts"
	"go.uber.org/goleak"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/iamapi"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

// The account and root key the test deployment is configured with.
const (
	account    = "111122223333"
	rootAccess = "AKIAROOTTESTKEY00001"
	rootSecret = "rootsecretrootsecretrootsecretrootsecret"
	region     = "us-east-1"
)

// clock is the server's clock: real time plus a shift tests can move, so
// that sessions expire while signatures (checked against real time) hold.
type clock struct{ shift atomic.Int64 }

func (c *clock) now() time.Time          { return time.Now().Add(time.Duration(c.shift.Load())) }
func (c *clock) advance(d time.Duration) { c.shift.Add(int64(d)) }

// env is one IAM/STS endpoint over a real store, served on 127.0.0.1.
type env struct {
	t     *testing.T
	url   string
	store *iam.Store
	clock *clock
}

func newEnv(t *testing.T) *env {
	t.Helper()
	m, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	clk := &clock{}
	deploymentKey := make([]byte, iam.DeploymentKeySize)
	store, err := iam.NewStore(m, deploymentKey, iam.NewKeyring(iam.RootKey(account, rootAccess, rootSecret)), clk.now)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateAccount(ctx, account, "test"); err != nil {
		t.Fatal(err)
	}
	// The default verifier: the store's keys, scopes for iam and sts.
	h := iamapi.New(iamapi.Config{
		Store:      store,
		Keys:       store,
		Authorizer: &iam.Evaluator{Store: store},
		Now:        clk.now,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, store: store, clock: clk}
}

// creds are what a client signs with.
type creds struct{ access, secret, token string }

var root = creds{rootAccess, rootSecret, ""}

func (e *env) config(c creds) aws.Config {
	return aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(c.access, c.secret, c.token),
		BaseEndpoint: aws.String(e.url),
	}
}

func (e *env) iam(c creds) *awsiam.Client { return awsiam.NewFromConfig(e.config(c)) }
func (e *env) sts(c creds) *sts.Client    { return sts.NewFromConfig(e.config(c)) }

// apiCode returns the error code of err and its HTTP status.
func apiCode(err error) (string, int) { return servertest.APICode(err) }

func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	servertest.WantCode(t, err, code, status)
}

func must[T any](t *testing.T) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}
