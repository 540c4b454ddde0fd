package main

import (
	"bytes"
	"time"
)

// putReq is one object PUT: read the current latest version (the
// read-check part of read-check-write), then insert the new version record
// and append a change-feed record in the same durable commit.
type putReq struct {
	bucket, key string
	meta        []byte // encoded versionMeta
}

// engine is what the Bulwark metadata layer needs from an embedded KV store.
type engine interface {
	// put commits one version + one feed record durably (fsync) before
	// returning.
	put(r *putReq) error
	// appendFeed durably appends one change-feed record.
	appendFeed(rec []byte) error
	// consume reads up to max feed records after the consumer's cursor,
	// deletes them and advances the cursor, all in one durable commit.
	consume(max int) (n int, err error)
	// cursorSeek reports how long a fresh reader takes to position at the
	// consumer's cursor, and at the first live feed record scanning from the
	// start of the feed keyspace.
	cursorSeek() (atCursor, fromStart time.Duration, err error)
	// reader opens a consistent read view over one keyspace.
	reader(ns byte) (cursor, error)
	close() error
}

// cursor is an ordered iterator over one keyspace; returned slices are valid
// until the next call.
type cursor interface {
	seek(k []byte) (key, val []byte)
	next() (key, val []byte)
	close()
}

type listEntry struct {
	key    string
	size   int64
	etag   [16]byte
	prefix bool
}

type listResult struct {
	entries   []listEntry
	truncated bool
	resume    []byte // opaque continuation: the raw key to seek to
	seeks     int
	steps     int
}

// prefixSuccessor returns the smallest key greater than every key that has
// prefix p (p is non-empty and does not end in 0xff here).
func prefixSuccessor(p []byte) []byte {
	s := append([]byte(nil), p...)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return nil
}

// listObjects implements ListObjectsV2 over the versions keyspace: only the
// latest version of each key is returned, delete markers hide the key, and
// with a delimiter each common prefix is emitted once and then skipped by
// seeking past it (or, with seekSkip=false, by stepping over every key under
// it, for comparison).
func listObjects(c cursor, bucket, prefix string, delim byte, resume []byte, maxKeys int, seekSkip bool) listResult {
	var res listResult
	base := append([]byte(bucket), 0)
	full := append(append([]byte(nil), base...), prefix...)
	start := resume
	if start == nil {
		start = full
	}
	k, v := c.seek(start)
	res.seeks++
	for k != nil && bytes.HasPrefix(k, full) {
		obj := splitVersionKey(len(base), k)
		if delim != 0 {
			if i := bytes.IndexByte(obj[len(prefix):], delim); i >= 0 {
				if len(res.entries) == maxKeys {
					res.truncated = true
					break
				}
				cp := obj[:len(prefix)+i+1]
				res.entries = append(res.entries, listEntry{key: string(cp), prefix: true})
				if seekSkip {
					k, v = c.seek(prefixSuccessor(append(append([]byte(nil), base...), cp...)))
					res.seeks++
				} else {
					cps := string(cp)
					for k != nil && bytes.HasPrefix(k[len(base):], []byte(cps)) {
						k, v = c.next()
						res.steps++
					}
				}
				continue
			}
		}
		if len(res.entries) == maxKeys {
			res.truncated = true
			break
		}
		m, err := decodeMeta(v)
		if err != nil {
			panic(err)
		}
		name := string(obj)
		if m.Flags&flagDeleteMarker == 0 {
			res.entries = append(res.entries, listEntry{key: name, size: m.Size, etag: m.ETag})
		}
		// Skip the older versions of this key (usually zero or one here).
		for k, v = c.next(); k != nil; k, v = c.next() {
			res.steps++
			if len(k) != len(base)+len(name)+9 || string(splitVersionKey(len(base), k)) != name {
				break
			}
		}
	}
	if res.truncated {
		res.resume = append([]byte(nil), k...)
	}
	return res
}
