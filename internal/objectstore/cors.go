package objectstore

import (
	"bytes"
	"context"

	"github.com/bulwark/bulwark/internal/meta"
)

// SetBucketCORS replaces a bucket's CORS configuration; nil or empty cors
// removes it. The configuration is kept as the client sent it: only the
// wire layer knows its format and validates it before calling.
func (s *Store) SetBucketCORS(ctx context.Context, name string, cors []byte) error {
	if len(cors) == 0 {
		cors = nil
	} else {
		cors = bytes.Clone(cors)
	}
	return s.update(ctx, func(tx meta.Tx) error {
		b, err := getBucket(tx, name)
		if err != nil {
			return err
		}
		b.CORS = cors
		return putBucket(tx, b)
	})
}
