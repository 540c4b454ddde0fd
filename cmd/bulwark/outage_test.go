package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsiam "github.com/aws/aws-sdk-go-v2/service/iam"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// freePort returns a loopback address nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startRegion runs `bulwark serve --region R --config topology.yaml`.
func startRegion(t *testing.T, bin, region, config, dataDir string) *process {
	t.Helper()
	return startProcess(t, bin, "serve", "--region", region, "--config", config, "--data", dataDir)
}

func (p *process) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
}

// metricSum adds up every series of a metric on a region's /metrics,
// read with the bearer token serve keeps in the region's data directory.
func metricSum(t *testing.T, url, dataDir, name string) float64 {
	t.Helper()
	token, err := os.ReadFile(filepath.Join(dataDir, "metrics-token"))
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, url+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

// written is what the source acknowledged: a version with its content
// digest, or a delete marker.
type written struct {
	key, versionID string
	sum            [32]byte
	deleteMarker   bool
}

// TestOutageLosesNothing runs two regions as two `bulwark serve` processes.
// With the destination region down, the source takes 2,000 writes (small
// objects, overwrites, 50 MiB multipart uploads, delete markers, tag
// changes) and is killed with SIGKILL and restarted halfway. Once the
// destination is back, every version arrives with the same version ID and
// content, tags match, the backlog returns to zero and no version is
// duplicated.
func TestOutageLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("outage test runs real processes; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	westAddr, eastAddr := freePort(t), freePort(t)
	config := filepath.Join(dir, "topology.yaml")
	topo := fmt.Sprintf("regions:\n  - name: us-west-2\n    endpoint: http://%s\n  - name: us-east-1\n    endpoint: http://%s\n", westAddr, eastAddr)
	if err := os.WriteFile(config, []byte(topo), 0o600); err != nil {
		t.Fatal(err)
	}
	westDir, eastDir := filepath.Join(dir, "west"), filepath.Join(dir, "east")
	west := startRegion(t, bin, "us-west-2", config, westDir)
	east := startRegion(t, bin, "us-east-1", config, eastDir)
	ctx := context.Background()
	wc := servertest.NewClient(west.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	ec := servertest.NewClient(east.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	src, dst := replicatedBuckets(t, ctx, wc, ec)

	// Tag changes replicate when the role may read and replicate tags,
	// beyond the article's three permissions: granted through the IAM API.
	ic := awsiam.New(awsiam.Options{BaseEndpoint: aws.String(west.url), Region: "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	if _, err := ic.PutRolePolicy(ctx, &awsiam.PutRolePolicyInput{RoleName: aws.String("s3-replication-role"), PolicyName: aws.String("tags"),
		PolicyDocument: aws.String(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObjectVersionTagging","s3:ReplicateTags"],"Resource":"*"}]}`)}); err != nil {
		t.Fatal(err)
	}

	east.kill(t)

	var (
		mu   sync.Mutex
		acks []written
		tags = map[string]string{} // key@version -> tag value last acknowledged
		ops  int                   // replication operations the acknowledged writes make
	)
	record := func(w written, n int) {
		mu.Lock()
		acks = append(acks, w)
		ops += n
		mu.Unlock()
	}
	// write does the i-th of the 2,000 writes; it returns false once the
	// source is gone.
	write := func(c *s3.Client, i int) bool {
		key := fmt.Sprintf("k%04d", i%600) // overwrites
		switch {
		case i%400 == 7: // a 50 MiB multipart object
			return multipart50(t, ctx, c, src, fmt.Sprintf("big/%d", i), record)
		case i%40 == 3: // a delete marker
			out, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: src, Key: aws.String(key)})
			if err != nil {
				return false
			}
			record(written{key: key, versionID: aws.ToString(out.VersionId), deleteMarker: true}, 1)
		case i%40 == 5: // a tag change on the latest version
			out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: src, Key: aws.String(key), Body: bytes.NewReader([]byte(key))})
			if err != nil {
				return false
			}
			record(written{key: key, versionID: aws.ToString(out.VersionId), sum: sha256.Sum256([]byte(key))}, 1)
			v := fmt.Sprintf("t%d", i)
			if _, err := c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: src, Key: aws.String(key), VersionId: out.VersionId,
				Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("n"), Value: aws.String(v)}}}}); err != nil {
				return false
			}
			mu.Lock()
			tags[key+"@"+aws.ToString(out.VersionId)] = v
			ops++
			mu.Unlock()
		default:
			data := make([]byte, 1+i%(8<<10))
			_, _ = rand.Read(data)
			out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: src, Key: aws.String(key), Body: bytes.NewReader(data)})
			if err != nil {
				return false
			}
			record(written{key: key, versionID: aws.ToString(out.VersionId), sum: sha256.Sum256(data)}, 1)
		}
		return true
	}
	run := func(c *s3.Client, from, to int) {
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := from + w; i < to; i += 8 {
					if !write(c, i) {
						return
					}
				}
			}()
		}
		wg.Wait()
	}

	// waitBacklog waits for the backlog metric to count every operation
	// written: the dispatcher may still be turning the last changes into
	// tasks.
	waitBacklog := func(why string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			got := metricSum(t, west.url, westDir, "bulwark_replication_pending_operations")
			if int(got) == ops {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: backlog metric %v, want the %d operations written while the destination is down", why, got, ops)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	run(wc, 0, 1000)
	// Killed at once, with changes perhaps not yet turned into tasks.
	west.kill(t)
	west = startRegion(t, bin, "us-west-2", config, westDir)
	waitBacklog("after SIGKILL and restart")
	wc = servertest.NewClient(west.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	run(wc, 1000, 2000)
	waitBacklog("with the destination down")
	if b := metricSum(t, west.url, westDir, "bulwark_replication_pending_bytes"); b < 100<<20 {
		t.Fatalf("pending bytes %v: the two 50 MiB objects alone are more", b)
	}

	east = startRegion(t, bin, "us-east-1", config, eastDir)
	ec = servertest.NewClient(east.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	deadline := time.Now().Add(3 * time.Minute)
	for metricSum(t, west.url, westDir, "bulwark_replication_pending_operations") > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog still %v after 3 minutes\n%s", metricSum(t, west.url, westDir, "bulwark_replication_pending_operations"), west.log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if f := metricSum(t, west.url, westDir, "bulwark_replication_failed_operations"); f != 0 {
		t.Fatalf("%v operations failed", f)
	}

	// Every acknowledged version is in the destination, same ID, same bytes.
	for _, a := range acks {
		wantReplica(t, ctx, ec, dst, a)
		if v, ok := tags[a.key+"@"+a.versionID]; ok {
			tg, err := ec.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: dst, Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
			if err != nil || len(tg.TagSet) != 1 || aws.ToString(tg.TagSet[0].Value) != v {
				t.Fatalf("%s %s: tags not replicated (%v, %v)", a.key, a.versionID, tg, err)
			}
		}
	}
	// Same versions on both sides, each once.
	list := func(c *s3.Client, b *string) []string {
		var out []string
		p := s3.NewListObjectVersionsPaginator(c, &s3.ListObjectVersionsInput{Bucket: b})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, v := range page.Versions {
				out = append(out, aws.ToString(v.Key)+"@"+aws.ToString(v.VersionId)+"/"+aws.ToString(v.ETag))
			}
			for _, m := range page.DeleteMarkers {
				out = append(out, aws.ToString(m.Key)+"@"+aws.ToString(m.VersionId)+"/dm")
			}
		}
		return out
	}
	sv, dv := list(wc, src), list(ec, dst)
	if strings.Join(sv, "\n") != strings.Join(dv, "\n") {
		t.Fatalf("source has %d versions, destination %d: they differ", len(sv), len(dv))
	}
	t.Logf("%d writes acknowledged (%d replication operations) across a SIGKILL of the source with the destination down; all %d versions replicated, none twice", len(acks), ops, len(dv))
}

// replicatedBuckets makes the design article's setup: source-bucket-name in
// us-west-2 replicating to dest-bucket-name-us-east-1 in us-east-1, both
// versioned, with the article's replication rule.
func replicatedBuckets(t *testing.T, ctx context.Context, wc, ec *s3.Client) (src, dst *string) {
	t.Helper()
	for _, b := range []struct {
		c      *s3.Client
		name   string
		region types.BucketLocationConstraint
	}{{wc, "source-bucket-name", "us-west-2"}, {ec, "dest-bucket-name-us-east-1", ""}} {
		in := &s3.CreateBucketInput{Bucket: aws.String(b.name)}
		if b.region != "" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: b.region}
		}
		if _, err := b.c.CreateBucket(ctx, in); err != nil {
			t.Fatal(err)
		}
		if _, err := b.c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b.name),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
	}
	src, dst = aws.String("source-bucket-name"), aws.String("dest-bucket-name-us-east-1")
	if _, err := wc.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: src, ReplicationConfiguration: &types.ReplicationConfiguration{
		Role: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/s3-replication-role"),
		Rules: []types.ReplicationRule{{ID: aws.String("replicate-all-objects"), Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
			Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::dest-bucket-name-us-east-1"), StorageClass: types.StorageClassStandard}}},
	}}); err != nil {
		t.Fatal(err)
	}
	return src, dst
}

// wantReplica fails the test unless the destination holds the version
// the source acknowledged: same version ID, same bytes, status REPLICA (or
// the same delete marker).
func wantReplica(t *testing.T, ctx context.Context, ec *s3.Client, dst *string, a written) {
	t.Helper()
	if a.deleteMarker {
		_, err := ec.HeadObject(ctx, &s3.HeadObjectInput{Bucket: dst, Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
		if err == nil || !strings.Contains(err.Error(), "405") {
			t.Fatalf("delete marker %s %s not replicated: %v", a.key, a.versionID, err)
		}
		return
	}
	out, err := ec.GetObject(ctx, &s3.GetObjectInput{Bucket: dst, Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
	if err != nil {
		t.Fatalf("%s %s not replicated: %v", a.key, a.versionID, err)
	}
	h := sha256.New()
	_, err = io.Copy(h, out.Body)
	out.Body.Close()
	if err != nil || !bytes.Equal(h.Sum(nil), a.sum[:]) || out.ReplicationStatus != types.ReplicationStatusReplica {
		t.Fatalf("%s %s: replica differs (status %q, %v)", a.key, a.versionID, out.ReplicationStatus, err)
	}
}

// multipart50 uploads a 50 MiB object in ten 5 MiB parts.
func multipart50(t *testing.T, ctx context.Context, c *s3.Client, bucket *string, key string, record func(written, int)) bool {
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: bucket, Key: aws.String(key)})
	if err != nil {
		return false
	}
	h := sha256.New()
	var parts []types.CompletedPart
	for n := int32(1); n <= 10; n++ {
		data := make([]byte, 5<<20)
		_, _ = rand.Read(data)
		h.Write(data)
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: bucket, Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(data)})
		if err != nil {
			return false
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: p.ETag})
	}
	out, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: bucket, Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	if err != nil {
		return false
	}
	var sum [32]byte
	copy(sum[:], h.Sum(nil))
	record(written{key: key, versionID: aws.ToString(out.VersionId), sum: sum}, 1)
	return true
}
