package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

// Bounds the partition test holds the regions to. A request that needs
// the region across the cut link fails with a clear error at once when it
// opens a connection (DialTimeout), and after StallTimeout when it rides a
// connection opened before the cut (plus a second DialTimeout when the
// transport retries an idempotent request on a new connection).
const (
	failFast    = topology.DialTimeout + time.Second
	failStalled = topology.StallTimeout + topology.DialTimeout + 3*time.Second
	// callLimit is the test's own limit on any one call: a call that
	// reaches it hung.
	callLimit = 90 * time.Second
)

// TestPartition runs us-west-2 and us-east-1 as `bulwark serve` processes,
// each in a network namespace of its own, joined by one link, with a bucket
// in us-west-2 replicating to one in us-east-1. The link is cut: writes to
// us-west-2 are still acknowledged and their replication pends; requests
// us-west-2 must forward to us-east-1 fail within seconds with a 503 that
// names us-east-1; IAM changes in us-west-2 (IAM's home) do not hold up
// us-east-1; a backup copy job to us-east-1 keeps retrying. The link then
// turns slow and lossy, and replication makes progress over it. Once it
// heals, every acknowledged version is in us-east-1 with its version ID and
// bytes, none failed, the copy job completes and the IAM user made during
// the cut works in us-east-1.
func TestPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("partition test runs real processes in network namespaces; skipped with -short")
	}
	p := startPartitioned(t)
	// Before the cut, replication and forwarding work, so the regions
	// hold open connections to each other when the link goes.
	p.put("before", 16)
	waitUntil(t, time.Minute, "replication before the cut", func() bool { return p.pending() == 0 })
	if _, err := p.wc.ListObjectVersions(p.ctx, &s3.ListObjectVersionsInput{Bucket: p.dst}); err != nil {
		t.Fatalf("us-east-1's bucket through us-west-2: %v", err)
	}
	point := backupSource(t, p.ctx, p.bc)

	p.nw.cut()
	t.Log("link between the regions cut")
	// Writes go on being acknowledged; their replication pends.
	p.put("cut", 240)
	waitUntil(t, 10*time.Second, "the backlog to count the writes made during the cut", func() bool { return p.pending() == 240 })
	last := p.acks[len(p.acks)-1]
	head, err := p.wc.HeadObject(p.ctx, &s3.HeadObjectInput{Bucket: p.src, Key: aws.String(last.key), VersionId: aws.String(last.versionID)})
	if err != nil || head.ReplicationStatus != types.ReplicationStatusPending {
		t.Fatalf("a version written during the cut: status %v, %v; want PENDING", head.ReplicationStatus, err)
	}
	p.forwardsFailFast()
	user := p.iamDuringCut()
	copyJob := p.copyRetries(point)
	if f := p.failed(); f != 0 {
		t.Fatalf("%v replication operations failed during the cut; want them pending", f)
	}
	t.Logf("backlog at the end of the cut: %v operations, %.0f KiB", p.pending(),
		metricSum(t, p.west.url, p.westDir, "bulwark_replication_pending_bytes")/1024)

	// Slow and lossy: replication gets through, if slowly.
	p.nw.slow()
	slowAt := time.Now()
	p.put("slow", 40)
	before := p.pending()
	waitUntil(t, time.Minute, "replication to make progress over the slow link", func() bool { return p.pending() <= before-20 })
	took, err := timed(func(ctx context.Context) error {
		_, err := p.wc.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: p.dst, MaxKeys: aws.Int32(10)})
		return err
	})
	t.Logf("over the slow link: %v replication operations in %v; a forwarded list took %v (%v)",
		before-p.pending(), time.Since(slowAt).Round(time.Second), took.Round(time.Millisecond), err)

	p.nw.heal()
	healAt := time.Now()
	backlog := p.pending()
	waitUntil(t, 2*time.Minute, "replication to catch up after the heal", func() bool { return p.pending() == 0 })
	drained := time.Since(healAt)
	if f := p.failed(); f != 0 {
		t.Fatalf("%v replication operations failed", f)
	}
	for _, a := range p.acks {
		wantReplica(t, p.ctx, p.ec, p.dst, a)
		h, err := p.wc.HeadObject(p.ctx, &s3.HeadObjectInput{Bucket: p.src, Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
		if err != nil || h.ReplicationStatus != types.ReplicationStatusCompleted {
			t.Fatalf("source %s %s: status %v, %v; want COMPLETED", a.key, a.versionID, h.ReplicationStatus, err)
		}
	}
	waitUntil(t, 2*time.Minute, "the copy job to complete", func() bool {
		state, msg := copyJob()
		if state == "FAILED" {
			t.Fatalf("copy job failed: %s", msg)
		}
		return state == "COMPLETED"
	})
	copied := time.Since(healAt)
	waitUntil(t, 30*time.Second, "the IAM user made during the cut to work in us-east-1", func() bool {
		_, err := user.ListObjectsV2(p.ctx, &s3.ListObjectsV2Input{Bucket: p.dst})
		return err == nil
	})
	t.Logf("heal: a backlog of %v operations drained in %v, the copy job completed in %v; %d acknowledged versions replicated, none failed",
		backlog, drained.Round(100*time.Millisecond), copied.Round(100*time.Millisecond), len(p.acks))
}

// partitioned is TestPartition's deployment: two regions across a link the
// test controls, a bucket in us-west-2 replicating to one in us-east-1, and
// the writes us-west-2 acknowledged.
type partitioned struct {
	t          *testing.T
	ctx        context.Context
	nw         *network
	west, east *process
	westDir    string
	wc, ec     *s3.Client
	bc         *awsbackup.Client // us-west-2's
	src, dst   *string

	mu   sync.Mutex
	acks []written
}

func startPartitioned(t *testing.T) *partitioned {
	nw := newNetwork(t)
	bin := buildBinary(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "topology.yaml")
	topo := fmt.Sprintf("regions:\n  - name: us-west-2\n    endpoint: http://%s:9000\n  - name: us-east-1\n    endpoint: http://%s:9000\n",
		nw.linkAddr[0], nw.linkAddr[1])
	if err := os.WriteFile(config, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	// The regions listen on every address of their namespace: the link's,
	// which the topology names, and the one the test reaches them at.
	start := func(i int, region, data string) *process {
		p := startCommand(t, nw.command(i, bin, "serve", "--region", region, "--config", config, "--data", data, "--listen", "0.0.0.0:9000"))
		p.url = "http://" + nw.clientAddr[i] + ":9000"
		return p
	}
	p := &partitioned{t: t, ctx: context.Background(), nw: nw, westDir: filepath.Join(dir, "west")}
	t.Cleanup(func() { // after the processes are gone: cleanups run last first
		if t.Failed() && p.east != nil {
			t.Logf("us-west-2's log:\n%s\nus-east-1's log:\n%s", p.west.log, p.east.log)
		}
	})
	p.west = start(0, "us-west-2", p.westDir)
	p.east = start(1, "us-east-1", filepath.Join(dir, "east"))
	p.wc = servertest.NewClient(p.west.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	p.ec = servertest.NewClient(p.east.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	p.bc = awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(p.west.url), Region: "us-west-2", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	p.src, p.dst = replicatedBuckets(t, p.ctx, p.wc, p.ec)
	return p
}

func (p *partitioned) pending() int {
	return int(metricSum(p.t, p.west.url, p.westDir, "bulwark_replication_pending_operations"))
}

func (p *partitioned) failed() float64 {
	return metricSum(p.t, p.west.url, p.westDir, "bulwark_replication_failed_operations")
}

// put writes n objects to the source with 8 clients, overwriting keys to
// make versions, and keeps what was acknowledged. Every write must be.
func (p *partitioned) put(prefix string, n int) {
	p.t.Helper()
	var (
		wg    sync.WaitGroup
		wrote = true
	)
	for w := range 8 {
		wg.Go(func() {
			for i := w; i < n; i += 8 {
				data := make([]byte, 1+(i*4099)%(24<<10))
				_, _ = rand.Read(data)
				key := fmt.Sprintf("%s/k%03d", prefix, i%(n/2))
				out, err := p.wc.PutObject(p.ctx, &s3.PutObjectInput{Bucket: p.src, Key: aws.String(key), Body: bytes.NewReader(data)})
				p.mu.Lock()
				if err != nil {
					p.t.Errorf("write %s to us-west-2: %v", key, err)
					wrote = false
				} else {
					p.acks = append(p.acks, written{key: key, versionID: aws.ToString(out.VersionId), sum: sha256.Sum256(data)})
				}
				p.mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if !wrote {
		p.t.FailNow()
	}
}

// forwardsFailFast checks, with the link cut, that requests us-west-2
// forwards to us-east-1 fail fast with a 503 naming it: for its bucket
// (whose home us-west-2 remembers) and for a bucket nobody has seen, which
// us-east-1 might hold. ListBuckets answers with us-west-2's buckets.
func (p *partitioned) forwardsFailFast() {
	t := p.t
	var forwards []time.Duration
	for i := range 6 {
		bucket := p.dst
		if i == 5 {
			bucket = aws.String("never-created-anywhere")
		}
		took, err := timed(func(ctx context.Context) error {
			if i%2 == 0 {
				_, err := p.wc.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: bucket})
				return err
			}
			_, err := p.wc.PutObject(ctx, &s3.PutObjectInput{Bucket: bucket, Key: aws.String("during-cut"), Body: strings.NewReader("x")})
			return err
		})
		wantUnavailable(t, err, "us-east-1", "forwarded request")
		if took > failStalled {
			t.Errorf("forwarded request %d took %v to fail", i, took.Round(time.Millisecond))
		}
		forwards = append(forwards, took)
	}
	if p50 := percentile(forwards, 50); p50 > failFast {
		t.Errorf("forwarded requests took %v (median) to fail: %v", p50, roundAll(forwards))
	}
	listTook, err := timed(func(ctx context.Context) error {
		out, err := p.wc.ListBuckets(ctx, &s3.ListBucketsInput{})
		if err == nil && (len(out.Buckets) != 1 || aws.ToString(out.Buckets[0].Name) != "source-bucket-name") {
			err = fmt.Errorf("listed %d buckets, want us-west-2's one", len(out.Buckets))
		}
		return err
	})
	if err != nil || listTook > failStalled {
		t.Errorf("ListBuckets in us-west-2 during the cut: %v after %v", err, listTook)
	}
	t.Logf("cut: forwarded requests failed in p50 %v, max %v %v; ListBuckets in us-west-2 took %v",
		percentile(forwards, 50), percentile(forwards, 100), roundAll(forwards), listTook.Round(time.Millisecond))
}

// iamDuringCut checks, with the link cut, that IAM changes in us-west-2,
// IAM's home, do not wait for us-east-1, and that us-east-1 goes on
// serving: known keys at once, the new key refused as unknown there, IAM
// writes refused as its home does not answer. It returns a us-east-1
// client with the new user's key, allowed to list the destination bucket.
func (p *partitioned) iamDuringCut() *s3.Client {
	t := p.t
	ic := iamClient(p.west.url, servertest.AccessKey, servertest.SecretKey)
	var key *awsiam.CreateAccessKeyOutput
	iamTook, err := timed(func(ctx context.Context) error {
		if _, err := ic.CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("partition-user")}); err != nil {
			return err
		}
		if _, err := ic.PutUserPolicy(ctx, &awsiam.PutUserPolicyInput{UserName: aws.String("partition-user"), PolicyName: aws.String("read-replica"),
			PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::dest-bucket-name-us-east-1"}]}`)}); err != nil {
			return err
		}
		var err error
		key, err = ic.CreateAccessKey(ctx, &awsiam.CreateAccessKeyInput{UserName: aws.String("partition-user")})
		return err
	})
	if err != nil || iamTook > time.Second {
		t.Fatalf("IAM changes in us-west-2 during the cut: %v after %v", err, iamTook)
	}
	user := servertest.NewClient(p.east.url, "us-east-1", aws.ToString(key.AccessKey.AccessKeyId), aws.ToString(key.AccessKey.SecretAccessKey), nil)
	var known, unknown []time.Duration
	for range 3 {
		took, err := timed(func(ctx context.Context) error {
			_, err := p.ec.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: p.dst})
			return err
		})
		if err != nil || took > failFast {
			t.Errorf("us-east-1's own bucket in us-east-1 during the cut: %v after %v", err, took)
		}
		known = append(known, took)
		took, err = timed(func(ctx context.Context) error {
			_, err := user.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: p.dst})
			return err
		})
		// us-east-1 has found its IAM home unreachable by now: it does
		// not ask again for every key it lacks.
		if code, _ := servertest.APICode(err); code != "InvalidAccessKeyId" || took > failFast {
			t.Errorf("a key us-east-1 cannot know yet: %v after %v", err, took)
		}
		unknown = append(unknown, took)
	}
	took, err := timed(func(ctx context.Context) error {
		_, err := iamClient(p.east.url, servertest.AccessKey, servertest.SecretKey).CreateUser(ctx, &awsiam.CreateUserInput{UserName: aws.String("not-made")})
		return err
	})
	wantUnavailable(t, err, "us-west-2", "IAM write through us-east-1")
	if took > failStalled {
		t.Errorf("IAM write through us-east-1 took %v to fail", took)
	}
	t.Logf("cut: IAM changes in us-west-2 took %v; in us-east-1, known keys answered in %v, the new key refused in %v, an IAM write refused in %v",
		iamTook.Round(time.Millisecond), roundAll(known), roundAll(unknown), took.Round(time.Millisecond))
	return user
}

// copyRetries starts, with the link cut, a copy of point into us-east-1's
// Default vault and checks that it retries, naming us-east-1, rather than
// fail. It returns a function that reads the job's state and message.
func (p *partitioned) copyRetries(point *string) func() (state, msg string) {
	t := p.t
	cj, err := p.bc.StartCopyJob(p.ctx, &awsbackup.StartCopyJobInput{RecoveryPointArn: point, SourceBackupVaultName: aws.String("Default"),
		DestinationBackupVaultArn: aws.String("arn:aws:backup:us-east-1:" + servertest.AccountID + ":backup-vault:Default"), IamRoleArn: backupRole})
	if err != nil {
		t.Fatal(err)
	}
	copyJob := func() (state, msg string) {
		d, err := p.bc.DescribeCopyJob(p.ctx, &awsbackup.DescribeCopyJobInput{CopyJobId: cj.CopyJobId})
		if err != nil {
			t.Fatal(err)
		}
		return string(d.CopyJob.State), aws.ToString(d.CopyJob.StatusMessage)
	}
	waitUntil(t, time.Minute, "the copy job to retry", func() bool {
		state, msg := copyJob()
		if state != "RUNNING" && state != "CREATED" {
			t.Fatalf("copy job during the cut: %s %s", state, msg)
		}
		return strings.Contains(msg, "us-east-1") && strings.Contains(msg, "Retrying")
	})
	return copyJob
}

// timed runs call with the test's call limit and returns how long it took.
func timed(call func(ctx context.Context) error) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callLimit)
	defer cancel()
	start := time.Now()
	err := call(ctx)
	return time.Since(start), err
}

// wantUnavailable fails the test unless err is a 503 whose message names
// region.
func wantUnavailable(t *testing.T, err error, region, what string) {
	t.Helper()
	code, status := servertest.APICode(err)
	var ae smithy.APIError
	if status != 503 || code != "ServiceUnavailable" || !errors.As(err, &ae) || !strings.Contains(ae.ErrorMessage(), region) {
		t.Errorf("%s: %v; want a 503 ServiceUnavailable naming %s", what, err, region)
	}
}

func iamClient(url, ak, sk string) *awsiam.Client {
	return awsiam.New(awsiam.Options{BaseEndpoint: aws.String(url), Region: "us-east-1", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(ak, sk, "")})
}

// percentile returns the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)].Round(time.Millisecond)
}

func roundAll(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}
