package backup

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostPathPolicy checks which accounts may name which paths on the
// server: without roots only the admin account, anywhere; with roots any
// account, inside them only, symbolic links resolved.
func TestHostPathPolicy(t *testing.T) {
	rs := &Resources{}
	rs.SetPathPolicy(nil, func() string { return "111122223333" })
	if err := rs.CheckPath("111122223333", "Path", "/srv/app.db"); err != nil {
		t.Fatalf("admin, no roots: %v", err)
	}
	if err := rs.CheckPath("444455556666", "Path", "/srv/app.db"); err == nil || !strings.Contains(err.Error(), "admin account only") {
		t.Fatalf("another account, no roots: %v", err)
	}
	if err := rs.CheckPath("111122223333", "Path", "app.db"); err == nil {
		t.Fatal("a relative path passed")
	}

	root := t.TempDir()
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	rs.SetPathPolicy([]string{root}, func() string { return "111122223333" })
	for _, c := range []struct {
		path string
		ok   bool
	}{
		{filepath.Join(root, "app.db"), true},
		{filepath.Join(root, "new", "dir", "file"), true},
		{root, true},
		{filepath.Join(root, "..", "x"), false},
		{filepath.Join(root, "escape", "secret"), false},
		{outside, false},
		{"/etc/passwd", false},
	} {
		for _, account := range []string{"111122223333", "444455556666"} {
			err := rs.CheckPath(account, "Path", c.path)
			if (err == nil) != c.ok {
				t.Fatalf("%s as %s: %v, want allowed=%v", c.path, account, err, c.ok)
			}
		}
	}
}
