package objectstore

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/bulwark/bulwark/internal/meta"
)

// ListInput selects keys as S3's ListObjects does. After is exclusive: the
// V1 marker, the V2 start-after or the decoded continuation token.
type ListInput struct {
	Prefix    string
	Delimiter string
	After     string
	MaxKeys   int
}

// ListResult is one page of a listing. Next is the last key or common prefix
// returned, from which the next page starts.
type ListResult struct {
	Objects        []*Version
	CommonPrefixes []string
	IsTruncated    bool
	Next           string
}

// lister walks a bucket's version index key by key, rolling keys that share
// a prefix up to the delimiter into one common prefix and seeking past them,
// so a page costs O(page) seeks however many keys the prefixes hide.
type lister struct {
	bucket    string
	prefix    string
	delimiter string
	it        meta.Iterator
	bp        []byte // bucket prefix

	after     string // exclusive marker: prefixes up to it are skipped
	max       int
	count     int
	truncated bool
	prefixes  []string
	next      string // the last key or prefix returned
}

// newLister starts a page over space for bucket, which must exist.
func newLister(tx meta.Tx, space, bucket, prefix, delimiter, after string, max int) (*lister, error) {
	if _, err := getBucket(tx, bucket); err != nil {
		return nil, err
	}
	return &lister{bucket: bucket, prefix: prefix, delimiter: delimiter, it: tx.Iter(space),
		bp: bucketPrefix(bucket), after: after, max: max}, nil
}

// first is where a page without a marker starts: the first key with the
// prefix.
func (l *lister) first() []byte {
	p := keyPrefix(l.bucket, l.prefix)
	return p[:len(p)-1]
}

// full reports, when there is another entry to return, whether the page
// has no room left for it; the page is then truncated.
func (l *lister) full() bool {
	if l.count == l.max {
		l.truncated = true
		return true
	}
	return false
}

func (l *lister) add(key string) { l.next, l.count = key, l.count+1 }

// rollUp handles a key under a common prefix: it records the prefix (unless
// the marker is past it) and moves past every key under it. rolled is false
// for a key outside any common prefix; stop means the page is full.
func (l *lister) rollUp(key string) (k, v []byte, rolled, added, stop bool) {
	cp := l.commonPrefix(key)
	if cp == "" {
		return nil, nil, false, false, false
	}
	if cp > l.after {
		if l.full() {
			return nil, nil, true, false, true
		}
		l.prefixes = append(l.prefixes, cp)
		l.add(cp)
		added = true
	}
	k, v = l.skipPrefix(cp)
	return k, v, true, added, false
}

// commonPrefix returns the common prefix key rolls up to, or "".
func (l *lister) commonPrefix(key string) string {
	if l.delimiter == "" {
		return ""
	}
	if i := strings.Index(key[len(l.prefix):], l.delimiter); i >= 0 {
		return key[:len(l.prefix)+i+len(l.delimiter)]
	}
	return ""
}

// skipPrefix positions after every key starting with cp. Keys are UTF-8, so
// no key byte is 0xff.
func (l *lister) skipPrefix(cp string) ([]byte, []byte) {
	return l.it.Seek(append(append(bytes.Clone(l.bp), cp...), 0xff))
}

func (l *lister) split(k []byte) (string, bool) {
	if !hasPrefix(k, l.bp) || !strings.HasPrefix(string(k[len(l.bp):]), l.prefix) {
		return "", false
	}
	key, _, ok := splitVersionKey(l.bucket, k)
	return key, ok
}

// walk visits a page's entries from start: keys under a common prefix roll
// up (onPrefix runs when one is added to the page); every other key's entry
// goes to visit, which adds it to the page or not and says where to go on.
func (l *lister) walk(start []byte, onPrefix func(), visit func(key string, k, v []byte) (nk, nv []byte, stop bool, err error)) error {
	for k, v := l.it.Seek(start); k != nil; {
		key, ok := l.split(k)
		if !ok {
			return nil
		}
		nk, nv, rolled, added, stop := l.rollUp(key)
		if stop {
			return nil
		}
		if rolled {
			if added && onPrefix != nil {
				onPrefix()
			}
			k, v = nk, nv
			continue
		}
		var err error
		if k, v, stop, err = visit(key, k, v); err != nil || stop {
			return err
		}
	}
	return nil
}

// ListObjects lists the latest versions that are not delete markers.
func (s *Store) ListObjects(ctx context.Context, bucket string, in ListInput) (*ListResult, error) {
	res := &ListResult{}
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		l, err := newLister(tx, spaceVersions, bucket, in.Prefix, in.Delimiter, in.After, in.MaxKeys)
		if err != nil {
			return err
		}
		start := l.first()
		if in.After != "" && in.After >= in.Prefix {
			start = afterKey(bucket, in.After)
		}
		err = l.walk(start, nil, func(key string, k, v []byte) ([]byte, []byte, bool, error) {
			ver, err := decodeVersion(bucket, k, v)
			if err != nil {
				return nil, nil, true, err
			}
			if !ver.DeleteMarker {
				if l.full() {
					return nil, nil, true, nil
				}
				ver.IsLatest = true
				res.Objects = append(res.Objects, ver)
				l.add(key)
			}
			k, v = l.it.Seek(afterKey(bucket, key))
			return k, v, false, nil
		})
		if err != nil {
			return err
		}
		res.CommonPrefixes, res.IsTruncated, res.Next = l.prefixes, l.truncated, l.next
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list objects: %w", err)
	}
	return res, nil
}

// ListVersionsInput selects versions as S3's ListObjectVersions does.
type ListVersionsInput struct {
	Prefix          string
	Delimiter       string
	KeyMarker       string
	VersionIDMarker string
	MaxKeys         int
}

// ListVersionsResult is one page of versions and delete markers, each key's
// versions newest first.
type ListVersionsResult struct {
	Versions            []*Version
	CommonPrefixes      []string
	IsTruncated         bool
	NextKeyMarker       string
	NextVersionIDMarker string
}

// ListVersions lists every version and delete marker.
func (s *Store) ListVersions(ctx context.Context, bucket string, in ListVersionsInput) (*ListVersionsResult, error) {
	if in.VersionIDMarker != "" && in.KeyMarker == "" {
		return nil, fmt.Errorf("%w: a version-id marker needs a key marker", ErrInvalidArgument)
	}
	var markerID versionID
	if in.VersionIDMarker != "" && in.VersionIDMarker != nullVersion {
		var err error
		if markerID, err = parseVersionID(in.VersionIDMarker); err != nil {
			return nil, fmt.Errorf("%w: invalid version id marker %q", ErrInvalidArgument, in.VersionIDMarker)
		}
	}
	res := &ListVersionsResult{}
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		l, err := newLister(tx, spaceVersions, bucket, in.Prefix, in.Delimiter, in.KeyMarker, in.MaxKeys)
		if err != nil {
			return err
		}
		start := l.first()
		prevKey := "" // the key of the last version seen; its successors are not latest
		seenPrev := false
		switch {
		case in.KeyMarker != "" && in.VersionIDMarker != "":
			if in.VersionIDMarker == nullVersion {
				nv, err := findNull(tx, bucket, in.KeyMarker)
				if err != nil {
					return err
				}
				if nv == nil {
					return fmt.Errorf("%w: version id marker %q not found", ErrInvalidArgument, in.VersionIDMarker)
				}
				markerID = nv.id
			}
			start = append(versionKey(bucket, in.KeyMarker, markerID), 0)
			prevKey, seenPrev = in.KeyMarker, true
		case in.KeyMarker != "":
			start = afterKey(bucket, in.KeyMarker)
		}
		err = l.walk(start, func() { res.NextVersionIDMarker = "" }, func(key string, k, v []byte) ([]byte, []byte, bool, error) {
			if l.full() {
				return nil, nil, true, nil
			}
			ver, err := decodeVersion(bucket, k, v)
			if err != nil {
				return nil, nil, true, err
			}
			ver.IsLatest = !(seenPrev && key == prevKey)
			prevKey, seenPrev = key, true
			res.Versions = append(res.Versions, ver)
			res.NextVersionIDMarker = ver.VersionID
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
		return nil, fmt.Errorf("list versions: %w", err)
	}
	return res, nil
}
