package backupapi_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"go.uber.org/goleak"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backupapi"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/objectstore"
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

// env is one AWS Backup endpoint over a real store, served on 127.0.0.1.
type env struct {
	t     *testing.T
	url   string
	store *iam.Store
	cat   *backup.Catalog
}

func newEnv(t *testing.T) *env {
	t.Helper()
	m, err := bolt.Open(filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	store, err := iam.NewStore(m, make([]byte, iam.DeploymentKeySize), iam.NewKeyring(iam.RootKey(account, rootAccess, rootSecret)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.CreateAccount(ctx, account, "test"); err != nil { // account, root key
		t.Fatal(err)
	}
	cat := backup.NewCatalog(m, region, time.Now)
	blobs, err := blobfs.Open(filepath.Join(t.TempDir(), "blobs"))
	if err != nil {
		t.Fatal(err)
	}
	providers, err := backup.NewRegistry(backup.NewS3Provider(objectstore.New(objectstore.Config{Region: region, Meta: m, Blobs: blobs})))
	if err != nil {
		t.Fatal(err)
	}
	h := backupapi.New(backupapi.Config{
		Catalog:    cat,
		Providers:  providers,
		Keys:       store,
		Authorizer: &iam.Evaluator{Store: store},
		Region:     region,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &env{t: t, url: srv.URL, store: store, cat: cat}
}

func (e *env) sdk(access, secret string) *awsbackup.Client {
	return awsbackup.NewFromConfig(aws.Config{
		Region:       region,
		Credentials:  credentials.NewStaticCredentialsProvider(access, secret, ""),
		BaseEndpoint: aws.String(e.url),
	})
}

// apiCode returns the error code of err and its HTTP status.
func apiCode(err error) (string, int) { return servertest.APICode(err) }

func wantCode(t *testing.T, err error, code string, status int) {
	t.Helper()
	servertest.WantCode(t, err, code, status)
}
