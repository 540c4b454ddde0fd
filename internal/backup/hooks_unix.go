//go:build unix

package backup

import (
	"os/exec"
	"syscall"
)

// setProcessGroup runs cmd in a process group of its own, killed whole
// when its context ends: a hook's children die with it.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
