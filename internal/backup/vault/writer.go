package vault

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/object"
)

// Entry describes one backed-up object: what a restore needs besides the
// data itself.
type Entry struct {
	Key          string            `json:"key"`
	VersionID    string            `json:"versionId,omitempty"`
	Size         int64             `json:"size"`
	ETag         string            `json:"etag,omitempty"`
	ContentType  string            `json:"contentType,omitempty"`
	LastModified int64             `json:"lastModified,omitempty"` // Unix nanoseconds at the source
	Metadata     map[string]string `json:"metadata,omitempty"`
	Tags         map[string]string `json:"tags,omitempty"`
	// Checksums are the source's checksums by algorithm ("CRC32C",
	// "SHA256", ...), kept to be restored; the vault checks its own SHA-256
	// (ObjectRef.SHA256).
	Checksums map[string]string `json:"checksums,omitempty"`
	// Kind is what a continuous point's log entry records (a provider's
	// word: "put", "delete-marker", ...); empty in a snapshot.
	Kind string `json:"kind,omitempty"`
}

// ObjectRef names the stored data of an entry. A ref read from one point may
// be given to PutUnchanged of a later point of the same vault.
type ObjectRef struct {
	ID     string `json:"id"` // kopia object ID
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"` // hex SHA-256 of the data, checked by Verify
}

// record is one line of a point's entry list.
type record struct {
	Entry
	Ref ObjectRef `json:"ref"`
}

// Writer writes one recovery point. Its methods may not be called
// concurrently. A Writer ends with Commit or Abort; one that is dropped
// without either leaves nothing but garbage for Collect.
type Writer struct {
	v      *Vault
	id     string
	labels map[string]string
	w      repo.RepositoryWriter

	mu       sync.Mutex
	done     bool
	list     object.Writer
	enc      *json.Encoder
	buf      *bufio.Writer
	entries  int64
	bytes    int64
	uploaded atomic.Int64
	// Of a transfer's destination (transfer.go): chunks stored under
	// another ID than the source's, and data received since the last
	// flush.
	renamed  map[string]object.ID
	received int64
}

// Begin starts writing recovery point id with labels. It fails with
// ErrExists if a committed point already has this id.
func (v *Vault) Begin(ctx context.Context, id string, labels map[string]string) (*Writer, error) {
	if id == "" {
		return nil, fmt.Errorf("begin point: empty id: %w", ErrInvalid)
	}
	if _, _, err := point(ctx, v.rep, id); err == nil {
		return nil, fmt.Errorf("begin point %q: %w", id, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("begin point %q: %w", id, err)
	}
	pw := &Writer{v: v, id: id, labels: cloneMap(labels)}
	if err := v.enterWriter(ctx, pw); err != nil {
		return nil, fmt.Errorf("begin point %q: %w", id, err)
	}
	// The writer outlives ctx (a copy's target is begun by one request and
	// written by others): kopia keeps the context it opens a write session
	// with, so it gets one that is never cancelled. Commit and Abort end
	// the session.
	wctx := context.WithoutCancel(ctx)
	_, w, err := v.rep.NewWriter(wctx, repo.WriteSessionOptions{
		Purpose:  "bulwark point " + id,
		OnUpload: func(n int64) { pw.uploaded.Add(n) },
	})
	if err != nil {
		v.leaveWriter(pw)
		return nil, fmt.Errorf("begin point %q: %w", id, err)
	}
	pw.w = w
	pw.list = w.NewObjectWriter(wctx, object.WriterOptions{
		Description: "bulwark entry list " + id,
		Prefix:      "k", // metadata: packed apart from data and cached
		Compressor:  Compressor,
	})
	pw.buf = bufio.NewWriterSize(pw.list, 64<<10)
	pw.enc = json.NewEncoder(pw.buf)
	return pw, nil
}

// Put stores one entry and its data, streamed from r. The entry's Size is
// set to the bytes read; a non-zero Size that differs is an error.
func (w *Writer) Put(ctx context.Context, e Entry, r io.Reader) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrWriterClosed
	}
	ow := w.w.NewObjectWriter(ctx, object.WriterOptions{Description: e.Key, Compressor: Compressor})
	defer ow.Close() //nolint:errcheck // Result has taken what matters
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(ow, h), ctxReader{ctx, r})
	if err != nil {
		return fmt.Errorf("put %q: %w", e.Key, err)
	}
	if e.Size != 0 && e.Size != n {
		return fmt.Errorf("put %q: read %d bytes, entry says %d: %w", e.Key, n, e.Size, ErrInvalid)
	}
	e.Size = n
	oid, err := ow.Result()
	if err != nil {
		return fmt.Errorf("put %q: %w", e.Key, err)
	}
	return w.add(e, ObjectRef{ID: oid.String(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
}

// PutUnchanged adds an entry whose data is an object of an earlier point of
// this vault, without reading it: an incremental backup of an object that
// did not change. The object must still be in the vault.
func (w *Writer) PutUnchanged(ctx context.Context, e Entry, from ObjectRef) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrWriterClosed
	}
	oid, err := object.ParseID(from.ID)
	if err != nil {
		return fmt.Errorf("put unchanged %q: %w: %w", e.Key, ErrInvalid, err)
	}
	// An index lookup, not a read: it catches a ref to data that was
	// collected (or never was in this vault) before the point commits.
	if _, err := w.w.VerifyObject(ctx, oid); err != nil {
		return fmt.Errorf("put unchanged %q: %w: %w", e.Key, ErrNotFound, err)
	}
	e.Size = from.Size
	return w.add(e, from)
}

func (w *Writer) add(e Entry, ref ObjectRef) error {
	if err := w.enc.Encode(record{Entry: e, Ref: ref}); err != nil {
		return fmt.Errorf("put %q: entry list: %w", e.Key, err)
	}
	w.entries++
	w.bytes += e.Size
	return nil
}

// Commit writes the entry list and the point's manifest and flushes the
// session: when it returns, the point is durable.
func (w *Writer) Commit(ctx context.Context) (*Point, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil, ErrWriterClosed
	}
	w.done = true
	defer w.release(ctx)

	if err := w.buf.Flush(); err != nil {
		return nil, fmt.Errorf("commit point %q: entry list: %w", w.id, err)
	}
	lid, err := w.list.Result()
	if err != nil {
		return nil, fmt.Errorf("commit point %q: entry list: %w", w.id, err)
	}
	w.v.commitMu.Lock()
	defer w.v.commitMu.Unlock()
	if _, _, err := point(ctx, w.v.rep, w.id); err == nil {
		return nil, fmt.Errorf("commit point %q: %w", w.id, ErrExists)
	} else if !errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("commit point %q: %w", w.id, err)
	}
	// Data first: the manifest must not become visible before the content
	// it names is indexed. One Flush writes packs, then index, then the
	// manifest, in that order, so a crash leaves either no point or all.
	if err := w.w.Flush(ctx); err != nil {
		return nil, fmt.Errorf("commit point %q: flush data: %w", w.id, err)
	}
	p := &Point{
		ID:        w.id,
		Labels:    w.labels,
		Entries:   w.entries,
		Bytes:     w.bytes,
		BytesNew:  w.uploaded.Load(),
		Created:   w.v.rep.Time().UTC(),
		EntryList: lid.String(),
	}
	if _, err := w.w.PutManifest(ctx, pointLabels(w.id, w.labels), p); err != nil {
		return nil, fmt.Errorf("commit point %q: %w", w.id, err)
	}
	if err := w.w.Flush(ctx); err != nil {
		return nil, fmt.Errorf("commit point %q: flush manifest: %w", w.id, err)
	}
	if err := w.v.rep.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("commit point %q: refresh: %w", w.id, err)
	}
	return p, nil
}

// Abort drops the point: nothing is flushed, so no manifest or index refers
// to what was written, and Collect reclaims the packs already uploaded.
func (w *Writer) Abort(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrWriterClosed
	}
	w.done = true
	w.release(ctx)
	return nil
}

func (w *Writer) release(ctx context.Context) {
	_ = w.list.Close()
	_ = w.w.Close(ctx) // releases a reference; nothing to report
	w.v.leaveWriter(w)
}

// ctxReader stops a long copy when ctx is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}
