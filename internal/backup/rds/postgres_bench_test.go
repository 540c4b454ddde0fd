package rds_test

import (
	"context"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// BenchmarkPostgresSnapshot backs up a pgbench database (scale
// BULWARK_BENCH_PG_SCALE, 10 by default: about 160 MB; 70 is about 1 GiB)
// through the Backup API and restores it into a new data directory until
// the server answers, and reports both rates beside the rate at which the
// same disk takes the same number of bytes written and fsynced.
//
//	go test -run '^$' -bench PostgresSnapshot -benchtime 1x ./internal/backup/rds/
func BenchmarkPostgresSnapshot(b *testing.B) {
	scale := 10
	if v := os.Getenv("BULWARK_BENCH_PG_SCALE"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("BULWARK_BENCH_PG_SCALE=%q: a pgbench scale factor", v)
		}
		scale = n
	}
	pgbench := servertest.RequireTool(b, "pgbench")
	c := rds.StartTestCluster(b, rds.TestClusterOptions{})
	init := exec.Command(pgbench, "-i", "-q", "-s", strconv.Itoa(scale), "-h", "127.0.0.1", "-p", c.PortString(), "-U", "postgres", "postgres")
	if out, err := init.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	c.Exec(b, "CHECKPOINT")
	r := servertest.Start(b, servertest.Options{})
	reg, err := r.Resources.Register(context.Background(), servertest.AccountID, benchRegistration(c))
	if err != nil {
		b.Fatal(err)
	}
	api := backupClient(r, servertest.AccessKey, servertest.SecretKey)
	ctx := context.Background()
	var size int64
	var backupTime, restoreTime time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		start, err := api.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"), ResourceArn: aws.String(reg.ARN), IamRoleArn: role})
		if err != nil {
			b.Fatal(err)
		}
		var j *awsbackup.DescribeBackupJobOutput
		for {
			if j, err = api.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: start.BackupJobId}); err != nil {
				b.Fatal(err)
			}
			if j.State == types.BackupJobStateCompleted || j.State == types.BackupJobStateFailed {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if j.State != types.BackupJobStateCompleted {
			b.Fatalf("backup: %s", aws.ToString(j.StatusMessage))
		}
		backupTime += time.Since(t0)
		size = aws.ToInt64(j.BackupSizeInBytes)

		dir := filepath.Join(c.Base, "bench-"+strconv.Itoa(i))
		port := rds.FreePort(b)
		t0 = time.Now()
		rs, err := api.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: j.RecoveryPointArn, IamRoleArn: role,
			Metadata: map[string]string{"DataDirectory": dir, "Port": strconv.Itoa(port)}})
		if err != nil {
			b.Fatal(err)
		}
		var rj *awsbackup.DescribeRestoreJobOutput
		for {
			if rj, err = api.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: rs.RestoreJobId}); err != nil {
				b.Fatal(err)
			}
			if rj.Status == types.RestoreJobStatusCompleted || rj.Status == types.RestoreJobStatusFailed {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		restoreTime += time.Since(t0)
		rds.StopServer(b, c.BinDir, dir)
		if rj.Status != types.RestoreJobStatusCompleted {
			b.Fatalf("restore: %s", aws.ToString(rj.StatusMessage))
		}
		os.RemoveAll(dir)
	}
	b.StopTimer()
	disk := diskRate(b, c.Base, size)
	mb := float64(size) / (1 << 20)
	backupRate := mb * float64(b.N) / backupTime.Seconds()
	restoreRate := mb * float64(b.N) / restoreTime.Seconds()
	b.ReportMetric(mb, "MB")
	b.ReportMetric(backupRate, "backup-MB/s")
	b.ReportMetric(restoreRate, "restore-MB/s")
	b.ReportMetric(disk, "disk-MB/s")
	b.ReportMetric(backupRate/disk, "backup/disk")
	b.ReportMetric(restoreRate/disk, "restore/disk")
}

func benchRegistration(c *rds.TestCluster) backup.Registration {
	return backup.Registration{Type: backup.TypeRDS, Engine: backup.EnginePostgres, Name: "bench",
		Settings: map[string]string{backup.SettingHost: "127.0.0.1", backup.SettingPort: c.PortString(), backup.SettingUser: "postgres"}}
}

// diskRate writes n bytes to a file in dir, fsyncs it, and returns MB/s.
func diskRate(b *testing.B, dir string, n int64) float64 {
	f, err := os.CreateTemp(dir, "disk-rate-")
	if err != nil {
		b.Fatal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 1<<20)
	_, _ = rand.Read(buf)
	t0 := time.Now()
	for left := n; left > 0; left -= int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), left)]); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	return float64(n) / (1 << 20) / time.Since(t0).Seconds()
}
