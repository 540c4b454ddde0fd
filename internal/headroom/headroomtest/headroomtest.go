//go:build linux

// Package headroomtest gives tests a real, small filesystem to fill: a
// tmpfs mounted for the test, and a file that takes its last free byte.
// Nothing is simulated: ENOSPC comes from the kernel.
package headroomtest

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Mount mounts a tmpfs of size bytes on a new temporary directory and
// unmounts it when the test ends. Where that is not possible (not root, no
// permission to mount) the test is skipped, except under CI=true, where it
// fails: CI runs as root and must run these tests.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		msg := fmt.Sprintf("cannot mount a %d-byte tmpfs for this disk-full test (needs root, or CAP_SYS_ADMIN): %v", size, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	t.Cleanup(func() { unmount(t, dir) })
	return dir
}

func unmount(t testing.TB, dir string) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := unix.Unmount(dir, 0)
		if err == nil {
			return
		}
		if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
			// Detach it rather than leave a mount behind.
			if derr := unix.Unmount(dir, unix.MNT_DETACH); derr != nil {
				t.Errorf("unmount %s: %v, then %v", dir, err, derr)
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Fill writes a file in dir until the filesystem has no byte left and
// returns its path. Removing the file gives the space back.
func Fill(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "fill-*")
	if err != nil {
		t.Fatalf("fill %s: %v", dir, err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("fill %s: %v", dir, err)
			}
			break
		}
	}
	return f.Name()
}

// Free returns the bytes free in the filesystem holding dir.
func Free(t testing.TB, dir string) int64 {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}
