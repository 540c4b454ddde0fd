package rds_test

import (
	"context"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// BenchmarkPostgresWALLag backs a pgbench database (scale
// BULWARK_BENCH_PG_SCALE, 10 by default) up continuously and runs
// pgbench -c 4 for BULWARK_BENCH_WAL_SECONDS (20 by default) once the base
// is in. Every 200 ms it samples the lag: now minus the end of the newest
// restorable window, what losing the cluster at that moment would cost
// (bulwark_backup_continuous_lag_seconds). It reports the lag's p50, p99
// and max, pgbench's TPS, the rate of WAL the server wrote
// (pg_current_wal_lsn) and the rate shipped into the vault (the log
// pieces' bytes), both over pgbench's run, and their ratio.
//
//	go test -run '^$' -bench PostgresWALLag -benchtime 1x ./internal/backup/rds/
func BenchmarkPostgresWALLag(b *testing.B) {
	scale := benchEnvInt(b, "BULWARK_BENCH_PG_SCALE", 10)
	seconds := benchEnvInt(b, "BULWARK_BENCH_WAL_SECONDS", 20)
	pgbench := servertest.RequireTool(b, "pgbench")
	c := rds.StartTestCluster(b, rds.TestClusterOptions{})
	conn := []string{"-h", "127.0.0.1", "-p", c.PortString(), "-U", "postgres", "postgres"}
	c.RunAsServerUser(b, pgbench, append([]string{"-i", "-q", "-s", strconv.Itoa(scale)}, conn...)...)
	c.Exec(b, "CHECKPOINT")

	ctx := context.Background()
	day0 := time.Now().UTC().Truncate(24 * time.Hour).Add(24 * time.Hour)
	var clock atomic.Int64
	clock.Store(day0.Add(30 * time.Minute).UnixNano())
	r := servertest.Start(b, servertest.Options{Configure: func(cfg *server.Config) {
		cfg.BackupClock = func() time.Time { return time.Unix(0, clock.Load()) }
		cfg.BackupSchedulerInterval = 50 * time.Millisecond
		if testing.Verbose() {
			cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		}
	}})
	reg, err := r.Resources.Register(ctx, servertest.AccountID, benchRegistration(c))
	if err != nil {
		b.Fatal(err)
	}
	api := backupClient(r, servertest.AccessKey, servertest.SecretKey)
	createContinuousPlan(b, api, "lag", "cron(0 2 * * ? *)", reg.ARN)
	clock.Store(day0.Add(2*time.Hour + time.Minute).UnixNano())
	var pointARN string
	benchWait(b, 5*time.Minute, "the base", func() bool {
		out, err := api.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{})
		if err != nil {
			b.Fatal(err)
		}
		for _, j := range out.BackupJobs {
			switch j.State {
			case types.BackupJobStateCompleted:
				pointARN = aws.ToString(j.RecoveryPointArn)
			case types.BackupJobStateFailed, types.BackupJobStateAborted:
				b.Fatalf("base: %s", aws.ToString(j.StatusMessage))
			}
		}
		return pointARN != ""
	})
	p := &lagProbe{r: r, pointARN: pointARN}
	sql := c.Conn(b)
	// caughtUp commits a transaction and waits until the window holds
	// it, so that every byte of WAL before it is in the vault.
	caughtUp := func() {
		mark := time.Now()
		if _, err := sql.Exec(ctx, "SELECT txid_current()"); err != nil {
			b.Fatal(err)
		}
		benchWait(b, 5*time.Minute, "the window to reach "+mark.Format(time.RFC3339Nano), func() bool {
			ws, _, err := p.read(ctx)
			if err != nil {
				b.Fatal(err)
			}
			return len(ws) > 0 && !ws[len(ws)-1].Until.Before(mark)
		})
	}
	lsn := func() int64 {
		var n int64
		if err := sql.QueryRow(ctx, "SELECT pg_current_wal_lsn() - '0/0'").Scan(&n); err != nil {
			b.Fatal(err)
		}
		return n
	}

	var lags []float64
	var tps []float64
	var produced, shipped int64
	var run time.Duration
	b.ResetTimer()
	for range b.N {
		caughtUp()
		_, shipped0, err := p.read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lsn0, t0 := lsn(), time.Now()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var sampled []float64
		var sampleErr error
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case now := <-tick.C:
					ws, _, err := p.read(ctx)
					if err != nil {
						sampleErr = err
						return
					}
					if len(ws) > 0 {
						sampled = append(sampled, now.Sub(ws[len(ws)-1].Until).Seconds())
					}
				}
			}
		}()
		out := c.RunAsServerUser(b, pgbench, append([]string{"-c", "4", "-T", strconv.Itoa(seconds)}, conn...)...)
		close(stop)
		wg.Wait()
		if sampleErr != nil {
			b.Fatal(sampleErr)
		}
		d := time.Since(t0)
		m := regexp.MustCompile(`tps = ([0-9.]+)`).FindStringSubmatch(out)
		if m == nil {
			b.Fatalf("pgbench printed no tps:\n%s", out)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		tps = append(tps, v)
		lsn1 := lsn()
		caughtUp()
		_, shipped1, err := p.read(ctx)
		if err != nil {
			b.Fatal(err)
		}
		lags = append(lags, sampled...)
		produced += lsn1 - lsn0
		shipped += shipped1 - shipped0
		run += d
	}
	b.StopTimer()
	if len(lags) == 0 {
		b.Fatal("no lag sampled")
	}
	slices.Sort(lags)
	at := func(q float64) float64 { return lags[min(len(lags)-1, int(q*float64(len(lags))))] }
	mb := func(n int64) float64 { return float64(n) / (1 << 20) / run.Seconds() }
	b.ReportMetric(at(0.5), "lag-p50-s")
	b.ReportMetric(at(0.99), "lag-p99-s")
	b.ReportMetric(lags[len(lags)-1], "lag-max-s")
	b.ReportMetric(mean(tps), "tps")
	b.ReportMetric(mb(produced), "wal-produced-MB/s")
	b.ReportMetric(mb(shipped), "wal-shipped-MB/s")
	b.ReportMetric(float64(shipped)/float64(produced), "shipped/produced")
	b.Logf("scale %d, %d s of pgbench -c 4: %d lag samples; %d bytes of WAL written, %d shipped", scale, seconds, len(lags), produced, shipped)
}

// lagProbe reads a continuous point's restorable windows and the bytes
// of its log pieces.
type lagProbe struct {
	r        *servertest.Region
	pointARN string
}

func (p *lagProbe) read(ctx context.Context) ([]backup.Window, int64, error) {
	rp, err := p.r.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, "Default", p.pointARN)
	if err != nil {
		return nil, 0, err
	}
	ws, err := p.r.Jobs.RestorableWindows(ctx, rp)
	if err != nil {
		return nil, 0, err
	}
	pieces, _, err := p.r.Jobs.Pieces(ctx, rp)
	if err != nil {
		return nil, 0, err
	}
	var n int64
	for _, pc := range pieces {
		if pc.Kind == backup.PieceLog {
			n += pc.Bytes
		}
	}
	return ws, n, nil
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// benchEnvInt reads a positive whole number from the environment.
func benchEnvInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		b.Fatalf("%s=%q: a positive whole number", name, v)
	}
	return n
}

func benchWait(b *testing.B, d time.Duration, what string, done func() bool) {
	b.Helper()
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if done() {
			return
		}
	}
	b.Fatalf("%s did not end in %s", what, d)
}
