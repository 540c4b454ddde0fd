package iam

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DeploymentKeySize is the size of the key secrets are sealed with.
const DeploymentKeySize = 32

// sealer encrypts secret access keys at rest with the deployment's key
// (AES-256-GCM, a fresh nonce per secret, the access key ID as associated
// data so a sealed secret cannot be moved to another key).
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (*sealer, error) {
	if len(key) != DeploymentKeySize {
		return nil, fmt.Errorf("deployment key: %d bytes, want %d", len(key), DeploymentKeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(id, secret string) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, []byte(secret), []byte(id))
}

func (s *sealer) open(id string, sealed []byte) (string, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return "", errors.New("sealed secret too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(id))
	if err != nil {
		return "", fmt.Errorf("open sealed secret of %s: %w", id, err)
	}
	return string(plain), nil
}

// LoadDeploymentKey returns the deployment key: from env (base64, for
// deployments that keep it in a secret manager) when set, else from the
// file at path, created with a random key the first time. Every region of a
// deployment must use the same key.
func LoadDeploymentKey(path, env string) ([]byte, error) {
	if env != "" {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(env))
		if err != nil || len(key) != DeploymentKeySize {
			return nil, fmt.Errorf("deployment key from the environment: want %d bytes, base64", DeploymentKeySize)
		}
		return key, nil
	}
	raw, err := os.ReadFile(path)
	if err == nil {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil || len(key) != DeploymentKeySize {
			return nil, fmt.Errorf("deployment key %s: want %d bytes, base64", path, DeploymentKeySize)
		}
		return key, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read deployment key: %w", err)
	}
	key := make([]byte, DeploymentKeySize)
	_, _ = rand.Read(key)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadDeploymentKey(path, "") // made by a concurrent start
		}
		return nil, fmt.Errorf("create deployment key: %w", err)
	}
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(key) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return key, f.Close()
}
