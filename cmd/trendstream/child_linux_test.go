package main

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes cmd's process receive SIGKILL when the test process
// dies, so a test killed by a timeout leaves no broker or processor behind.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
