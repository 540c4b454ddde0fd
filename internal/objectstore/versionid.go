package objectstore

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"hash/fnv"
	"sync"
	"time"

	"github.com/bulwark/bulwark/internal/meta"
)

// A version ID is 16 bytes: microseconds since the Unix epoch (8), a tag of
// the region that created it (2), a per-process counter (2) and randomness
// (4). Encoded with base32hex it keeps byte order, so version IDs sort by
// creation time as strings, are URL-safe, and are unique across regions
// without coordination. Replicas keep the source's ID, so every region
// orders a key's versions the same way.
type versionID [16]byte

// nullVersion is the ID S3 shows for versions written while versioning was
// off or suspended.
const nullVersion = "null"

var idEncoding = base32.HexEncoding.WithPadding(base32.NoPadding)

func (v versionID) String() string { return idEncoding.EncodeToString(v[:]) }

func (v versionID) time() time.Time {
	return time.UnixMicro(int64(binary.BigEndian.Uint64(v[:8])))
}

// errBadVersionID marks a string that is not a Bulwark version ID.
var errBadVersionID = errors.New("malformed version id")

func parseVersionID(s string) (versionID, error) {
	var v versionID
	if len(s) != 26 {
		return v, errBadVersionID
	}
	n, err := idEncoding.Decode(v[:], []byte(s))
	if err != nil || n != 16 {
		return v, errBadVersionID
	}
	return v, nil
}

// idGen makes version IDs that increase strictly within a process even when
// the wall clock steps back.
type idGen struct {
	mu     sync.Mutex
	region uint16
	last   int64
	count  uint16
}

func newIDGen(region string) *idGen {
	h := fnv.New32a()
	h.Write([]byte(region))
	return &idGen{region: uint16(h.Sum32())}
}

func (g *idGen) next(now time.Time) versionID {
	g.mu.Lock()
	us := now.UnixMicro()
	if us <= g.last {
		us = g.last
		g.count++
		if g.count == 0 { // counter wrapped inside one microsecond
			us++
		}
	} else {
		g.count = 0
	}
	g.last = us
	count := g.count
	g.mu.Unlock()

	var v versionID
	binary.BigEndian.PutUint64(v[:8], uint64(us))
	binary.BigEndian.PutUint16(v[8:10], g.region)
	binary.BigEndian.PutUint16(v[10:12], count)
	_, _ = rand.Read(v[12:])
	return v
}

// nextFor returns a new version ID for a key, above the newest version the
// key has in tx. Within a process the IDs increase anyway; the region's
// other gateways make IDs with their own clocks, and one that runs a few
// milliseconds behind must still place a later write above an earlier one.
// Reading the newest version also makes two concurrent writes of the key
// conflict, so they commit in the order of their IDs.
func (g *idGen) nextFor(tx meta.Tx, bucket, key string, now time.Time) versionID {
	p := keyPrefix(bucket, key)
	k, _ := tx.Iter(spaceVersions).Seek(p)
	if k != nil && hasPrefix(k, p) && len(k) == len(p)+16 {
		var top versionID
		for i, c := range k[len(p):] {
			top[i] = ^c
		}
		if t := top.time(); !now.After(t) {
			now = t.Add(time.Microsecond)
		}
	}
	return g.next(now)
}

// newBlobID names a blob. It is random rather than derived from the version
// so that a retried write never collides with a blob a crash left behind.
func newBlobID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return idEncoding.EncodeToString(b[:])
}
