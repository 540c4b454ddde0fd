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

	"github.com/kopia/kopia/repo"
	"github.com/kopia/kopia/repo/object"
)

// Entries calls fn for every entry of a committed point, in the order they
// were put, streaming the entry list. An error from fn stops the walk and is
// returned.
func (v *Vault) Entries(ctx context.Context, pointID string, fn func(Entry, ObjectRef) error) error {
	p, _, err := point(ctx, v.rep, pointID)
	if err != nil {
		return err
	}
	lid, err := object.ParseID(p.EntryList)
	if err != nil {
		return fmt.Errorf("point %q: entry list: %w", pointID, ErrCorrupt)
	}
	if err := readEntries(ctx, v.rep, lid, fn); err != nil {
		return fmt.Errorf("point %q: %w", pointID, err)
	}
	return nil
}

func readEntries(ctx context.Context, r repo.Repository, lid object.ID, fn func(Entry, ObjectRef) error) error {
	rd, err := r.OpenObject(ctx, lid)
	if err != nil {
		return fmt.Errorf("entry list: %w", kindOf(err))
	}
	defer rd.Close() //nolint:errcheck // read-only
	dec := json.NewDecoder(bufio.NewReaderSize(rd, 64<<10))
	for {
		var rec record
		if err := dec.Decode(&rec); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return fmt.Errorf("entry list: %w: %w", ErrCorrupt, err)
		}
		if err := fn(rec.Entry, rec.Ref); err != nil {
			return err
		}
	}
}

// kindOf marks kopia's not-found errors with ErrNotFound and other read
// errors (failed decryption, bad checksum, truncated pack) with ErrCorrupt.
func kindOf(err error) error {
	if errors.Is(err, object.ErrObjectNotFound) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrCorrupt, err)
}

// Open returns a reader of an object's data.
func (v *Vault) Open(ctx context.Context, ref ObjectRef) (io.ReadSeekCloser, error) {
	oid, err := object.ParseID(ref.ID)
	if err != nil {
		return nil, fmt.Errorf("open object %q: %w", ref.ID, ErrInvalid)
	}
	rd, err := v.rep.OpenObject(ctx, oid)
	if err != nil {
		return nil, fmt.Errorf("open object %q: %w", ref.ID, kindOf(err))
	}
	return rd, nil
}

// maxVerifyErrors bounds the failures Verify reports; past it, it stops.
const maxVerifyErrors = 20

// Verify reads back every object of a point, as a restore would, and checks
// its size and SHA-256 against the entry list. Kopia itself authenticates
// every chunk it decrypts, so a flipped byte in a pack shows up either as a
// read error or as a checksum mismatch; both wrap ErrCorrupt.
func (v *Vault) Verify(ctx context.Context, pointID string) error {
	var errs []error
	buf := make([]byte, 256<<10)
	err := v.Entries(ctx, pointID, func(e Entry, ref ObjectRef) error {
		if err := v.verifyObject(ctx, ref, buf); err != nil {
			errs = append(errs, fmt.Errorf("%q: %w", e.Key, err))
			if len(errs) >= maxVerifyErrors {
				return errors.New("too many errors")
			}
		}
		return ctx.Err()
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("verify point %q: %w", pointID, errors.Join(errs...))
	}
	return nil
}

func (v *Vault) verifyObject(ctx context.Context, ref ObjectRef, buf []byte) error {
	rd, err := v.Open(ctx, ref)
	if err != nil {
		return err
	}
	defer rd.Close() //nolint:errcheck // read-only
	h := sha256.New()
	n, err := io.CopyBuffer(h, rd, buf)
	if err != nil {
		return kindOf(err)
	}
	if n != ref.Size {
		return fmt.Errorf("%w: size %d, want %d", ErrCorrupt, n, ref.Size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != ref.SHA256 {
		return fmt.Errorf("%w: sha256 %s, want %s", ErrCorrupt, got, ref.SHA256)
	}
	return nil
}

// CopyPoint copies recovery point pointID of src into dst as newID with
// labels, by Transfer: dst receives only the chunks it lacks. sent is the
// chunk data sent.
func CopyPoint(ctx context.Context, src, dst *Vault, pointID, newID string, labels map[string]string) (sent int64, err error) {
	if _, _, err := point(ctx, src.rep, pointID); err != nil {
		return 0, fmt.Errorf("copy point %q: %w", pointID, err)
	}
	w, err := dst.Begin(ctx, newID, labels)
	if err != nil {
		return 0, fmt.Errorf("copy point %q: %w", pointID, err)
	}
	_, st, err := src.Transfer(ctx, pointID, w, nil)
	if err != nil {
		return 0, fmt.Errorf("copy point %q: %w", pointID, err)
	}
	return st.Sent, nil
}
