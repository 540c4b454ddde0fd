package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/server/servertest"
	"github.com/bulwark/bulwark/internal/topology"
)

const replicationRole = "arn:aws:iam::111122223333:role/s3-replication-role"

// admin signs calls to an admin API of one endpoint: the replication API
// unless base says another.
type admin struct {
	t               *testing.T
	endpoint        string
	base            string // path the calls' paths are under
	region          string // to sign for
	ak, sk          string
	token           string // session token, for temporary credentials
	hc              *http.Client
	forwardedHeader string // sent as X-Bulwark-Forwarded when set
}

func newAdmin(t *testing.T, r *servertest.Region, ak, sk string) *admin {
	return &admin{t: t, endpoint: r.URL(), base: "/_bulwark/v1/replication/", region: r.Store.Region(), ak: ak, sk: sk, hc: r.HTTPClient(t)}
}

// call sends a signed request (unsigned when ak is "") and returns the
// status and the body.
func (a *admin) call(method, path string, body []byte) (int, []byte) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.endpoint+a.base+path, bytes.NewReader(body))
	if err != nil {
		a.t.Fatal(err)
	}
	if a.forwardedHeader != "" {
		req.Header.Set("X-Bulwark-Forwarded", a.forwardedHeader)
	}
	if a.ak != "" {
		sum := sha256.Sum256(body)
		hash := hex.EncodeToString(sum[:])
		req.Header.Set("X-Amz-Content-Sha256", hash)
		signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
		creds := aws.Credentials{AccessKeyID: a.ak, SecretAccessKey: a.sk, SessionToken: a.token}
		if err := signer.SignHTTP(context.Background(), creds, req, hash, "s3", a.region, time.Now()); err != nil {
			a.t.Fatal(err)
		}
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// ok calls and decodes a 2xx answer into out.
func (a *admin) ok(method, path string, body []byte, out any) {
	a.t.Helper()
	status, raw := a.call(method, path, body)
	if status/100 != 2 {
		a.t.Fatalf("%s %s: %d %s", method, path, status, raw)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		a.t.Fatalf("%s %s: %v: %s", method, path, err, raw)
	}
}

// fails calls and checks the error answer.
func (a *admin) fails(method, path string, body []byte, status int, code string) string {
	a.t.Helper()
	got, raw := a.call(method, path, body)
	var e struct{ Code, Message string }
	_ = json.Unmarshal(raw, &e)
	if got != status || e.Code != code {
		a.t.Fatalf("%s %s: got %d %s, want %d %s", method, path, got, raw, status, code)
	}
	return e.Message
}

type apiJob struct {
	replication.Job
	Region string `json:"region"`
}

// waitJob polls a job until it ends.
func (a *admin) waitJob(path string) apiJob {
	a.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var j apiJob
		a.ok(http.MethodGet, path, nil, &j)
		if j.State == replication.JobCompleted || j.State == replication.JobFailed {
			return j
		}
		if time.Now().After(deadline) {
			a.t.Fatalf("job did not end: %+v", j)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// versionedBucket creates a versioned bucket in region through c.
func versionedBucket(t *testing.T, c *s3.Client, name, region string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatalf("enable versioning on %s: %v", name, err)
	}
}

func replicateAll(t *testing.T, c *s3.Client, src, dst string) {
	t.Helper()
	_, err := c.PutBucketReplication(context.Background(), &s3.PutBucketReplicationInput{Bucket: aws.String(src),
		ReplicationConfiguration: &types.ReplicationConfiguration{Role: aws.String(replicationRole), Rules: []types.ReplicationRule{{
			ID: aws.String("all"), Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
			Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::" + dst)},
		}}}})
	if err != nil {
		t.Fatalf("put replication on %s: %v", src, err)
	}
}

func putObject(t *testing.T, c *s3.Client, bucket, key, body string) string {
	t.Helper()
	out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)})
	if err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
	return aws.ToString(out.VersionId)
}

// TestReplicationAPI drives every call of the admin API against one
// region: a resync job replicates the versions written before the rule.
func TestReplicationAPI(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	versionedBucket(t, c, "src", "us-west-2")
	versionedBucket(t, c, "dst", "us-west-2")
	versionedBucket(t, c, "reports", "us-west-2")
	before := []string{putObject(t, c, "src", "a", "1"), putObject(t, c, "src", "b", "22")}
	replicateAll(t, c, "src", "dst")
	a := newAdmin(t, r, servertest.AccessKey, servertest.SecretKey)

	var diff replication.DiffReport
	a.ok(http.MethodGet, "diff?bucket=src", nil, &diff)
	if len(diff.Differences) != 2 || diff.Differences[0].Kind != replication.DiffMissing || diff.Compared != 2 {
		t.Fatalf("diff before the job: %+v", diff)
	}

	var j apiJob
	a.ok(http.MethodPost, "jobs", []byte(`{"bucket":"src","reportBucket":"reports","reportPrefix":"r/"}`), &j)
	if j.ID == "" || j.Region != "us-west-2" || j.Status != replication.ResyncNone {
		t.Fatalf("created job: %+v", j)
	}
	j = a.waitJob("jobs/" + j.ID)
	if j.State != replication.JobCompleted || j.Replicated != 2 || j.Total != 2 || j.ReportKey != "r/replication-job-"+j.ID+".csv" {
		t.Fatalf("finished job: %+v", j)
	}
	vs, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String("dst")})
	if err != nil {
		t.Fatal(err)
	}
	if len(vs.Versions) != 2 || aws.ToString(vs.Versions[0].VersionId) != before[0] || aws.ToString(vs.Versions[1].VersionId) != before[1] {
		t.Fatalf("destination versions: %+v, want %v", vs.Versions, before)
	}

	var list struct {
		Region string   `json:"region"`
		Jobs   []apiJob `json:"jobs"`
	}
	a.ok(http.MethodGet, "jobs", nil, &list)
	if list.Region != "us-west-2" || len(list.Jobs) != 1 || list.Jobs[0].ID != j.ID || list.Jobs[0].Region != "us-west-2" {
		t.Fatalf("jobs: %+v", list)
	}
	var rep struct {
		ID   string                  `json:"id"`
		Rows []replication.ReportRow `json:"rows"`
	}
	a.ok(http.MethodGet, "jobs/"+j.ID+"/report", nil, &rep)
	if rep.ID != j.ID || len(rep.Rows) != 2 || rep.Rows[0].Outcome != "REPLICATED" {
		t.Fatalf("report: %+v", rep)
	}

	var st struct {
		Region string                   `json:"region"`
		Rules  []replication.RuleStatus `json:"rules"`
	}
	a.ok(http.MethodGet, "status?bucket=src", nil, &st)
	if st.Region != "us-west-2" || len(st.Rules) != 1 {
		t.Fatalf("status: %+v", st)
	}
	if s := st.Rules[0]; s.Bucket != "src" || s.Rule != "all" || s.Destination != "dst" || s.DestinationRegion != "us-west-2" ||
		!s.Reachable || s.PendingOps != 0 || s.FailedOps != 0 {
		t.Fatalf("rule status: %+v", s)
	}
	a.ok(http.MethodGet, "status", nil, &st)
	if len(st.Rules) != 1 || st.Rules[0].Bucket != "src" {
		t.Fatalf("status of every bucket: %+v", st)
	}
	var retried map[string]int
	a.ok(http.MethodPost, "retry?bucket=src", nil, &retried)
	if n, ok := retried["requeued"]; !ok || n != 0 {
		t.Fatalf("retry: %v", retried)
	}
	a.ok(http.MethodGet, "diff?bucket=src", nil, &diff)
	if len(diff.Differences) != 0 || diff.Compared != 2 || len(diff.Destinations) != 1 {
		t.Fatalf("diff after the job: %+v", diff)
	}

	// What a client gets wrong.
	a.fails(http.MethodGet, "status?bucket=nope", nil, 404, "NoSuchBucket")
	a.fails(http.MethodGet, "diff?bucket=nope", nil, 404, "NoSuchBucket")
	a.fails(http.MethodGet, "diff", nil, 400, "InvalidRequest")
	a.fails(http.MethodGet, "diff?bucket=dst", nil, 400, "InvalidRequest") // no rules
	a.fails(http.MethodGet, "jobs/0123456789abcdef", nil, 404, "NoSuchJob")
	a.fails(http.MethodGet, "jobs/0123456789abcdef/report", nil, 404, "NoSuchJob")
	a.fails(http.MethodPost, "jobs", []byte(`{"bucket":"src","status":"SOME"}`), 400, "InvalidRequest")
	a.fails(http.MethodPost, "jobs", []byte(`{"bucket":"dst"}`), 400, "InvalidRequest")
	a.fails(http.MethodPost, "jobs", []byte(`{"bucket":"src","reportBucket":"nope"}`), 400, "InvalidRequest")
	a.fails(http.MethodPost, "jobs", []byte(`{"bucket":"src","bogus":1}`), 400, "InvalidRequest")
	a.fails(http.MethodPost, "jobs", []byte(`{`), 400, "InvalidRequest")
	a.fails(http.MethodPost, "jobs", []byte(`{}`), 400, "InvalidRequest")
	a.fails(http.MethodPost, "jobs", []byte(`{"bucket":"nope"}`), 404, "NoSuchBucket")
	a.fails(http.MethodGet, "jobs?region=mars-1", nil, 400, "InvalidRequest")
}

// TestReplicationAPIAuthorization checks that an account sees and touches
// only its own buckets' replication, and that an unsigned call is refused.
func TestReplicationAPIAuthorization(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	versionedBucket(t, c, "src", "us-west-2")
	versionedBucket(t, c, "dst", "us-west-2")
	replicateAll(t, c, "src", "dst")
	putObject(t, c, "src", "k", "v")
	owner := newAdmin(t, r, servertest.AccessKey, servertest.SecretKey)
	var j apiJob
	owner.ok(http.MethodPost, "jobs", []byte(`{"bucket":"src","status":"ALL"}`), &j)
	owner.waitJob("jobs/" + j.ID)

	other := newAdmin(t, r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	other.fails(http.MethodGet, "status?bucket=src", nil, 403, "AccessDenied")
	other.fails(http.MethodPost, "retry?bucket=src", nil, 403, "AccessDenied")
	other.fails(http.MethodGet, "diff?bucket=src", nil, 403, "AccessDenied")
	other.fails(http.MethodPost, "jobs", []byte(`{"bucket":"src"}`), 403, "AccessDenied")
	// Jobs are their account's: another account's job is no job at all.
	other.fails(http.MethodGet, "jobs/"+j.ID, nil, 404, "NoSuchJob")
	other.fails(http.MethodGet, "jobs/"+j.ID+"/report", nil, 404, "NoSuchJob")
	var st struct{ Rules []replication.RuleStatus }
	other.ok(http.MethodGet, "status", nil, &st)
	if len(st.Rules) != 0 {
		t.Fatalf("another account's status lists %+v", st.Rules)
	}
	var list struct{ Jobs []apiJob }
	other.ok(http.MethodGet, "jobs", nil, &list)
	if len(list.Jobs) != 0 {
		t.Fatalf("another account's jobs list %+v", list.Jobs)
	}
	var retried map[string]int
	other.ok(http.MethodPost, "retry", nil, &retried)
	if retried["requeued"] != 0 {
		t.Fatalf("retry of another account's failures: %v", retried)
	}

	// The other account's own source bucket may not report into the
	// first account's bucket.
	oc := servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, nil)
	versionedBucket(t, oc, "other-src", "us-west-2")
	versionedBucket(t, oc, "other-dst", "us-west-2")
	replicateAll(t, oc, "other-src", "other-dst")
	other.fails(http.MethodPost, "jobs", []byte(`{"bucket":"other-src","reportBucket":"src"}`), 403, "AccessDenied")

	unsigned := newAdmin(t, r, "", "")
	unsigned.fails(http.MethodGet, "status?bucket=src", nil, 403, "AccessDenied")
	unsigned.fails(http.MethodPost, "jobs", []byte(`{"bucket":"src"}`), 403, "AccessDenied")
	wrong := newAdmin(t, r, servertest.AccessKey, "not-the-secret")
	wrong.fails(http.MethodGet, "status", nil, 403, "AccessDenied")
}

// TestReplicationAPIForwardsToHomeRegion calls one region about a bucket
// homed in another: the home region answers, and runs the jobs.
func TestReplicationAPIForwardsToHomeRegion(t *testing.T) {
	topo, err := topology.New(topology.Region{Name: "us-west-2"}, topology.Region{Name: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	west := servertest.Start(t, servertest.Options{Region: "us-west-2", Topology: topo})
	east := servertest.Start(t, servertest.Options{Region: "us-east-1", Topology: topo})
	c := west.Client(t)
	versionedBucket(t, c, "east-src", "us-east-1")
	versionedBucket(t, c, "east-dst", "us-east-1")
	putObject(t, c, "east-src", "old", "written before the rule")
	replicateAll(t, c, "east-src", "east-dst")

	a := newAdmin(t, west, servertest.AccessKey, servertest.SecretKey)
	var st struct {
		Region string
		Rules  []replication.RuleStatus
	}
	a.ok(http.MethodGet, "status?bucket=east-src", nil, &st)
	if st.Region != "us-east-1" || len(st.Rules) != 1 || st.Rules[0].Destination != "east-dst" {
		t.Fatalf("status through us-west-2: %+v", st)
	}
	var j apiJob
	a.ok(http.MethodPost, "jobs", []byte(`{"bucket":"east-src"}`), &j)
	if j.Region != "us-east-1" {
		t.Fatalf("job made through us-west-2 runs in %q", j.Region)
	}
	// Job IDs are per region: us-west-2 has none of its own by that ID,
	// and passes the call on when told where the job runs.
	a.fails(http.MethodGet, "jobs/"+j.ID, nil, 404, "NoSuchJob")
	if j = a.waitJob("jobs/" + j.ID + "?region=us-east-1"); j.State != replication.JobCompleted || j.Replicated != 1 {
		t.Fatalf("job: %+v", j)
	}
	var diff replication.DiffReport
	a.ok(http.MethodGet, "diff?bucket=east-src", nil, &diff)
	if len(diff.Differences) != 0 || diff.Compared != 1 {
		t.Fatalf("diff through us-west-2: %+v", diff)
	}
	// The other account is refused by the home region.
	newAdmin(t, west, servertest.OtherAccessKey, servertest.OtherSecretKey).
		fails(http.MethodGet, "status?bucket=east-src", nil, 403, "AccessDenied")

	// A call another region passed on is answered where it lands.
	a.forwardedHeader = "us-east-1"
	a.fails(http.MethodGet, "status?bucket=east-src", nil, 404, "NoSuchBucket")
	a.forwardedHeader = ""

	// The home region goes down: the call fails fast, naming it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	topo.SetEndpoint("us-east-1", dead)
	_ = east // closed at the end of the test; its endpoint is what is gone
	start := time.Now()
	msg := a.fails(http.MethodGet, "status?bucket=east-src", nil, 503, "ServiceUnavailable")
	if !strings.Contains(msg, "us-east-1") || !strings.Contains(msg, "east-src") {
		t.Fatalf("unreachable home: %q", msg)
	}
	msg = a.fails(http.MethodGet, "jobs/"+j.ID+"?region=us-east-1", nil, 503, "ServiceUnavailable")
	if !strings.Contains(msg, "us-east-1") {
		t.Fatalf("unreachable job region: %q", msg)
	}
	if d := time.Since(start); d > 2*topology.DialTimeout {
		t.Fatalf("took %v to report the region down", d)
	}
}

// TestReplicationAPIFailuresAndRetry replicates into a bucket the source's
// owner may not write: status groups the failures, retry queues them again.
func TestReplicationAPIFailuresAndRetry(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	oc := servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, nil)
	versionedBucket(t, c, "src", "us-west-2")
	versionedBucket(t, oc, "foreign-dst", "us-west-2")
	replicateAll(t, c, "src", "foreign-dst")
	putObject(t, c, "src", "k1", "v")
	putObject(t, c, "src", "k2", "v")
	a := newAdmin(t, r, servertest.AccessKey, servertest.SecretKey)

	var st struct{ Rules []replication.RuleStatus }
	deadline := time.Now().Add(20 * time.Second)
	for {
		a.ok(http.MethodGet, "status", nil, &st)
		if len(st.Rules) == 1 && st.Rules[0].FailedOps == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f := st.Rules[0].Failures
	if len(f) != 1 || f[0].Code != "AccessDenied" || f[0].Count != 2 || f[0].ExampleKey == "" || f[0].Reason == "" {
		t.Fatalf("failures: %+v", f)
	}
	var retried map[string]int
	other := newAdmin(t, r, servertest.OtherAccessKey, servertest.OtherSecretKey)
	if other.ok(http.MethodPost, "retry", nil, &retried); retried["requeued"] != 0 {
		t.Fatalf("another account's retry of every bucket: %v", retried)
	}
	a.ok(http.MethodPost, "retry", nil, &retried)
	if retried["requeued"] != 2 {
		t.Fatalf("retry of every bucket: %v", retried)
	}
	// They fail again, and a bucket's retry takes them back.
	for deadline := time.Now().Add(20 * time.Second); ; {
		a.ok(http.MethodGet, "status?bucket=src", nil, &st)
		if len(st.Rules) == 1 && st.Rules[0].FailedOps == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after retry: %+v", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
	a.ok(http.MethodPost, "retry?bucket=src", nil, &retried)
	if retried["requeued"] != 2 {
		t.Fatalf("retry of src: %v", retried)
	}
}
