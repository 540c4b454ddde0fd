//go:build !linux

package headroom

import (
	"errors"
	"os"
)

// Free space and preallocation are read and made with Linux's system
// calls; elsewhere the guard admits everything and keeps no reserve.

func statfs(string) (Usage, error) { return Usage{}, errors.ErrUnsupported }

func preallocate(*os.File, int64, int64) error { return errors.ErrUnsupported }

func allocate(*os.File, int64) error { return errors.ErrUnsupported }

func allocated(*os.File) (int64, error) { return 0, errors.ErrUnsupported }
