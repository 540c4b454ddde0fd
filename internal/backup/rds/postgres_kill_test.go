package rds_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"

	"github.com/bulwark/bulwark/internal/adminapi"
	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/backup/rds"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestPostgresPointInTimeRestoreAfterKill is TestPostgresPointInTimeRestore
// with a real crash: bulwark serve runs as its own process, backs a cluster
// up continuously by a plan's schedule while a writer commits numbered
// rows, and is killed with SIGKILL while WAL streams (its replication
// connection left open, a piece perhaps half written). The writer goes
// on; a new process on the same data directory resumes from the slot. At T
// the table is dropped; a restore to T−1 s has every row whose commit
// returned before T−1 s, none begun after it, without a hole, and the
// point has one window across the kill. Should the kill have cost WAL, the
// gap must be reported and the window after it restore as exactly.
// It takes about a minute and a half, most of it waiting for the schedule:
// the plans run at the next minute, when the scheduler passes.
func TestPostgresPointInTimeRestoreAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs bulwark serve as a process and kills it; skipped with -short")
	}
	ctx := context.Background()
	c := rds.StartTestCluster(t, rds.TestClusterOptions{})
	bin := buildBulwark(t)
	dir := t.TempDir()
	p := startBulwark(t, bin, dir)

	const batch = 5
	w := startWriter(t, c, batch)
	defer func() {
		select {
		case <-w.stop:
		default:
			w.Stop(t)
		}
	}()
	var res adminapi.Resource
	out := runBulwark(t, bin, "resource", "add", "-endpoint", p.url, "-region", "us-west-2", "-json", "-type", "RDS", "-engine", "postgres", "-name", "ledger",
		"-host", "127.0.0.1", "-port", c.PortString(), "-user", "postgres")
	if err := json.Unmarshal(out, &res); err != nil || res.ResourceArn == "" {
		t.Fatalf("resource add printed %q: %v", out, err)
	}
	api := processBackupClient(p.url)
	createPlanAtNextMinute(t, api, "pitr", res.ResourceArn)
	var pointARN string
	waitFor(t, 3*time.Minute, "the scheduled base", func() bool {
		jobs := completedJobs(t, api)
		if len(jobs) > 0 {
			pointARN = aws.ToString(jobs[0].RecoveryPointArn)
		}
		return pointARN != ""
	})
	// WAL streams for a few seconds after the base.
	ws := waitProcessWindow(t, api, pointARN, time.Now().Add(3*time.Second))
	if len(ws) != 1 {
		t.Fatalf("windows before the kill: %v", ws)
	}
	time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
	killedAt, atKill := time.Now(), w.committed.Load()
	p.kill()
	t.Logf("killed bulwark serve at %s, %d rows committed; the window then ended at %s", killedAt.UTC().Format(time.RFC3339Nano), atKill, ws[0].Until.Format(time.RFC3339Nano))

	// Down for a while; the writer goes on and the slot keeps the WAL.
	time.Sleep(3 * time.Second)
	restartedAt, atRestart := time.Now(), w.committed.Load()
	p = startBulwark(t, bin, dir)
	api = processBackupClient(p.url)
	gap := false
	waitFor(t, 2*time.Minute, "the stream to resume after the restart", func() bool {
		if gap = p.logContains("changes lost") || p.logContains("WAL lost"); gap {
			return true
		}
		ws := processWindows(t, api, pointARN)
		return len(ws) > 0 && ws[len(ws)-1].Until.After(restartedAt)
	})
	if gap {
		// The kill cost WAL: the window before the kill must end before
		// it, and the one after needs a base, which a second plan takes.
		t.Logf("the stream reported a gap after the kill:\n%s", p.logLines("lost"))
		createPlanAtNextMinute(t, api, "after-gap", res.ResourceArn)
		waitFor(t, 3*time.Minute, "the base after the gap", func() bool { return len(completedJobs(t, api)) == 2 })
		waitFor(t, time.Minute, "a second restorable window", func() bool { return len(processWindows(t, api, pointARN)) == 2 })
		if ws := processWindows(t, api, pointARN); ws[0].Until.After(killedAt) {
			t.Fatalf("the window before the gap ends at %s, after the kill at %s", ws[0].Until, killedAt)
		}
	}
	t.Logf("the stream after the restart:\n%s", p.logLines("stream"))
	time.Sleep(3 * time.Second) // the writer goes on after the restart
	w.Stop(t)
	T := time.Now().UTC()
	c.Exec(t, "DROP TABLE numbers")
	rt := T.Add(-time.Second)
	ws = waitProcessWindow(t, api, pointARN, T)
	switch last := ws[len(ws)-1]; {
	case !gap && len(ws) != 1:
		t.Fatalf("restorable windows %v with no gap reported: want one across the kill", ws)
	case gap && len(ws) != 2:
		t.Fatalf("restorable windows %v after a gap: want two", ws)
	case rt.Before(last.Since):
		t.Fatalf("the restore time %s is before the window %v", rt, last)
	}
	t.Logf("restorable windows: %v", ws)

	restored := filepath.Join(c.Base, "pitr-killed")
	port := rds.FreePort(t)
	rj := restore(t, api, pointARN, map[string]string{"DataDirectory": restored, "Port": strconv.Itoa(port), "RestoreTime": rt.Format(time.RFC3339Nano)})
	t.Cleanup(func() { rds.StopServer(t, c.BinDir, restored) })
	if rj.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore to %s: %s %s\n%s", rt, rj.Status, aws.ToString(rj.StatusMessage), p.logLines(""))
	}
	conn := rds.SocketConn(t, restored, port, "postgres")
	least := w.committedBefore(rt, batch)
	if least <= atRestart {
		t.Fatalf("only %d rows committed before %s, %d by the restart: the test proves nothing", least, rt, atRestart)
	}
	n := checkPrefix(t, conn, batch, least)
	var last time.Time
	if err := conn.QueryRow(ctx, "SELECT max(at) FROM numbers").Scan(&last); err != nil {
		t.Fatal(err)
	}
	if last.After(rt) {
		t.Fatalf("restored a row begun at %s, after the restore time %s", last, rt)
	}
	t.Logf("restored to %s: %d rows (%d committed before it; %d at the kill, %d at the restart, %d in all)",
		rt.Format(time.RFC3339Nano), n, least, atKill, atRestart, w.committed.Load())
}

// createPlanAtNextMinute makes a plan whose continuous rule runs daily at
// the next UTC minute (at least 5 s away, so that the plan exists before
// its first run is due), and selects the resource by its ARN.
func createPlanAtNextMinute(t *testing.T, api *awsbackup.Client, name, arn string) {
	t.Helper()
	due := time.Now().UTC().Add(5*time.Second + time.Minute - 1).Truncate(time.Minute)
	createContinuousPlan(t, api, name, fmt.Sprintf("cron(%d %d * * ? *)", due.Minute(), due.Hour()), arn)
	t.Logf("plan %s runs at %s", name, due.Format(time.RFC3339))
}

// createContinuousPlan makes a plan of one continuous rule on the
// schedule, kept 35 days, and selects the resource by its ARN.
func createContinuousPlan(t testing.TB, api *awsbackup.Client, name, schedule, arn string) {
	t.Helper()
	ctx := context.Background()
	plan, err := api.CreateBackupPlan(ctx, &awsbackup.CreateBackupPlanInput{BackupPlan: &types.BackupPlanInput{
		BackupPlanName: aws.String(name),
		Rules: []types.BackupRuleInput{{RuleName: aws.String(name), TargetBackupVaultName: aws.String("Default"),
			ScheduleExpression: aws.String(schedule), EnableContinuousBackup: aws.Bool(true),
			Lifecycle: &types.Lifecycle{DeleteAfterDays: aws.Int64(35)}}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := api.CreateBackupSelection(ctx, &awsbackup.CreateBackupSelectionInput{BackupPlanId: plan.BackupPlanId,
		BackupSelection: &types.BackupSelection{SelectionName: aws.String(name), IamRoleArn: role, Resources: []string{arn}}}); err != nil {
		t.Fatal(err)
	}
}

// completedJobs lists the backup jobs COMPLETED, oldest first, and fails
// the test on one that failed.
func completedJobs(t *testing.T, api *awsbackup.Client) []types.BackupJob {
	t.Helper()
	out, err := api.ListBackupJobs(context.Background(), &awsbackup.ListBackupJobsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var done []types.BackupJob
	for _, j := range out.BackupJobs {
		switch j.State {
		case types.BackupJobStateFailed, types.BackupJobStateAborted, types.BackupJobStateExpired:
			t.Fatalf("backup job %s: %s %s", aws.ToString(j.BackupJobId), j.State, aws.ToString(j.StatusMessage))
		case types.BackupJobStateCompleted:
			done = append(done, j)
		}
	}
	slices.SortFunc(done, func(a, b types.BackupJob) int { return aws.ToTime(a.CreationDate).Compare(aws.ToTime(b.CreationDate)) })
	return done
}

// processWindows reads a continuous point's restorable windows from what
// DescribeRecoveryPoint says of them, as a client of the API sees them.
func processWindows(t *testing.T, api *awsbackup.Client, pointARN string) []backup.Window {
	t.Helper()
	rp, err := api.DescribeRecoveryPoint(context.Background(), &awsbackup.DescribeRecoveryPointInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: &pointARN})
	if err != nil {
		t.Fatal(err)
	}
	ws, err := parseWindows(aws.ToString(rp.StatusMessage))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

// parseWindows reads backup.DescribeWindows' message: "Continuous backup:
// restorable from A to B, C to D." (none when not restorable yet).
func parseWindows(msg string) ([]backup.Window, error) {
	rest, ok := strings.CutPrefix(msg, "Continuous backup: restorable from ")
	if !ok {
		return nil, nil
	}
	var ws []backup.Window
	for _, part := range strings.Split(strings.TrimSuffix(rest, "."), ", ") {
		a, b, ok := strings.Cut(part, " to ")
		since, err1 := time.Parse(time.RFC3339Nano, a)
		until, err2 := time.Parse(time.RFC3339Nano, b)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("status message %q: %q is not a window", msg, part)
		}
		ws = append(ws, backup.Window{Since: since, Until: until})
	}
	return ws, nil
}

// waitProcessWindow waits until the newest restorable window reaches at.
func waitProcessWindow(t *testing.T, api *awsbackup.Client, pointARN string, at time.Time) []backup.Window {
	t.Helper()
	var ws []backup.Window
	waitFor(t, 2*time.Minute, "the window to reach "+at.UTC().Format(time.RFC3339Nano), func() bool {
		ws = processWindows(t, api, pointARN)
		return len(ws) > 0 && !ws[len(ws)-1].Until.Before(at)
	})
	return ws
}

// processBackupClient is a Backup API client of a bulwark serve process.
func processBackupClient(url string) *awsbackup.Client {
	return awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(url), Region: "us-west-2",
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
}

// buildBulwark compiles bulwark from the module this test is in.
func buildBulwark(t *testing.T) string {
	t.Helper()
	root, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			t.Fatal("no go.mod above the test's directory")
		}
		root = parent
	}
	bin := filepath.Join(t.TempDir(), "bulwark")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/bulwark")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/bulwark: %v\n%s", err, out)
	}
	return bin
}

// deploymentKey seals what the region keeps (the registration's password
// among it); the restarted process must have the same.
const deploymentKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

func bulwarkEnv() []string {
	return append(os.Environ(), "BULWARK_ACCESS_KEY="+servertest.AccessKey, "BULWARK_SECRET_KEY="+servertest.SecretKey,
		"AWS_ACCESS_KEY_ID="+servertest.AccessKey, "AWS_SECRET_ACCESS_KEY="+servertest.SecretKey,
		"BULWARK_ACCOUNT_ID="+servertest.AccountID, "BULWARK_DEPLOYMENT_KEY="+deploymentKey)
}

// runBulwark runs a bulwark command to its end and returns its output.
func runBulwark(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = bulwarkEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("bulwark %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// bulwarkProcess is a bulwark serve process of region us-west-2.
type bulwarkProcess struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex // guards log, which the process writes as the test reads
	log  bytes.Buffer
	dead bool
}

func (p *bulwarkProcess) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.Write(b)
}

// logContains reports whether the process logged s.
func (p *bulwarkProcess) logContains(s string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Contains(p.log.Bytes(), []byte(s))
}

// logLines returns the log's lines holding s.
func (p *bulwarkProcess) logLines(s string) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, l := range strings.Split(p.log.String(), "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// startBulwark runs bulwark serve on dataDir and waits for the line that
// names its endpoint.
func startBulwark(t *testing.T, bin, dataDir string) *bulwarkProcess {
	t.Helper()
	p := &bulwarkProcess{cmd: exec.Command(bin, "serve", "--region", "us-west-2", "--data", dataDir, "--listen", "127.0.0.1:0")}
	p.cmd.Env = bulwarkEnv()
	p.cmd.Stderr = p
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.kill()
		t.Fatalf("bulwark serve did not start: %v\n%s", err, p.logLines(""))
	}
	f := strings.Fields(line)
	p.url = f[len(f)-1]
	return p
}

// kill ends the process with SIGKILL: no shutdown, connections left as
// they are until the kernel closes them.
func (p *bulwarkProcess) kill() {
	if p.dead {
		return
	}
	p.dead = true
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	_ = p.cmd.Wait()
}
