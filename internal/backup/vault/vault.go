// Package vault is the data store of one backup vault: a content-addressed,
// deduplicated, compressed and encrypted repository of recovery points,
// built on the kopia repository library (github.com/kopia/kopia/repo).
//
// A recovery point is a list of entries (an object key, its version, its
// metadata and a reference to its data). Data is split into chunks that kopia
// names by a keyed hash, so a chunk that is already in the vault is never
// written again: a second backup of the same bucket costs a few index bytes.
// Chunks are compressed, encrypted with a key derived from the caller's
// secret and packed into pack files under the vault directory.
//
// The entry list of a point is itself a kopia object (a JSON-lines stream) so
// that a point of a million objects never sits in memory; the point's small
// manifest refers to it. A point that is not committed has no manifest: its
// chunks are garbage that Collect removes.
//
// Layout of a vault directory:
//
//	repo/          kopia blob storage (format blob, pack, index and manifest blobs)
//	kopia.config   kopia's connection file (no secret in it)
//	cache/         kopia's local cache of metadata and recently read data
//	               (OpenStored reads past it)
//
// Concurrency: any number of Writers may be open at once; Collect waits for
// them to finish and holds off new ones while it runs, because kopia's
// garbage collection is only safe without concurrent writers when it runs
// without its time margins (maintenance.SafetyNone), which is what lets
// Collect reclaim space at once.
package vault

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/blob/filesystem"
	"github.com/kopia/kopia/repo/compression"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/format"
)

// Error kinds. Errors returned for a caller's mistake wrap one of them.
var (
	ErrNotFound     = errors.New("vault: not found")
	ErrExists       = errors.New("vault: already exists")
	ErrInvalid      = errors.New("vault: invalid argument")
	ErrWrongSecret  = errors.New("vault: wrong secret")
	ErrCorrupt      = errors.New("vault: data corrupt")
	ErrClosed       = errors.New("vault: closed")
	ErrWriterClosed = errors.New("vault: writer already committed or aborted")
)

// Compressor is the kopia compressor for object data and entry lists.
// Measured (BenchmarkCompressors, JSON lines, one core of an EPYC):
// zstd-fastest 12.7 % of the input at 347 MB/s, s2-default 26.4 % at
// 1,318 MB/s. zstd halves what is stored and sent to a copy vault, and a
// point is written at ~180 MB/s anyway; chunks that do not compress are
// stored as they are with either.
const Compressor = compression.Name("zstd-fastest")

const (
	repoDir    = "repo"
	configFile = "kopia.config"
	cacheDir   = "cache"

	manifestType = "bulwark-recovery-point"
	labelType    = "type"
	labelPoint   = "point"
	labelPrefix  = "label."

	// Hostname and username kopia records in sessions and maintenance
	// ownership; fixed so that nothing is read from the environment.
	kopiaHost = "bulwark"
	kopiaUser = "vault"
)

// Vault is an open vault repository. It is safe for concurrent use.
type Vault struct {
	dir      string
	rep      repo.DirectRepository
	password string // kopia's, derived from the deployment secret

	// gate orders writers against Collect.
	mu         sync.Mutex
	collecting bool
	changed    chan struct{} // closed and replaced whenever open/collecting change
	closed     bool
	open       map[*Writer]struct{} // the writers not yet committed or aborted

	commitMu sync.Mutex // makes "no point with this ID" + PutManifest atomic

	fatalMu sync.Mutex
	fatal   error
}

// Open opens (creating it the first time) the vault repository in dir,
// encrypted with a key derived from secret (the deployment key given by the
// caller). A vault created with one secret does not open with another:
// Open returns an error wrapping ErrWrongSecret.
func Open(ctx context.Context, dir string, secret []byte) (*Vault, error) {
	if len(secret) == 0 {
		return nil, fmt.Errorf("open vault %s: empty secret: %w", dir, ErrInvalid)
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open vault: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, repoDir), 0o700); err != nil {
		return nil, fmt.Errorf("open vault %s: %w", dir, err)
	}
	password := derivePassword(secret)
	chunkKey := deriveKey(secret, "bulwark backup vault chunk names v1")
	cfg := filepath.Join(dir, configFile)
	if err := forgetMoved(cfg, filepath.Join(dir, repoDir)); err != nil {
		return nil, fmt.Errorf("open vault %s: %w", dir, err)
	}
	if _, err := os.Stat(cfg); errors.Is(err, os.ErrNotExist) {
		if err := connect(ctx, dir, cfg, password, chunkKey); err != nil {
			return nil, fmt.Errorf("open vault %s: %w", dir, err)
		}
	}
	v := &Vault{dir: dir, password: password, changed: make(chan struct{}), open: map[*Writer]struct{}{}}
	r, err := repo.Open(ctx, cfg, password, &repo.Options{
		DisableInternalLog: true,
		// kopia's default exits the process; a vault reports instead.
		OnFatalError: v.setFatal,
	})
	if err != nil {
		return nil, fmt.Errorf("open vault %s: %w", dir, kopiaErr(err))
	}
	dr, ok := r.(repo.DirectRepository)
	if !ok {
		_ = r.Close(ctx)
		return nil, fmt.Errorf("open vault %s: not a direct repository", dir)
	}
	v.rep = dr
	return v, nil
}

func (v *Vault) configPath() string { return filepath.Join(v.dir, configFile) }

// derivePassword turns the deployment secret into the kopia repository
// password; kopia stretches it further (scrypt) to unwrap the format key.
func derivePassword(secret []byte) string {
	return hex.EncodeToString(deriveKey(secret, "bulwark backup vault repository password v1"))
}

func deriveKey(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// connect initializes the repository if the storage is empty, then writes
// kopia's connection file with the cache inside the vault directory.
//
// chunkKey is the key of the hash that names chunks. It is the same in
// every vault of a deployment, so that a transfer between two vaults finds
// the chunks the destination holds by name (see transfer.go); each vault's
// encryption key (kopia's master key) is its own, random.
func connect(ctx context.Context, dir, cfg, password string, chunkKey []byte) error {
	st, err := filesystem.New(ctx, &filesystem.Options{Path: filepath.Join(dir, repoDir)}, true)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer st.Close(ctx) //nolint:errcheck // read-only use below; nothing to flush

	opts := &repo.ConnectOptions{
		ClientOptions: repo.ClientOptions{Hostname: kopiaHost, Username: kopiaUser, Description: "bulwark vault"},
		CachingOptions: content.CachingOptions{
			CacheDirectory:         filepath.Join(dir, cacheDir),
			ContentCacheSizeBytes:  32 << 20,
			MetadataCacheSizeBytes: 64 << 20,
		},
	}
	err = repo.Connect(ctx, cfg, st, password, opts)
	if errors.Is(err, repo.ErrRepositoryNotInitialized) {
		if err = repo.Initialize(ctx, st, &repo.NewRepositoryOptions{
			BlockFormat: format.ContentFormat{HMACSecret: chunkKey},
		}, password); err != nil {
			return fmt.Errorf("initialize: %w", err)
		}
		err = repo.Connect(ctx, cfg, st, password, opts)
	}
	if err != nil {
		_ = os.Remove(cfg)
		return fmt.Errorf("connect: %w", kopiaErr(err))
	}
	return nil
}

// forgetMoved removes kopia's connection file when it names another
// storage path than repo: the vault directory was copied or moved (to a
// shared mount, say), and the file, which kopia writes with absolute
// paths, would open the old place. The next open connects anew.
func forgetMoved(cfg, repo string) error {
	raw, err := os.ReadFile(cfg)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var c struct {
		Storage struct {
			Config struct {
				Path string `json:"path"`
			} `json:"config"`
		} `json:"storage"`
	}
	abs, err := filepath.Abs(repo)
	if err != nil {
		return err
	}
	if json.Unmarshal(raw, &c) == nil {
		if named, err := filepath.Abs(c.Storage.Config.Path); err == nil && named == abs {
			return nil
		}
	}
	return os.Remove(cfg)
}

func kopiaErr(err error) error {
	if errors.Is(err, repo.ErrInvalidPassword) {
		return fmt.Errorf("%w: %w", ErrWrongSecret, err)
	}
	return err
}

func (v *Vault) setFatal(err error) {
	v.fatalMu.Lock()
	defer v.fatalMu.Unlock()
	if v.fatal == nil {
		v.fatal = err
	}
}

// Err reports a fatal error kopia met in the background (for example while
// upgrading the repository format), or nil.
func (v *Vault) Err() error {
	v.fatalMu.Lock()
	defer v.fatalMu.Unlock()
	return v.fatal
}

// Close aborts writers still open and closes the repository.
func (v *Vault) Close(ctx context.Context) error {
	v.mu.Lock()
	if v.closed {
		v.mu.Unlock()
		return nil
	}
	v.closed = true
	writers := make([]*Writer, 0, len(v.open))
	for w := range v.open {
		writers = append(writers, w)
	}
	v.mu.Unlock()
	var errs []error
	for _, w := range writers {
		if err := w.Abort(ctx); err != nil && !errors.Is(err, ErrWriterClosed) {
			errs = append(errs, err)
		}
	}
	if err := v.rep.Close(ctx); err != nil {
		errs = append(errs, fmt.Errorf("close vault %s: %w", v.dir, err))
	}
	return errors.Join(errs...)
}

// signal wakes whoever waits on the gate; v.mu must be held.
func (v *Vault) signal() {
	close(v.changed)
	v.changed = make(chan struct{})
}

// enterWriter registers a writer, waiting while Collect runs.
func (v *Vault) enterWriter(ctx context.Context, w *Writer) error {
	return v.enter(ctx, func() bool { return v.collecting }, func() { v.open[w] = struct{}{} })
}

func (v *Vault) leaveWriter(w *Writer) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, ok := v.open[w]; !ok {
		return
	}
	delete(v.open, w)
	v.signal()
}

// enterCollect waits until no writer is open and no other Collect runs.
func (v *Vault) enterCollect(ctx context.Context) error {
	return v.enter(ctx, func() bool { return v.collecting || len(v.open) > 0 }, func() { v.collecting = true })
}

// enter waits on the gate while busy holds, then runs take, both under
// v.mu; a closed vault ends the wait with ErrClosed.
func (v *Vault) enter(ctx context.Context, busy func() bool, take func()) error {
	v.mu.Lock()
	for busy() && !v.closed {
		ch := v.changed
		v.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
		v.mu.Lock()
	}
	defer v.mu.Unlock()
	if v.closed {
		return ErrClosed
	}
	take()
	return nil
}

func (v *Vault) leaveCollect() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.collecting = false
	v.signal()
}

// Point is a committed recovery point.
type Point struct {
	ID     string            `json:"id"`
	Labels map[string]string `json:"labels,omitempty"`
	// Entries is the number of entries in the point.
	Entries int64 `json:"entries"`
	// Bytes is the logical size: the sum of the entries' sizes.
	Bytes int64 `json:"bytes"`
	// BytesNew is what the point added to the vault's storage, after
	// deduplication, compression and encryption: the pack and index blobs
	// its data and entry list needed (its small manifest is not counted).
	BytesNew int64     `json:"bytesNew"`
	Created  time.Time `json:"created"`
	// EntryList is the kopia object ID of the point's entry list.
	EntryList string `json:"entryList"`
}

func pointLabels(id string, labels map[string]string) map[string]string {
	m := map[string]string{labelType: manifestType}
	if id != "" {
		m[labelPoint] = id
	}
	for k, val := range labels {
		m[labelPrefix+k] = val
	}
	return m
}
