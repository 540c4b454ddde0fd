package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// buildBinary compiles bulwark once for the tests that run it as a process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "bulwark")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("build: %v", err)
	}
	return bin
}

// process is a bulwark serve process.
type process struct {
	cmd *exec.Cmd
	url string
	log *bytes.Buffer
}

func startServe(t *testing.T, bin, dataDir string) *process {
	t.Helper()
	return startProcess(t, bin, "serve", "--region", "us-east-1", "--data", dataDir, "--listen", "127.0.0.1:0")
}

// deploymentKey is shared by the regions of a test's deployment.
const deploymentKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// startProcess runs bulwark with args, with the test account's keys, and
// waits for the first line it prints, which ends with its endpoint.
func startProcess(t *testing.T, bin string, args ...string) *process {
	t.Helper()
	return startCommand(t, exec.Command(bin, args...))
}

// startCommand is startProcess for a command that runs bulwark (in a
// network namespace, say).
func startCommand(t *testing.T, cmd *exec.Cmd) *process {
	t.Helper()
	cmd.Env = append(os.Environ(), "BULWARK_ACCESS_KEY="+servertest.AccessKey, "BULWARK_SECRET_KEY="+servertest.SecretKey,
		"BULWARK_ACCOUNT_ID="+servertest.AccountID, "BULWARK_DEPLOYMENT_KEY="+deploymentKey)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, log: &bytes.Buffer{}}
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("%s did not start: %v\n%s", strings.Join(cmd.Args, " "), err, p.log)
	}
	f := strings.Fields(line)
	p.url = f[len(f)-1]
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return p
}

// TestCrashLosesNothingAcknowledged kills the server with SIGKILL while 16
// clients write. After a restart, every PUT that was acknowledged reads back
// byte-identical, every listed object has its data, and blobs a write left
// behind are swept.
func TestCrashLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs real processes; skipped with -short")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	p := startServe(t, bin, dir)
	client := servertest.NewClient(p.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	ctx := context.Background()
	if _, err := client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("crash")}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: aws.String("crash"), VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}}); err != nil {
		t.Fatal(err)
	}

	type ack struct {
		key, versionID string
		sum            [32]byte
	}
	var (
		mu    sync.Mutex
		acked []ack
		wg    sync.WaitGroup
	)
	sizes := []int{100, 4 << 10, 70 << 10, 300 << 10, 2 << 20}
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				data := make([]byte, sizes[(w+i)%len(sizes)])
				_, _ = rand.Read(data)
				key := fmt.Sprintf("w%02d/obj%05d", w, i%7) // overwrites make versions
				out, err := client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("crash"), Key: aws.String(key), Body: bytes.NewReader(data)})
				if err != nil {
					return // the server is gone
				}
				mu.Lock()
				acked = append(acked, ack{key, aws.ToString(out.VersionId), sha256.Sum256(data)})
				mu.Unlock()
			}
		}()
	}
	time.Sleep(3 * time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	wg.Wait()
	if len(acked) < 50 {
		t.Fatalf("only %d writes acknowledged before the kill; the test proves little", len(acked))
	}
	// What a write cut short leaves on disk, planted so the sweep is certain
	// to have work: a blob file with no metadata.
	orphan := filepath.Join(dir, "blobs", "ten", "HALFWRITTENBLOBten")
	if err := os.MkdirAll(filepath.Dir(orphan), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(orphan, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	p = startServe(t, bin, dir)
	client = servertest.NewClient(p.url, "us-east-1", servertest.AccessKey, servertest.SecretKey, nil)
	for _, a := range acked {
		out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("crash"), Key: aws.String(a.key), VersionId: aws.String(a.versionID)})
		if err != nil {
			t.Fatalf("acknowledged %s version %s lost: %v", a.key, a.versionID, err)
		}
		h := sha256.New()
		_, err = io.Copy(h, out.Body)
		out.Body.Close()
		if err != nil || !bytes.Equal(h.Sum(nil), a.sum[:]) {
			t.Fatalf("acknowledged %s version %s reads back different data (%v)", a.key, a.versionID, err)
		}
	}
	// Every listed version has its data, and every blob on disk belongs to
	// a listed version.
	listed, withBlob := 0, 0
	pager := s3.NewListObjectVersionsPaginator(client, &s3.ListObjectVersionsInput{Bucket: aws.String("crash")})
	for pager.HasMorePages() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range page.Versions {
			listed++
			if aws.ToInt64(v.Size) > 64<<10 {
				withBlob++
			}
			out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("crash"), Key: v.Key, VersionId: v.VersionId})
			if err != nil {
				t.Fatalf("listed %s %s unreadable: %v", aws.ToString(v.Key), aws.ToString(v.VersionId), err)
			}
			n, _ := io.Copy(io.Discard, out.Body)
			out.Body.Close()
			if n != aws.ToInt64(v.Size) {
				t.Fatalf("listed %s: %d bytes, want %d", aws.ToString(v.Key), n, aws.ToInt64(v.Size))
			}
		}
	}
	blobFiles := 0
	_ = filepath.WalkDir(filepath.Join(dir, "blobs"), func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			blobFiles++
		}
		return nil
	})
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatalf("planted orphan blob not swept: %v", err)
	}
	if blobFiles != withBlob {
		t.Fatalf("%d blob files on disk for %d versions stored in blobs: orphans left", blobFiles, withBlob)
	}
	t.Logf("%d writes acknowledged before SIGKILL; %d versions listed after restart, all readable", len(acked), listed)
}
