package backup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// A registered resource may carry two shell commands, SettingPreBackup and
// SettingPostBackup, run around each of its backups: to quiesce what
// writes it (flush and lock a database, freeze a filesystem, take an LVM
// snapshot) and to let it go again. Any provider of registered resources
// runs them the same way, through Hooks.

// HookShell runs the hooks, as `HookShell -c COMMAND`.
const HookShell = "/bin/sh"

// hookKillGrace is how long a hook's output pipes stay open after its
// shell exits or is killed: a daemon the hook started in the background
// and that kept them open does not hold the job.
const hookKillGrace = 2 * time.Second

// postHookGrace is how long a post-backup command may still run once the
// job's context has ended (the job was stopped, the server shuts down):
// it is what undoes the pre-backup command, so it runs, but not for ever.
const postHookGrace = time.Minute

// hookTail is how much of the end of a failed hook's standard error its
// job's message shows.
const hookTail = 1024

// ValidateHooks checks the hook settings of a registration: when it has a
// command, the shell that runs it must be there.
func ValidateHooks(settings map[string]string) error {
	for _, k := range []string{SettingPreBackup, SettingPostBackup} {
		if strings.TrimSpace(settings[k]) == "" {
			continue
		}
		if _, err := os.Stat(HookShell); err != nil {
			return errorf(ErrInvalidParameter, "%s needs %s, which this server does not have.", k, HookShell)
		}
	}
	return nil
}

// RunHook runs command with HookShell -c, with the server's environment
// and env (NAME=value) added, its standard input empty. A command that
// exits non-zero, or cannot be started, is an ErrInvalidRequest error
// whose message names the hook (name, such as SettingPreBackup) and ends
// with the tail of what the command wrote to standard error. When ctx
// ends, the command and everything it started in its process group are
// killed.
func RunHook(ctx context.Context, name, command string, env []string) error {
	cmd := exec.CommandContext(ctx, HookShell, "-c", command)
	cmd.Env = append(os.Environ(), env...)
	tail := &tailWriter{max: hookTail}
	cmd.Stderr = tail
	setProcessGroup(cmd)
	cmd.WaitDelay = hookKillGrace
	err := cmd.Run()
	if errors.Is(err, exec.ErrWaitDelay) {
		err = nil // exited 0; a background child kept stderr open
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", name, context.Cause(ctx))
	}
	var why string
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		why = exit.ProcessState.String() // "exit status 3", "signal: killed"
	} else {
		why = err.Error()
	}
	msg := fmt.Sprintf("%s failed (%s)", name, why)
	if t := tail.String(); t != "" {
		msg += ": " + t
	}
	return errorf(ErrInvalidRequest, "%s", msg)
}

// Hooks are the pre- and post-backup commands of one backup of a
// registered resource.
type Hooks struct {
	Pre, Post string
	// Env is added to the commands' environment (NAME=value).
	Env []string
}

// HooksOf returns the hooks of a registration, whose commands see
// BULWARK_RESOURCE_ARN and the extra env.
func HooksOf(reg *Registered, env ...string) *Hooks {
	return &Hooks{
		Pre:  reg.Settings[SettingPreBackup],
		Post: reg.Settings[SettingPostBackup],
		Env:  append([]string{"BULWARK_RESOURCE_ARN=" + reg.ARN}, env...),
	}
}

// Around runs the pre-backup command, then backup, then the post-backup
// command, and returns what the job should end with:
//
//   - a pre-backup command that fails stops the backup before it starts,
//     and the job fails with its message;
//   - the post-backup command runs whatever happened before (the
//     pre-backup command may have quiesced half of what it meant to),
//     with BULWARK_BACKUP_STATUS set to COMPLETED or FAILED, and even when
//     ctx has ended, for up to a minute more;
//   - a post-backup command that fails fails the job even when the
//     backup succeeded: the resource may be left quiesced, and a failed
//     job is what alerts and metrics watch. The point is then dropped, as
//     for any failed job.
//
// When both the backup (or the pre-backup command) and the post-backup
// command fail, the error says both.
func (h *Hooks) Around(ctx context.Context, backup func(context.Context) error) error {
	var err error
	if strings.TrimSpace(h.Pre) != "" {
		err = RunHook(ctx, SettingPreBackup, h.Pre, h.Env)
	}
	if err == nil {
		err = backup(ctx)
	}
	if strings.TrimSpace(h.Post) == "" {
		return err
	}
	status := "COMPLETED"
	if err != nil {
		status = "FAILED"
	}
	pctx, cancel := graceContext(ctx, postHookGrace)
	defer cancel()
	perr := RunHook(pctx, SettingPostBackup, h.Post, append(slices.Clip(h.Env), "BULWARK_BACKUP_STATUS="+status))
	switch {
	case perr == nil:
		return err
	case err == nil:
		return perr
	}
	var be *Error
	if errors.As(err, &be) {
		return &Error{Kind: be.Kind, Message: strings.TrimSuffix(be.Message, ".") + "; then " + perr.Error()}
	}
	return fmt.Errorf("%w; then %s", err, perr.Error())
}

// graceContext returns a context that ends d after ctx ends, or when
// cancel is called.
func graceContext(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	c, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			cancel()
		case <-c.Done():
		}
	})
	return c, func() { stop(); cancel() }
}

// tailWriter keeps the last max bytes written to it.
type tailWriter struct {
	max int
	buf []byte
}

func (w *tailWriter) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= w.max {
		w.buf = append(w.buf[:0], p[len(p)-w.max:]...)
		return n, nil
	}
	if over := len(w.buf) + len(p) - w.max; over > 0 {
		w.buf = append(w.buf[:0], w.buf[over:]...)
	}
	w.buf = append(w.buf, p...)
	return n, nil
}

// String is the tail, trimmed and made valid UTF-8, lines joined by " | ".
func (w *tailWriter) String() string {
	s := strings.ToValidUTF8(strings.TrimSpace(string(w.buf)), "\uFFFD")
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}
