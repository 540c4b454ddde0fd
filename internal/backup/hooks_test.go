//go:build unix

package backup_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bulwark/bulwark/internal/backup"
)

// A hook whose context ends is killed with what it started, and soon.
func TestRunHookKilledWithItsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := backup.RunHook(ctx, backup.SettingPreBackup, `sleep 30 & echo $! > `+pidFile+`; wait`, nil)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Fatalf("hook after its deadline: %v after %s", err, time.Since(start))
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	for deadline := time.Now().Add(5 * time.Second); syscall.Kill(pid, 0) == nil; time.Sleep(10 * time.Millisecond) {
		var ws syscall.WaitStatus
		_, _ = syscall.Wait4(pid, &ws, syscall.WNOHANG, nil) // a zombie of ours, if reparented to us
		if time.Now().After(deadline) {
			t.Fatalf("the hook's child %d outlived it", pid)
		}
	}
}

// A failed hook's message ends with the end of its standard error, and
// says how it ended.
func TestRunHookMessage(t *testing.T) {
	err := backup.RunHook(context.Background(), backup.SettingPostBackup, `head -c 5000 /dev/zero | tr '\0' x >&2; echo >&2; echo "the end" >&2; kill -9 $$`, nil)
	var be *backup.Error
	if !errors.As(err, &be) || !errors.Is(err, backup.ErrInvalidRequest) {
		t.Fatalf("error %v", err)
	}
	if !strings.HasPrefix(be.Message, "PostBackupCommand failed (signal: killed): xxx") || !strings.HasSuffix(be.Message, "xxx | the end") || len(be.Message) > 1100 {
		t.Fatalf("message %q", be.Message)
	}
	if err := backup.RunHook(context.Background(), "x", `test "$A" = b`, []string{"A=b"}); err != nil {
		t.Fatalf("hook with its environment: %v", err)
	}
}

// The post-backup command runs even when the job's context has ended:
// it is what lets go of what the pre-backup command quiesced.
func TestHooksPostRunsAfterStop(t *testing.T) {
	log := filepath.Join(t.TempDir(), "log")
	h := &backup.Hooks{Pre: `echo pre >> ` + log, Post: `echo "post $BULWARK_BACKUP_STATUS" >> ` + log}
	ctx, cancel := context.WithCancel(context.Background())
	err := h.Around(ctx, func(ctx context.Context) error {
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Around: %v", err)
	}
	if b, _ := os.ReadFile(log); string(b) != "pre\npost FAILED\n" {
		t.Fatalf("hooks ran: %q", b)
	}
}
