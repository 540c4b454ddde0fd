//go:build !unix

package efs

import (
	"errors"
	"os"
	"time"
)

// Where there is no Unix stat, a file's change time is its modification
// time, it has no inode number and no owner, and special files are not
// restored.

func statOf(fi os.FileInfo) fileStat {
	s := fileStat{perm: uint32(fi.Mode().Perm()), size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	s.ctime = s.mtime
	switch m := fi.Mode(); {
	case m.IsRegular():
		s.kind = kindFile
	case m.IsDir():
		s.kind = kindDir
	case m&os.ModeSymlink != 0:
		s.kind = kindSymlink
	case m&os.ModeNamedPipe != 0:
		s.kind = kindFIFO
	default:
		s.kind = kindSocket
	}
	return s
}

func lstat(path string) (fileStat, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

func stat(path string) (fileStat, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

func fstat(f *os.File) (fileStat, error) {
	fi, err := f.Stat()
	if err != nil {
		return fileStat{}, err
	}
	return statOf(fi), nil
}

func openFile(path string) (*os.File, error) { return os.Open(path) }

func mknod(path string, kind string, perm uint32, rdev uint64) error {
	return &os.PathError{Op: "mknod", Path: path, Err: errors.ErrUnsupported}
}

func chmod(path string, perm uint32) error { return os.Chmod(path, os.FileMode(perm&0o777)) }

func fchmod(f *os.File, perm uint32) error { return f.Chmod(os.FileMode(perm & 0o777)) }

func lchtimes(path string, mtime int64) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSymlink != 0 {
		return nil
	}
	t := time.Unix(0, mtime)
	return os.Chtimes(path, t, t)
}

func canChown() bool { return false }
