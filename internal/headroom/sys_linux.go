package headroom

import (
	"errors"
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

func statfs(path string) (Usage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return Usage{}, fmt.Errorf("statfs %s: %w", path, err)
	}
	// Bavail, not Bfree: the blocks kept for root are not ours to plan
	// with, even when the server runs as root.
	return Usage{Size: int64(st.Blocks) * st.Bsize, Free: int64(st.Bavail) * st.Bsize}, nil
}

func preallocate(f *os.File, off, n int64) error {
	return fallocate(f, unix.FALLOC_FL_KEEP_SIZE, off, n)
}

// allocate gives f n allocated bytes, setting its size to n.
func allocate(f *os.File, n int64) error { return fallocate(f, 0, 0, n) }

func fallocate(f *os.File, mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(int(f.Fd()), mode, off, n)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
			continue
		case errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
			return fmt.Errorf("fallocate %s: %w (%w)", f.Name(), errors.ErrUnsupported, err)
		default:
			return fmt.Errorf("fallocate %s: %w", f.Name(), err)
		}
	}
}

func allocated(f *os.File) (int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", f.Name(), err)
	}
	return st.Blocks * 512, nil
}
