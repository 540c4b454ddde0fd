package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/scrub"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// blobFile returns the file holding one piece of a version's data (part
// 0: a single-part object's blob).
func blobFile(t *testing.T, r *servertest.Region, bucket, key, versionID string, part int) string {
	t.Helper()
	v, err := r.Store.VersionRecord(context.Background(), bucket, key, versionID)
	mustDo(t, err)
	id := v.BlobID
	if part > 0 {
		id = v.Parts[part-1].BlobID
	}
	if id == "" {
		t.Fatalf("%s/%s has no blob for part %d", bucket, key, part)
	}
	files, _ := filepath.Glob(filepath.Join(r.Dir, "blobs", "*", id))
	if len(files) != 1 {
		t.Fatalf("blob %s: files %v", id, files)
	}
	return files[0]
}

// flipByte changes one byte in the middle of a file, in place, as rot does.
func flipByte(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	mustDo(t, err)
	defer f.Close()
	st, err := f.Stat()
	mustDo(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, st.Size()/2)
	mustDo(t, err)
	b[0] ^= 0x20
	_, err = f.WriteAt(b, st.Size()/2)
	mustDo(t, err)
}

// scrubAndWait runs a scrub pass through the admin API and waits for it.
func scrubAndWait(t *testing.T, r *servertest.Region, body string) *scrub.Pass {
	t.Helper()
	ad := newAdmin(t, r, servertest.AccessKey, servertest.SecretKey)
	ad.base = "/_bulwark/v1/"
	var started struct{ scrub.Status }
	ad.ok(http.MethodPost, "scrub", []byte(body), &started)
	if started.Current == nil || started.Current.State != scrub.Running {
		t.Fatalf("started: %+v", started)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var st struct{ scrub.Status }
		ad.ok(http.MethodGet, "scrub", nil, &st)
		if st.Current != nil && st.Current.ID == started.Current.ID && st.Current.State != scrub.Running {
			return st.Current
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrub pass did not end: %+v", st.Current)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readObject(t *testing.T, c *s3.Client, bucket, key, versionID string) ([]byte, error) {
	t.Helper()
	out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), VersionId: aws.String(versionID)})
	if err != nil {
		return nil, err
	}
	defer out.Body.Close()
	return io.ReadAll(out.Body)
}

// putMultipart uploads data in two parts and returns the version ID.
func putMultipart(t *testing.T, c *s3.Client, bucket, key string, data []byte) string {
	t.Helper()
	ctx := context.Background()
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	mustDo(t, err)
	var parts []types.CompletedPart
	for i, chunk := range [][]byte{data[:5<<20], data[5<<20:]} {
		n := int32(i + 1)
		p, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId, PartNumber: aws.Int32(n), Body: bytes.NewReader(chunk)})
		mustDo(t, err)
		parts = append(parts, types.CompletedPart{ETag: p.ETag, PartNumber: aws.Int32(n)})
	}
	out, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}})
	mustDo(t, err)
	return aws.ToString(out.VersionId)
}

// TestScrubHealsFromTheOtherRegion rots data in both regions of a
// replicated pair — a flipped byte, a lost part — and checks that a scrub
// finds each, never serves the wrong bytes, and repairs it from the
// other region's replica.
func TestScrubHealsFromTheOtherRegion(t *testing.T) {
	rs := servertest.StartRegions(t, "us-west-2", "us-east-1")
	west, east := rs[0], rs[1]
	c := west.Client(t)
	versionedBucket(t, c, "scrubbed", "us-west-2")
	versionedBucket(t, c, "scrubbed-replica", "us-east-1")
	replicateAll(t, c, "scrubbed", "scrubbed-replica")
	single := randomBytes(300 << 10)
	multi := randomBytes(6 << 20)
	small := []byte("small enough to be kept inline")
	vSingle := putObject(t, c, "scrubbed", "single", string(single))
	vMulti := putMultipart(t, c, "scrubbed", "multi", multi)
	putObject(t, c, "scrubbed", "small", string(small))
	for _, k := range []struct{ key, vid string }{{"single", vSingle}, {"multi", vMulti}} {
		waitFor(t, "replica of "+k.key, func() bool {
			_, err := readObject(t, c, "scrubbed-replica", k.key, k.vid)
			return err == nil
		})
	}

	// A clean pass finds nothing.
	p := scrubAndWait(t, west, "")
	if p.State != scrub.Completed || p.Damaged != 0 || p.Versions != 3 {
		t.Fatalf("clean pass: %+v", p)
	}

	// Rot in the source region: a byte of a blob, a whole part.
	flipByte(t, blobFile(t, west, "scrubbed", "single", vSingle, 0))
	mustDo(t, os.Remove(blobFile(t, west, "scrubbed", "multi", vMulti, 2)))
	p = scrubAndWait(t, west, "")
	if p.State != scrub.Completed || p.Damaged != 2 || p.Repaired != 2 || len(p.Findings) != 2 {
		t.Fatalf("pass after the damage: %+v", p)
	}
	kinds := map[string]string{}
	for _, f := range p.Findings {
		kinds[f.Key] = f.Kind
		if !f.Repaired || !strings.Contains(f.RepairedFrom, "us-east-1") {
			t.Errorf("finding %+v: not repaired from us-east-1", f)
		}
	}
	if kinds["single"] != "corrupt" || kinds["multi"] != "missing" {
		t.Errorf("kinds %v", kinds)
	}
	for key, want := range map[string][]byte{"single": single, "multi": multi} {
		vid := map[string]string{"single": vSingle, "multi": vMulti}[key]
		got, err := readObject(t, c, "scrubbed", key, vid)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the repair: %d bytes, err %v", key, len(got), err)
		}
	}

	// Rot in the replica: healed from the source region.
	flipByte(t, blobFile(t, east, "scrubbed-replica", "multi", vMulti, 1))
	p = scrubAndWait(t, east, "")
	if p.Damaged != 1 || p.Repaired != 1 || !strings.Contains(p.Findings[0].RepairedFrom, "us-west-2") {
		t.Fatalf("replica pass: %+v", p)
	}
	if got, err := readObject(t, c, "scrubbed-replica", "multi", vMulti); err != nil || !bytes.Equal(got, multi) {
		t.Fatalf("replica after the repair: %d bytes, err %v", len(got), err)
	}
	if p := scrubAndWait(t, west, ""); p.Damaged != 0 {
		t.Fatalf("a pass after the repairs: %+v", p)
	}
	var body bytes.Buffer
	resp := west.Metrics(t)
	_, _ = io.Copy(&body, resp.Body)
	resp.Body.Close()
	for _, want := range []string{`bulwark_scrub_damaged_versions_total{kind="corrupt"} 1`, `bulwark_scrub_repaired_versions_total 2`} {
		if !strings.Contains(body.String(), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// TestScrubWithoutAReplica rots an object no other region holds: the
// scrub reports it, the GET fails with a clear error rather than return
// wrong bytes, and the repair from a backup, when asked for, restores it.
func TestScrubWithoutAReplica(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	c := r.Client(t)
	ctx := context.Background()
	versionedBucket(t, c, "alone", "us-west-2")
	data := randomBytes(200 << 10)
	vid := putObject(t, c, "alone", "precious", string(data))

	bc := awsbackup.New(awsbackup.Options{BaseEndpoint: aws.String(r.URL()), Region: "us-west-2", RetryMaxAttempts: 1,
		Credentials: credentials.NewStaticCredentialsProvider(servertest.AccessKey, servertest.SecretKey, "")})
	job, err := bc.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String("Default"),
		ResourceArn: aws.String("arn:aws:s3:::alone"), IamRoleArn: aws.String("arn:aws:iam::" + servertest.AccountID + ":role/backup")})
	mustDo(t, err)
	waitFor(t, "the backup", func() bool {
		d, err := bc.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: job.BackupJobId})
		mustDo(t, err)
		if d.State == "FAILED" {
			t.Fatalf("backup failed: %s", aws.ToString(d.StatusMessage))
		}
		return d.State == "COMPLETED"
	})

	flipByte(t, blobFile(t, r, "alone", "precious", vid, 0))
	p := scrubAndWait(t, r, "")
	if p.Damaged != 1 || p.Repaired != 0 || !strings.Contains(p.Findings[0].Unrepaired, "--repair-from-backup") {
		t.Fatalf("pass without a replica: %+v", p)
	}
	_, err = readObject(t, c, "alone", "precious", vid)
	if code, status := servertest.APICode(err); code != "InternalError" || status != 500 || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("GET of the damaged version: %v", err)
	}
	p = scrubAndWait(t, r, `{"repairFromBackup":true}`)
	if p.Damaged != 1 || p.Repaired != 1 || !strings.Contains(p.Findings[0].RepairedFrom, "recovery point") {
		t.Fatalf("pass with repair from backup: %+v", p)
	}
	if got, err := readObject(t, c, "alone", "precious", vid); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("after the repair from backup: %d bytes, err %v", len(got), err)
	}
	// A blob lost for good, with no copy anywhere: reported, refused.
	vid2 := putObject(t, c, "alone", "unbacked", string(randomBytes(100<<10)))
	mustDo(t, os.Remove(blobFile(t, r, "alone", "unbacked", vid2, 0)))
	p = scrubAndWait(t, r, `{"bucket":"alone","repairFromBackup":true}`)
	if p.Damaged != 1 || p.Repaired != 0 || p.Findings[0].Kind != "missing" {
		t.Fatalf("pass over a lost blob: %+v", p)
	}
	if _, err := readObject(t, c, "alone", "unbacked", vid2); err == nil {
		t.Fatal("a GET of a lost version succeeded")
	}
}
