//go:build !unix

package backup

import "os/exec"

// setProcessGroup leaves cmd as it is: where there are no process groups,
// only the shell is killed when the context ends.
func setProcessGroup(*exec.Cmd) {}
