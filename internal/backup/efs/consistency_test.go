//go:build linux

package efs_test

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/bulwark/bulwark/internal/backup"
)

// versionSize is the size of each version of the rewritten file.
const versionSize = 2 << 20

// version returns version n of the rewritten file: n, then the SHA-256 of
// the rest, then data drawn from n.
func version(n uint64) []byte {
	b := make([]byte, versionSize)
	binary.BigEndian.PutUint64(b, n)
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], n)
	_, _ = rand.NewChaCha8(seed).Read(b[40:])
	sum := sha256.Sum256(b[40:])
	copy(b[8:40], sum[:])
	return b
}

// checkVersion returns the version b is, or an error if it is not one
// written whole.
func checkVersion(b []byte) (uint64, bool) {
	if len(b) != versionSize {
		return 0, false
	}
	sum := sha256.Sum256(b[40:])
	return binary.BigEndian.Uint64(b), string(sum[:]) == string(b[8:40])
}

// TestDirectoryBackupChangingFile backs up a directory while goroutines
// rewrite two of its files in place, version after version, each in
// pieces: live.bin with pauses of random length between versions, hot.bin
// without. Whatever the timing, a point either holds a version of a file
// that was written whole, or leaves the file out and names it in its
// PARTIAL status; never a mix of two versions. hot.bin, never quiet, is
// left out.
func TestDirectoryBackupChangingFile(t *testing.T) {
	e := newEnv(t)
	src := t.TempDir()
	files := []string{"live.bin", "hot.bin"}
	pauses := []int{150, 0} // the longest pause between versions, in ms
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(src, f), version(0), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "stable.txt"), []byte("stable\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := e.register("live", src, nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	last := make([]uint64, len(files))
	for i, name := range files {
		wg.Go(func() { last[i] = rewrite(t, filepath.Join(src, name), pauses[i], stop) })
	}
	kept, left := make([]int, len(files)), make([]int, len(files))
	runs := 6
	if testing.Short() {
		runs = 3
	}
	for k := range runs {
		_, rp := e.completed(reg.ARN, "Default", nil)
		target := filepath.Join(t.TempDir(), "r")
		restored(t, e.c, rp.ARN, map[string]string{"TargetDirectory": target})
		for i, name := range files {
			b, err := os.ReadFile(filepath.Join(target, name))
			switch {
			case err == nil:
				if n, ok := checkVersion(b); !ok {
					t.Fatalf("backup %d holds a %s that is no version written (it starts as version %d)", k, name, n)
				}
				kept[i]++
			case os.IsNotExist(err):
				if rp.Status != backup.PointPartial || !strings.Contains(rp.StatusMessage, "/"+name) {
					t.Fatalf("backup %d lacks %s: %s %q", k, name, rp.Status, rp.StatusMessage)
				}
				left[i]++
			default:
				t.Fatal(err)
			}
		}
		if _, err := os.Stat(filepath.Join(target, "stable.txt")); err != nil {
			t.Fatalf("backup %d: %v", k, err)
		}
	}
	close(stop)
	wg.Wait()
	for i, name := range files {
		t.Logf("%s: %d points held a version whole, %d left it out", name, kept[i], left[i])
	}
	if left[1] == 0 {
		t.Fatalf("hot.bin, rewritten without a pause, was never left out")
	}

	// Once the writes stop, the point holds the last versions.
	j, rp := e.completed(reg.ARN, "Default", nil)
	if rp.Status != backup.PointCompleted || aws.ToString(j.StatusMessage) != "" {
		t.Fatalf("backup of the quiet tree: %s %q", rp.Status, rp.StatusMessage)
	}
	target := filepath.Join(t.TempDir(), "r")
	restored(t, e.c, rp.ARN, map[string]string{"TargetDirectory": target, "itemsToRestore": `["/live.bin","/hot.bin"]`})
	for i, name := range files {
		b, err := os.ReadFile(filepath.Join(target, name))
		if err != nil {
			t.Fatal(err)
		}
		if n, ok := checkVersion(b); !ok || n != last[i] {
			t.Fatalf("%s restored as version %d (whole: %v), want %d", name, n, ok, last[i])
		}
	}
}

// rewrite writes versions 1, 2, ... of the file in place until stop is
// closed, pausing up to pauseMs between versions, and returns the last
// version written whole.
func rewrite(t *testing.T, path string, pauseMs int, stop <-chan struct{}) uint64 {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Error(err)
		return 0
	}
	defer f.Close()
	rng := rand.New(rand.NewPCG(uint64(pauseMs), 2))
	for n := uint64(1); ; n++ {
		b := version(n)
		// In pieces, back to front, a millisecond apart: a read between
		// two sees parts of two versions.
		for off := len(b) - 256<<10; off >= 0; off -= 256 << 10 {
			if _, err := f.WriteAt(b[off:off+256<<10], int64(off)); err != nil {
				t.Error(err)
				return n - 1
			}
			time.Sleep(time.Millisecond)
		}
		pause := time.Duration(0)
		if pauseMs > 0 {
			pause = time.Duration(rng.IntN(pauseMs)) * time.Millisecond
		}
		select {
		case <-stop:
			return n
		case <-time.After(pause):
		}
	}
}
