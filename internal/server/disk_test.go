package server_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/headroom/headroomtest"
	"github.com/bulwark/bulwark/internal/objectstore"
	"github.com/bulwark/bulwark/internal/server"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// acked is an object version a client was told is stored.
type acked struct {
	key, versionID string
	sum            [32]byte
}

// lowSpaceMessage is what a refused write says.
var lowSpaceMessage = regexp.MustCompile(`^region us-west-2 is low on disk space: \d+ bytes free, floor 2097152(, this write needs \d+)?; deletes still work$`)

// errorMessage returns an SDK error's code, HTTP status and message.
func errorMessage(err error) (string, int, string) {
	code, status := servertest.APICode(err)
	var ae smithy.APIError
	msg := ""
	if errors.As(err, &ae) {
		msg = ae.ErrorMessage()
	}
	return code, status, msg
}

// readBack checks that every acknowledged version but the deleted ones
// reads back byte for byte.
func readBack(t *testing.T, c *s3.Client, bucket string, all []acked, deleted map[string]bool) {
	t.Helper()
	for _, a := range all {
		if deleted[a.versionID] {
			continue
		}
		out, err := c.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
		if err != nil {
			t.Fatalf("acknowledged %s version %s: %v", a.key, a.versionID, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(h.Sum(nil), a.sum[:]) {
			t.Fatalf("acknowledged %s version %s reads back different data (%v)", a.key, a.versionID, err)
		}
	}
}

// metricValue reads a gauge or counter of the region's registry (summed
// over its series).
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
		return sum
	}
	return 0
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s", what)
		}
	}
}

// TestDiskFull fills a versioned bucket on a real 16 MiB tmpfs with large,
// then medium, then small objects until writes are refused, which happens
// before the disk is full and with a message that says why; then fills
// the disk to its last byte from outside. Deletes of every kind succeed
// all along, every acknowledged object reads back, and once space is
// freed writes resume and the ballast is made again, without a restart.
func TestDiskFull(t *testing.T) {
	dir := headroomtest.Mount(t, 16<<20)
	const floor, ballast = 2 << 20, 1 << 20
	r := servertest.Start(t, servertest.Options{Dir: dir, Configure: func(c *server.Config) {
		c.Disk = server.DiskConfig{Floor: floor, Ballast: ballast, MetaReserve: 1 << 20, Interval: 20 * time.Millisecond}
	}})
	c := r.Client(t)
	ctx := context.Background()
	versionedBucket(t, c, "full", "us-west-2")
	if fi, err := os.Stat(filepath.Join(dir, headroom.BallastFile)); err != nil || fi.Size() != ballast {
		t.Fatalf("ballast file at start: %v", err)
	}
	if v := metricValue(t, r.Registry, "bulwark_disk_meta_reserve_bytes"); v < 1<<20 {
		t.Fatalf("bulwark_disk_meta_reserve_bytes = %v at start", v)
	}

	var all []acked
	for phase, size := range []int{1500000, 64 << 10, 2 << 10} {
		for i := 0; ; i++ {
			data := randomBytes(size)
			key := fmt.Sprintf("p%d/%04d", phase, i)
			if phase == 0 {
				key = fmt.Sprintf("p0/%04d", i%3) // versions of a few keys
			}
			out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String(key), Body: bytes.NewReader(data)})
			if err == nil {
				all = append(all, acked{key, aws.ToString(out.VersionId), sha256.Sum256(data)})
				continue
			}
			code, status, msg := errorMessage(err)
			if code != "ServiceUnavailable" || status != 503 || !lowSpaceMessage.MatchString(msg) {
				t.Fatalf("object %d of %d bytes: %s %d %q (%v)", i, size, code, status, msg, err)
			}
			free := headroomtest.Free(t, dir)
			t.Logf("%d-byte objects refused after %d: %d bytes free: %s", size, i, free, msg)
			// Objects stored inline in the metadata cost bbolt more than
			// their size (a commit rewrites the leaf it lands in), so the
			// last one admitted may take the disk a little below the floor.
			if free < floor-256<<10 {
				t.Fatalf("refused only with %d bytes free, floor %d", free, floor)
			}
			if i == 0 && phase < 2 {
				t.Fatalf("no %d-byte object fitted", size)
			}
			break
		}
	}
	if v := metricValue(t, r.Registry, "bulwark_disk_refusing_writes"); v != 1 {
		t.Fatalf("bulwark_disk_refusing_writes = %v after refusals", v)
	}
	if v := metricValue(t, r.Registry, "bulwark_disk_refused_writes_total"); v < 3 {
		t.Fatalf("bulwark_disk_refused_writes_total = %v", v)
	}
	if v := metricValue(t, r.Registry, "bulwark_disk_floor_bytes"); v != floor {
		t.Fatalf("bulwark_disk_floor_bytes = %v", v)
	}
	if v, free := metricValue(t, r.Registry, "bulwark_disk_free_bytes"), headroomtest.Free(t, dir); v < float64(free)-64<<10 || v > float64(free)+64<<10 {
		t.Fatalf("bulwark_disk_free_bytes = %v, statfs says %d", v, free)
	}
	readBack(t, c, "full", all, nil)
	// Multipart uploads are new data too; a refused start leaves nothing.
	_, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("full"), Key: aws.String("mp")})
	if code, status, msg := errorMessage(err); code != "ServiceUnavailable" || status != 503 || !lowSpaceMessage.MatchString(msg) {
		t.Fatalf("CreateMultipartUpload below the floor: %s %d %q", code, status, msg)
	}
	_, err = c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("full"), Key: aws.String("copy"), CopySource: aws.String("full/" + all[0].key)})
	if code, status, _ := errorMessage(err); code != "ServiceUnavailable" || status != 503 {
		t.Fatalf("CopyObject below the floor: %v", err)
	}

	// Something else takes the rest of the disk, to the last byte. The
	// guard gives the ballast back; that is taken too.
	fills := []string{headroomtest.Fill(t, dir)}
	eventually(t, "ballast released on a full disk", func() bool {
		_, err := os.Stat(filepath.Join(dir, headroom.BallastFile))
		return os.IsNotExist(err)
	})
	fills = append(fills, headroomtest.Fill(t, dir))
	if free := headroomtest.Free(t, dir); free != 0 {
		t.Fatalf("%d bytes free after filling", free)
	}
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("more"), Body: bytes.NewReader(randomBytes(100))})
	if code, status, msg := errorMessage(err); code != "ServiceUnavailable" || status != 503 || !strings.Contains(msg, "0 bytes free") {
		t.Fatalf("PutObject on a full disk: %s %d %q", code, status, msg)
	}

	// On the full disk: a delete marker per key, as `aws s3 rm
	// --recursive` makes them (ListObjectsV2, then DeleteObjects) ...
	var ids []types.ObjectIdentifier
	list, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("full")})
	if err != nil {
		t.Fatalf("list on a full disk: %v", err)
	}
	for _, o := range list.Contents {
		ids = append(ids, types.ObjectIdentifier{Key: o.Key})
	}
	del, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("full"), Delete: &types.Delete{Objects: ids}})
	if err != nil || len(del.Errors) != 0 || len(del.Deleted) != len(ids) {
		t.Fatalf("DeleteObjects of %d keys on a full disk: %v, errors %+v", len(ids), err, del)
	}
	// ... a marker removed again, and versions deleted for good.
	dm := del.Deleted[0]
	if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("full"), Key: dm.Key, VersionId: dm.DeleteMarkerVersionId}); err != nil {
		t.Fatalf("delete of a delete marker on a full disk: %v", err)
	}
	deleted := map[string]bool{}
	for _, a := range all[:2] {
		if _, err := c.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("full"), Key: aws.String(a.key), VersionId: aws.String(a.versionID)}); err != nil {
			t.Fatalf("version delete on a full disk: %v", err)
		}
		deleted[a.versionID] = true
	}
	if free := headroomtest.Free(t, dir); free < 2*1500000 {
		t.Fatalf("two 1.5 MB versions deleted, %d bytes free", free)
	}
	readBack(t, c, "full", all, deleted)

	// Space comes back: writes resume and the ballast is made again, by
	// themselves.
	for _, f := range fills {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "writes resume", func() bool {
		data := randomBytes(1500000)
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("after"), Body: bytes.NewReader(data)})
		if err == nil {
			all = append(all, acked{"after", aws.ToString(out.VersionId), sha256.Sum256(data)})
		}
		return err == nil
	})
	eventually(t, "ballast made again", func() bool {
		fi, err := os.Stat(filepath.Join(dir, headroom.BallastFile))
		return err == nil && fi.Size() == ballast && metricValue(t, r.Registry, "bulwark_disk_ballast_bytes") == ballast
	})
	if v := metricValue(t, r.Registry, "bulwark_disk_refusing_writes"); v != 0 {
		t.Fatalf("bulwark_disk_refusing_writes = %v with space back", v)
	}
	readBack(t, c, "full", all, deleted)
}

// fakeDisk is a filesystem whose free space a test sets; the guard sees
// it, the real disk under it stays as it is.
type fakeDisk struct{ free atomic.Int64 }

func (d *fakeDisk) statfs(string) (headroom.Usage, error) {
	return headroom.Usage{Size: 100 << 30, Free: d.free.Load()}, nil
}

// TestNoSpaceLeavesNothingHalfDone: writes the guard let in (it is told
// the disk has room) run out of space on a real tmpfs, in the blob and in
// the metadata commit. Each is answered 503 with the cause, leaves no blob
// file and no version behind, and the region works on once space returns.
func TestNoSpaceLeavesNothingHalfDone(t *testing.T) {
	dir := headroomtest.Mount(t, 8<<20)
	disk := &fakeDisk{}
	disk.free.Store(1 << 30)
	r := servertest.Start(t, servertest.Options{Dir: dir, Configure: func(c *server.Config) {
		c.Disk = server.DiskConfig{Floor: 1 << 20, Ballast: -1, MetaReserve: -1, Statfs: disk.statfs}
	}})
	c := r.Client(t)
	ctx := context.Background()
	versionedBucket(t, c, "nospace", "us-west-2")
	before := randomBytes(100)
	out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nospace"), Key: aws.String("before"), Body: bytes.NewReader(before)})
	if err != nil {
		t.Fatal(err)
	}
	all := []acked{{"before", aws.ToString(out.VersionId), sha256.Sum256(before)}}

	fill := headroomtest.Fill(t, dir)
	fi, err := os.Stat(fill)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(fill, fi.Size()-1<<20); err != nil {
		t.Fatal(err)
	}
	outOfSpace := func(what string, err error) {
		t.Helper()
		code, status, msg := errorMessage(err)
		if code != "ServiceUnavailable" || status != 503 || !strings.HasPrefix(msg, "region us-west-2 ran out of disk space: ") {
			t.Fatalf("%s: %s %d %q (%v)", what, code, status, msg, err)
		}
	}
	// A blob that does not fit: 3 MiB into 1 MiB.
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nospace"), Key: aws.String("big"), Body: bytes.NewReader(randomBytes(3 << 20))})
	if code, _, _ := errorMessage(err); code == "" && err != nil && (strings.Contains(err.Error(), "broken pipe") || strings.Contains(err.Error(), "connection reset")) {
		// The region answered 503 while the client was still sending the
		// rest of the body, and closed the connection: the client may see
		// its write fail before it reads the answer. What matters is
		// below: nothing of the write is left.
		t.Logf("the client saw the early answer as %v", err)
	} else {
		outOfSpace("a blob larger than the free space", err)
	}
	if n := headroomtest.Files(t, filepath.Join(dir, "blobs")); n != 0 {
		t.Fatalf("%d blob files left by a write that ran out of space", n)
	}
	// A commit that does not fit: an inline object on a disk with no byte
	// free.
	fill2 := headroomtest.Fill(t, dir)
	_, err = c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nospace"), Key: aws.String("small"), Body: bytes.NewReader(randomBytes(60 << 10))})
	outOfSpace("an inline object on a full disk", err)
	if v := metricValue(t, r.Registry, "bulwark_disk_full_errors_total"); v < 2 {
		t.Fatalf("bulwark_disk_full_errors_total = %v", v)
	}
	for _, k := range []string{"big", "small"} {
		if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("nospace"), Key: aws.String(k)}); err == nil {
			t.Fatalf("%s is there after its write failed", k)
		}
	}

	for _, f := range []string{fill, fill2} {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"big", "small"} {
		data := randomBytes(3 << 20)
		if k == "small" {
			data = data[:60<<10]
		}
		out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("nospace"), Key: aws.String(k), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatalf("%s once space is back: %v", k, err)
		}
		all = append(all, acked{k, aws.ToString(out.VersionId), sha256.Sum256(data)})
	}
	readBack(t, c, "nospace", all, nil)
	vs, err := c.ListObjectVersions(ctx, &s3.ListObjectVersionsInput{Bucket: aws.String("nospace")})
	if err != nil || len(vs.Versions) != 3 {
		t.Fatalf("versions: %v %v", vs, err)
	}
	if n := headroomtest.Files(t, filepath.Join(dir, "blobs")); n != 1 {
		t.Fatalf("%d blob files for one object stored in a blob", n)
	}
}

// TestReplicaWaitsForDestinationSpace: a destination region low on disk
// answers replica writes 503; the source keeps the version PENDING and
// retries (never FAILED) until the destination has room, then completes.
func TestReplicaWaitsForDestinationSpace(t *testing.T) {
	east := &fakeDisk{}
	east.free.Store(1 << 30)
	regions := servertest.StartRegionsWith(t, func(c *server.Config) {
		c.Replication.RetryMax = 200 * time.Millisecond
		if c.Region == "us-east-1" {
			c.Disk = server.DiskConfig{Floor: 1 << 20, Ballast: -1, MetaReserve: -1, Statfs: east.statfs}
		}
	}, "us-west-2", "us-east-1")
	c := regions[0].Client(t)
	ctx := context.Background()
	versionedBucket(t, c, "src", "us-west-2")
	versionedBucket(t, c, "dst", "us-east-1")
	replicateAll(t, c, "src", "dst")

	east.free.Store(512 << 10)
	_, err := regions[1].Client(t).PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("dst"), Key: aws.String("direct"), Body: strings.NewReader("x")})
	if code, status, msg := errorMessage(err); code != "ServiceUnavailable" || status != 503 || !strings.HasPrefix(msg, "region us-east-1 is low on disk space") {
		t.Fatalf("a PUT into the low region: %s %d %q", code, status, msg)
	}
	vid := putObject(t, c, "src", "k", "replicate me")
	eventually(t, "a replica write refused for want of space", func() bool {
		return metricValue(t, regions[0].Registry, "bulwark_replication_transient_errors_total") >= 2
	})
	head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("k")})
	if err != nil || head.ReplicationStatus != types.ReplicationStatusPending {
		t.Fatalf("source version while the destination is low on space: %v %v", head.ReplicationStatus, err)
	}
	if v := metricValue(t, regions[0].Registry, "bulwark_replication_failed_operations_total"); v != 0 {
		t.Fatalf("%v operations FAILED for a destination low on space", v)
	}

	east.free.Store(1 << 30)
	eventually(t, "replication completes once the destination has room", func() bool {
		head, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("src"), Key: aws.String("k")})
		return err == nil && head.ReplicationStatus == types.ReplicationStatusCompleted
	})
	got, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("dst"), Key: aws.String("k")})
	if err != nil || aws.ToString(got.VersionId) != vid {
		t.Fatalf("replica: %v %v", got, err)
	}
}

// TestBackupJobOnLowDisk: a backup job on a region low on disk fails with
// a status message that says why; once there is room, a job completes.
func TestBackupJobOnLowDisk(t *testing.T) {
	disk := &fakeDisk{}
	disk.free.Store(1 << 30)
	r := servertest.Start(t, servertest.Options{Configure: func(c *server.Config) {
		c.Disk = server.DiskConfig{Floor: 1 << 20, Ballast: -1, MetaReserve: -1, Statfs: disk.statfs}
	}})
	ctx := context.Background()
	if err := r.Store.CreateBucket(ctx, "src", servertest.AccountID, "us-west-2"); err != nil {
		t.Fatal(err)
	}
	putObj(t, r.Store, "src", "k", []byte("data"))
	disk.free.Store(100 << 10)
	in := backup.StartBackupJobInput{VaultName: "Default", ResourceARN: "arn:aws:s3:::src", IAMRoleARN: roleARN}
	j, err := r.Jobs.StartBackupJob(ctx, servertest.AccountID, in)
	if err != nil {
		t.Fatal(err)
	}
	j = waitBackup(t, r.Jobs, j.JobID)
	if j.State != backup.JobFailed || !strings.HasPrefix(j.StatusMessage, "region us-west-2 is low on disk space: 102400 bytes free, floor 1048576") {
		t.Fatalf("job on a low disk: %s %q", j.State, j.StatusMessage)
	}
	// Restores write objects: refused the same way.
	_, err = r.Store.PutObject(ctx, &objectstore.PutInput{Bucket: "src", Key: "k2", Body: strings.NewReader("x"), Size: 1})
	if !errors.Is(err, headroom.ErrLowSpace) {
		t.Fatalf("PutObject on a low disk: %v", err)
	}
	disk.free.Store(1 << 30)
	j, err = r.Jobs.StartBackupJob(ctx, servertest.AccountID, in)
	if err != nil {
		t.Fatal(err)
	}
	if j = waitBackup(t, r.Jobs, j.JobID); j.State != backup.JobCompleted {
		t.Fatalf("job with room: %s %q", j.State, j.StatusMessage)
	}
}
