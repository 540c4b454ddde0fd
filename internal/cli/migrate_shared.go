package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bulwark/bulwark/internal/blob"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	"github.com/bulwark/bulwark/internal/server"
)

// sharedMove is where migrate puts what every gateway of a region shares:
// the shared directory (vaults and the deployment key, and the blobs
// unless blobs names another place).
type sharedMove struct {
	dir, blobs string
}

func (sm sharedMove) blobLocation() string {
	if sm.blobs != "" {
		return sm.blobs
	}
	return filepath.Join(sm.dir, "blobs")
}

// moveShared copies a stopped region's blobs, vault repositories and
// deployment key from its data directory to the shared places. Blobs are
// write-once under unique names, so a blob already there with its size is
// one an earlier run copied; a repeated run copies what is missing.
func (m *Main) moveShared(ctx context.Context, data string, sm sharedMove) error {
	src, err := blobfs.Open(filepath.Join(data, "blobs"))
	if err != nil {
		return err
	}
	dst, err := server.OpenBlobLocation(ctx, sm.blobLocation())
	if err != nil {
		return err
	}
	n, size, err := copyBlobs(ctx, dst, src)
	if err != nil {
		return fmt.Errorf("copy blobs to %s: %w", sm.blobLocation(), err)
	}
	fmt.Fprintf(m.Stdout, "copied %d blobs (%s) to %s\n", n, bytesize(size), sm.blobLocation())
	if sm.dir == "" {
		return nil
	}
	if err := os.MkdirAll(sm.dir, 0o700); err != nil {
		return err
	}
	if err := copyKey(filepath.Join(sm.dir, "deployment.key"), filepath.Join(data, "deployment.key")); err != nil {
		return err
	}
	vaults, to := filepath.Join(data, "vaults"), filepath.Join(sm.dir, "vaults")
	if _, err := os.Stat(vaults); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(to); err == nil {
		fmt.Fprintf(m.Stdout, "%s exists: vaults left as they are\n", to)
		return nil
	}
	// Into a temporary name first, so that a copy cut short is never
	// taken for the vaults.
	tmp := to + ".copying"
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	if err := os.CopyFS(tmp, os.DirFS(vaults)); err != nil {
		return fmt.Errorf("copy vaults: %w", err)
	}
	if err := os.Rename(tmp, to); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "copied the backup vaults to %s\n", to)
	return nil
}

// copyBlobs copies every blob of src into dst and returns how many it
// copied and their bytes.
func copyBlobs(ctx context.Context, dst, src blob.Store) (n, size int64, err error) {
	err = src.Walk(ctx, func(info blob.Info) error {
		if o, err := dst.Open(ctx, info.ID); err == nil {
			same := o.Size() == info.Size
			o.Close()
			if same {
				return nil
			}
			return fmt.Errorf("blob %s is at the destination with %d bytes, not %d", info.ID, o.Size(), info.Size)
		} else if !errors.Is(err, blob.ErrNotFound) {
			return err
		}
		o, err := src.Open(ctx, info.ID)
		if err != nil {
			return err
		}
		defer o.Close()
		written, err := dst.Create(ctx, info.ID, o)
		if err != nil {
			return fmt.Errorf("blob %s: %w", info.ID, err)
		}
		n, size = n+1, size+written
		return nil
	})
	return n, size, err
}

// verifyBlobs counts the blobs of src missing from dst or of another size.
func verifyBlobs(ctx context.Context, dst, src blob.Store, report func(string)) (int, error) {
	bad := 0
	err := src.Walk(ctx, func(info blob.Info) error {
		o, err := dst.Open(ctx, info.ID)
		switch {
		case errors.Is(err, blob.ErrNotFound):
			bad++
			report(fmt.Sprintf("blob %s is missing", info.ID))
			return nil
		case err != nil:
			return err
		}
		defer o.Close()
		if o.Size() != info.Size {
			bad++
			report(fmt.Sprintf("blob %s has %d bytes, not %d", info.ID, o.Size(), info.Size))
		}
		return nil
	})
	return bad, err
}

// copyKey puts the deployment key at to, unless the same key is there; a
// different one is refused: secrets sealed under one cannot be read with
// the other.
func copyKey(to, from string) error {
	key, err := os.ReadFile(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil // given by BULWARK_DEPLOYMENT_KEY
	}
	if err != nil {
		return err
	}
	switch have, err := os.ReadFile(to); {
	case err == nil && bytes.Equal(have, key):
		return nil
	case err == nil:
		return fmt.Errorf("%s holds another deployment key than %s", to, from)
	case !errors.Is(err, fs.ErrNotExist):
		return err
	}
	return os.WriteFile(to, key, 0o600)
}
