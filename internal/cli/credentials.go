package cli

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"

	"github.com/bulwark/bulwark/internal/iam"
)

// credentials are the admin account's identity and root key: given by
// BULWARK_ACCESS_KEY and BULWARK_SECRET_KEY (configuration, never stored),
// or made at the first start and kept in IAM with its secret sealed, the
// data directory's credentials.json naming it (account and access key
// IDs, no secret).
type credentials struct {
	AccountID string `json:"accountId"`
	AccessKey string `json:"accessKeyId"`
	// SecretKey is known when it comes from the environment, at the start
	// that makes the key (which shows it, once), and when an older
	// version's credentials.json still holds it; credentials.json is
	// never written with it.
	SecretKey string `json:"secretAccessKey,omitempty"`
	// Source says where they came from, for the start-up message.
	Source string `json:"-"`
	origin keyOrigin
	path   string // of credentials.json
}

// keyOrigin says where the admin key comes from.
type keyOrigin int

const (
	fromEnv keyOrigin = iota // configuration: kept in memory only
	stored                   // made at an earlier start, kept sealed in IAM
	made                     // made now: stored sealed in IAM, shown once
	moved                    // credentials.json held its secret: moved into IAM, shown one last time
)

func (c credentials) key() iam.Key { return iam.RootKey(c.AccountID, c.AccessKey, c.SecretKey) }

// serverKeys returns the keys the regions take: a key from the environment
// as configuration, any other as a bootstrap key, which the region stores
// sealed in IAM when it carries its secret.
func (c credentials) serverKeys() (keys, bootstrap []iam.Key) {
	if c.origin == fromEnv {
		return []iam.Key{c.key()}, nil
	}
	return nil, []iam.Key{c.key()}
}

// loadCredentials takes the root key pair from BULWARK_ACCESS_KEY and
// BULWARK_SECRET_KEY when both are set; otherwise the one the data
// directory's credentials.json names, or a new one when there is none. It
// writes nothing: save does, once the regions have stored the key.
func (m *Main) loadCredentials(dataDir string, log *slog.Logger) (credentials, error) {
	path := filepath.Join(dataDir, "credentials.json")
	c := credentials{path: path}
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
		if c.SecretKey != "" {
			// Moving it would make a key live that this configuration
			// does not use; leaving it unmentioned would leave a secret
			// in the clear unnoticed.
			log.Warn("credentials.json holds a secret key in the clear, unused while BULWARK_ACCESS_KEY is set: start once without it to move the key into IAM, sealed, or delete the file",
				"path", path, "accessKeyId", c.AccessKey)
		}
		c.AccessKey, c.SecretKey, c.Source, c.origin = ak, sk, "BULWARK_ACCESS_KEY / BULWARK_SECRET_KEY", fromEnv
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
	switch {
	case c.AccessKey != "" && c.SecretKey != "":
		c.origin = moved
	case c.AccessKey != "":
		c.origin = stored
	default:
		c = credentials{AccountID: randomAccountID(), AccessKey: randomAccessKey(), SecretKey: randomSecret(), Source: path, origin: made, path: path}
	}
	return c, nil
}

// save writes credentials.json without the secret once the regions have
// stored the key in IAM, sealed: for a key made now, or one an older
// version's credentials.json held in the clear. Written before, the file
// would name a key that may never have been stored.
func (c credentials) save(log *slog.Logger) error {
	if c.origin != made && c.origin != moved {
		return nil
	}
	out, err := json.MarshalIndent(credentials{AccountID: c.AccountID, AccessKey: c.AccessKey}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(c.path), 0o700); err != nil {
		return fmt.Errorf("store credentials: %w", err)
	}
	if err := writeFileSync(c.path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("store credentials: %w", err)
	}
	if c.origin == moved {
		log.Info("moved the secret key of credentials.json into IAM, sealed; the file now names the key without it",
			"path", c.path, "accountId", c.AccountID, "accessKeyId", c.AccessKey)
	} else {
		log.Info("made the admin account and its root key; the secret is kept in IAM, sealed",
			"path", c.path, "accountId", c.AccountID, "accessKeyId", c.AccessKey)
	}
	return nil
}

// printKey writes the admin key's part of the start-up message. The secret
// is shown only at the start that stores it: afterwards Bulwark keeps it
// sealed and cannot show it.
func printKey(w io.Writer, c credentials) {
	fmt.Fprintf(w, "  account    %s (admin)\n  access key %s\n", c.AccountID, c.AccessKey)
	switch c.origin {
	case made, moved:
		fmt.Fprintf(w, "  secret key %s\n\n", c.SecretKey)
		if c.origin == moved {
			fmt.Fprintf(w, "  The secret key was in %s in the clear; it is now kept in IAM, sealed.\n", c.path)
		}
		fmt.Fprintf(w, "  This is the only time the secret key is shown: Bulwark keeps it sealed and\n")
		fmt.Fprintf(w, "  cannot show it again. Keep it now: the export line below, in a password\n")
		fmt.Fprintf(w, "  manager or a file only you can read.\n\n")
	case stored:
		fmt.Fprintf(w, "  secret key shown once, when the key was made (kept sealed; it is not shown again)\n  (from %s)\n\n", c.Source)
	default:
		fmt.Fprintf(w, "  secret key from BULWARK_SECRET_KEY\n\n")
	}
}

// exportLine is the shell line that hands the admin key to the aws CLI.
func exportLine(c credentials, region string) string {
	switch c.origin {
	case made, moved:
		return fmt.Sprintf("export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY=%s AWS_DEFAULT_REGION=%s", c.AccessKey, c.SecretKey, region)
	case fromEnv:
		return fmt.Sprintf(`export AWS_ACCESS_KEY_ID=%s AWS_SECRET_ACCESS_KEY="$BULWARK_SECRET_KEY" AWS_DEFAULT_REGION=%s`, c.AccessKey, region)
	}
	return fmt.Sprintf("export AWS_ACCESS_KEY_ID=%s AWS_DEFAULT_REGION=%s   # and AWS_SECRET_ACCESS_KEY, shown at the first start", c.AccessKey, region)
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
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// The rename is durable once the directory is.
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
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
