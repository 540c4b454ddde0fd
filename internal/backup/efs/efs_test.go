//go:build linux

package efs_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsbackup "github.com/aws/aws-sdk-go-v2/service/backup"
	"github.com/aws/aws-sdk-go-v2/service/backup/types"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/bulwark/bulwark/internal/backup"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var ctx = context.Background()

const role = "arn:aws:iam::" + servertest.AccountID + ":role/backup"

// env is a region under test and a Backup client of its account.
type env struct {
	t testing.TB
	r *servertest.Region
	c *awsbackup.Client
}

func newEnv(t testing.TB) *env {
	t.Helper()
	r := servertest.Start(t, servertest.Options{})
	return &env{t: t, r: r, c: sdk(r, servertest.AccessKey, servertest.SecretKey)}
}

func sdk(r *servertest.Region, access, secret string) *awsbackup.Client {
	return awsbackup.NewFromConfig(aws.Config{
		Region:           r.Store.Region(),
		Credentials:      credentials.NewStaticCredentialsProvider(access, secret, ""),
		BaseEndpoint:     aws.String(r.URL()),
		RetryMaxAttempts: 1,
	})
}

// register registers dir as a directory of the account, with settings
// added to its Path.
func (e *env) register(name, dir string, settings map[string]string) *backup.Registered {
	e.t.Helper()
	s := map[string]string{backup.SettingPath: dir}
	for k, v := range settings {
		s[k] = v
	}
	reg, err := e.r.Resources.Register(ctx, servertest.AccountID, backup.Registration{Type: backup.TypeEFS, Name: name, Settings: s,
		Tags: map[string]string{"team": "web"}})
	if err != nil {
		e.t.Fatal(err)
	}
	return reg
}

// backup runs a backup job of arn into vault to its end.
func (e *env) backup(arn, vault string, l *types.Lifecycle) *awsbackup.DescribeBackupJobOutput {
	e.t.Helper()
	start, err := e.c.StartBackupJob(ctx, &awsbackup.StartBackupJobInput{BackupVaultName: aws.String(vault),
		ResourceArn: aws.String(arn), IamRoleArn: aws.String(role), Lifecycle: l})
	if err != nil {
		e.t.Fatal(err)
	}
	var j *awsbackup.DescribeBackupJobOutput
	waitUntil(e.t, "backup job", func() bool {
		if j, err = e.c.DescribeBackupJob(ctx, &awsbackup.DescribeBackupJobInput{BackupJobId: start.BackupJobId}); err != nil {
			e.t.Fatal(err)
		}
		return j.State == types.BackupJobStateCompleted || j.State == types.BackupJobStateFailed || j.State == types.BackupJobStateAborted
	})
	return j
}

// completed runs a backup job that must complete, and returns it with its
// point.
func (e *env) completed(arn, vault string, l *types.Lifecycle) (*awsbackup.DescribeBackupJobOutput, *backup.RecoveryPoint) {
	e.t.Helper()
	j := e.backup(arn, vault, l)
	if j.State != types.BackupJobStateCompleted {
		e.t.Fatalf("backup of %s: %s %s", arn, j.State, aws.ToString(j.StatusMessage))
	}
	rp, err := e.r.Jobs.DescribeRecoveryPoint(ctx, servertest.AccountID, vault, aws.ToString(j.RecoveryPointArn))
	if err != nil {
		e.t.Fatal(err)
	}
	return j, rp
}

// restore runs a restore job of a point to its end.
func restore(t testing.TB, c *awsbackup.Client, point string, md map[string]string) *awsbackup.DescribeRestoreJobOutput {
	t.Helper()
	start, err := c.StartRestoreJob(ctx, &awsbackup.StartRestoreJobInput{RecoveryPointArn: aws.String(point),
		IamRoleArn: aws.String(role), Metadata: md, ResourceType: aws.String("EFS")})
	if err != nil {
		t.Fatal(err)
	}
	var j *awsbackup.DescribeRestoreJobOutput
	waitUntil(t, "restore job", func() bool {
		if j, err = c.DescribeRestoreJob(ctx, &awsbackup.DescribeRestoreJobInput{RestoreJobId: start.RestoreJobId}); err != nil {
			t.Fatal(err)
		}
		return j.Status == types.RestoreJobStatusCompleted || j.Status == types.RestoreJobStatusFailed
	})
	return j
}

// restored runs a restore job that must complete.
func restored(t testing.TB, c *awsbackup.Client, point string, md map[string]string) *awsbackup.DescribeRestoreJobOutput {
	t.Helper()
	j := restore(t, c, point, md)
	if j.Status != types.RestoreJobStatusCompleted {
		t.Fatalf("restore with %v: %s %s", md, j.Status, aws.ToString(j.StatusMessage))
	}
	return j
}

func waitUntil(t testing.TB, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatalf("%s did not end", what)
}

// wantError fails unless err is the API error code with a message that
// holds each of parts.
func wantError(t *testing.T, err error, code string, parts ...string) {
	t.Helper()
	servertest.WantCode(t, err, code, 400)
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("error %q does not say %q", err, p)
		}
	}
}

// node is what the tests compare of an item of a tree.
type node struct {
	kind   fs.FileMode // type bits
	perm   fs.FileMode // permission bits with setuid, setgid, sticky
	size   int64
	mtime  int64
	target string // of a link
	sum    string // SHA-256 of a file's data
	uid    uint32
	gid    uint32
}

// snapshot reads a tree: every item by its slash path relative to dir, ""
// for dir itself.
func snapshot(t testing.TB, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			rel = ""
		}
		st := fi.Sys().(*syscall.Stat_t)
		n := node{kind: fi.Mode().Type(), perm: fi.Mode() & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky),
			mtime: fi.ModTime().UnixNano(), uid: st.Uid, gid: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			n.size = fi.Size()
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			n.sum = hex.EncodeToString(sum[:])
		case fi.Mode()&fs.ModeSymlink != 0:
			if n.target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		out[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTrees fails unless the trees at want and got are the same, but for
// the items only holds.
func sameTrees(t testing.TB, want, got map[string]node, only ...string) {
	t.Helper()
	if only != nil {
		w := map[string]node{}
		for _, k := range only {
			w[k] = want[k]
		}
		want = w
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("/%s missing from the restore", k)
		} else if g != w {
			t.Errorf("/%s restored as %+v, want %+v", k, g, w)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("/%s restored, not backed up", k)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// randomFile writes n bytes of random data, seeded, with mode perm.
func randomFile(t testing.TB, path string, n int64, seed uint64, perm fs.FileMode) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, perm)
	if err != nil {
		t.Fatal(err)
	}
	var key [32]byte
	key[0], key[1] = byte(seed), byte(seed>>8)
	if _, err := io.CopyN(f, rand.NewChaCha8(key), n); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

const (
	sparseSize = 64 << 20
	dataFiles  = 8 // of 4 MiB each
	dataSize   = 4 << 20
)

// makeTree fills dir with a tree of every kind of item the provider
// keeps: files of several modes and times, an empty file, empty and
// special directories, links (relative, absolute, dangling), a FIFO, a
// name that is not UTF-8, 32 MiB of random data and a sparse 64 MiB file
// with three blocks of data. It returns the bytes of its files.
func makeTree(t *testing.T, dir string) int64 {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"bin", "sub/dir", "sub/empty", "sub/shared", "ro", "data"} {
		must(os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	must(os.WriteFile(filepath.Join(dir, "a.txt"), []byte("alpha\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "empty.txt"), nil, 0o600))
	randomFile(t, filepath.Join(dir, "bin/tool"), 1<<20+17, 1, 0o755)
	randomFile(t, filepath.Join(dir, "sub/dir/deep.bin"), 300<<10, 2, 0o600)
	must(os.WriteFile(filepath.Join(dir, "sub/dir/note \xff\xfe.txt"), []byte("not utf-8\n"), 0o640))
	must(os.WriteFile(filepath.Join(dir, "ro/file"), []byte("read only\n"), 0o444))
	for i := range dataFiles {
		randomFile(t, filepath.Join(dir, "data", fmt.Sprintf("%02d.bin", i)), dataSize, uint64(10+i), 0o644)
	}
	f, err := os.Create(filepath.Join(dir, "sparse.img"))
	must(err)
	for _, off := range []int64{0, sparseSize / 2, sparseSize - 4096} {
		_, err := f.WriteAt(bytes.Repeat([]byte{0xAB}, 4096), off)
		must(err)
	}
	must(f.Close())
	must(os.Symlink("a.txt", filepath.Join(dir, "link-rel")))
	must(os.Symlink("/etc/hostname", filepath.Join(dir, "link-abs")))
	must(os.Symlink("nowhere/\xff", filepath.Join(dir, "sub/dangling")))
	must(syscall.Mkfifo(filepath.Join(dir, "sub/fifo"), 0o620))
	must(os.Chmod(filepath.Join(dir, "sub/shared"), 0o2775|fs.ModeSetgid|fs.ModeSticky))
	must(os.Chmod(filepath.Join(dir, "ro"), 0o555))
	must(os.Chmod(filepath.Join(dir, "sub/empty"), 0o750))
	// Times with nanoseconds, some long past; directories last, since
	// writing in one sets its time.
	i := int64(0)
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		i++
		ts := time.Unix(700000000+i*86400, i*1234567+1)
		return lchtimes(p, ts)
	})
	must(err)
	dirs := []string{"sub/dir", "sub/empty", "sub/shared", "sub", "ro", "bin", "data", ""}
	for k, d := range dirs {
		must(lchtimes(filepath.Join(dir, d), time.Unix(1500000000+int64(k)*3600, int64(k)*1000003+7)))
	}
	return 1<<20 + 17 + 300<<10 + int64(len("alpha\nnot utf-8\nread only\n")) + dataFiles*dataSize + sparseSize
}

func lchtimes(p string, ts time.Time) error {
	t := unix.NsecToTimespec(ts.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{t, t}, unix.AT_SYMLINK_NOFOLLOW)
}

var efsARN = regexp.MustCompile(`^arn:aws:elasticfilesystem:us-west-2:` + servertest.AccountID + `:file-system/fs-[0-9a-f]{17}$`)

// TestDirectoryBackupRestore backs a directory up and restores it byte
// for byte (data, modes, times, links, empty directories, a FIFO, a
// sparse file with its holes), in full, to the default target and item by
// item; a second backup of the unchanged tree reads no data and adds
// under 1 % of it, and one after a file changed adds about that file.
func TestDirectoryBackupRestore(t *testing.T) {
	e := newEnv(t)
	base := t.TempDir()
	src := filepath.Join(base, "docs")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	total := makeTree(t, src)
	want := snapshot(t, src)
	reg := e.register("docs", src, nil)
	if !efsARN.MatchString(reg.ARN) {
		t.Fatalf("ARN %s", reg.ARN)
	}

	j, rp := e.completed(reg.ARN, "Default", nil)
	if aws.ToString(j.ResourceType) != "EFS" || aws.ToInt64(j.BackupSizeInBytes) != total || aws.ToInt64(j.BytesTransferred) != total {
		t.Fatalf("backup job: type %s, %d bytes, %d transferred; want %d", aws.ToString(j.ResourceType), aws.ToInt64(j.BackupSizeInBytes),
			aws.ToInt64(j.BytesTransferred), total)
	}
	if rp.Status != backup.PointCompleted || rp.Objects != int64(len(want)) {
		t.Fatalf("point: %s %q, %d items; want %d", rp.Status, rp.StatusMessage, rp.Objects, len(want))
	}
	t.Logf("full backup: %d items, %d bytes, %d new in the vault", rp.Objects, rp.BackupSizeInBytes, rp.BytesNew)
	point := rp.ARN
	md, err := e.c.GetRecoveryPointRestoreMetadata(ctx, &awsbackup.GetRecoveryPointRestoreMetadataInput{BackupVaultName: aws.String("Default"), RecoveryPointArn: &point})
	if err != nil {
		t.Fatal(err)
	}
	fsID := reg.ARN[strings.LastIndexByte(reg.ARN, '/')+1:]
	if aws.ToString(md.ResourceType) != "EFS" || len(md.RestoreMetadata) != 2 || md.RestoreMetadata["file-system-id"] != fsID || md.RestoreMetadata["Path"] != src {
		t.Fatalf("restore metadata: %v", md.RestoreMetadata)
	}

	// In full, into a new directory.
	target := filepath.Join(base, "restored")
	rj := restored(t, e.c, point, map[string]string{"TargetDirectory": target})
	if arn := aws.ToString(rj.CreatedResourceArn); !efsARN.MatchString(arn) || arn == reg.ARN {
		t.Fatalf("created resource %s", arn)
	}
	if aws.ToInt64(rj.BackupSizeInBytes) != total {
		t.Fatalf("restore job: %d bytes", aws.ToInt64(rj.BackupSizeInBytes))
	}
	sameTrees(t, want, snapshot(t, target))
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(target, "sparse.img"), &st); err != nil {
		t.Fatal(err)
	}
	if st.Blocks*512 > 1<<20 {
		t.Fatalf("sparse.img restored with %d bytes allocated of %d", st.Blocks*512, st.Size)
	}
	leftovers(t, base)

	// With the metadata GetRecoveryPointRestoreMetadata gave (Path is
	// where the point came from, never where it goes): a new directory
	// beside the source.
	rj = restored(t, e.c, point, md.RestoreMetadata)
	def := src + "-restore-" + rp.CreationDate.UTC().Format("20060102T150405Z")
	sameTrees(t, want, snapshot(t, def))
	if err := os.RemoveAll(def); err != nil {
		t.Fatal(err)
	}

	// Two items: a directory and a file, with the directories that lead
	// to them.
	items := filepath.Join(base, "items")
	if err := os.Mkdir(items, 0o700); err != nil { // an empty directory is a target too
		t.Fatal(err)
	}
	restored(t, e.c, point, map[string]string{"TargetDirectory": items, "itemsToRestore": `["/sub/dir","/a.txt"]`})
	sameTrees(t, want, snapshot(t, items), "", "a.txt", "sub", "sub/dir", "sub/dir/deep.bin", "sub/dir/note \xff\xfe.txt")

	// The unchanged tree: nothing read, under 1 % added.
	j2, rp2 := e.completed(reg.ARN, "Default", nil)
	if aws.ToInt64(j2.BytesTransferred) != 0 || rp2.BackupSizeInBytes != total || float64(rp2.BytesNew) >= 0.01*float64(total) {
		t.Fatalf("backup of the unchanged tree read %d bytes and added %d (%.3f %% of %d)", aws.ToInt64(j2.BytesTransferred), rp2.BytesNew,
			100*float64(rp2.BytesNew)/float64(total), total)
	}
	t.Logf("unchanged tree: %d bytes new (%.4f %%)", rp2.BytesNew, 100*float64(rp2.BytesNew)/float64(total))

	// One 4 MiB file rewritten: about that file is added.
	randomFile(t, filepath.Join(src, "data/03.bin"), dataSize, 99, 0o644)
	j3, rp3 := e.completed(reg.ARN, "Default", nil)
	if aws.ToInt64(j3.BytesTransferred) != dataSize || rp3.BytesNew < dataSize || rp3.BytesNew > dataSize+dataSize/10 {
		t.Fatalf("backup after a %d-byte file changed read %d bytes and added %d", dataSize, aws.ToInt64(j3.BytesTransferred), rp3.BytesNew)
	}
	t.Logf("one file of %d bytes changed: %d bytes new", dataSize, rp3.BytesNew)
	target3 := filepath.Join(base, "restored3")
	restored(t, e.c, rp3.ARN, map[string]string{"TargetDirectory": target3})
	sameTrees(t, snapshot(t, src), snapshot(t, target3))
}

// leftovers fails if a restore left its temporary files or directories
// under dir.
func leftovers(t *testing.T, dir string) {
	t.Helper()
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".bulwark-restore-") {
			t.Fatalf("restore left %s", p)
		}
		return nil
	})
}
