package backup_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// scrapeMetrics reads a region's /metrics into series → value, a series written
// as the exposition format writes it: name{label="value",...} with the
// labels in name order.
func scrapeMetrics(t *testing.T, r *servertest.Region) map[string]float64 {
	t.Helper()
	resp := r.Metrics(t)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func wantSeries(t *testing.T, m map[string]float64, series string, want float64) {
	t.Helper()
	got, ok := m[series]
	if !ok {
		t.Fatalf("no series %s", series)
	}
	if got != want {
		t.Fatalf("%s = %v, want %v", series, got, want)
	}
}

// fillMetered creates a versioned bucket of the test account holding n
// objects of size random bytes each, and returns their total size.
func fillMetered(t *testing.T, st *objectstore.Store, bucket string, n, size int) int64 {
	t.Helper()
	ctx := context.Background()
	if err := st.CreateBucket(ctx, bucket, servertest.AccountID, st.Region()); err != nil {
		t.Fatal(err)
	}
	if err := st.SetVersioning(ctx, bucket, objectstore.VersioningEnabled); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		data := make([]byte, size)
		rand.Read(data)
		if _, err := st.PutObject(ctx, &objectstore.PutInput{Bucket: bucket, Key: fmt.Sprintf("obj/%05d", i), Owner: servertest.AccountID,
			Body: bytes.NewReader(data), Size: int64(size)}); err != nil {
			t.Fatal(err)
		}
	}
	return int64(n * size)
}

const meteredRole = "arn:aws:iam::" + servertest.AccountID + ":role/service-role/AWSBackupDefaultServiceRole"

// meteredBackup starts a backup of bucket into vault and waits for its end,
// calling during (when not nil) with each state of the job seen while it
// runs.
func meteredBackup(t *testing.T, svc *backup.Service, bucket, vault string, during func(*backup.BackupJob)) *backup.BackupJob {
	t.Helper()
	ctx := context.Background()
	j, err := svc.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{VaultName: vault, ResourceARN: "arn:aws:s3:::" + bucket, IAMRoleARN: meteredRole})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		j, err = svc.DescribeBackupJob(ctx, servertest.AccountID, j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		switch j.State {
		case backup.JobCompleted:
			return j
		case backup.JobFailed, backup.JobAborted:
			t.Fatalf("backup job %s: %s", j.State, j.StatusMessage)
		}
		if during != nil {
			during(j)
		}
	}
	t.Fatalf("backup job %s did not end", j.JobID)
	return nil
}

func meteredRestore(t *testing.T, svc *backup.Service, pointARN, bucket string) *backup.RestoreJob {
	t.Helper()
	ctx := context.Background()
	rj, err := svc.StartRestoreJob(ctx, servertest.AccountID, backup.StartRestoreJobInput{RecoveryPointARN: pointARN, IAMRoleARN: meteredRole,
		Metadata: map[string]string{"DestinationBucketName": bucket, "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if rj, err = svc.DescribeRestoreJob(ctx, servertest.AccountID, rj.JobID); err != nil {
			t.Fatal(err)
		}
		switch rj.Status {
		case backup.RestoreCompleted:
			return rj
		case backup.RestoreFailed:
			t.Fatalf("restore job failed: %s", rj.StatusMessage)
		}
	}
	t.Fatalf("restore job %s did not end", rj.JobID)
	return nil
}

// TestMetrics backs a bucket up twice (the second time unchanged) and
// restores it, then reads the region's /metrics.
func TestMetrics(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	total := fillMetered(t, r.Store, "metered", 20, 4096)

	j1 := meteredBackup(t, r.Jobs, "metered", "Default", nil)
	rp1, err := r.Jobs.DescribeRecoveryPoint(context.Background(), servertest.AccountID, "Default", j1.RecoveryPointARN)
	if err != nil {
		t.Fatal(err)
	}
	rj := meteredRestore(t, r.Jobs, j1.RecoveryPointARN, "metered-copy")
	j2 := meteredBackup(t, r.Jobs, "metered", "Default", nil)
	rp2, err := r.Jobs.DescribeRecoveryPoint(context.Background(), servertest.AccountID, "Default", j2.RecoveryPointARN)
	if err != nil {
		t.Fatal(err)
	}
	if rp1.BytesNew <= 0 || j2.BytesTransferred != 0 || rj.BytesRestored != total {
		t.Fatalf("first point adds %d bytes, second job read %d, restore wrote %d of %d", rp1.BytesNew, j2.BytesTransferred, rj.BytesRestored, total)
	}

	m := scrapeMetrics(t, r)
	wantSeries(t, m, `bulwark_backup_jobs_finished_total{state="COMPLETED",type="backup"}`, 2)
	wantSeries(t, m, `bulwark_backup_jobs_finished_total{state="COMPLETED",type="restore"}`, 1)
	wantSeries(t, m, `bulwark_backup_job_duration_seconds_count{state="COMPLETED",type="backup"}`, 2)
	wantSeries(t, m, `bulwark_backup_job_duration_seconds_bucket{state="COMPLETED",type="restore",le="+Inf"}`, 1)
	wantSeries(t, m, `bulwark_backup_jobs_running{type="backup"}`, 0)
	wantSeries(t, m, `bulwark_backup_jobs_running{type="restore"}`, 0)
	// The second backup read nothing: every object was in the first point.
	wantSeries(t, m, `bulwark_backup_read_bytes_total{type="backup"}`, float64(total))
	wantSeries(t, m, `bulwark_backup_stored_bytes_total{type="backup"}`, float64(rp1.BytesNew+rp2.BytesNew))
	wantSeries(t, m, `bulwark_backup_read_bytes_total{type="restore"}`, float64(total))
	wantSeries(t, m, `bulwark_backup_stored_bytes_total{type="restore"}`, float64(total))

	vault := `{account="` + servertest.AccountID + `",vault="Default"}`
	wantSeries(t, m, `bulwark_backup_vault_recovery_points{account="`+servertest.AccountID+`",storage_class="WARM",vault="Default"}`, 2)
	wantSeries(t, m, `bulwark_backup_vault_recovery_points{account="`+servertest.AccountID+`",storage_class="COLD",vault="Default"}`, 0)
	wantSeries(t, m, "bulwark_backup_vault_last_logical_bytes"+vault, float64(total))
	wantSeries(t, m, "bulwark_backup_vault_last_new_bytes"+vault, float64(rp2.BytesNew))
	ratio := math.Inf(1)
	if rp2.BytesNew > 0 {
		ratio = float64(total) / float64(rp2.BytesNew)
	}
	wantSeries(t, m, "bulwark_backup_vault_dedup_ratio"+vault, ratio)
	if ratio < 5 {
		t.Fatalf("an unchanged bucket's second point deduplicates %.1f:1 only", ratio)
	}
	t.Logf("first point: %d logical bytes, %d new; second: %d new (ratio %.1f)", total, rp1.BytesNew, rp2.BytesNew, ratio)
}

// TestPercentDone backs a bucket of some size up, watching the job's
// progress: it never leaves [0, 100) while the job runs, never goes back,
// and is 100 once the job completes. Whether a progress write falls
// inside the job depends on the machine's speed, so seeing one is logged,
// not required.
func TestPercentDone(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and backs up 32 MiB")
	}
	r := servertest.Start(t, servertest.Options{})
	const n, size = 64, 512 << 10
	total := fillMetered(t, r.Store, "big", n, size)
	var seen []float64
	j := meteredBackup(t, r.Jobs, "big", "Default", func(j *backup.BackupJob) {
		pct := j.PercentDone()
		if pct < 0 || pct >= 100 {
			t.Fatalf("running job at %v%%: %+v", pct, j)
		}
		if len(seen) > 0 && pct < seen[len(seen)-1] {
			t.Fatalf("progress went back from %v%% to %v%%", seen[len(seen)-1], pct)
		}
		if j.State == backup.JobRunning && j.ExpectedObjects != 0 && (j.ExpectedObjects != n || j.ExpectedBytes != total) {
			t.Fatalf("job counted %d objects, %d bytes; the bucket holds %d, %d", j.ExpectedObjects, j.ExpectedBytes, n, total)
		}
		if len(seen) == 0 || pct != seen[len(seen)-1] {
			seen = append(seen, pct)
		}
	})
	if pct := j.PercentDone(); pct != 100 || j.ExpectedObjects != n || j.ExpectedBytes != total || j.Objects != n {
		t.Fatalf("completed job at %v%%: %+v", pct, j)
	}
	t.Logf("progress seen while running: %v (job took %s)", seen, j.CompletionDate.Sub(*j.StartedAt))
}

// TestPercentDoneShares checks the arithmetic of PercentDone: the mean of
// the shares of objects and bytes, below 100 until the job completes.
func TestPercentDoneShares(t *testing.T) {
	for _, c := range []struct {
		j    backup.BackupJob
		want float64
	}{
		{backup.BackupJob{State: backup.JobCreated}, 0},
		{backup.BackupJob{State: backup.JobRunning}, 0}, // still counting
		{backup.BackupJob{State: backup.JobRunning, ExpectedObjects: 10, ExpectedBytes: 1000, Objects: 5, BackupSizeInBytes: 100}, 30},
		{backup.BackupJob{State: backup.JobRunning, ExpectedObjects: 4, Objects: 1}, 25}, // empty objects only
		{backup.BackupJob{State: backup.JobRunning, ExpectedObjects: 10, ExpectedBytes: 1000, Objects: 10, BackupSizeInBytes: 1000}, 99.9},
		// Versions that arrived after the count (replicas keep their
		// source's time) never push it past the total.
		{backup.BackupJob{State: backup.JobRunning, ExpectedObjects: 10, ExpectedBytes: 1000, Objects: 20, BackupSizeInBytes: 500}, 75},
		{backup.BackupJob{State: backup.JobFailed, ExpectedObjects: 10, ExpectedBytes: 1000, Objects: 2, BackupSizeInBytes: 200}, 20},
		{backup.BackupJob{State: backup.JobCompleted}, 100},
	} {
		if got := c.j.PercentDone(); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("%+v: %v%%, want %v%%", c.j, got, c.want)
		}
	}
}
