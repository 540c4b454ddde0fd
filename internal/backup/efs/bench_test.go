//go:build linux

package efs_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
)

// BenchmarkDirectoryBackup measures, in one run on one disk: the disk's
// raw sequential write rate (1 MiB writes, then fsync), a full backup of a
// tree of 1 GiB of random data in 1,024 files of 1 MiB in 32 directories
// (BULWARK_BENCH_DIR_MB sets the size), a second backup of the unchanged
// tree, and a restore of it into a new directory. It fails when the second
// backup reads file data or adds 1 % of the tree or more to the vault.
//
// The tree's files were written moments before, so the backup reads them
// from the page cache; the restore writes and fsyncs every file, as the
// raw rate does.
//
//	go test ./internal/backup/efs/ -run '^$' -bench DirectoryBackup -benchtime=1x -timeout 30m
func BenchmarkDirectoryBackup(b *testing.B) {
	if testing.Short() {
		b.Skip("writes and backs up 1 GiB; skipped with -short")
	}
	mb := 1024
	if s := os.Getenv("BULWARK_BENCH_DIR_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb < 1 {
			b.Fatalf("BULWARK_BENCH_DIR_MB=%q: want a positive number of MiB", s)
		}
	}
	var raw, full, fullSec, incrSec, incrPct, rest float64
	for range b.N {
		base := b.TempDir()
		total := int64(mb) << 20
		raw += rawWriteRate(b, filepath.Join(base, "raw"), total)
		src := filepath.Join(base, "tree")
		for i := range mb {
			dir := filepath.Join(src, fmt.Sprintf("d%02d", i%32))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
			randomFile(b, filepath.Join(dir, fmt.Sprintf("f%04d.bin", i)), 1<<20, uint64(i), 0o644)
		}
		e := newEnv(b)
		reg := e.register("bench", src, nil)
		j, rp := e.completed(reg.ARN, "Default", nil)
		s := rp.CompletionDate.Sub(rp.CreationDate).Seconds()
		fullSec += s
		full += float64(total) / 1e6 / s
		j, rp2 := e.completed(reg.ARN, "Default", nil)
		pct := 100 * float64(rp2.BytesNew) / float64(total)
		if aws.ToInt64(j.BytesTransferred) != 0 || pct >= 1 {
			b.Fatalf("backup of the unchanged tree read %d bytes and added %d (%.3f %%)", aws.ToInt64(j.BytesTransferred), rp2.BytesNew, pct)
		}
		incrSec += rp2.CompletionDate.Sub(rp2.CreationDate).Seconds()
		incrPct += pct
		rj := restored(b, e.c, rp2.ARN, map[string]string{"TargetDirectory": filepath.Join(base, "restored")})
		rest += float64(total) / 1e6 / rj.CompletionDate.Sub(*rj.CreationDate).Seconds()
		b.Logf("%d MiB: raw write %.0f MB/s; full backup %.1f s; unchanged %.2f s adding %d bytes; restore %.1f s",
			mb, raw, s, rp2.CompletionDate.Sub(rp2.CreationDate).Seconds(), rp2.BytesNew, rj.CompletionDate.Sub(*rj.CreationDate).Seconds())
	}
	n := float64(b.N)
	b.ReportMetric(raw/n, "raw-write-MB/s")
	b.ReportMetric(full/n, "full-MB/s")
	b.ReportMetric(fullSec/n, "full-s")
	b.ReportMetric(full/raw, "full/raw-write")
	b.ReportMetric(incrSec/n, "incr-s")
	b.ReportMetric(incrPct/n, "incr-new-%")
	b.ReportMetric(rest/n, "restore-MB/s")
	b.ReportMetric(rest/raw, "restore/raw-write")
}

// rawWriteRate writes size bytes of random data to path in 1 MiB blocks
// and fsyncs, and returns the rate in MB/s. The file is removed.
func rawWriteRate(b *testing.B, path string, size int64) float64 {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	start := time.Now()
	if _, err := io.CopyBuffer(f, io.LimitReader(rand.NewChaCha8([32]byte{1}), size), make([]byte, 1<<20)); err != nil {
		b.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	rate := float64(size) / 1e6 / time.Since(start).Seconds()
	if err := f.Close(); err != nil {
		b.Fatal(err)
	}
	return rate
}
