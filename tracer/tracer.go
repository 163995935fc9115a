// Package tracer runs a guest command under a ptrace + seccomp tracer that
// translates file names through pathmap and fakes ownership (rootless mode).
package tracer

import (
	"errors"

	"nook/rootfs"
)

// Options tune the tracer. The zero value is the default.
type Options struct {
	// OwnershipDB is the path of the persistent ownership store; empty
	// disables persistence (ids are still faked in memory).
	OwnershipDB string
}

// ErrUnavailable is wrapped by Run's error when ptrace or seccomp cannot be
// used on this system (the message names the cause).
var ErrUnavailable = errors.New("ptrace/seccomp unavailable")

// Run starts spec under the tracer and waits until the guest's first process
// exits. It returns the exit status the run command must exit with
// (following rootfs.Exit* conventions), or an error when nook itself failed.
func Run(spec *rootfs.RunSpec, opts Options) (int, error) {
	return rootfs.ExitToolFailure, errors.New("rootless mode: not implemented yet")
}
