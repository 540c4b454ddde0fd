package efs

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bulwark/bulwark/internal/backup/vault"
)

// Item types, as an entry's Metadata[mdType] names them.
const (
	kindFile    = "file"
	kindDir     = "dir"
	kindSymlink = "symlink"
	kindFIFO    = "fifo"
	kindChar    = "char"
	kindBlock   = "block"
	// kindSocket is never in a point: a socket is where a running process
	// listens, with no data, and a restore could not make it listen.
	kindSocket = "socket"
)

// Keys of an entry's Metadata.
const (
	mdType = "type"
	mdMode = "mode" // the twelve permission bits, in octal
	mdUID  = "uid"
	mdGID  = "gid"
	// mdTarget is a link's target; mdTarget64 its bytes in base64 when
	// they are not UTF-8 (JSON would change them).
	mdTarget   = "target"
	mdTarget64 = "target-base64"
	// mdPath64 is the relative path in base64 when it is not UTF-8; the
	// Key then has U+FFFD in place of the bytes that are not.
	mdPath64 = "path-base64"
	mdRdev   = "rdev"
)

// rootKey is the key of the backed-up directory itself.
const rootKey = "./"

// fileStat is what the package reads of an item's stat.
type fileStat struct {
	kind     string
	perm     uint32 // permission bits, setuid, setgid and sticky included
	size     int64
	mtime    int64 // Unix nanoseconds
	ctime    int64
	ino      uint64
	uid, gid uint32
	rdev     uint64
	blocks   int64 // 512-byte blocks allocated
}

// sameFile reports whether two stats of a file show the same data: what
// every write to it changes is the same.
func sameFile(a, b fileStat) bool {
	return a.kind == b.kind && a.size == b.size && a.mtime == b.mtime && a.ctime == b.ctime && a.ino == b.ino
}

// versionOf is a regular file's entry's VersionID: its inode and change
// time, which with its size and modification time say that the data did
// not change since an earlier point recorded the same (the previous
// point's Metadata is not at hand; its VersionID is).
func versionOf(st fileStat) string {
	return strconv.FormatUint(st.ino, 10) + "-" + strconv.FormatInt(st.ctime, 10)
}

// entryOf is the entry of the item at rel ("" for the root), with the
// stat st. A link's target is added by the caller.
func entryOf(rel string, st fileStat) vault.Entry {
	key := keyOf(rel, st.kind == kindDir)
	md := map[string]string{
		mdType: st.kind,
		mdMode: fmt.Sprintf("%04o", st.perm),
		mdUID:  strconv.FormatUint(uint64(st.uid), 10),
		mdGID:  strconv.FormatUint(uint64(st.gid), 10),
	}
	if !utf8.ValidString(rel) {
		md[mdPath64] = base64.StdEncoding.EncodeToString([]byte(rel))
	}
	e := vault.Entry{Key: key, LastModified: st.mtime, Metadata: md}
	switch st.kind {
	case kindFile:
		e.Size = st.size
		e.VersionID = versionOf(st)
	case kindChar, kindBlock:
		md[mdRdev] = strconv.FormatUint(st.rdev, 10)
	}
	return e
}

// keyOf is the key of the item at rel: rel itself, made valid UTF-8,
// with "/" after a directory's; "./" for the root.
func keyOf(rel string, dir bool) string {
	if rel == "" {
		return rootKey
	}
	k := strings.ToValidUTF8(rel, "\uFFFD")
	if dir {
		k += "/"
	}
	return k
}

// setTarget records a link's target in its entry.
func setTarget(e *vault.Entry, target string) {
	if utf8.ValidString(target) {
		e.Metadata[mdTarget] = target
	} else {
		e.Metadata[mdTarget64] = base64.StdEncoding.EncodeToString([]byte(target))
	}
}

// item is an entry as a restore reads it.
type item struct {
	rel    string // path relative to the root, "" for the root
	kind   string
	perm   uint32
	uid    int
	gid    int
	mtime  int64
	target string
	rdev   uint64
}

// itemOf reads an entry back. An entry whose path could lead out of the
// restore's target (an absolute path, a ".." element) is refused: a
// point is data from a vault, and a vault may come from elsewhere.
func itemOf(e vault.Entry) (item, error) {
	md := e.Metadata
	it := item{kind: md[mdType], mtime: e.LastModified, target: md[mdTarget]}
	switch {
	case e.Key == rootKey:
	case md[mdPath64] != "":
		b, err := base64.StdEncoding.DecodeString(md[mdPath64])
		if err != nil {
			return it, fmt.Errorf("entry %q: bad %s: %w", e.Key, mdPath64, err)
		}
		it.rel = string(b)
	default:
		it.rel = strings.TrimSuffix(e.Key, "/")
	}
	if e.Key != rootKey && !localPath(it.rel) {
		return it, fmt.Errorf("entry %q: not a path inside the directory", e.Key)
	}
	perm, err := strconv.ParseUint(md[mdMode], 8, 32)
	if err != nil || perm > 0o7777 {
		return it, fmt.Errorf("entry %q: bad mode %q", e.Key, md[mdMode])
	}
	it.perm = uint32(perm)
	it.uid, it.gid = -1, -1
	if v, err := strconv.Atoi(md[mdUID]); err == nil {
		it.uid = v
	}
	if v, err := strconv.Atoi(md[mdGID]); err == nil {
		it.gid = v
	}
	if t := md[mdTarget64]; t != "" {
		b, err := base64.StdEncoding.DecodeString(t)
		if err != nil {
			return it, fmt.Errorf("entry %q: bad %s: %w", e.Key, mdTarget64, err)
		}
		it.target = string(b)
	}
	if r := md[mdRdev]; r != "" {
		if it.rdev, err = strconv.ParseUint(r, 10, 64); err != nil {
			return it, fmt.Errorf("entry %q: bad %s %q", e.Key, mdRdev, r)
		}
	}
	switch it.kind {
	case kindFile, kindDir, kindSymlink, kindFIFO, kindChar, kindBlock:
	default:
		return it, fmt.Errorf("entry %q: unknown type %q", e.Key, it.kind)
	}
	if (e.Key == rootKey) != (it.rel == "") || e.Key == rootKey && it.kind != kindDir {
		return it, fmt.Errorf("entry %q: not the directory's root", e.Key)
	}
	return it, nil
}

// localPath reports whether rel is a non-empty, clean, relative path of
// slash-separated names, none of them "." or "..".
func localPath(rel string) bool {
	if rel == "" || strings.ContainsRune(rel, 0) {
		return false
	}
	for _, name := range strings.Split(rel, "/") {
		if name == "" || name == "." || name == ".." {
			return false
		}
	}
	return true
}
