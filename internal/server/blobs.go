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

// openBlobs opens the region's blob store: Config.BlobURL, else the
// directory blobs under the data directory. private says that no other
// process writes to the store, which is so only of the default: a
// directory or bucket named by BlobURL may be shared by several gateways.
func openBlobs(ctx context.Context, cfg Config) (s blob.Store, private bool, err error) {
	switch loc := cfg.BlobURL; {
	case loc == "":
		// The region's own directory: what a crash left half written is
		// garbage now, as nothing else writes there.
		fs, err := blobfs.Open(filepath.Join(cfg.DataDir, "blobs"))
		if err == nil {
			err = fs.RemoveTemps(0)
		}
		return fs, true, err
	case strings.HasPrefix(loc, "s3://"):
		c, err := blobs3.ParseURL(loc)
		if err != nil {
			return nil, false, err
		}
		if s, err = blobs3.Open(ctx, c); err != nil {
			return nil, false, err
		}
		return s, false, nil
	case strings.Contains(loc, "://"):
		return nil, false, fmt.Errorf("open blob store %q: a directory or s3://bucket/prefix", loc)
	default:
		s, err = blobfs.Open(loc)
		return s, false, err
	}
}
