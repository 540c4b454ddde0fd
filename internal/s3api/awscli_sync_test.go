package s3api_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/bulwark/bulwark/internal/server/servertest"
)

// treeOf maps every file under dir to its content.
func treeOf(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		out[filepath.ToSlash(rel)] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sameTree(t *testing.T, a, b map[string][]byte) {
	t.Helper()
	var missing []string
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			missing = append(missing, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			missing = append(missing, k)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Fatalf("trees differ in %d files, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
}

// TestAWSCLISync drives aws s3 sync, mv and rm --recursive: 500 files up, a
// change and a deletion, sync --delete, then down into an empty directory.
func TestAWSCLISync(t *testing.T) {
	r := servertest.Start(t, servertest.Options{})
	cli := servertest.AWSCLI(t, r)
	src := t.TempDir()
	for i := 0; i < 500; i++ {
		p := filepath.Join(src, fmt.Sprintf("d%02d", i%17), fmt.Sprintf("sub%d", i%3), fmt.Sprintf("file %03d.txt", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte(fmt.Sprintf("file %d\n", i)), i+1), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cli.Run("s3api", "create-bucket", "--bucket", "sync", "--create-bucket-configuration", "LocationConstraint=us-west-2")
	cli.Run("s3", "sync", src, "s3://sync/tree/")
	// One change (a different size, so sync notices) and one deletion.
	changed := filepath.Join(src, "d01", "sub1", "file 001.txt")
	if err := os.WriteFile(changed, []byte("changed content, longer than before\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(src, "d02", "sub2", "file 002.txt")); err != nil {
		t.Fatal(err)
	}
	cli.Run("s3", "sync", "--delete", src, "s3://sync/tree/")
	down := t.TempDir()
	cli.Run("s3", "sync", "s3://sync/tree/", down)
	sameTree(t, treeOf(t, src), treeOf(t, down))

	// mv moves an object: the source is gone afterwards.
	cli.Run("s3", "mv", "s3://sync/tree/d01/sub1/file 001.txt", "s3://sync/moved.txt")
	got := filepath.Join(t.TempDir(), "moved.txt")
	cli.Run("s3", "cp", "s3://sync/moved.txt", got)
	if b, _ := os.ReadFile(got); string(b) != "changed content, longer than before\n" {
		t.Fatalf("moved object reads %q", b)
	}
	empty := t.TempDir()
	cli.Run("s3", "rm", "--recursive", "s3://sync/tree/")
	cli.Run("s3", "sync", "s3://sync/tree/", empty)
	if n := len(treeOf(t, empty)); n != 0 {
		t.Fatalf("%d files left under tree/ after rm --recursive", n)
	}
}
