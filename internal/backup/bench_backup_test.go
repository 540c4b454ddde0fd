package backup_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
)

// benchAcct owns the benchmark's buckets.
const benchAcct = "111122223333"

// BenchmarkBackupIncremental measures, in one run on one disk: the disk's
// raw sequential write and read rates, a full backup of a bucket of
// 10,000 objects of random data (1 GiB; BULWARK_BENCH_BACKUP_MB sets the
// size, the objects staying ~100 KiB), a second backup of the unchanged
// bucket, and a restore of that second point into a new bucket. It fails
// when the second backup adds 1 % of the bucket or more to the vault, or
// reads object data at all: an unchanged object must cost index bytes only.
//
// Every read here may be served by the page cache: the raw file, the
// bucket's blobs and the vault's packs were all written moments before.
// The benchmark drops no cache, so its read rate is what this machine gave
// with the memory it had, not the device's.
//
//	go test ./internal/backup/ -run '^$' -bench BackupIncremental -benchtime=1x -timeout 30m
func BenchmarkBackupIncremental(b *testing.B) {
	if testing.Short() {
		b.Skip("writes and backs up 1 GiB; skipped with -short")
	}
	mb := 1024
	if s := os.Getenv("BULWARK_BENCH_BACKUP_MB"); s != "" {
		var err error
		if mb, err = strconv.Atoi(s); err != nil || mb < 1 {
			b.Fatalf("BULWARK_BENCH_BACKUP_MB=%q: want a positive number of MiB", s)
		}
	}
	total := int64(mb) << 20
	n := max(2, 10000*mb/1024)
	var sum benchFigures
	for range b.N {
		f := runBackupBench(b, total, n)
		sum.add(f)
	}
	sum.report(b, float64(b.N))
}

// benchFigures are one run's measurements, in MB (10^6 bytes) and seconds.
type benchFigures struct {
	rawWrite, rawRead       float64 // MB/s
	full, restore           float64 // MB/s
	fullSeconds, fullNewPct float64 // full backup: time, % of the bucket it added
	incrSeconds, incrNewPct float64 // incremental: the same
}

func (s *benchFigures) add(f benchFigures) {
	s.rawWrite += f.rawWrite
	s.rawRead += f.rawRead
	s.full += f.full
	s.restore += f.restore
	s.incrSeconds += f.incrSeconds
	s.incrNewPct += f.incrNewPct
	s.fullNewPct += f.fullNewPct
	s.fullSeconds += f.fullSeconds
}

func (s *benchFigures) report(b *testing.B, runs float64) {
	b.ReportMetric(s.rawWrite/runs, "raw-write-MB/s")
	b.ReportMetric(s.rawRead/runs, "raw-read-MB/s")
	b.ReportMetric(s.full/runs, "full-MB/s")
	b.ReportMetric(s.fullSeconds/runs, "full-s")
	b.ReportMetric(s.fullNewPct/runs, "full-new-%")
	b.ReportMetric(s.incrSeconds/runs, "incr-s")
	b.ReportMetric(s.incrNewPct/runs, "incr-new-%")
	b.ReportMetric(s.restore/runs, "restore-MB/s")
	b.ReportMetric(s.full/s.rawWrite, "full/raw-write")
	b.ReportMetric(s.full/s.rawRead, "full/raw-read")
	b.ReportMetric(s.restore/s.rawWrite, "restore/raw-write")
	b.ReportMetric(s.restore/s.rawRead, "restore/raw-read")
}

// runBackupBench does one run in a fresh directory.
func runBackupBench(b *testing.B, total int64, n int) benchFigures {
	ctx := context.Background()
	dir := b.TempDir()
	var f benchFigures
	f.rawWrite, f.rawRead = rawDiskRates(b, filepath.Join(dir, "raw"), total)

	r := openTestRegion(b, regionOptions{dir: dir})
	st, svc := r.st, r.svc
	if err := st.CreateBucket(ctx, "bench", benchAcct, "us-east-1"); err != nil {
		b.Fatal(err)
	}
	// AWS Backup backs up versioned buckets only; the incremental backup
	// matches objects by version ID and ETag.
	if err := st.SetVersioning(ctx, "bench", objectstore.VersioningEnabled); err != nil {
		b.Fatal(err)
	}
	fillBucket(b, st, "bench", total, n)
	mbytes := float64(total) / 1e6

	full := benchBackup(b, svc)
	f.fullSeconds = full.seconds
	f.full = mbytes / full.seconds
	f.fullNewPct = float64(full.point.BytesNew) / float64(total) * 100
	if full.job.BackupSizeInBytes != total || full.job.Objects != int64(n) {
		b.Fatalf("full backup: %d objects, %d bytes; want %d, %d", full.job.Objects, full.job.BackupSizeInBytes, n, total)
	}

	incr := benchBackup(b, svc)
	f.incrSeconds = incr.seconds
	f.incrNewPct = float64(incr.point.BytesNew) / float64(total) * 100
	if f.incrNewPct >= 1 || incr.job.BytesTransferred != 0 {
		b.Fatalf("backup of the unchanged bucket added %d bytes (%.3f %% of %d) and read %d bytes of object data; want < 1 %% and none read",
			incr.point.BytesNew, f.incrNewPct, total, incr.job.BytesTransferred)
	}
	if incr.job.BackupSizeInBytes != total || incr.job.Objects != int64(n) {
		b.Fatalf("incremental backup: %d objects, %d bytes; want %d, %d", incr.job.Objects, incr.job.BackupSizeInBytes, n, total)
	}

	rj, err := svc.StartRestoreJob(ctx, benchAcct, backup.StartRestoreJobInput{
		RecoveryPointARN: incr.job.RecoveryPointARN, IAMRoleARN: "arn:aws:iam::" + benchAcct + ":role/backup",
		Metadata: map[string]string{"DestinationBucketName": "bench-restored", "NewBucket": "true"},
	})
	if err != nil {
		b.Fatal(err)
	}
	for {
		if rj, err = svc.DescribeRestoreJob(ctx, benchAcct, rj.JobID); err != nil {
			b.Fatal(err)
		}
		if rj.Status == backup.RestoreCompleted || rj.Status == backup.RestoreFailed {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if rj.Status != backup.RestoreCompleted || rj.ObjectsRestored != int64(n) || rj.BytesRestored != total {
		b.Fatalf("restore: %s %q, %d objects, %d bytes; want %d, %d", rj.Status, rj.StatusMessage, rj.ObjectsRestored, rj.BytesRestored, n, total)
	}
	f.restore = mbytes / rj.CompletionDate.Sub(rj.CreationDate).Seconds()
	b.Logf("%d objects, %d bytes; full backup %.1f s, incremental %.2f s adding %d bytes, restore %.1f s",
		n, total, full.seconds, incr.seconds, incr.point.BytesNew, rj.CompletionDate.Sub(rj.CreationDate).Seconds())
	return f
}

// rawDiskRates writes size bytes to path in 1 MiB blocks and fsyncs, then
// reads the file back, and returns both rates in MB/s. The file is removed.
func rawDiskRates(b *testing.B, path string, size int64) (write, read float64) {
	buf := make([]byte, 1<<20)
	src := rand.NewChaCha8([32]byte{1})
	fh, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(path)
	start := time.Now()
	for left := size; left > 0; left -= int64(len(buf)) {
		p := buf[:min(left, int64(len(buf)))]
		_, _ = src.Read(p) // fresh data per block, as the backup writes
		if _, err := fh.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	if err := fh.Sync(); err != nil {
		b.Fatal(err)
	}
	write = float64(size) / 1e6 / time.Since(start).Seconds()
	if err := fh.Close(); err != nil {
		b.Fatal(err)
	}
	fh, err = os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer fh.Close()
	start = time.Now()
	got, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{fh}, buf)
	if err != nil || got != size {
		b.Fatalf("read back %d of %d bytes: %v", got, size, err)
	}
	read = float64(size) / 1e6 / time.Since(start).Seconds()
	return write, read
}

// fillBucket puts n objects of random, incompressible data totalling
// exactly total bytes, their sizes spread evenly from half to one and a
// half times the mean. Each object's data comes from its own ChaCha8
// stream, so the bucket is the same whatever order the writers take.
func fillBucket(b *testing.B, st *objectstore.Store, bucket string, total int64, n int) {
	ctx := context.Background()
	mean := total / int64(n)
	sizes := make([]int64, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i+1 < n; i += 2 {
		d := rng.Int64N(mean+1) - mean/2
		sizes[i], sizes[i+1] = mean+d, mean-d
	}
	if n%2 == 1 {
		sizes[n-1] = mean
	}
	sizes[n-1] += total - mean*int64(n)
	next := make(chan int)
	errs := make(chan error, 4)
	var wg sync.WaitGroup
	for range 4 { // overlap the writers' fsyncs
		wg.Go(func() {
			buf := make([]byte, 2*mean+total%int64(n)+1)
			for i := range next {
				var seed [32]byte
				seed[0], seed[1], seed[2] = byte(i), byte(i>>8), byte(i>>16)
				data := buf[:sizes[i]]
				_, _ = rand.NewChaCha8(seed).Read(data)
				_, err := st.PutObject(ctx, &objectstore.PutInput{Bucket: bucket, Key: fmt.Sprintf("data/%05d.bin", i), Owner: benchAcct,
					Body: bytes.NewReader(data), Size: int64(len(data))})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	var err error
fill:
	for i := range n {
		select {
		case next <- i:
		case err = <-errs:
			break fill
		}
	}
	close(next)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	if err != nil {
		b.Fatalf("fill bucket: %v", err)
	}
}

// benchRun is a finished backup job, its point and how long it took.
type benchRun struct {
	job     *backup.BackupJob
	point   *backup.RecoveryPoint
	seconds float64
}

// benchBackup backs the bench bucket up into the Default vault and waits
// for the job to complete. Its time is the job's own, from creation to
// completion, so the polling does not blur a short job.
func benchBackup(b *testing.B, svc *backup.Service) benchRun {
	ctx := context.Background()
	j, err := svc.StartBackupJob(ctx, benchAcct, backup.StartBackupJobInput{VaultName: "Default",
		ResourceARN: "arn:aws:s3:::bench", IAMRoleARN: "arn:aws:iam::" + benchAcct + ":role/backup"})
	if err != nil {
		b.Fatal(err)
	}
	for {
		if j, err = svc.DescribeBackupJob(ctx, benchAcct, j.JobID); err != nil {
			b.Fatal(err)
		}
		if j.State != backup.JobCreated && j.State != backup.JobRunning {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if j.State != backup.JobCompleted {
		b.Fatalf("backup job: %s %q", j.State, j.StatusMessage)
	}
	p, err := svc.DescribeRecoveryPoint(ctx, benchAcct, "Default", j.RecoveryPointARN)
	if err != nil {
		b.Fatal(err)
	}
	return benchRun{job: j, point: p, seconds: j.CompletionDate.Sub(j.CreationDate).Seconds()}
}
