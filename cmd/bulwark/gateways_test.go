package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	backuptypes "github.com/aws/aws-sdk-go-v2/service/backup/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/jackc/pgx/v5"

	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// startGateway runs one gateway of us-east-1: its metadata in the
// PostgreSQL database dsn, its blobs and vaults in the shared directory.
func startGateway(t *testing.T, bin, config, dsn, shared, dataDir, listen string) *process {
	t.Helper()
	args := []string{"serve", "--region", "us-east-1", "--config", config, "--data", dataDir, "--shared", shared, "--meta", dsn}
	if listen != "" {
		args = append(args, "--listen", listen)
	}
	return startProcess(t, bin, args...)
}

// leaseHolder reads who holds a lease of the region, from the database.
func leaseHolder(t *testing.T, dsn, name string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var raw []byte
	err = conn.QueryRow(ctx, "SELECT value FROM meta_kv WHERE space = 'leases' AND key = $1", []byte(name)).Scan(&raw)
	if err == pgx.ErrNoRows {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	var rec struct{ Holder string }
	if err := json.Unmarshal(raw, &rec); err != nil {
		t.Fatal(err)
	}
	return rec.Holder
}

// TestTwoGateways serves us-east-1 with two gateways over one PostgreSQL
// database and one shared directory, and us-west-2 with one process. The
// design article's replication and backup calls work through either
// gateway. Then the gateway running the region's background work is
// killed under 16 writers: no acknowledged write is lost, the other
// gateway takes over replication (every version arrives in us-west-2
// under its own version ID, none as another), the scheduled backups (one
// job per scheduled minute, none twice, none missed) and the jobs the
// dead gateway left running.
func TestTwoGateways(t *testing.T) {
	if testing.Short() {
		t.Skip("gateway test runs real processes; skipped with -short")
	}
	dsn := pgtest.Database(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "topology.yaml")
	topo := fmt.Sprintf("regions:\n  - name: us-east-1\n    endpoint: http://%s\n  - name: us-west-2\n    endpoint: http://%s\n", freePort(t), freePort(t))
	if err := os.WriteFile(config, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	shared := filepath.Join(dir, "shared")
	a := startGateway(t, bin, config, dsn, shared, filepath.Join(dir, "a"), "")
	// a started first: it takes every lease.
	waitUntil(t, time.Minute, "gateway a to take the replication lease", func() bool { return leaseHolder(t, dsn, "replication") != "" })
	holder := leaseHolder(t, dsn, "replication")
	b := startGateway(t, bin, config, dsn, shared, filepath.Join(dir, "b"), freePort(t))
	west := startRegion(t, bin, "us-west-2", config, filepath.Join(dir, "west"))
	ctx := context.Background()
	s3a := servertest.NewClient(a.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	s3b := servertest.NewClient(b.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	s3w := servertest.NewClient(west.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	backupClient := func(p *process) *awsbackup.Client {
		return awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(p.url), Region: "us-east-1", RetryMaxAttempts: 1,
			Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	}
	bka, bkb := backupClient(a), backupClient(b)

	// The article's replication setup, its calls spread over both gateways.
	versioned := func(c *s3.Client, name string, where types.BucketLocationConstraint) {
		t.Helper()
		in := &s3.CreateBucketInput{Bucket: aws.String(name)}
		if where != "" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: where}
		}
		if _, err := c.CreateBucket(ctx, in); err != nil {
			t.Fatalf("create bucket %s: %v", name, err)
		}
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
	}
	versioned(s3a, "source-bucket-name", "")
	versioned(s3b, "sched-source", "")
	versioned(s3w, "destination-bucket-name", types.BucketLocationConstraintUsWest2)
	_, err := s3b.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String("source-bucket-name"),
		ReplicationConfiguration: &types.ReplicationConfiguration{
			Role: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/s3-replication-role"),
			Rules: []types.ReplicationRule{{ID: aws.String("replicate-all-objects"), Status: types.ReplicationRuleStatusEnabled,
				Prefix:      aws.String(""),
				Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::destination-bucket-name"), StorageClass: types.StorageClassStandard}}},
		}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s3a.GetBucketReplication(ctx, &s3.GetBucketReplicationInput{Bucket: aws.String("source-bucket-name")}); err != nil ||
		len(got.ReplicationConfiguration.Rules) != 1 {
		t.Fatalf("replication set through b, read through a: %v, %v", got, err)
	}
	for i := range 3 {
		if _, err := s3b.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("sched-source"), Key: aws.String(fmt.Sprintf("k%d", i)),
			Body: strings.NewReader("scheduled backup data")}); err != nil {
			t.Fatal(err)
		}
	}
	// The article's backup: a job through b, read through a, a plan
	// through a that runs every minute on the lease holder.
	job, err := bkb.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String("arn:aws:s3:::sched-source"), IamRoleArn: backupRole})
	if err != nil {
		t.Fatal(err)
	}
	var point *string
	waitUntil(t, time.Minute, "the on-demand backup, seen through the other gateway", func() bool {
		d, err := bka.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: job.BackupJobId})
		if err != nil {
			t.Fatal(err)
		}
		if d.State == backuptypes.BackupJobStateFailed || d.State == backuptypes.BackupJobStateAborted {
			t.Fatalf("backup: %s %s", d.State, aws.ToString(d.StatusMessage))
		}
		point = d.RecoveryPointArn
		return d.State == backuptypes.BackupJobStateCompleted
	})
	plan, err := bka.CreateBackupPlan(ctx, &awsbackup.CreateBackupPlanInput{BackupPlan: &backuptypes.BackupPlanInput{
		BackupPlanName: aws.String("every-minute"),
		Rules: []backuptypes.BackupRuleInput{{RuleName: aws.String("minutely"), TargetBackupVaultName: aws.String("Default"),
			ScheduleExpression: aws.String("cron(* * * * ? *)"), StartWindowMinutes: aws.Int64(60)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bkb.CreateBackupSelection(ctx, &awsbackup.CreateBackupSelectionInput{BackupPlanId: plan.BackupPlanId,
		BackupSelection: &backuptypes.BackupSelection{SelectionName: aws.String("sched"), IamRoleArn: backupRole,
			Resources: []string{"arn:aws:s3:::sched-source"}}}); err != nil {
		t.Fatal(err)
	}
	planned := time.Now() // runs are counted from the first minute after the selection
	// Replication status through the gateway that does not run the
	// engine: it is answered by the one that does.
	st := exec.Command(bin, "replication", "status", "--endpoint", b.url)
	st.Env = append(os.Environ(), "BULWARK_ACCESS_KEY="+servertest.AccessKey, "BULWARK_SECRET_KEY="+servertest.SecretKey)
	if out, err := st.CombinedOutput(); err != nil || !strings.Contains(string(out), "replicate-all-objects") {
		t.Fatalf("replication status through gateway b: %v\n%s", err, out)
	}

	// 16 writers, half through each gateway; a is killed under them.
	type ack struct {
		key, versionID string
		sum            [32]byte
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	for w := range 16 {
		c := s3a
		if w%2 == 1 {
			c = s3b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				data := make([]byte, []int{100, 4 << 10, 70 << 10}[i%3])
				_, _ = rand.Read(data)
				key := fmt.Sprintf("w%02d/obj%03d", w, i%5)
				out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("source-bucket-name"), Key: aws.String(key), Body: bytes.NewReader(data)})
				if err != nil {
					if c == s3a {
						return // the gateway is gone
					}
					continue
				}
				mu.Lock()
				acked = append(acked, ack{key, aws.ToString(out.VersionId), sha256.Sum256(data)})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	if h := leaseHolder(t, dsn, "backup-scheduler"); h != holder {
		t.Fatalf("the scheduler's lease is held by %q, the replication lease by %q: want gateway a for both", h, holder)
	}
	a.kill(t)
	killed := time.Now()
	takeover := map[string]time.Duration{}
	for _, name := range []string{"replication", "backup-scheduler", "backup-jobs"} {
		waitUntil(t, 2*time.Minute, "gateway b to take the "+name+" lease", func() bool {
			h := leaseHolder(t, dsn, name)
			return h != "" && h != holder
		})
		takeover[name] = time.Since(killed)
	}
	t.Logf("leases taken over after the kill: %v", takeover)
	time.Sleep(2 * time.Second) // b's writers go on under the new holder
	close(stop)
	wg.Wait()
	if len(acked) < 100 {
		t.Fatalf("only %d writes acknowledged; the test proves little", len(acked))
	}

	// Nothing acknowledged is lost: every version reads back through b.
	for _, k := range acked {
		out, err := s3b.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("source-bucket-name"), Key: aws.String(k.key), VersionId: aws.String(k.versionID)})
		if err != nil {
			t.Fatalf("acknowledged %s version %s lost: %v", k.key, k.versionID, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(h.Sum(nil), k.sum[:]) {
			t.Fatalf("acknowledged %s version %s reads back different data (%v)", k.key, k.versionID, err)
		}
	}
	// Replication finishes: us-west-2 holds exactly the source's
	// versions, each under its own ID with its ETag.
	versions := func(c *s3.Client, bucket string) map[string]string {
		out := map[string]string{}
		p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Versions {
				out[aws.ToString(v.Key)+" "+aws.ToString(v.VersionId)] = aws.ToString(v.ETag)
			}
		}
		return out
	}
	src := versions(s3b, "source-bucket-name")
	var dst map[string]string
	waitUntil(t, 3*time.Minute, "replication to finish", func() bool {
		dst = versions(s3w, "destination-bucket-name")
		return len(dst) >= len(src)
	})
	replicated := time.Since(killed)
	for v, etag := range dst {
		if src[v] != etag {
			t.Fatalf("us-west-2 holds %s (ETag %s), which the source has as %q", v, etag, src[v])
		}
	}
	t.Logf("%d writes acknowledged, %d versions at the source, all %d in us-west-2 %v after the kill", len(acked), len(src), len(dst), replicated)

	// The scheduled backups: one job per minute since the plan, whichever
	// gateway ran it; the run due after the kill too.
	next := killed.Truncate(time.Minute).Add(time.Minute)
	if wait := time.Until(next.Add(15 * time.Second)); wait > 0 {
		time.Sleep(wait)
	}
	jobs, err := bkb.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{ByResourceArn: aws.String("arn:aws:s3:::sched-source")})
	if err != nil {
		t.Fatal(err)
	}
	checked := time.Now()
	runs := map[int64]int{} // minute (Unix seconds) → jobs
	for _, j := range jobs.BackupJobs {
		if aws.ToString(j.BackupJobId) == aws.ToString(job.BackupJobId) {
			continue
		}
		runs[aws.ToTime(j.CreationDate).Truncate(time.Minute).Unix()]++
	}
	want := 0
	for m := planned.Truncate(time.Minute).Add(time.Minute); !m.After(checked.Add(-10 * time.Second)); m = m.Add(time.Minute) {
		want++
		if runs[m.Unix()] != 1 {
			t.Errorf("scheduled run of %s: %d jobs, want 1 (runs %v)", m.Format(time.TimeOnly), runs[m.Unix()], runs)
		}
	}
	if want < 1 || len(runs) < want {
		t.Fatalf("%d scheduled runs recorded, %d due", len(runs), want)
	}
	// No job stays running on the dead gateway: the survivor ends it.
	waitUntil(t, time.Minute, "every backup job to end", func() bool {
		jobs, err := bkb.ListBackupJobs(ctx, &awsbackup.ListBackupJobsInput{})
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs.BackupJobs {
			if j.State == backuptypes.BackupJobStateCreated || j.State == backuptypes.BackupJobStateRunning {
				return false
			}
		}
		return true
	})
	// The recovery point made through b before the kill restores through
	// b: the vaults are shared.
	rj, err := bkb.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: point, IamRoleArn: backupRole,
		Metadata: map[string]string{"DestinationBucketName": "restored", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, time.Minute, "the restore", func() bool {
		d, err := bkb.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: rj.RestoreJobId})
		if err != nil {
			t.Fatal(err)
		}
		if d.Status == backuptypes.RestoreJobStatusFailed || d.Status == backuptypes.RestoreJobStatusAborted {
			t.Fatalf("restore: %s %s", d.Status, aws.ToString(d.StatusMessage))
		}
		return d.Status == backuptypes.RestoreJobStatusCompleted
	})
	t.Logf("scheduled runs %v; %d due", runs, want)
}
