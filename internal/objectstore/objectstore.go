// Package objectstore is Bulwark's domain core for one region: buckets,
// object versions with S3's versioning semantics, and the change feed that
// records every object mutation in the same transaction as the mutation.
//
// It imports no HTTP or wire package. Data goes to a blob.Store and becomes
// durable before the metadata that references it is committed to the
// meta.Store; small objects are kept inline in their metadata record, so
// they cost one durable commit instead of two.
package objectstore

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/bulwark/bulwark/internal/blob"
	"github.com/bulwark/bulwark/internal/meta"
)

// DefaultInlineLimit is the largest object kept inside its metadata record.
const DefaultInlineLimit = 64 << 10

// Config configures a Store.
type Config struct {
	Region string
	Meta   meta.Store
	Blobs  blob.Store
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// InlineLimit is the largest object stored inline in metadata; 0 means
	// DefaultInlineLimit and a negative value disables inlining.
	InlineLimit int64
	// ReplicationSelects, when set, tells whether a bucket's replication
	// configuration (its stored JSON) selects a new object version with
	// this key and these tags; such a version is born PENDING.
	ReplicationSelects func(cfg []byte, key string, tags map[string]string) bool
	// Space admits new data; nil admits everything.
	Space Space
}

// Space decides whether the disk has room for new data. Only what brings
// data asks (an object's body, a part, a replica, the start of a multipart
// upload): deletes, delete markers, completing an upload and metadata
// changes never do, so that space can always be freed.
type Space interface {
	// Admit reserves room for size bytes (0 when unknown) until release
	// is called, or refuses them with an error saying why (of kind
	// headroom.ErrLowSpace, transient).
	Admit(size int64) (release func(), err error)
}

type admitAll struct{}

func (admitAll) Admit(int64) (func(), error) { return func() {}, nil }

// Store is one region's object store.
type Store struct {
	region  string
	meta    meta.Store
	blobs   blob.Store
	log     *slog.Logger
	now     func() time.Time
	ids     *idGen
	inline  int64
	selects func(cfg []byte, key string, tags map[string]string) bool
	space   Space
	notify  chan struct{}
}

// New returns a Store over the given metadata and blob stores.
func New(cfg Config) *Store {
	s := &Store{
		region:  cfg.Region,
		meta:    cfg.Meta,
		blobs:   cfg.Blobs,
		log:     cfg.Logger,
		now:     cfg.Now,
		ids:     newIDGen(cfg.Region),
		inline:  cfg.InlineLimit,
		selects: cfg.ReplicationSelects,
		space:   cfg.Space,
		notify:  make(chan struct{}, 1),
	}
	if s.space == nil {
		s.space = admitAll{}
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	switch {
	case s.inline == 0:
		s.inline = DefaultInlineLimit
	case s.inline < 0:
		s.inline = 0
	}
	return s
}

// update runs fn in a durable transaction and, once it has committed,
// wakes the change feed's consumer.
func (s *Store) update(ctx context.Context, fn func(tx meta.Tx) error) error {
	err := s.meta.Update(ctx, fn)
	if err == nil {
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	return err
}

// Notify returns a channel that receives a value after a committed change,
// so the change feed's consumer is woken by the commit instead of polling.
// Wake-ups coalesce: one value may stand for many changes. There is one
// channel per store, for one consumer.
func (s *Store) Notify() <-chan struct{} { return s.notify }

// Region returns the region this store serves.
func (s *Store) Region() string { return s.region }

// Versioning states of a bucket. The zero value is a bucket whose versioning
// was never enabled.
const (
	VersioningEnabled   = "Enabled"
	VersioningSuspended = "Suspended"
)

// Bucket is a bucket's record.
type Bucket struct {
	Name       string            `json:"name"`
	Region     string            `json:"region"`
	Owner      string            `json:"owner"`
	Created    time.Time         `json:"created"`
	Versioning string            `json:"versioning,omitempty"`
	Tags       map[string]string `json:"tags,omitempty"`
	// CORS is the bucket's CORS configuration as the client sent it (S3's
	// XML), kept verbatim and parsed by the wire layer.
	CORS []byte `json:"cors,omitempty"`

	Replication json.RawMessage `json:"replication,omitempty"` // canonical JSON of a replication.Config
	// Policy is the bucket policy document as the owner sent it.
	Policy []byte `json:"policy,omitempty"`
}

// ValidateBucketName applies AWS's rules for general purpose bucket names.
func ValidateBucketName(name string) error {
	bad := func(why string) error { return fmt.Errorf("%w: %q %s", ErrInvalidBucketName, name, why) }
	if len(name) < 3 || len(name) > 63 {
		return bad("must be 3 to 63 characters long")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-') {
			return bad("may contain only lowercase letters, numbers, dots and hyphens")
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return bad("must begin and end with a letter or number")
	}
	if strings.Contains(name, "..") {
		return bad("must not contain two adjacent periods")
	}
	if net.ParseIP(name) != nil {
		return bad("must not be formatted as an IP address")
	}
	for _, p := range []string{"xn--", "sthree-", "amzn-s3-demo-"} {
		if strings.HasPrefix(name, p) {
			return bad("must not start with " + p)
		}
	}
	for _, sfx := range []string{"-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"} {
		if strings.HasSuffix(name, sfx) {
			return bad("must not end with " + sfx)
		}
	}
	return nil
}

func isAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// CreateBucket creates a bucket in this region owned by owner. region is the
// requested LocationConstraint ("" means us-east-1, as in S3).
func (s *Store) CreateBucket(ctx context.Context, name, owner, region string) error {
	if err := ValidateBucketName(name); err != nil {
		return err
	}
	if region == "" {
		region = "us-east-1"
	}
	if region != s.region {
		return fmt.Errorf("%w: constraint %q, this endpoint serves %q", ErrWrongRegion, region, s.region)
	}
	return s.update(ctx, func(tx meta.Tx) error {
		if raw := tx.Get(spaceBuckets, []byte(name)); raw != nil {
			var b Bucket
			if err := json.Unmarshal(raw, &b); err != nil {
				return fmt.Errorf("decode bucket %q: %w", name, err)
			}
			if b.Owner != owner {
				return ErrBucketExists
			}
			// S3 in us-east-1 answers a repeated create by the owner with success.
			if s.region == "us-east-1" {
				return nil
			}
			return ErrBucketOwnedByYou
		}
		return putBucket(tx, &Bucket{Name: name, Region: s.region, Owner: owner, Created: s.now().UTC()})
	})
}

func putBucket(tx meta.Tx, b *Bucket) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode bucket: %w", err)
	}
	return tx.Put(spaceBuckets, []byte(b.Name), raw)
}

func getBucket(tx meta.Tx, name string) (*Bucket, error) {
	raw := tx.Get(spaceBuckets, []byte(name))
	if raw == nil {
		return nil, fmt.Errorf("%w: %s", ErrNoSuchBucket, name)
	}
	b := &Bucket{}
	if err := json.Unmarshal(raw, b); err != nil {
		return nil, fmt.Errorf("decode bucket %q: %w", name, err)
	}
	return b, nil
}

// Bucket returns a bucket's record.
func (s *Store) Bucket(ctx context.Context, name string) (*Bucket, error) {
	var b *Bucket
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		var err error
		b, err = getBucket(tx, name)
		return err
	})
	return b, err
}

// ListBuckets returns the buckets owned by owner, by name.
func (s *Store) ListBuckets(ctx context.Context, owner string) ([]Bucket, error) {
	return s.bucketsWhere(ctx, func(b *Bucket) bool { return b.Owner == owner })
}

// AllBuckets returns every bucket of the region, whoever owns it, by name.
func (s *Store) AllBuckets(ctx context.Context) ([]Bucket, error) {
	return s.bucketsWhere(ctx, func(*Bucket) bool { return true })
}

func (s *Store) bucketsWhere(ctx context.Context, keep func(*Bucket) bool) ([]Bucket, error) {
	var out []Bucket
	err := s.meta.View(ctx, func(tx meta.Tx) error {
		it := tx.Iter(spaceBuckets)
		for k, v := it.First(); k != nil; k, v = it.Next() {
			var b Bucket
			if err := json.Unmarshal(v, &b); err != nil {
				return fmt.Errorf("decode bucket %q: %w", k, err)
			}
			if keep(&b) {
				out = append(out, b)
			}
		}
		return nil
	})
	return out, err
}

// DeleteBucket deletes an empty bucket: one with no versions, no delete
// markers and no multipart uploads left.
func (s *Store) DeleteBucket(ctx context.Context, name string) error {
	return s.update(ctx, func(tx meta.Tx) error {
		if _, err := getBucket(tx, name); err != nil {
			return err
		}
		p := bucketPrefix(name)
		if k, _ := tx.Iter(spaceVersions).Seek(p); k != nil && hasPrefix(k, p) {
			return fmt.Errorf("%w: %s", ErrBucketNotEmpty, name)
		}
		// Parts of an upload in progress are data too: refuse rather than
		// strand them.
		if hasUploads(tx, name) {
			return fmt.Errorf("%w: %s has multipart uploads in progress", ErrBucketNotEmpty, name)
		}
		return tx.Delete(spaceBuckets, []byte(name))
	})
}

// SetVersioning changes a bucket's versioning state to Enabled or Suspended.
// As in S3, a bucket never returns to the unversioned state.
func (s *Store) SetVersioning(ctx context.Context, name, status string) error {
	if status != VersioningEnabled && status != VersioningSuspended {
		return fmt.Errorf("%w: versioning status %q", ErrInvalidArgument, status)
	}
	return s.update(ctx, func(tx meta.Tx) error {
		b, err := getBucket(tx, name)
		if err != nil {
			return err
		}
		// Replication needs versioning to stay on: its configuration must
		// go first. Checked here, in the same transaction, so a
		// configuration put concurrently cannot slip in between.
		if status == VersioningSuspended && len(b.Replication) > 0 {
			return fmt.Errorf("%w: %s has a replication configuration", ErrReplicationKeepsVersioning, name)
		}
		b.Versioning = status
		return putBucket(tx, b)
	})
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }
