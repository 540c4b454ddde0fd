package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Key layout shared by both engines. Each engine keeps three keyspaces
// (bbolt: one bucket each; pebble: a one-byte prefix each):
//
//	versions  bucket 0x00 objectKey 0x00 invertedVersionTime(8, big-endian)
//	feed      sequence(8, big-endian)
//	cursors   consumerName -> last consumed sequence(8, big-endian)
//
// Inverting the version time makes the newest version of an object sort
// first, so "latest version" is the first key at or after bucket\0key\0.
// S3 object keys are UTF-8 and Bulwark rejects keys containing NUL, so 0x00
// is a safe separator, and bucket\0key\x01 sorts after every version of key.
const (
	nsVersions = 'v'
	nsFeed     = 'f'
	nsCursors  = 'c'

	benchBucket  = "photos-prod"
	consumerName = "replicator"
)

// objectKey names object j: 100 top-level "directories" with 100
// sub-directories each, so a delimiter listing has real structure.
func objectKey(j uint32) string {
	return fmt.Sprintf("dir%03d/sub%03d/file%07d", j%100, (j/100)%100, j)
}

// objPrefix is the seek key for all versions of an object.
func objPrefix(bucket, key string) []byte {
	b := make([]byte, 0, len(bucket)+len(key)+2+8)
	b = append(b, bucket...)
	b = append(b, 0)
	b = append(b, key...)
	return append(b, 0)
}

func versionKey(bucket, key string, versionTime int64) []byte {
	b := objPrefix(bucket, key)
	return binary.BigEndian.AppendUint64(b, ^uint64(versionTime))
}

// splitVersionKey returns the object key part of a versions-keyspace key.
func splitVersionKey(bucketPrefixLen int, k []byte) []byte {
	return k[bucketPrefixLen : len(k)-9]
}

func feedKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// versionMeta is the per-version record an S3 store keeps in its metadata
// engine; encoded it is ~300 bytes.
type versionMeta struct {
	Flags        uint8 // 1 = delete marker, 2 = null version
	Size         int64
	ModTime      int64
	ETag         [16]byte
	ContentType  string
	StorageClass string
	Owner        string
	DataID       [16]byte
	Extents      []extent
	CRC32C       uint32
	UserMeta     [][2]string
}

type extent struct {
	Volume         uint32
	Offset, Length uint64
}

const flagDeleteMarker = 1

func appendStr(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (m *versionMeta) encode() []byte {
	b := make([]byte, 0, 320)
	b = append(b, 1, m.Flags) // format version, flags
	b = binary.AppendUvarint(b, uint64(m.Size))
	b = binary.AppendVarint(b, m.ModTime)
	b = append(b, m.ETag[:]...)
	b = appendStr(b, m.ContentType)
	b = appendStr(b, m.StorageClass)
	b = appendStr(b, m.Owner)
	b = append(b, m.DataID[:]...)
	b = binary.AppendUvarint(b, uint64(len(m.Extents)))
	for _, e := range m.Extents {
		b = binary.AppendUvarint(b, uint64(e.Volume))
		b = binary.AppendUvarint(b, e.Offset)
		b = binary.AppendUvarint(b, e.Length)
	}
	b = binary.BigEndian.AppendUint32(b, m.CRC32C)
	b = binary.AppendUvarint(b, uint64(len(m.UserMeta)))
	for _, kv := range m.UserMeta {
		b = appendStr(b, kv[0])
		b = appendStr(b, kv[1])
	}
	return b
}

var errCorrupt = errors.New("corrupt version record")

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n int) []byte {
	if len(d.b) < n {
		d.err = errCorrupt
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str() string { return string(d.bytes(int(d.uvarint()))) }

func decodeMeta(b []byte) (versionMeta, error) {
	var m versionMeta
	d := decoder{b: b}
	hdr := d.bytes(2)
	if d.err != nil || hdr[0] != 1 {
		return m, errCorrupt
	}
	m.Flags = hdr[1]
	m.Size = int64(d.uvarint())
	mt, n := binary.Varint(d.b)
	if n <= 0 {
		return m, errCorrupt
	}
	m.ModTime = mt
	d.b = d.b[n:]
	copy(m.ETag[:], d.bytes(16))
	m.ContentType = d.str()
	m.StorageClass = d.str()
	m.Owner = d.str()
	copy(m.DataID[:], d.bytes(16))
	ne := d.uvarint()
	for i := uint64(0); i < ne && d.err == nil; i++ {
		m.Extents = append(m.Extents, extent{uint32(d.uvarint()), d.uvarint(), d.uvarint()})
	}
	if c := d.bytes(4); c != nil {
		m.CRC32C = binary.BigEndian.Uint32(c)
	}
	nm := d.uvarint()
	for i := uint64(0); i < nm && d.err == nil; i++ {
		m.UserMeta = append(m.UserMeta, [2]string{d.str(), d.str()})
	}
	return m, d.err
}

var contentTypes = []string{"image/jpeg", "application/octet-stream", "video/mp4", "application/json", "text/plain; charset=utf-8"}

// makeMeta builds a realistic version record for object j.
func makeMeta(r *rand.Rand, j uint32, now int64) []byte {
	m := versionMeta{
		Size:         int64(r.IntN(8<<20) + 1),
		ModTime:      now,
		ContentType:  contentTypes[j%uint32(len(contentTypes))],
		StorageClass: "STANDARD",
		Owner:        fmt.Sprintf("%032x", uint64(j%7)*0x9e3779b97f4a7c15),
		CRC32C:       r.Uint32(),
		UserMeta: [][2]string{
			{"x-amz-meta-uploaded-by", "bulwark-sync/1.4 (linux; amd64)"},
			{"x-amz-meta-source-path", fmt.Sprintf("/srv/export/2024/%02d/%02d/IMG_%06d.jpg", j%12+1, j%28+1, j)},
			{"x-amz-meta-sha256", fmt.Sprintf("%016x%016x", r.Uint64(), r.Uint64())},
		},
	}
	for i := range m.ETag {
		m.ETag[i] = byte(r.Uint32())
	}
	for i := range m.DataID {
		m.DataID[i] = byte(r.Uint32())
	}
	m.Extents = []extent{{Volume: j % 16, Offset: r.Uint64() >> 20, Length: uint64(m.Size)}}
	if m.Size > 4<<20 {
		m.Extents = append(m.Extents, extent{Volume: (j + 1) % 16, Offset: r.Uint64() >> 20, Length: uint64(m.Size) / 2})
	}
	return m.encode()
}

// feedRecord is the change-feed entry written in the same commit as a version.
func feedRecord(bucket, key string, versionTime int64, meta []byte) []byte {
	b := make([]byte, 0, 96)
	b = append(b, 1) // op: put
	b = appendStr(b, bucket)
	b = appendStr(b, key)
	b = binary.BigEndian.AppendUint64(b, ^uint64(versionTime))
	if len(meta) > 40 {
		b = append(b, meta[len(meta)-40:]...) // size/etag digest stand-in
	}
	return b
}

// versionClock hands out strictly increasing version timestamps.
type versionClock struct{ last atomic.Int64 }

func (c *versionClock) next() int64 {
	for {
		now := time.Now().UnixNano()
		l := c.last.Load()
		if now <= l {
			now = l + 1
		}
		if c.last.CompareAndSwap(l, now) {
			return now
		}
	}
}
