package replication_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/iam"
	"github.com/bulwark/bulwark/internal/replication"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// versions lists a bucket's versions and delete markers as "key@id" and
// "key@id(dm)".
func versions(t testing.TB, c *s3.Client, b string) []string {
	t.Helper()
	out := must[*s3.ListObjectVersionsOutput](t)(c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String(b)}))
	var l []string
	for _, v := range out.Versions {
		l = append(l, *v.Key+"@"+*v.VersionId)
	}
	for _, m := range out.DeleteMarkers {
		l = append(l, *m.Key+"@"+*m.VersionId+"(dm)")
	}
	return l
}

// quiet waits until the region's replication has nothing pending.
func quiet(t testing.TB, e *replication.Engine) {
	t.Helper()
	eventually(t, "replication backlog to drain", func() error {
		changes, tasks, err := e.Backlog(ctx)
		if err == nil && changes+uint64(tasks) > 0 {
			err = fmt.Errorf("%d changes and %d tasks pending", changes, tasks)
		}
		return err
	})
}

func v2Rule(id string, prio int32, filter *types.ReplicationRuleFilter, dest string, dm bool) types.ReplicationRule {
	st := types.DeleteMarkerReplicationStatusDisabled
	if dm {
		st = types.DeleteMarkerReplicationStatusEnabled
	}
	return types.ReplicationRule{
		ID: aws.String(id), Priority: aws.Int32(prio), Status: types.ReplicationRuleStatusEnabled,
		Filter:                  filter,
		DeleteMarkerReplication: &types.DeleteMarkerReplication{Status: st},
		Destination:             &types.Destination{Bucket: aws.String("arn:aws:s3:::" + dest)},
	}
}

func del(t testing.TB, c *s3.Client, b, k, vid string) *s3.DeleteObjectOutput {
	t.Helper()
	in := &s3.DeleteObjectInput{Bucket: aws.String(b), Key: aws.String(k)}
	if vid != "" {
		in.VersionId = aws.String(vid)
	}
	return must[*s3.DeleteObjectOutput](t)(c.DeleteObject(ctx, in))
}

func TestDeleteMarkers(t *testing.T) {
	r, c := start(t)
	for _, b := range []string{"v1-src", "v1-dst", "v2-src", "v2-dst", "v2dm-src", "v2dm-dst"} {
		bucket(t, c, b)
	}
	putReplication(t, c, "v1-src", v1Rule("v1-dst"))
	putReplication(t, c, "v2-src", &types.ReplicationConfiguration{Role: aws.String(role), Rules: []types.ReplicationRule{
		v2Rule("no-dm", 1, &types.ReplicationRuleFilter{Prefix: aws.String("")}, "v2-dst", false)}})
	putReplication(t, c, "v2dm-src", &types.ReplicationConfiguration{Role: aws.String(role), Rules: []types.ReplicationRule{
		v2Rule("dm", 1, &types.ReplicationRuleFilter{Prefix: aws.String("")}, "v2dm-dst", true)}})

	dsts := map[string]string{"v1-src": "v1-dst", "v2-src": "v2-dst", "v2dm-src": "v2dm-dst"}
	for src, dst := range dsts {
		put(t, c, src, "k", []byte("one"))
		v2 := put(t, c, src, "k", []byte("two"))
		waitReplica(t, c, dst, "k", *v2.VersionId)
		del(t, c, src, "k", "")
		// A delete naming a version is never replicated.
		del(t, c, src, "k", *v2.VersionId)
		put(t, c, src, "after", []byte("x"))
	}
	quiet(t, r.Replication)
	for _, tc := range []struct {
		src, dst string
		dm       bool
	}{{"v1-src", "v1-dst", true}, {"v2-src", "v2-dst", false}, {"v2dm-src", "v2dm-dst", true}} {
		src, dst := versions(t, c, tc.src), versions(t, c, tc.dst)
		// The source lost v2 for good; the destination still has it.
		if len(dst) != len(src)+1 && tc.dm {
			t.Errorf("%s: source %v, destination %v: want the source's versions plus the one deleted by ID", tc.dst, src, dst)
		}
		hasDM := false
		for _, v := range dst {
			hasDM = hasDM || strings.HasSuffix(v, "(dm)")
		}
		if hasDM != tc.dm {
			t.Errorf("%s: delete marker replicated %v, want %v (%v)", tc.dst, hasDM, tc.dm, dst)
		}
		if got := len(dst); !tc.dm && got != 3 {
			t.Errorf("%s: %v, want the three versions and no marker", tc.dst, dst)
		}
	}
	// Where the marker was replicated, the key reads as deleted.
	_, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("v1-dst"), Key: aws.String("k")})
	if errCode(err) != "NoSuchKey" {
		t.Errorf("GET v1-dst/k: %v, want NoSuchKey", err)
	}
	if _, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("v2-dst"), Key: aws.String("k")}); err != nil {
		t.Errorf("GET v2-dst/k: %v, want the object", err)
	}
}

func TestExistingObjectsNeedBatchJob(t *testing.T) {
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	bucket(t, c, "reports")
	old := put(t, c, "src", "old", []byte("before the rule"))
	putReplication(t, c, "src", v1Rule("dst"))
	fresh := put(t, c, "src", "new", []byte("after the rule"))
	waitReplica(t, c, "dst", "new", *fresh.VersionId)
	quiet(t, r.Replication)
	if v := versions(t, c, "dst"); len(v) != 1 {
		t.Fatalf("destination %v: only the version written after the rule belongs there", v)
	}
	h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("old")}))
	if h.ReplicationStatus != "" {
		t.Fatalf("existing object has status %q, want none", h.ReplicationStatus)
	}
	job, err := r.Replication.StartResync(ctx, replication.ResyncRequest{Bucket: "src", ReportBucket: "reports"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "job", func() error {
		j, err := r.Replication.Job(ctx, job.ID)
		if err != nil {
			return err
		}
		if j.State != replication.JobCompleted {
			return fmt.Errorf("job %s: %d/%d", j.State, j.Done, j.Total)
		}
		if j.Total != 1 || j.Replicated != 1 {
			return fmt.Errorf("job done %d of %d, replicated %d: want 1 of 1", j.Done, j.Total, j.Replicated)
		}
		return nil
	})
	data, _ := waitReplica(t, c, "dst", "old", *old.VersionId)
	if string(data) != "before the rule" {
		t.Fatalf("replica %q", data)
	}
	waitStatus(t, c, "src", "old", *old.VersionId, types.ReplicationStatusCompleted)
	j, _ := r.Replication.Job(ctx, job.ID)
	rep := must[*s3.GetObjectOutput](t)(c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("reports"), Key: aws.String(j.ReportKey)}))
	body, _ := io.ReadAll(rep.Body)
	if !strings.Contains(string(body), "src,old,"+*old.VersionId+",REPLICATED") {
		t.Fatalf("report:\n%s", body)
	}
}

// tagRole makes a role allowed to replicate tags too, beyond the
// article's three permissions, and returns its ARN.
func tagRole(t testing.TB, r *servertest.Region) string {
	t.Helper()
	const name = "replication-with-tags"
	_, err := r.IAM.CreateRole(ctx, &iam.Role{Account: servertest.AccountID, Name: name,
		Trust: `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"sts:AssumeRole"}]}`})
	if err != nil && !errors.Is(err, iam.ErrEntityExists) {
		t.Fatal(err)
	}
	if err := r.IAM.PutInlinePolicy(ctx, iam.EntityRole, servertest.AccountID, name, "all", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
		"Action":["s3:GetObjectVersionForReplication","s3:GetObjectVersionTagging","s3:ReplicateObject","s3:ReplicateDelete","s3:ReplicateTags"],"Resource":"*"}]}`); err != nil {
		t.Fatal(err)
	}
	return "arn:aws:iam::" + servertest.AccountID + ":role/" + name
}

func TestTagsReplicate(t *testing.T) {
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	cfg := v1Rule("dst")
	cfg.Role = aws.String(tagRole(t, r))
	putReplication(t, c, "src", cfg)
	out := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String("src"), Key: aws.String("doc"), Body: strings.NewReader("hello"),
		Tagging: aws.String("team=a"), ContentType: aws.String("text/plain"),
		Metadata: map[string]string{"owner": "ops"}, ChecksumAlgorithm: types.ChecksumAlgorithmSha256,
	}))
	_, o := waitReplica(t, c, "dst", "doc", *out.VersionId)
	if aws.ToString(o.ContentType) != "text/plain" || o.Metadata["owner"] != "ops" || aws.ToInt32(o.TagCount) != 1 {
		t.Fatalf("replica lost content type, metadata or tags: %q %v %d", aws.ToString(o.ContentType), o.Metadata, aws.ToInt32(o.TagCount))
	}
	src := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("doc"), ChecksumMode: types.ChecksumModeEnabled}))
	dst := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("doc"), ChecksumMode: types.ChecksumModeEnabled}))
	if aws.ToString(src.ChecksumSHA256) == "" || aws.ToString(src.ChecksumSHA256) != aws.ToString(dst.ChecksumSHA256) ||
		!src.LastModified.Equal(*dst.LastModified) || aws.ToString(src.ETag) != aws.ToString(dst.ETag) {
		t.Fatalf("replica differs: checksum %q/%q, time %v/%v, etag %s/%s", aws.ToString(src.ChecksumSHA256), aws.ToString(dst.ChecksumSHA256),
			src.LastModified, dst.LastModified, aws.ToString(src.ETag), aws.ToString(dst.ETag))
	}
	must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("src"), Key: aws.String("doc"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("team"), Value: aws.String("b")}, {Key: aws.String("class"), Value: aws.String("gold")}}}}))
	eventually(t, "tags replicated", func() error {
		tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("dst"), Key: aws.String("doc"), VersionId: out.VersionId})
		if err != nil {
			return err
		}
		if len(tg.TagSet) != 2 {
			return fmt.Errorf("tags %v", tg.TagSet)
		}
		return nil
	})
	quiet(t, r.Replication)
}

func TestTwoWayConverges(t *testing.T) {
	r, c := start(t)
	bucket(t, c, "left")
	bucket(t, c, "right")
	rule := func(dest string) *types.ReplicationConfiguration {
		ru := v2Rule("sync", 1, &types.ReplicationRuleFilter{Prefix: aws.String("")}, dest, true)
		ru.SourceSelectionCriteria = &types.SourceSelectionCriteria{ReplicaModifications: &types.ReplicaModifications{Status: types.ReplicaModificationsStatusEnabled}}
		return &types.ReplicationConfiguration{Role: aws.String(tagRole(t, r)), Rules: []types.ReplicationRule{ru}}
	}
	putReplication(t, c, "left", rule("right"))
	putReplication(t, c, "right", rule("left"))
	a := put(t, c, "left", "a", []byte("from left"))
	b := put(t, c, "right", "b", []byte("from right"))
	waitReplica(t, c, "right", "a", *a.VersionId)
	waitReplica(t, c, "left", "b", *b.VersionId)
	// A tag change on the replica goes back to the source.
	must[*s3.PutObjectTaggingOutput](t)(c.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{Bucket: aws.String("right"), Key: aws.String("a"),
		Tagging: &types.Tagging{TagSet: []types.Tag{{Key: aws.String("seen"), Value: aws.String("right")}}}}))
	eventually(t, "replica modification synced", func() error {
		tg, err := c.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{Bucket: aws.String("left"), Key: aws.String("a")})
		if err != nil {
			return err
		}
		if len(tg.TagSet) != 1 {
			return errors.New("tags not synced back")
		}
		return nil
	})
	del(t, c, "left", "a", "")
	quiet(t, r.Replication)
	time.Sleep(300 * time.Millisecond)
	quiet(t, r.Replication)
	l, rr := versions(t, c, "left"), versions(t, c, "right")
	if len(l) != 3 || len(rr) != 3 {
		t.Fatalf("left %v right %v: want a, b and a's delete marker on both, once each", l, rr)
	}
	// Nothing loops: the feed is quiet and the counters stop.
	st1, _ := r.Replication.Status(ctx, "")
	time.Sleep(300 * time.Millisecond)
	st2, _ := r.Replication.Status(ctx, "")
	if fmt.Sprint(st1) != fmt.Sprint(st2) {
		t.Fatalf("replication still busy:\n%v\n%v", st1, st2)
	}
}

func TestFiltersPrioritiesAndStorageClass(t *testing.T) {
	r, c := start(t)
	for _, b := range []string{"src", "logs", "gold", "all"} {
		bucket(t, c, b)
	}
	gold := v2Rule("gold", 3, &types.ReplicationRuleFilter{Tag: &types.Tag{Key: aws.String("class"), Value: aws.String("gold")}}, "gold", false)
	gold.Destination.StorageClass = types.StorageClassGlacier
	cfg := &types.ReplicationConfiguration{Role: aws.String(role), Rules: []types.ReplicationRule{
		v2Rule("logs", 2, &types.ReplicationRuleFilter{Prefix: aws.String("logs/")}, "logs", true),
		gold,
		v2Rule("all-low", 1, &types.ReplicationRuleFilter{Prefix: aws.String("")}, "all", true),
		// Same destination as "logs", lower priority: loses for logs/.
		v2Rule("logs-low", 0, &types.ReplicationRuleFilter{Prefix: aws.String("logs/x")}, "logs", true),
	}}
	putReplication(t, c, "src", cfg)
	l := put(t, c, "src", "logs/x1", []byte("log"))
	g := must[*s3.PutObjectOutput](t)(c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("src"), Key: aws.String("doc"),
		Body: bytes.NewReader([]byte("gold")), Tagging: aws.String("class=gold")}))
	p := put(t, c, "src", "plain", []byte("plain"))
	quiet(t, r.Replication)
	want := map[string][]string{
		"logs": {"logs/x1@" + *l.VersionId},
		"gold": {"doc@" + *g.VersionId},
		"all":  {"doc@" + *g.VersionId, "logs/x1@" + *l.VersionId, "plain@" + *p.VersionId},
	}
	for b, w := range want {
		if got := versions(t, c, b); fmt.Sprint(got) != fmt.Sprint(w) {
			t.Errorf("%s: %v, want %v", b, got, w)
		}
	}
	h := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("gold"), Key: aws.String("doc")}))
	if h.StorageClass != types.StorageClassGlacier {
		t.Errorf("gold replica storage class %q, want the rule's GLACIER", h.StorageClass)
	}
	st, err := r.Replication.Status(ctx, "src")
	if err != nil || len(st) != 4 {
		t.Fatalf("status: %v %v", st, err)
	}
	// Several destinations: COMPLETED only once all are done.
	waitStatus(t, c, "src", "logs/x1", *l.VersionId, types.ReplicationStatusCompleted)
}

func TestMultipartPartForPart(t *testing.T) {
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	putReplication(t, c, "src", v1Rule("dst"))
	up := must[*s3.CreateMultipartUploadOutput](t)(c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: aws.String("src"), Key: aws.String("big"), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c}))
	var parts []types.CompletedPart
	var all []byte
	for n := int32(1); n <= 3; n++ {
		data := random(5<<20 + int(n))
		all = append(all, data...)
		p := must[*s3.UploadPartOutput](t)(c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("src"), Key: aws.String("big"),
			UploadId: up.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(data), ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c}))
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(n), ETag: p.ETag, ChecksumCRC32C: p.ChecksumCRC32C})
	}
	done := must[*s3.CompleteMultipartUploadOutput](t)(c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("src"), Key: aws.String("big"),
		UploadId: up.UploadId, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}))
	data, o := waitReplica(t, c, "dst", "big", *done.VersionId)
	if !bytes.Equal(data, all) || aws.ToString(o.ETag) != aws.ToString(done.ETag) {
		t.Fatalf("replica: %d bytes etag %s, want %d bytes etag %s", len(data), aws.ToString(o.ETag), len(all), aws.ToString(done.ETag))
	}
	for n := int32(1); n <= 3; n++ {
		s := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("big"), PartNumber: aws.Int32(n), ChecksumMode: types.ChecksumModeEnabled}))
		d := must[*s3.HeadObjectOutput](t)(c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("big"), PartNumber: aws.Int32(n), ChecksumMode: types.ChecksumModeEnabled}))
		if aws.ToInt64(s.ContentLength) != aws.ToInt64(d.ContentLength) || aws.ToString(s.ChecksumCRC32C) != aws.ToString(d.ChecksumCRC32C) {
			t.Fatalf("part %d differs: %d/%d %q/%q", n, aws.ToInt64(s.ContentLength), aws.ToInt64(d.ContentLength), aws.ToString(s.ChecksumCRC32C), aws.ToString(d.ChecksumCRC32C))
		}
	}
	quiet(t, r.Replication)
}

func TestFailedUntilFixed(t *testing.T) {
	r, c := start(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	putReplication(t, c, "src", v1Rule("dst"))
	// Allowed: dst has no replication configuration of its own.
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("dst"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}))
	out := put(t, c, "src", "k", []byte("data"))
	waitStatus(t, c, "src", "k", *out.VersionId, types.ReplicationStatusFailed)
	st := must[[]replication.RuleStatus](t)(r.Replication.Status(ctx, "src"))
	if len(st) != 1 || st[0].FailedOps != 1 || len(st[0].Failures) != 1 || st[0].Failures[0].Code != "InvalidBucketState" ||
		!strings.Contains(st[0].Failures[0].Reason, "versioning") || st[0].Failures[0].ExampleKey != "k" {
		t.Fatalf("status: %+v", st)
	}
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("dst"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	waitReplica(t, c, "dst", "k", *out.VersionId)
	waitStatus(t, c, "src", "k", *out.VersionId, types.ReplicationStatusCompleted)
	st = must[[]replication.RuleStatus](t)(r.Replication.Status(ctx, "src"))
	if st[0].FailedOps != 0 {
		t.Fatalf("after the fix: %+v", st)
	}
}

// A batch job stopped by a shutdown resumes where its last checkpoint left
// it when the region opens again, and reports every version once.
func TestBatchJobSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	slow := func(c *server.Config) { c.Replication.Bandwidth = 512 << 10 } // bytes/s
	r := servertest.Start(t, servertest.Options{Dir: dir, Configure: slow})
	c := r.Client(t)
	bucket(t, c, "src")
	bucket(t, c, "dst")
	const n = 200
	vids := map[string]string{}
	for i := range n {
		k := fmt.Sprintf("obj%03d", i)
		vids[k] = *put(t, c, "src", k, random(16<<10)).VersionId
	}
	putReplication(t, c, "src", v1Rule("dst"))
	job := must[*replication.Job](t)(r.Replication.StartResync(ctx, replication.ResyncRequest{Bucket: "src"}))
	var mid *replication.Job
	eventually(t, "job under way", func() error {
		j, err := r.Replication.Job(ctx, job.ID)
		if err != nil || j.State != replication.JobRunning || j.Done < 64 {
			return fmt.Errorf("job %+v %v", j, err)
		}
		mid = j
		return nil
	})
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if mid.Done >= n {
		t.Fatalf("job stopped at %d of %d in state %s: the restart proves nothing", mid.Done, mid.Total, mid.State)
	}
	r = servertest.Start(t, servertest.Options{Dir: dir})
	c = r.Client(t)
	eventually(t, "job resumed and done", func() error {
		j, err := r.Replication.Job(ctx, job.ID)
		if err != nil || j.State != replication.JobCompleted {
			return fmt.Errorf("job %+v %v", j, err)
		}
		if j.Total != n || j.Done != n || j.Replicated != n {
			return fmt.Errorf("job total %d done %d replicated %d, want %d", j.Total, j.Done, j.Replicated, n)
		}
		return nil
	})
	rows := must[[]replication.ReportRow](t)(r.Replication.Report(ctx, job.ID))
	seen := map[string]bool{}
	for _, row := range rows {
		if seen[row.Key] || row.Outcome != "REPLICATED" || vids[row.Key] != row.VersionID {
			t.Fatalf("report row %+v: each version once, replicated", row)
		}
		seen[row.Key] = true
	}
	if len(seen) != n {
		t.Fatalf("report has %d versions, want %d", len(seen), n)
	}
	for k, v := range vids {
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String(k), VersionId: aws.String(v)}); err != nil {
			t.Fatalf("%s not replicated: %v", k, err)
		}
	}
}

// With several destinations a version is COMPLETED only when every one has
// it: one failing destination keeps it FAILED.
func TestStatusWithSeveralDestinations(t *testing.T) {
	_, c := start(t)
	for _, b := range []string{"src", "good", "bad"} {
		bucket(t, c, b)
	}
	putReplication(t, c, "src", &types.ReplicationConfiguration{Role: aws.String(role), Rules: []types.ReplicationRule{
		v2Rule("to-good", 2, &types.ReplicationRuleFilter{Prefix: aws.String("")}, "good", false),
		v2Rule("to-bad", 1, &types.ReplicationRuleFilter{Prefix: aws.String("")}, "bad", false),
	}})
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("bad"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusSuspended}}))
	out := put(t, c, "src", "k", []byte("x"))
	waitReplica(t, c, "good", "k", *out.VersionId)
	waitStatus(t, c, "src", "k", *out.VersionId, types.ReplicationStatusFailed)
	must[*s3.PutBucketVersioningOutput](t)(c.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("bad"),
		VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}))
	waitStatus(t, c, "src", "k", *out.VersionId, types.ReplicationStatusCompleted)
	waitReplica(t, c, "bad", "k", *out.VersionId)
}
