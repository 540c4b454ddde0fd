package objectstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// ListUploadsInput selects uploads as S3's ListMultipartUploads does.
type ListUploadsInput struct {
	Prefix, Delimiter         string
	KeyMarker, UploadIDMarker string
	MaxUploads                int
}

// ListUploadsResult is one page of uploads in progress, by key, then oldest
// first.
type ListUploadsResult struct {
	Uploads            []*Upload
	CommonPrefixes     []string
	IsTruncated        bool
	NextKeyMarker      string
	NextUploadIDMarker string
}

// ListUploads lists multipart uploads in progress.
func (s *Store) ListUploads(ctx context.Context, bucket string, in ListUploadsInput) (*ListUploadsResult, error) {
	res := &ListUploadsResult{}
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		l, err := newLister(tx, spaceUploads, bucket, in.Prefix, in.Delimiter, in.KeyMarker, in.MaxUploads)
		if err != nil {
			return err
		}
		start := l.first()
		switch {
		case in.KeyMarker != "" && in.UploadIDMarker != "":
			id, err := parseVersionID(in.UploadIDMarker)
			if err != nil {
				return fmt.Errorf("%w: invalid upload id marker %q", ErrInvalidArgument, in.UploadIDMarker)
			}
			start = append(uploadKey(bucket, in.KeyMarker, id), 0)
		case in.KeyMarker != "":
			start = afterKey(bucket, in.KeyMarker)
		}
		err = l.walk(start, func() { res.NextUploadIDMarker = "" }, func(key string, k, v []byte) ([]byte, []byte, bool, error) {
			if l.full() {
				return nil, nil, true, nil
			}
			u, err := decodeUpload(bucket, k, v)
			if err != nil {
				return nil, nil, true, err
			}
			res.Uploads = append(res.Uploads, u)
			res.NextUploadIDMarker = u.UploadID
			l.add(key)
			k, v = l.it.Next()
			return k, v, false, nil
		})
		if err != nil {
			return err
		}
		res.CommonPrefixes, res.IsTruncated, res.NextKeyMarker = l.prefixes, l.truncated, l.next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list multipart uploads: %w", err)
	}
	return res, nil
}

func decodeUpload(bucket string, k, v []byte) (*Upload, error) {
	key, inv, ok := splitVersionKey(bucket, k)
	if !ok {
		return nil, fmt.Errorf("decode upload: bad key %q", k)
	}
	u := &Upload{}
	if err := json.Unmarshal(v, u); err != nil {
		return nil, fmt.Errorf("decode upload %q: %w", key, err)
	}
	for i, c := range inv {
		u.id[i] = ^c
	}
	u.Bucket, u.Key, u.UploadID = bucket, key, u.id.String()
	return u, nil
}

// hasUploads reports whether a bucket has multipart uploads in progress.
func hasUploads(tx meta.Tx, bucket string) bool {
	p := bucketPrefix(bucket)
	k, _ := tx.Iter(spaceUploads).Seek(p)
	return k != nil && hasPrefix(k, p)
}

// AbortStaleUploads aborts uploads started before now-age, as S3's
// AbortIncompleteMultipartUpload lifecycle rule does, and forgets completed
// uploads older than that (a retried complete can no longer be answered).
// It returns the number of uploads aborted.
func (s *Store) AbortStaleUploads(ctx context.Context, age time.Duration) (int, error) {
	cutoff := s.now().Add(-age)
	var stale []*Upload
	var doneKeys [][]byte
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		bit := tx.Iter(spaceBuckets)
		for bk, _ := bit.First(); bk != nil; bk, _ = bit.Next() {
			bucket := string(bk)
			p := bucketPrefix(bucket)
			it := tx.Iter(spaceUploads)
			for k, v := it.Seek(p); k != nil && hasPrefix(k, p); k, v = it.Next() {
				u, err := decodeUpload(bucket, k, v)
				if err != nil {
					return err
				}
				if u.Initiated.Before(cutoff) {
					stale = append(stale, u)
				}
			}
		}
		it := tx.Iter(spaceCompleted)
		for k, _ := it.First(); k != nil; k, _ = it.Next() {
			var id versionID
			copy(id[:], k)
			if id.time().Before(cutoff) {
				doneKeys = append(doneKeys, append([]byte(nil), k...))
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("abort stale uploads: %w", err)
	}
	n := 0
	for _, u := range stale {
		if err := s.AbortUpload(ctx, u.Bucket, u.Key, u.UploadID); err == nil {
			n++
			s.log.Info("aborted stale multipart upload", "bucket", u.Bucket, "key", u.Key, "upload", u.UploadID, "initiated", u.Initiated)
		}
	}
	if len(doneKeys) > 0 {
		err = s.update(ctx, func(tx meta.Tx) error {
			for _, k := range doneKeys {
				if err := tx.Delete(spaceCompleted, k); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return n, err
}
