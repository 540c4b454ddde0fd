package objectstore

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
)

// Keyspaces of the metadata store used by the object store.
const (
	spaceBuckets  = "buckets"  // bucket name -> Bucket JSON
	spaceVersions = "versions" // bucket \0 key \0 ^versionID -> version record
	spaceBlobRefs = "blobrefs" // blob ID -> version key that owns it
	spaceFeed     = "feed"     // big-endian sequence -> Change JSON
)

// Version is one version of an object, or a delete marker.
type Version struct {
	Bucket    string `json:"-"`
	Key       string `json:"-"`
	VersionID string `json:"-"` // "null" for the null version
	IsLatest  bool   `json:"-"`
	// BucketVersioned is set when the bucket has had versioning enabled at
	// some point, where S3 shows the null version's ID as "null".
	BucketVersioned bool `json:"-"`
	Null            bool `json:"null,omitempty"`
	DeleteMarker    bool `json:"dm,omitempty"`

	Size         int64     `json:"size,omitempty"`
	ETag         string    `json:"etag,omitempty"` // hex MD5, unquoted
	LastModified time.Time `json:"mtime"`
	Owner        string    `json:"owner,omitempty"`
	StorageClass string    `json:"class,omitempty"`

	ContentType        string            `json:"ctype,omitempty"`
	ContentEncoding    string            `json:"cenc,omitempty"`
	ContentDisposition string            `json:"cdisp,omitempty"`
	ContentLanguage    string            `json:"clang,omitempty"`
	CacheControl       string            `json:"cache,omitempty"`
	Expires            string            `json:"expires,omitempty"`
	Metadata           map[string]string `json:"meta,omitempty"`
	Tags               map[string]string `json:"tags,omitempty"`

	ChecksumAlgorithm string `json:"ckalg,omitempty"`
	Checksum          string `json:"ck,omitempty"` // base64

	// BlobID names the blob holding the data; empty when the data is inline
	// in the record (small objects) or the object is empty.
	BlobID string `json:"blob,omitempty"`
	// Parts holds the data of an object made by a multipart upload: one
	// blob per part, in order. The ETag is then the MD5 of the parts' MD5s.
	Parts []PartRef `json:"parts,omitempty"`
	// ChecksumType is COMPOSITE or FULL_OBJECT for multipart objects.
	ChecksumType string `json:"cktype,omitempty"`
	// ReplicationStatus is S3's x-amz-replication-status: PENDING,
	// COMPLETED or FAILED on a source version a replication rule selected,
	// REPLICA on a version written by replication.
	ReplicationStatus string `json:"rstat,omitempty"`
	// Damaged, when set, says why the stored data was found damaged (see
	// damage.go); reads refuse the version until it is repaired.
	Damaged string `json:"damaged,omitempty"`
	inline  []byte
	id      versionID
}

// ChecksumKind is COMPOSITE for a multipart object whose checksum is
// composed from its parts' checksums, else FULL_OBJECT.
func (v *Version) ChecksumKind() string {
	if v.ChecksumType != "" {
		return v.ChecksumType
	}
	return "FULL_OBJECT"
}

// PartRef is one part of a multipart object.
type PartRef struct {
	Number   int    `json:"n"`
	Size     int64  `json:"size"`
	ETag     string `json:"etag"`
	BlobID   string `json:"blob,omitempty"`
	Checksum string `json:"ck,omitempty"`
}

// blobIDs lists every blob holding the version's data.
func (v *Version) blobIDs() []string {
	if len(v.Parts) > 0 {
		ids := make([]string, 0, len(v.Parts))
		for _, p := range v.Parts {
			if p.BlobID != "" {
				ids = append(ids, p.BlobID)
			}
		}
		return ids
	}
	if v.BlobID != "" {
		return []string{v.BlobID}
	}
	return nil
}

// encodeVersion frames a record as uvarint(len(json)) | json | inline data.
func encodeVersion(v *Version) ([]byte, error) {
	js, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode version: %w", err)
	}
	out := make([]byte, 0, binary.MaxVarintLen64+len(js)+len(v.inline))
	out = binary.AppendUvarint(out, uint64(len(js)))
	out = append(out, js...)
	return append(out, v.inline...), nil
}

func decodeVersion(bucket string, mkey, val []byte) (*Version, error) {
	key, id, ok := splitVersionKey(bucket, mkey)
	if !ok {
		return nil, fmt.Errorf("decode version: bad key %q", mkey)
	}
	n, w := binary.Uvarint(val)
	if w <= 0 || uint64(len(val)-w) < n {
		return nil, fmt.Errorf("decode version %q: bad frame", key)
	}
	v := &Version{}
	if err := json.Unmarshal(val[w:w+int(n)], v); err != nil {
		return nil, fmt.Errorf("decode version %q: %w", key, err)
	}
	if rest := val[w+int(n):]; len(rest) > 0 {
		v.inline = bytes.Clone(rest)
	}
	v.Bucket, v.Key, v.id = bucket, key, id
	v.VersionID = id.String()
	if v.Null {
		v.VersionID = nullVersion
	}
	return v, nil
}

// The version key orders a bucket's keys byte-wise and, within a key, versions
// newest first (the ID is inverted). Object keys never contain NUL (refused
// at the door), so the separator keeps "a" and all its versions before "a!".
func keyPrefix(bucket, key string) []byte {
	b := make([]byte, 0, len(bucket)+len(key)+2+16)
	b = append(b, bucket...)
	b = append(b, 0)
	b = append(b, key...)
	return append(b, 0)
}

func versionKey(bucket, key string, id versionID) []byte {
	b := keyPrefix(bucket, key)
	for _, c := range id {
		b = append(b, ^c)
	}
	return b
}

// afterKey is the smallest version key greater than every version of key.
func afterKey(bucket, key string) []byte {
	b := keyPrefix(bucket, key)
	return append(b, bytes.Repeat([]byte{0xff}, 17)...)
}

// bucketPrefix prefixes every version key of bucket.
func bucketPrefix(bucket string) []byte { return append([]byte(bucket), 0) }

func splitVersionKey(bucket string, mkey []byte) (string, versionID, bool) {
	var id versionID
	p := len(bucket) + 1
	if len(mkey) < p+1+16 || mkey[p-1] != 0 || mkey[len(mkey)-17] != 0 {
		return "", id, false
	}
	for i, c := range mkey[len(mkey)-16:] {
		id[i] = ^c
	}
	return string(mkey[p : len(mkey)-17]), id, true
}

// ChangeKind says what a change record did to an object.
type ChangeKind string

// Change kinds.
const (
	ChangePut           ChangeKind = "put"            // a new version with data
	ChangeDeleteMarker  ChangeKind = "delete-marker"  // a delete marker was added
	ChangeDeleteVersion ChangeKind = "delete-version" // a version was removed for good
	ChangeTags          ChangeKind = "tags"           // a version's tags were replaced or removed
	// ChangeReplicationConfig marks a new replication configuration of the
	// bucket (Key is empty): what failed under the old one is worth a retry.
	ChangeReplicationConfig ChangeKind = "replication-config"
)

// OriginReplication marks a change made by replication from another
// bucket, which replication never sends on again: that is what keeps
// two-way replication from looping.
const OriginReplication = "replication"

// Change is one record of the change feed.
type Change struct {
	Seq       uint64     `json:"seq"`
	Bucket    string     `json:"bucket"`
	Key       string     `json:"key"`
	VersionID string     `json:"versionId"`
	Kind      ChangeKind `json:"kind"`
	Size      int64      `json:"size"`
	Time      time.Time  `json:"time"`
	Origin    string     `json:"origin,omitempty"` // "" for a client's change, else OriginReplication
}

func seqKey(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
