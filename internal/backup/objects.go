package backup

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/bulwark/bulwark/internal/backup/vault"
)

// errFound stops a walk of a point's entries at the entry sought.
var errFound = errors.New("found")

// ErrNotBackedUp is an object version that no recovery point holds.
var ErrNotBackedUp = errors.New("no recovery point holds this object version")

// OpenBackedUpObject opens the data of one version of an object as the
// newest completed recovery point of bucketARN that holds it recorded it
// (same key, version ID and ETag), in any vault of the bucket's account
// in this region, and names the point. It is how damaged data is repaired
// from backups. The error wraps ErrNotBackedUp when no point holds it.
func (s *Service) OpenBackedUpObject(ctx context.Context, account, bucketARN, key, versionID, etag string) (io.ReadSeekCloser, string, error) {
	points, err := s.pointsWhere(ctx, func(p *RecoveryPoint) bool {
		return p.AccountID == account && p.ResourceARN == bucketARN && p.Status == PointCompleted
	})
	if err != nil {
		return nil, "", err
	}
	slices.SortFunc(points, func(a, b *RecoveryPoint) int {
		return cmp.Compare(b.CreationDate.UnixNano(), a.CreationDate.UnixNano())
	})
	for _, p := range points {
		v, err := s.pointVault(ctx, p)
		if err != nil {
			return nil, "", fmt.Errorf("recovery point %s: %w", p.ARN, err)
		}
		// A continuous point's versions are in its pieces, newest first.
		ids := []string{p.PointID}
		if p.IsContinuous() {
			pieces, _, err := s.pieces(ctx, p)
			if err != nil {
				return nil, "", fmt.Errorf("recovery point %s: %w", p.ARN, err)
			}
			ids = ids[:0]
			for i := len(pieces) - 1; i >= 0; i-- {
				if pieces[i].PointID != "" {
					ids = append(ids, pieces[i].PointID)
				}
			}
		}
		var ref vault.ObjectRef
		for _, id := range ids {
			err = v.Entries(ctx, id, func(e vault.Entry, r vault.ObjectRef) error {
				if e.Key == key && e.VersionID == versionID && e.ETag == etag && e.Kind != logLost && e.Kind != logDeleteMarker && e.Kind != logDeleteVersion {
					ref = r
					return errFound
				}
				return nil
			})
			if err != nil {
				break
			}
		}
		switch {
		case errors.Is(err, errFound):
			rc, err := v.Open(ctx, ref)
			if err != nil {
				return nil, "", fmt.Errorf("recovery point %s: %w", p.ARN, err)
			}
			return rc, p.ARN, nil
		case err != nil:
			return nil, "", fmt.Errorf("recovery point %s: %w", p.ARN, err)
		}
	}
	return nil, "", fmt.Errorf("%w: %s %s version %s", ErrNotBackedUp, bucketARN, key, versionID)
}
