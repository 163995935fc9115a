package main

import (
	"os"
	"runtime"

	"nook/rootfs"
	"nook/tracer"
)

// The tracee must load its seccomp filter and call execve from the thread
// the tracer seized, whose tid is the pid: lock the main goroutine to the
// main thread before anything else runs.
func init() {
	if len(os.Args) > 1 && os.Args[1] == "__tracee" {
		runtime.LockOSThread()
	}
}

// traceeCmd is the guest's first process in rootless mode before it
// executes the guest command (see tracer.TraceeMain).
type traceeCmd struct{}

func (c *traceeCmd) Run() error {
	tracer.TraceeMain()
	// The tracer reports the failure; exit quietly.
	return &exitStatus{code: rootfs.ExitToolFailure}
}
