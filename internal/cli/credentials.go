package cli

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"

	"github.com/bulwark/bulwark/internal/iam"
)

// credentials are the root account's identity and key pair.
type credentials struct {
	AccountID string `json:"accountId"`
	AccessKey string `json:"accessKeyId"`
	SecretKey string `json:"secretAccessKey"`
	// Source says where they came from, for the start-up message.
	Source string `json:"-"`
}

func (c credentials) key() iam.Key { return iam.RootKey(c.AccountID, c.AccessKey, c.SecretKey) }

// loadCredentials takes the root key pair from BULWARK_ACCESS_KEY and
// BULWARK_SECRET_KEY when both are set; otherwise from the data directory,
// generating and storing a pair there the first time.
func (m *Main) loadCredentials(dataDir string) (credentials, error) {
	path := filepath.Join(dataDir, "credentials.json")
	var c credentials
	raw, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(raw, &c); err != nil {
			return c, fmt.Errorf("read %s: %w", path, err)
		}
		c.Source = path
	case errors.Is(err, fs.ErrNotExist):
	default:
		return c, fmt.Errorf("read credentials: %w", err)
	}
	if ak, sk := m.Getenv("BULWARK_ACCESS_KEY"), m.Getenv("BULWARK_SECRET_KEY"); ak != "" && sk != "" {
		c.AccessKey, c.SecretKey, c.Source = ak, sk, "BULWARK_ACCESS_KEY / BULWARK_SECRET_KEY"
		if id := m.Getenv("BULWARK_ACCOUNT_ID"); id != "" {
			c.AccountID = id
		}
		if c.AccountID == "" {
			c.AccountID = "000000000000"
		}
		return c, nil
	} else if ak != "" || sk != "" {
		return c, errors.New("set both BULWARK_ACCESS_KEY and BULWARK_SECRET_KEY, or neither")
	}
	if c.AccessKey != "" {
		return c, nil
	}
	c = credentials{AccountID: randomAccountID(), AccessKey: randomAccessKey(), SecretKey: randomSecret(), Source: path}
	out, _ := json.MarshalIndent(c, "", "  ")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return c, fmt.Errorf("store credentials: %w", err)
	}
	if err := writeFileSync(path, out, 0o600); err != nil {
		return c, fmt.Errorf("store credentials: %w", err)
	}
	return c, nil
}

func writeFileSync(path string, data []byte, perm os.FileMode) error {
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func randomAccessKey() string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return "AKIA" + base32.StdEncoding.EncodeToString(b[:])[:16]
}

func randomSecret() string {
	var b [30]byte
	_, _ = rand.Read(b[:])
	return base64.StdEncoding.EncodeToString(b[:])
}

func randomAccountID() string {
	n, _ := rand.Int(rand.Reader, big.NewInt(9e11))
	return fmt.Sprintf("%012d", n.Int64()+1e11)
}

// deploymentKey is the key secrets are sealed with and sessions signed by:
// BULWARK_DEPLOYMENT_KEY (base64 of 32 bytes) when set, else
// DATA/deployment.key, made the first time. Every region of a deployment
// must have the same one.
func (m *Main) deploymentKey(dataDir string) ([]byte, error) {
	return iam.LoadDeploymentKey(filepath.Join(dataDir, "deployment.key"), m.Getenv("BULWARK_DEPLOYMENT_KEY"))
}
