package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/bulwark/bulwark/internal/headroom"
	"github.com/bulwark/bulwark/internal/headroom/headroomtest"
	"github.com/bulwark/bulwark/internal/server/servertest"
)

// TestDiskFullCrash runs the scenario that once left a region unable to
// delete anything: a versioned bucket on a small filesystem filled with
// large, then medium, then small objects until nothing fits, refilled
// after freeing a little, the disk then filled to its last byte by
// something else, and the server killed with SIGKILL. Writes are refused
// with 503 and the cause before the disk is full; after the restart, on
// the full disk, `aws s3 rm --recursive` and version deletes succeed,
// nothing acknowledged is lost, and writes resume by themselves once
// space is freed.
func TestDiskFullCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes; skipped with -short")
	}
	mnt := headroomtest.Mount(t, 16<<20)
	bin := buildBinary(t)
	data := filepath.Join(mnt, "data")
	serve := func() *process {
		return startProcess(t, bin, "serve", "--region", "us-west-2", "--data", data, "--listen", "127.0.0.1:0",
			"--disk-floor", "2MiB", "--disk-ballast", "1MiB", "--disk-meta-reserve", "1MiB")
	}
	p := serve()
	client := servertest.NewClient(p.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("full")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("full"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}

	type ack struct {
		key, versionID string
		size           int
		sum            [32]byte
	}
	var acked []ack
	refused := regexp.MustCompile(`^region us-west-2 is low on disk space: \d+ bytes free, floor 2097152(, this write needs \d+)?; deletes still work$`)
	fill := func(round int) {
		for phase, size := range []int{1500000, 64 << 10, 2 << 10} {
			for i := 0; ; i++ {
				body := make([]byte, size)
				_, _ = rand.Read(body)
				key := fmt.Sprintf("r%d/p%d/%04d", round, phase, i)
				if phase == 0 {
					key = fmt.Sprintf("big/%d", i%3) // versions of a few keys
				}
				out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String(key), Body: bytes.NewReader(body)})
				if err == nil {
					acked = append(acked, ack{key, aws.ToString(out.VersionId), size, sha256.Sum256(body)})
					continue
				}
				code, status := servertest.APICode(err)
				var ae smithy.APIError
				if code != "ServiceUnavailable" || status != 503 || !errors.As(err, &ae) || !refused.MatchString(ae.ErrorMessage()) {
					t.Fatalf("%d-byte object: %v", size, err)
				}
				if free := headroomtest.Free(t, mnt); free < 2<<20-256<<10 {
					t.Fatalf("writes refused only with %d bytes free", free)
				}
				break
			}
		}
	}
	fill(0)
	// Free a little (two large versions, for good), and fill again.
	deleted := map[string]bool{}
	for _, a := range acked[:2] {
		if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("full"), Key: aws.String(a.key), VersionId: aws.String(a.versionID)}); err != nil {
			t.Fatal(err)
		}
		deleted[a.versionID] = true
	}
	fill(1)
	t.Logf("%d objects acknowledged; %d bytes free when refused", len(acked), headroomtest.Free(t, mnt))

	// Something else takes the rest of the disk, the released ballast too.
	fills := []string{headroomtest.Fill(t, mnt)}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(data, headroom.BallastFile)); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ballast not released on a full disk")
		}
	}
	fills = append(fills, headroomtest.Fill(t, mnt))
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	if free := headroomtest.Free(t, mnt); free != 0 {
		t.Fatalf("%d bytes free at the restart; want a full disk", free)
	}

	p = serve()
	client = servertest.NewClient(p.url, "us-west-2", servertest.AccessKey, servertest.SecretKey, nil)
	readBack := func() {
		t.Helper()
		for _, a := range acked {
			if deleted[a.versionID] {
				continue
			}
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("full"), Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
			if err != nil {
				t.Fatalf("acknowledged %s version %s lost: %v\n%s", a.key, a.versionID, err, p.log)
			}
			h := sha256.New()
			_, err = io.Copy(h, out.Body)
			out.Body.Close()
			if err != nil || !bytes.Equal(h.Sum(nil), a.sum[:]) {
				t.Fatalf("acknowledged %s version %s reads back different data (%v)", a.key, a.versionID, err)
			}
		}
	}
	readBack()

	// On the full disk, after the restart: a delete marker on every key,
	// then versions deleted for good.
	if _, err := exec.LookPath("aws"); err == nil || os.Getenv("CI") == "true" {
		cli := servertest.NewCLI(t, p.url, "us-west-2", servertest.AccessKey, servertest.SecretKey)
		stderr := cli.Fail("ServiceUnavailable", "s3api", "put-object", "--bucket", "full", "--key", "more", "--body", "/etc/hostname")
		if !strings.Contains(stderr, "(ServiceUnavailable) when calling the PutObject operation") ||
			!strings.Contains(stderr, "region us-west-2 is low on disk space: 0 bytes free, floor 2097152, this write needs ") {
			t.Fatalf("aws s3api put-object on a full disk: %s", stderr)
		}
		if _, stderr, ok := cli.Exec("s3", "rm", "--recursive", "s3://full"); !ok {
			t.Fatalf("aws s3 rm --recursive on a full disk after a restart: %s\n%s", stderr, p.log)
		}
	} else {
		t.Log("aws CLI not on PATH: delete markers made with DeleteObjects, as aws s3 rm --recursive does")
		list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("full")})
		if err != nil {
			t.Fatal(err)
		}
		var ids []types.ObjectIdentifier
		for _, o := range list.Contents {
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		del, err := client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("full"), Delete: &types.Delete{Objects: ids}})
		if err != nil || len(del.Errors) != 0 {
			t.Fatalf("DeleteObjects on a full disk after a restart: %v %+v", err, del)
		}
	}
	list, err := client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("full")})
	if err != nil || len(list.Contents) != 0 {
		t.Fatalf("after removing every key: %v, %d left", err, len(list.Contents))
	}
	for _, a := range acked {
		if a.size != 1500000 || deleted[a.versionID] {
			continue
		}
		if _, err := client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("full"), Key: aws.String(a.key), VersionId: aws.String(a.versionID)}); err != nil {
			t.Fatalf("version delete on a full disk after a restart: %v\n%s", err, p.log)
		}
		deleted[a.versionID] = true
	}
	readBack()

	// Space returns: writes resume without a restart.
	for _, f := range fills {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
	body := bytes.Repeat([]byte("x"), 1500000)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("full"), Key: aws.String("after"), Body: bytes.NewReader(body)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("writes did not resume once space was freed: %v", err)
		}
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if fi, err := os.Stat(filepath.Join(data, headroom.BallastFile)); err == nil && fi.Size() == 1<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("ballast not made again once space was freed")
		}
	}
	readBack()
}
