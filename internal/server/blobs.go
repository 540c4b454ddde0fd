package server

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/bulwark/bulwark/internal/blob"
	blobfs "github.com/bulwark/bulwark/internal/blob/fs"
	blobs3 "github.com/bulwark/bulwark/internal/blob/s3"
)

// openBlobStore opens the region's blob store: Config.BlobURL, else the
// directory blobs under the shared directory. private says that no other
// process writes to the store: so of the default when the region is one
// process, never of a directory or bucket named by BlobURL, which several
// gateways may share.
func openBlobStore(ctx context.Context, cfg Config, oneProcess bool) (s blob.Store, private bool, err error) {
	if cfg.BlobURL != "" {
		s, err = OpenBlobLocation(ctx, cfg.BlobURL)
		return s, false, err
	}
	fs, err := blobfs.Open(filepath.Join(cfg.SharedDir, "blobs"))
	if err == nil && oneProcess {
		// What a crash left half written is garbage now, as nothing else
		// writes there.
		err = fs.RemoveTemps(0)
	}
	return fs, oneProcess, err
}

// OpenBlobLocation opens the blob store a location names, as -blobs takes
// it: a directory, or s3://bucket/prefix?endpoint=URL&region=NAME.
func OpenBlobLocation(ctx context.Context, loc string) (blob.Store, error) {
	switch {
	case strings.HasPrefix(loc, "s3://"):
		c, err := blobs3.ParseURL(loc)
		if err != nil {
			return nil, err
		}
		return blobs3.Open(ctx, c)
	case strings.Contains(loc, "://"):
		return nil, fmt.Errorf("open blob store %q: a directory or s3://bucket/prefix", loc)
	default:
		return blobfs.Open(loc)
	}
}
