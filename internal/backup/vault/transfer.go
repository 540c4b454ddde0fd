package vault

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/content"
	"github.com/kopia/kopia/repo/object"
)

// A transfer copies a committed point of one vault into another — in this
// process (a copy between vaults of a region, a move to the cold tier) or
// in another region over the network — sending only the chunks of data the
// destination lacks.
//
// Every vault of a deployment names chunks with the same keyed hash (the
// key is derived from the deployment secret, see Open), so a chunk's ID is
// the same in every vault and the destination can answer "do you have
// these?" without seeing data. Each vault keeps its own encryption key: a
// chunk is decrypted at the source and encrypted again at the destination.
//
// The protocol, driven by Transfer, works in batches of entries:
//
//  1. the source lists the chunks of each entry's object (kopia splits an
//     object into content-defined chunks; a small object is one chunk);
//  2. Missing asks which of them the destination lacks;
//  3. PutChunks sends those, read from the source;
//  4. PutEntries sends the entries with their chunk lists, and the
//     destination assembles each object from chunks it holds;
//
// and finally Commit writes the point at the destination. A Writer of the
// destination vault implements Target; the server carries the same calls
// between regions. A transfer that stops half-way leaves the destination no
// point: chunks it flushed stay (a retry finds them and does not send them
// again) until the vault's next Collect reclaims those no point uses.

// Chunk is one piece of an object's data: a kopia object made of a single
// content, and its length.
type Chunk struct {
	ID     string `json:"id"`
	Length int64  `json:"l"`
}

// ChunkData is a chunk and its bytes.
type ChunkData struct {
	ID   string
	Data []byte
}

// TransferEntry is an entry of a point in transfer: the entry, the size and
// SHA-256 of its data, and its chunks in order.
type TransferEntry struct {
	Entry  Entry   `json:"entry"`
	Size   int64   `json:"size"`
	SHA256 string  `json:"sha256"`
	Chunks []Chunk `json:"chunks"`
}

// Target is the destination of a transfer.
type Target interface {
	// Missing returns the chunk IDs among ids the destination does not
	// hold.
	Missing(ctx context.Context, ids []string) ([]string, error)
	// PutChunks stores chunks.
	PutChunks(ctx context.Context, chunks []ChunkData) error
	// PutEntries adds entries whose chunks the destination holds.
	PutEntries(ctx context.Context, entries []TransferEntry) error
	// Commit writes the point; Abort drops it.
	Commit(ctx context.Context) (*Point, error)
	Abort(ctx context.Context) error
}

// Batch bounds of Transfer.
const (
	// TransferBatchEntries is the number of entries per round of the
	// protocol.
	TransferBatchEntries = 512
	// TransferBatchBytes bounds the chunk data of one PutChunks call
	// (a single chunk larger than this goes alone).
	TransferBatchBytes = 8 << 20
	// flushEvery is how much chunk data a Writer takes before it flushes
	// its session, so that a transfer cut off by an outage resumes with
	// what was received.
	flushEvery = 64 << 20
)

// TransferStats is what a transfer did.
type TransferStats struct {
	Entries int64
	Bytes   int64 // logical size of the point
	// Sent is the chunk data sent to the destination: what it lacked.
	Sent int64
}

// Transfer copies point pointID of v into dst, then commits dst. progress,
// when not nil, is called after each batch with the running totals. On
// error dst is aborted.
func (v *Vault) Transfer(ctx context.Context, pointID string, dst Target, progress func(TransferStats)) (*Point, TransferStats, error) {
	var st TransferStats
	fail := func(err error) (*Point, TransferStats, error) {
		_ = dst.Abort(context.WithoutCancel(ctx))
		return nil, st, fmt.Errorf("transfer point %q: %w", pointID, err)
	}
	var batch []TransferEntry
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		sent, err := v.sendBatch(ctx, dst, batch)
		if err != nil {
			return err
		}
		st.Sent += sent
		for _, e := range batch {
			st.Entries++
			st.Bytes += e.Size
		}
		batch = batch[:0]
		if progress != nil {
			progress(st)
		}
		return nil
	}
	err := v.Entries(ctx, pointID, func(e Entry, ref ObjectRef) error {
		chunks, err := v.chunks(ctx, ref)
		if err != nil {
			return fmt.Errorf("%q: %w", e.Key, err)
		}
		batch = append(batch, TransferEntry{Entry: e, Size: ref.Size, SHA256: ref.SHA256, Chunks: chunks})
		if len(batch) >= TransferBatchEntries {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fail(err)
	}
	p, err := dst.Commit(ctx)
	if err != nil {
		return nil, st, fmt.Errorf("transfer point %q: %w", pointID, err)
	}
	return p, st, nil
}

// sendBatch runs one round of the protocol and returns the bytes sent.
func (v *Vault) sendBatch(ctx context.Context, dst Target, batch []TransferEntry) (int64, error) {
	var ids []string
	seen := map[string]bool{}
	for _, e := range batch {
		for _, c := range e.Chunks {
			if !seen[c.ID] {
				seen[c.ID] = true
				ids = append(ids, c.ID)
			}
		}
	}
	missing, err := dst.Missing(ctx, ids)
	if err != nil {
		return 0, err
	}
	var sent, size int64
	var out []ChunkData
	for _, id := range missing {
		if !seen[id] {
			return 0, fmt.Errorf("destination asked for chunk %q it was not offered: %w", id, ErrInvalid)
		}
		data, err := v.readChunk(ctx, id)
		if err != nil {
			return 0, err
		}
		if size > 0 && size+int64(len(data)) > TransferBatchBytes {
			if err := dst.PutChunks(ctx, out); err != nil {
				return 0, err
			}
			out, size = nil, 0
		}
		out = append(out, ChunkData{ID: id, Data: data})
		size += int64(len(data))
		sent += int64(len(data))
	}
	if len(out) > 0 {
		if err := dst.PutChunks(ctx, out); err != nil {
			return 0, err
		}
	}
	return sent, dst.PutEntries(ctx, batch)
}

// chunks lists the single-content objects an object is made of, in order.
func (v *Vault) chunks(ctx context.Context, ref ObjectRef) ([]Chunk, error) {
	oid, err := object.ParseID(ref.ID)
	if err != nil {
		return nil, fmt.Errorf("object %q: %w", ref.ID, ErrCorrupt)
	}
	var out []Chunk
	if err := v.appendChunks(ctx, oid, ref.Size, &out); err != nil {
		return nil, err
	}
	var total int64
	for _, c := range out {
		total += c.Length
	}
	if total != ref.Size {
		return nil, fmt.Errorf("object %q: chunks hold %d bytes, entry says %d: %w", ref.ID, total, ref.Size, ErrCorrupt)
	}
	return out, nil
}

func (v *Vault) appendChunks(ctx context.Context, oid object.ID, size int64, out *[]Chunk) error {
	idx, indirect := oid.IndexObjectID()
	if !indirect {
		*out = append(*out, Chunk{ID: oid.String(), Length: size})
		return nil
	}
	entries, err := object.LoadIndexObject(ctx, indexReader{v.rep.ContentReader(), v.rep}, idx)
	if err != nil {
		return fmt.Errorf("object %v: index: %w", oid, kindOf(err))
	}
	for _, e := range entries {
		if err := v.appendChunks(ctx, e.Object, e.Length, out); err != nil {
			return err
		}
	}
	return nil
}

// indexReader is what object.LoadIndexObject reads with.
type indexReader struct {
	content.Reader
	r repo.DirectRepository
}

func (x indexReader) PrefetchContents(ctx context.Context, ids []content.ID, hint string) []content.ID {
	return x.r.PrefetchContents(ctx, ids, hint)
}

// readChunk returns a chunk's data, decrypted and checked by kopia.
func (v *Vault) readChunk(ctx context.Context, id string) ([]byte, error) {
	oid, err := object.ParseID(id)
	if err != nil {
		return nil, fmt.Errorf("chunk %q: %w", id, ErrInvalid)
	}
	if _, indirect := oid.IndexObjectID(); indirect {
		return nil, fmt.Errorf("chunk %q is not a single content: %w", id, ErrInvalid)
	}
	rd, err := v.rep.OpenObject(ctx, oid)
	if err != nil {
		return nil, fmt.Errorf("chunk %q: %w", id, kindOf(err))
	}
	defer rd.Close() //nolint:errcheck // read-only
	data, err := io.ReadAll(rd)
	if err != nil {
		return nil, fmt.Errorf("chunk %q: %w", id, kindOf(err))
	}
	return data, nil
}

// Missing returns the chunks among ids that neither the vault nor this
// writer's session holds. A Writer is a Target: see Transfer.
func (w *Writer) Missing(ctx context.Context, ids []string) ([]string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return nil, ErrWriterClosed
	}
	var out []string
	for _, id := range ids {
		if _, ok := w.renamed[id]; ok {
			continue
		}
		has, err := w.hasChunk(ctx, id)
		if err != nil {
			return nil, err
		}
		if !has {
			out = append(out, id)
		}
	}
	return out, nil
}

func (w *Writer) hasChunk(ctx context.Context, id string) (bool, error) {
	oid, err := object.ParseID(id)
	if err != nil {
		return false, fmt.Errorf("chunk %q: %w", id, ErrInvalid)
	}
	cid, _, ok := oid.ContentID()
	if !ok {
		return false, fmt.Errorf("chunk %q is not a single content: %w", id, ErrInvalid)
	}
	info, err := w.w.ContentInfo(ctx, cid)
	if err != nil {
		return false, nil //nolint:nilerr // not found: kopia gives no distinct error kind here
	}
	return !info.Deleted, nil
}

// PutChunks stores chunks sent by a transfer's source. A chunk whose ID
// the vault computes differently (a vault created with another hashing key)
// is kept under the vault's own ID and mapped for PutEntries.
func (w *Writer) PutChunks(ctx context.Context, chunks []ChunkData) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrWriterClosed
	}
	for _, c := range chunks {
		ow := w.w.NewObjectWriter(ctx, object.WriterOptions{Description: "transferred chunk", Compressor: Compressor})
		_, err := io.Copy(ow, bytes.NewReader(c.Data))
		if err == nil {
			var oid object.ID
			if oid, err = ow.Result(); err == nil && oid.String() != c.ID {
				if w.renamed == nil {
					w.renamed = map[string]object.ID{}
				}
				w.renamed[c.ID] = oid
			}
		}
		_ = ow.Close()
		if err != nil {
			return fmt.Errorf("put chunk %q: %w", c.ID, err)
		}
		w.received += int64(len(c.Data))
	}
	if w.received >= flushEvery {
		w.received = 0
		if err := w.w.Flush(ctx); err != nil {
			return fmt.Errorf("put chunks: flush: %w", err)
		}
	}
	return nil
}

// PutEntries adds entries whose chunks the vault holds, assembling each
// object from its chunks without reading them.
func (w *Writer) PutEntries(ctx context.Context, entries []TransferEntry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return ErrWriterClosed
	}
	for _, te := range entries {
		if len(te.Chunks) == 0 {
			return fmt.Errorf("put entry %q: no chunks: %w", te.Entry.Key, ErrInvalid)
		}
		ids := make([]object.ID, 0, len(te.Chunks))
		var total int64
		for _, c := range te.Chunks {
			total += c.Length
			if oid, ok := w.renamed[c.ID]; ok {
				ids = append(ids, oid)
				continue
			}
			has, err := w.hasChunk(ctx, c.ID)
			if err != nil {
				return err
			}
			if !has {
				return fmt.Errorf("put entry %q: chunk %q was not sent: %w", te.Entry.Key, c.ID, ErrNotFound)
			}
			oid, _ := object.ParseID(c.ID)
			ids = append(ids, oid)
		}
		if total != te.Size {
			return fmt.Errorf("put entry %q: chunks hold %d bytes, entry says %d: %w", te.Entry.Key, total, te.Size, ErrInvalid)
		}
		oid, err := w.w.ConcatenateObjects(ctx, ids, repo.ConcatenateOptions{Compressor: Compressor})
		if err != nil {
			return fmt.Errorf("put entry %q: %w", te.Entry.Key, err)
		}
		e := te.Entry
		e.Size = te.Size
		if err := w.add(e, ObjectRef{ID: oid.String(), Size: te.Size, SHA256: te.SHA256}); err != nil {
			return err
		}
	}
	return nil
}
