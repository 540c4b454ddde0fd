//go:build !linux

package headroomtest

import (
	"os"
	"testing"
)

// Mount skips the test: tmpfs mounts are Linux's (under CI=true, it fails).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal("disk-full tests need Linux")
	}
	t.Skip("disk-full tests mount a tmpfs, which needs Linux")
	return ""
}

// Fill is not reached: Mount skips first.
func Fill(t testing.TB, dir string) string { t.Helper(); t.Skip("needs Linux"); return "" }

// Free is not reached: Mount skips first.
func Free(t testing.TB, dir string) int64 { t.Helper(); t.Skip("needs Linux"); return 0 }
