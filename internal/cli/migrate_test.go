package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/meta"
	"github.com/bulwark/bulwark/internal/meta/bolt"
	"github.com/bulwark/bulwark/internal/meta/pg"
	"github.com/bulwark/bulwark/internal/meta/pg/pgtest"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

const migrateRole = "arn:aws:iam::" + servertest.AccountID + ":role/service-role/AWSBackupDefaultServiceRole"

// migrated is what the region held on bbolt, to find on PostgreSQL.
type migrated struct {
	latest               map[string]string // key → body of the current version
	versions             int               // versions and delete markers of src
	multiETag, multiBody string
	upload               string // a multipart upload left open
	alice                *iam.AccessKey
	point                string // recovery point ARN
	planID               string
}

// TestMigrateRegionToPostgres runs a region on bbolt with buckets,
// versions, delete markers, multipart objects and an open upload,
// replication with tasks kept for a retry, an IAM user and key, a backup plan
// and a recovery point; stops it; moves its metadata with bulwark migrate;
// checks -verify; and starts it on PostgreSQL, where everything is found
// through the APIs, the queued tasks replicate, and a new PUT gets a
// change-feed position above every old one.
func TestMigrateRegionToPostgres(t *testing.T) {
	dsn := pgtest.Database(t)
	dir := t.TempDir()
	ctx := context.Background()
	var was migrated
	t.Run("on bbolt", func(t *testing.T) {
		r := servertest.Start(t, servertest.Options{Dir: dir})
		was = fillRegion(t, r)
	})
	src, err := bolt.Open(filepath.Join(dir, "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	oldFeed, err := src.Seq(ctx, "feed")
	src.Close()
	if err != nil || oldFeed == 0 {
		t.Fatalf("feed sequence on bbolt: %d, %v", oldFeed, err)
	}

	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		m := &Main{Stdout: &out, Stderr: &errOut}
		code := m.Run(ctx, append([]string{"migrate", "-data", dir, "-region", "us-west-2", "-to", dsn}, args...))
		return code, out.String() + errOut.String()
	}
	shared := t.TempDir()
	if code, out := run("-batch", "50", "-shared", shared); code != 0 {
		t.Fatalf("migrate: exit %d\n%s", code, out)
	} else {
		t.Logf("migrate:\n%s", out)
	}
	code, out := run("-verify", "-shared", shared)
	t.Logf("migrate -verify:\n%s", out)
	if code != 0 || !strings.Contains(out, "no difference") || !strings.Contains(out, "every blob is at") {
		t.Fatalf("migrate -verify: exit %d", code)
	}
	for _, space := range []string{"buckets", "versions", "feed", "repl-failed", "uploads", "parts", "iam-users", "iam-keys", "backup-plans", "backup-points"} {
		if !verifyLine(out, space) {
			t.Fatalf("-verify shows no keys of %s", space)
		}
	}
	if code, out := run(); code == 0 || !strings.Contains(out, "already moved") {
		t.Fatalf("second migrate: exit %d\n%s", code, out)
	}
	if _, err := server.Open(ctx, server.Config{Region: "us-west-2", DataDir: dir}); err == nil || !strings.Contains(err.Error(), "moved to") {
		t.Fatalf("region opened on the moved bbolt file: %v", err)
	}
	plantedDifference(t, dsn, run)

	// The region now reads its data from the shared directory only.
	if err := os.Rename(filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs.old")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "vaults"), filepath.Join(dir, "vaults.old")); err != nil {
		t.Fatal(err)
	}
	t.Run("on PostgreSQL", func(t *testing.T) {
		r := servertest.Start(t, servertest.Options{Dir: dir, Configure: func(c *server.Config) {
			c.MetaDSN, c.SharedDir = dsn, shared
			c.Replication = server.ReplicationConfig{RetryMax: 200 * time.Millisecond, FailedRetry: 200 * time.Millisecond}
		}})
		checkRegion(t, r, was)
		// The cause of the replication failures fixed, the tasks kept
		// since bbolt are retried.
		if _, err := r.Client(t).PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("dst"),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
		// A new PUT's change comes above every position used on bbolt.
		putBody(t, r.Client(t), "src", "after-migration", "new")
		changes, err := r.Store.Changes(ctx, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, c := range changes {
			if c.Key == "after-migration" {
				found = true
				if c.Seq <= oldFeed {
					t.Fatalf("the change of a PUT after migration has position %d, not above bbolt's %d", c.Seq, oldFeed)
				}
			}
		}
		if !found {
			t.Fatal("no change record for the PUT after migration")
		}
		// The tasks kept on bbolt and the new PUT replicate.
		waitVersions(t, r.Client(t), "dst", was.versions+1)
	})
}

func verifyLine(out, space string) bool {
	for _, l := range strings.Split(out, "\n") {
		f := strings.Fields(l)
		if len(f) == 6 && f[0] == space && f[1] != "0" && f[1] == f[2] && f[5] == "same" {
			return true
		}
	}
	return false
}

// plantedDifference changes one key in the database: -verify reports it
// and exits 1; then the key is put back.
func plantedDifference(t *testing.T, dsn string, run func(...string) (int, string)) {
	t.Helper()
	ctx := context.Background()
	s, err := pg.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var key, old []byte
	err = s.Update(ctx, func(tx meta.Tx) error {
		k, v := tx.Iter("buckets").First()
		key, old = bytes.Clone(k), bytes.Clone(v)
		return tx.Put("buckets", k, append(bytes.Clone(v), ' '))
	})
	if err != nil {
		t.Fatal(err)
	}
	code, out := run("-verify")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("DIFF buckets %q: value differs", key)) || !strings.Contains(out, "1 differences") {
		t.Fatalf("-verify with a planted difference: exit %d\n%s", code, out)
	}
	if err := s.Update(ctx, func(tx meta.Tx) error { return tx.Put("buckets", key, old) }); err != nil {
		t.Fatal(err)
	}
}

func putBody(t *testing.T, c *s3.Client, bucket, key, body string) {
	t.Helper()
	if _, err := c.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
		t.Fatalf("put %s/%s: %v", bucket, key, err)
	}
}

func fillRegion(t *testing.T, r *servertest.Region) migrated {
	t.Helper()
	ctx := context.Background()
	c := r.Client(t)
	was := migrated{latest: map[string]string{}}
	for _, b := range []string{"src", "dst"} {
		if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(b)}); err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String(b),
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := c.PutBucketReplication(ctx, &s3.PutBucketReplicationInput{Bucket: aws.String("src"),
		ReplicationConfiguration: &types.ReplicationConfiguration{Role: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/s3-replication-role"),
			Rules: []types.ReplicationRule{{ID: aws.String("all"), Status: types.ReplicationRuleStatusEnabled, Prefix: aws.String(""),
				Destination:             &types.Destination{Bucket: aws.String("arn:aws:s3:::dst")},
				DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: types.DeleteMarkerReplicationStatusEnabled}}}}})
	if err != nil {
		t.Fatal(err)
	}
	// With versioning suspended on the destination, every replication
	// task fails and is kept, to be retried once versioning is back.
	if _, err := c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("dst"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		k := fmt.Sprintf("k/%02d", i)
		for v := range 2 {
			body := fmt.Sprintf("%s version %d", k, v)
			putBody(t, c, "src", k, body)
			was.latest[k] = body
			was.versions++
		}
	}
	for _, k := range []string{"k/03", "k/04"} {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("src"), Key: aws.String(k)}); err != nil {
			t.Fatal(err)
		}
		delete(was.latest, k)
		was.versions++
	}
	// A multipart object, and an upload left open.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("src"), Key: aws.String("multi")})
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{strings.Repeat("a", 5<<20), "tail"}
	var done []types.CompletedPart
	for i, p := range parts {
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("src"), Key: aws.String("multi"), UploadId: up.UploadId,
			PartNumber: aws.Int32(int32(i + 1)), Body: strings.NewReader(p)})
		if err != nil {
			t.Fatal(err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1))})
	}
	fin, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("src"), Key: aws.String("multi"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}})
	if err != nil {
		t.Fatal(err)
	}
	was.multiETag, was.multiBody = aws.ToString(fin.ETag), strings.Join(parts, "")
	was.latest["multi"] = was.multiBody
	was.versions++
	open, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("src"), Key: aws.String("open")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("src"), Key: aws.String("open"), UploadId: open.UploadId,
		PartNumber: aws.Int32(1), Body: strings.NewReader("part one")}); err != nil {
		t.Fatal(err)
	}
	was.upload = aws.ToString(open.UploadId)
	// Every task has failed, and is kept, before the region stops.
	waitJob(t, func() (bool, string) {
		st, err := r.Replication.Status(ctx, "src")
		if err != nil || len(st) != 1 {
			t.Fatalf("replication status: %+v, %v", st, err)
		}
		return st[0].FailedOps == was.versions, ""
	})

	// IAM: a user with a policy and a key.
	if _, err := r.IAM.CreateUser(ctx, servertest.AccountID, "alice", "/"); err != nil {
		t.Fatal(err)
	}
	if err := r.IAM.PutInlinePolicy(ctx, "user", servertest.AccountID, "alice", "read",
		`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject","s3:ListBucket"],"Resource":"*"}]}`); err != nil {
		t.Fatal(err)
	}
	if was.alice, err = r.IAM.CreateAccessKey(ctx, servertest.AccountID, "alice"); err != nil {
		t.Fatal(err)
	}

	// Backup: a plan, and a recovery point of src.
	plan, err := r.Backup.CreatePlan(ctx, servertest.AccountID, backup.CreatePlanInput{Plan: backup.Plan{BackupPlanName: "nightly",
		Rules: []backup.Rule{{RuleName: "n", TargetBackupVaultName: "Default", ScheduleExpression: "cron(0 2 * * ? *)"}}}})
	if err != nil {
		t.Fatal(err)
	}
	was.planID = plan.BackupPlanID
	j, err := r.Jobs.StartBackupJob(ctx, servertest.AccountID, backup.StartBackupJobInput{VaultName: "Default",
		ResourceARN: "arn:aws:s3:::src", IAMRoleARN: migrateRole})
	if err != nil {
		t.Fatal(err)
	}
	if j := waitJob(t, func() (bool, string) {
		j, err := r.Jobs.DescribeBackupJob(ctx, servertest.AccountID, j.JobID)
		if err != nil {
			t.Fatal(err)
		}
		return j.State == backup.JobCompleted || j.State == backup.JobFailed, string(j.State)
	}); j != string(backup.JobCompleted) {
		t.Fatalf("backup job: %s", j)
	}
	was.point = j.RecoveryPointARN
	return was
}

// waitJob polls done until it says the job ended, and returns its state.
func waitJob(t *testing.T, done func() (bool, string)) string {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if ok, state := done(); ok {
			return state
		}
	}
	t.Fatal("job did not end")
	return ""
}

func checkRegion(t *testing.T, r *servertest.Region, was migrated) {
	t.Helper()
	ctx := context.Background()
	c := r.Client(t)
	alice := servertest.NewClient(r.URL(), "us-west-2", was.alice.ID, was.alice.Secret, r.HTTPClient(t))
	list, err := alice.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("src")})
	if err != nil {
		t.Fatalf("alice's key after migration: %v", err)
	}
	if len(list.Contents) != len(was.latest) {
		t.Fatalf("LIST src: %d keys, want %d", len(list.Contents), len(was.latest))
	}
	for k, body := range was.latest {
		got, err := alice.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("src"), Key: aws.String(k)})
		if err != nil {
			t.Fatalf("GET %s: %v", k, err)
		}
		b, _ := io.ReadAll(got.Body)
		got.Body.Close()
		if string(b) != body {
			t.Fatalf("GET %s: %d bytes, want %d", k, len(b), len(body))
		}
		if k == "multi" && aws.ToString(got.ETag) != was.multiETag {
			t.Fatalf("multipart ETag %s, want %s", aws.ToString(got.ETag), was.multiETag)
		}
	}
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("src")})
	if err != nil || len(vs.Versions)+len(vs.DeleteMarkers) != was.versions || len(vs.DeleteMarkers) != 2 {
		t.Fatalf("versions of src: %d and %d delete markers, %v; want %d in all", len(vs.Versions), len(vs.DeleteMarkers), err, was.versions)
	}
	ups, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String("src")})
	if err != nil || len(ups.Uploads) != 1 || aws.ToString(ups.Uploads[0].UploadId) != was.upload {
		t.Fatalf("open uploads: %+v, %v", ups, err)
	}
	plans, err := r.Backup.ListPlans(ctx, servertest.AccountID, false)
	if err != nil || len(plans) != 1 || plans[0].BackupPlanID != was.planID {
		t.Fatalf("backup plans: %+v, %v", plans, err)
	}
	rj, err := r.Jobs.StartRestoreJob(ctx, servertest.AccountID, backup.StartRestoreJobInput{RecoveryPointARN: was.point, IAMRoleARN: migrateRole,
		Metadata: map[string]string{"DestinationBucketName": "restored", "NewBucket": "true"}})
	if err != nil {
		t.Fatal(err)
	}
	state := waitJob(t, func() (bool, string) {
		j, err := r.Jobs.DescribeRestoreJob(ctx, servertest.AccountID, rj.JobID)
		if err != nil {
			t.Fatal(err)
		}
		return j.Status == backup.RestoreCompleted || j.Status == backup.RestoreFailed, string(j.Status) + " " + j.StatusMessage
	})
	if !strings.HasPrefix(state, string(backup.RestoreCompleted)) {
		t.Fatalf("restore: %s", state)
	}
	for k, body := range was.latest {
		v, rc, err := r.Store.GetObject(ctx, "restored", k, "")
		if err != nil {
			t.Fatalf("restored %s: %v", k, err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != body || v.DeleteMarker {
			t.Fatalf("restored %s: %d bytes, want %d", k, len(b), len(body))
		}
	}
}

// waitVersions waits for replication to bring bucket to n versions and
// delete markers.
func waitVersions(t *testing.T, c *s3.Client, bucket string, n int) {
	t.Helper()
	got := 0
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		vs, err := c.ListObjectVersions(context.Background(), &s3.ListObjectVersionsInput{Bucket: aws.String(bucket)})
		if err != nil {
			t.Fatal(err)
		}
		if got = len(vs.Versions) + len(vs.DeleteMarkers); got >= n {
			return
		}
	}
	t.Fatalf("%s has %d versions, want %d: replication did not resume", bucket, got, n)
}
