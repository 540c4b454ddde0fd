package cli_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/cli"
	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// run runs `bulwark replication args...` with env as the environment and
// returns the exit code and what it printed.
func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	return runCommand(t, env, append([]string{"replication"}, args...)...)
}

// runCommand runs `bulwark args...` with env as the environment.
func runCommand(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	m := &cli.Main{Stdout: &out, Stderr: &errOut, Getenv: func(k string) string { return env[k] }}
	code = m.Run(context.Background(), args)
	return code, out.String(), errOut.String()
}

// ownerEnv is the environment of the buckets' owner, calling endpoint.
func ownerEnv(endpoint string) map[string]string {
	return map[string]string{
		"BULWARK_ENDPOINT":      endpoint,
		"AWS_ACCESS_KEY_ID":     servertest.AccessKey,
		"AWS_SECRET_ACCESS_KEY": servertest.SecretKey,
	}
}

func versioned(t *testing.T, c *s3.Client, name, region string) {
	t.Helper()
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name),
		CreateBucketConfiguration: &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(region)}}); err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(name),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}
}

func replicate(t *testing.T, c *s3.Client, src, dst string) {
	t.Helper()
	_, err := c.PutBucketReplication(context.Background(), &s3.PutBucketReplicationInput{Bucket: aws.String(src),
		ReplicationConfiguration: &types.ReplicationConfiguration{
			Role: aws.String("arn:aws:iam::111122223333:role/s3-replication-role"),
			Rules: []types.ReplicationRule{{
				ID: aws.String("replicate-all-objects"), Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
				Destination: &types.Destination{Bucket: aws.String("arn:aws:s3:::" + dst)},
			}},
		}})
	if err != nil {
		t.Fatal(err)
	}
}

// putVersions writes keys and returns their version IDs, key by key.
func putVersions(t *testing.T, c *s3.Client, bucket string, keys ...string) map[string]string {
	t.Helper()
	ids := map[string]string{}
	for _, k := range keys {
		out, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(k), Body: strings.NewReader("data of " + k)})
		if err != nil {
			t.Fatal(err)
		}
		ids[k] = aws.ToString(out.VersionId)
	}
	return ids
}

func versionsOf(t *testing.T, c *s3.Client, bucket string) map[string]string {
	t.Helper()
	out, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{}
	for _, v := range out.Versions {
		ids[aws.ToString(v.Key)] = aws.ToString(v.VersionId)
	}
	return ids
}

// TestReplicationResyncAndDiff replicates, with a batch job, the versions
// written before the replication rule, and checks diff before and after.
func TestReplicationResyncAndDiff(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	env := ownerEnv(r.URL())
	versioned(t, c, "src", "us-west-2")
	versioned(t, c, "dst", "us-west-2")
	versioned(t, c, "reports", "us-west-2")
	want := putVersions(t, c, "src", "docs/a.txt", "docs/b.txt", "img/c.png")
	replicate(t, c, "src", "dst")

	code, out, errOut := run(t, env, "diff", "--bucket", "src")
	if code != 1 || strings.Count(out, "MISSING") != 3 || !strings.Contains(out, "3 differences (3 missing, 0 different, 0 extra)") {
		t.Fatalf("diff before the job: exit %d\n%s%s", code, out, errOut)
	}
	for k, v := range want {
		if !strings.Contains(out, k) || !strings.Contains(out, v) {
			t.Fatalf("diff does not name %s version %s:\n%s", k, v, out)
		}
	}

	code, out, errOut = run(t, env, "resync", "--bucket", "src", "--wait", "--report-bucket", "reports", "--report-prefix", "jobs/")
	if code != 0 || !strings.Contains(out, "COMPLETED") || !strings.Contains(out, "3 replicated, 0 failed, 0 skipped") {
		t.Fatalf("resync: exit %d\n%s%s", code, out, errOut)
	}
	if !strings.Contains(errOut, "started in region us-west-2") {
		t.Fatalf("resync progress: %s", errOut)
	}
	if got := versionsOf(t, c, "dst"); !maps.Equal(got, want) {
		t.Fatalf("destination versions %v, want %v", got, want)
	}
	_, after, ok := strings.Cut(out, "report: s3://reports/")
	if !ok {
		t.Fatalf("no report in:\n%s", out)
	}
	reportKey := strings.TrimSpace(after)
	obj, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("reports"), Key: aws.String(reportKey)})
	if err != nil {
		t.Fatalf("report %s: %v", reportKey, err)
	}
	rows, err := csv.NewReader(obj.Body).ReadAll()
	obj.Body.Close()
	if err != nil || len(rows) != 4 {
		t.Fatalf("report: %v %v", rows, err)
	}
	for _, row := range rows[1:] {
		if row[0] != "src" || want[row[1]] != row[2] || row[3] != "REPLICATED" {
			t.Fatalf("report row %v", row)
		}
	}
	jobID := strings.TrimSuffix(strings.TrimPrefix(reportKey, "jobs/replication-job-"), ".csv")

	code, out, errOut = run(t, env, "status", "--bucket", "src")
	if code != 0 || !strings.Contains(out, "replicate-all-objects") || !strings.Contains(out, "dst (us-west-2)") ||
		!strings.Contains(out, "0 ops / 0 B") || !strings.Contains(out, "yes") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, env, "status", "--json")
	var st struct {
		Region string                   `json:"region"`
		Rules  []replication.RuleStatus `json:"rules"`
	}
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Region != "us-west-2" || len(st.Rules) != 1 || st.Rules[0].PendingOps != 0 {
		t.Fatalf("status --json: exit %d %v\n%s", code, err, out)
	}

	code, out, errOut = run(t, env, "diff", "--bucket", "src")
	if code != 0 || !strings.Contains(out, "no differences: 3 versions of src compared with dst") {
		t.Fatalf("diff after the job: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, env, "jobs")
	if code != 0 || !strings.Contains(out, jobID) || !strings.Contains(out, "COMPLETED") {
		t.Fatalf("jobs: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, env, "job", jobID)
	if code != 0 || !strings.Contains(out, "3/3 objects") || !strings.Contains(out, "s3://reports/"+reportKey) {
		t.Fatalf("job: exit %d\n%s", code, out)
	}
	code, out, _ = run(t, env, "retry", "--bucket", "src")
	if code != 0 || out != "requeued 0 failed operations of bucket src\n" {
		t.Fatalf("retry: exit %d %q", code, out)
	}
}

// TestReplicationJobInAnotherRegion starts a job through one region for a
// bucket homed in another, and follows it there.
func TestReplicationJobInAnotherRegion(t *testing.T) {
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	c := rs[0].Client(t)
	env := ownerEnv(rs[0].URL())
	versioned(t, c, "east-src", "us-east-1")
	versioned(t, c, "west-dst", "us-west-2")
	want := putVersions(t, c, "east-src", "k1", "k2")
	replicate(t, c, "east-src", "west-dst")

	code, out, errOut := run(t, env, "resync", "--bucket", "east-src", "--wait", "--json")
	var j struct {
		replication.Job
		Region string `json:"region"`
	}
	if err := json.Unmarshal([]byte(out), &j); code != 0 || err != nil || j.Region != "us-east-1" || j.Replicated != 2 {
		t.Fatalf("resync: exit %d %v\n%s%s", code, err, out, errOut)
	}
	if got := versionsOf(t, c, "west-dst"); !maps.Equal(got, want) {
		t.Fatalf("destination versions %v, want %v", got, want)
	}
	if code, _, errOut := run(t, env, "job", j.ID); code != 1 || !strings.Contains(errOut, "NoSuchJob") {
		t.Fatalf("job in the wrong region: exit %d %s", code, errOut)
	}
	if code, out, errOut := run(t, env, "job", j.ID, "--job-region", "us-east-1"); code != 0 || !strings.Contains(out, "us-east-1") {
		t.Fatalf("job: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := run(t, env, "status", "--bucket", "east-src"); code != 0 || !strings.Contains(out, "region us-east-1") ||
		!strings.Contains(out, "west-dst (us-west-2)") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
}

// TestReplicationCredentialsAndErrors covers where the key comes from and
// what a caller without rights, or with wrong arguments, sees.
func TestReplicationCredentialsAndErrors(t *testing.T) {
	r := servertest.Start(t, servertest.Options{TLS: true})
	c := r.Client(t)
	versioned(t, c, "src", "us-west-2")
	versioned(t, c, "dst", "us-west-2")
	replicate(t, c, "src", "dst")

	// bulwark up's data directory names its key but holds no secret: the
	// key comes from the environment.
	dir := t.TempDir()
	creds, _ := json.Marshal(map[string]string{"accountId": servertest.AccountID, "accessKeyId": servertest.AccessKey})
	if err := os.WriteFile(filepath.Join(dir, "credentials.json"), creds, 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_CA_BUNDLE": r.CAFile}
	if code, _, errOut := run(t, env, "status", "--data", dir); code != 1 || !strings.Contains(errOut, "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY") ||
		!strings.Contains(errOut, servertest.AccessKey) {
		t.Fatalf("status with the data directory only: exit %d %s", code, errOut)
	}
	// The certificate trusted through AWS_CA_BUNDLE.
	env["AWS_ACCESS_KEY_ID"], env["AWS_SECRET_ACCESS_KEY"] = servertest.AccessKey, servertest.SecretKey
	if code, out, errOut := run(t, env, "status", "--data", dir); code != 0 || !strings.Contains(out, "replicate-all-objects") {
		t.Fatalf("status: exit %d\n%s%s", code, out, errOut)
	}
	// Without the certificate, TLS fails.
	noCA := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_ACCESS_KEY_ID": servertest.AccessKey, "AWS_SECRET_ACCESS_KEY": servertest.SecretKey}
	if code, _, errOut := run(t, noCA, "status"); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Fatalf("without the CA bundle: exit %d %s", code, errOut)
	}
	// No key anywhere: an error, and no key is made up.
	empty := t.TempDir()
	noKey := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_CA_BUNDLE": r.CAFile}
	if code, _, errOut := run(t, noKey, "status", "--data", empty); code != 1 || !strings.Contains(errOut, "no credentials") {
		t.Fatalf("no credentials: exit %d %s", code, errOut)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("the data directory was written: %v", entries)
	}

	// BULWARK_ACCESS_KEY / BULWARK_SECRET_KEY, of the other account.
	other := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_CA_BUNDLE": r.CAFile,
		"BULWARK_ACCESS_KEY": servertest.OtherAccessKey, "BULWARK_SECRET_KEY": servertest.OtherSecretKey}
	for _, args := range [][]string{{"status", "--bucket", "src"}, {"diff", "--bucket", "src"}, {"retry", "--bucket", "src"}, {"resync", "--bucket", "src"}} {
		if code, _, errOut := run(t, other, args...); code != 1 || !strings.Contains(errOut, "AccessDenied") {
			t.Fatalf("%v as another account: exit %d %s", args, code, errOut)
		}
	}
	// A wrong secret.
	bad := map[string]string{"BULWARK_ENDPOINT": r.URL(), "AWS_CA_BUNDLE": r.CAFile,
		"AWS_ACCESS_KEY_ID": servertest.AccessKey, "AWS_SECRET_ACCESS_KEY": "wrong"}
	if code, _, errOut := run(t, bad, "status"); code != 1 || !strings.Contains(errOut, "AccessDenied") {
		t.Fatalf("wrong secret: exit %d %s", code, errOut)
	}

	if code, _, errOut := run(t, env, "status", "--bucket", "nope"); code != 1 || !strings.Contains(errOut, "NoSuchBucket") {
		t.Fatalf("missing bucket: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, env, "resync", "--bucket", "src", "--status", "SOME"); code != 1 || !strings.Contains(errOut, "InvalidRequest") {
		t.Fatalf("bad status: exit %d %s", code, errOut)
	}
	for _, args := range [][]string{{}, {"frobnicate"}, {"retry"}, {"diff"}, {"resync"}, {"job"}, {"job", "a", "b"}, {"status", "extra"}} {
		if code, _, _ := run(t, env, args...); code != 2 {
			t.Fatalf("%v: exit %d, want 2", args, code)
		}
	}
	noCA["BULWARK_ENDPOINT"] = "http://127.0.0.1:1"
	if code, _, _ := run(t, noCA, "status"); code != 1 {
		t.Fatalf("nothing listening: exit %d", code)
	}
}

// TestReplicationStatusShowsFailures replicates into another account's
// bucket, which fails: status groups the failures, retry and a FAILED
// resync try them again.
func TestReplicationStatusShowsFailures(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	env := ownerEnv(r.URL())
	versioned(t, c, "src", "us-west-2")
	versioned(t, servertest.NewClient(r.URL(), "us-west-2", servertest.OtherAccessKey, servertest.OtherSecretKey, nil), "foreign-dst", "us-west-2")
	replicate(t, c, "src", "foreign-dst")
	putVersions(t, c, "src", "k1", "k2")

	deadline := time.Now().Add(20 * time.Second)
	for {
		_, out, _ := run(t, env, "status", "--bucket", "src", "--json")
		var st struct{ Rules []replication.RuleStatus }
		if json.Unmarshal([]byte(out), &st) == nil && len(st.Rules) == 1 && st.Rules[0].FailedOps == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failures: %s", out)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out, _ := run(t, env, "status")
	if code != 0 || !strings.Contains(out, "failures of src → foreign-dst (rule replicate-all-objects):") ||
		!strings.Contains(out, "2 × AccessDenied") || !strings.Contains(out, `e.g. key "k`) {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, env, "retry", "--bucket", "src"); code != 0 || out != "requeued 2 failed operations of bucket src\n" {
		t.Fatalf("retry: exit %d %q", code, out)
	}
	code, out, errOut := run(t, env, "resync", "--bucket", "src", "--status", "ALL", "--wait")
	if code != 1 || !strings.Contains(out, "0 replicated, 2 failed") || !strings.Contains(errOut, "2 versions failed to replicate") {
		t.Fatalf("resync of failing versions: exit %d\n%s%s", code, out, errOut)
	}
}
