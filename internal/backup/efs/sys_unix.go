//go:build unix

package efs

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// statOf converts a unix stat.
func statOf(st *unix.Stat_t) fileStat {
	s := fileStat{
		perm: uint32(st.Mode) & 0o7777, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), ino: uint64(st.Ino),
		uid: st.Uid, gid: st.Gid, rdev: uint64(st.Rdev), blocks: int64(st.Blocks),
	}
	switch uint32(st.Mode) & unix.S_IFMT {
	case unix.S_IFREG:
		s.kind = kindFile
	case unix.S_IFDIR:
		s.kind = kindDir
	case unix.S_IFLNK:
		s.kind = kindSymlink
	case unix.S_IFIFO:
		s.kind = kindFIFO
	case unix.S_IFCHR:
		s.kind = kindChar
	case unix.S_IFBLK:
		s.kind = kindBlock
	default:
		s.kind = kindSocket
	}
	return s
}

// lstat stats path, not following a final symbolic link.
func lstat(path string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileStat{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	return statOf(&st), nil
}

// stat stats path, following symbolic links.
func stat(path string) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return fileStat{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return statOf(&st), nil
}

// fstat stats an open file.
func fstat(f *os.File) (fileStat, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return fileStat{}, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return statOf(&st), nil
}

// openFile opens a file to back it up: read only, not following a final
// symbolic link (one swapped in since the walk saw a file is a change),
// and without blocking on a FIFO swapped in likewise.
func openFile(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil && errors.Is(err, unix.ELOOP) {
		return nil, errChanged
	}
	return f, err
}

// mknod makes a FIFO or device node.
func mknod(path string, kind string, perm uint32, rdev uint64) error {
	mode := perm
	switch kind {
	case kindFIFO:
		mode |= unix.S_IFIFO
	case kindChar:
		mode |= unix.S_IFCHR
	case kindBlock:
		mode |= unix.S_IFBLK
	}
	if err := unix.Mknod(path, mode, int(rdev)); err != nil {
		return &os.PathError{Op: "mknod", Path: path, Err: err}
	}
	return nil
}

// chmod sets all twelve permission bits (os.Chmod drops none either, but
// spells setuid and the rest its own way).
func chmod(path string, perm uint32) error {
	if err := unix.Chmod(path, perm&0o7777); err != nil {
		return &os.PathError{Op: "chmod", Path: path, Err: err}
	}
	return nil
}

// fchmod is chmod of an open file.
func fchmod(f *os.File, perm uint32) error {
	if err := unix.Fchmod(int(f.Fd()), perm&0o7777); err != nil {
		return &os.PathError{Op: "fchmod", Path: f.Name(), Err: err}
	}
	return nil
}

// lchtimes sets the access and modification times of path, itself if it
// is a symbolic link, to mtime (Unix nanoseconds).
func lchtimes(path string, mtime int64) error {
	ts := unix.NsecToTimespec(mtime)
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "utimensat", Path: path, Err: err}
	}
	return nil
}

// canChown reports whether restores give items their recorded owner: only
// the superuser may.
func canChown() bool { return os.Geteuid() == 0 }
