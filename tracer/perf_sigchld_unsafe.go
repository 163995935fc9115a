package tracer

import (
	"unsafe"

	"golang.org/x/sys/unix"

	"nook/rootfs"
)

// Every ptrace stop of a tracee also sends the tracer's process a SIGCHLD
// (CLD_TRAPPED), unless SIGCHLD's action has SA_NOCLDSTOP. The Go runtime
// installs a handler for every signal, so each stop ran that handler on
// some thread of nook: the tracer thread (a signal frame and an
// rt_sigreturn, then wait4 restarted) or, as often, another thread woken up
// for nothing, possibly on the other CPU. wait4 does not need the signal:
// the kernel wakes waiters either way (do_notify_parent_cldstop). So the
// runtime's action is kept and SA_NOCLDSTOP added for the run; exits still
// raise SIGCHLD.

// kernelSigaction is struct sigaction as rt_sigaction(2) takes it on x86_64.
type kernelSigaction struct {
	handler  uintptr
	flags    uint64
	restorer uintptr
	mask     uint64
}

const saNoCldStop = 1 // SA_NOCLDSTOP

func rtSigaction(sig unix.Signal, act, old *kernelSigaction) error {
	_, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(sig),
		uintptr(unsafe.Pointer(act)), uintptr(unsafe.Pointer(old)), 8, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

func init() {
	OnStart(func(*rootfs.RunSpec, Options) (func() error, error) {
		var old kernelSigaction
		if err := rtSigaction(unix.SIGCHLD, nil, &old); err != nil {
			return nil, nil // keep going with the signals
		}
		if old.flags&saNoCldStop != 0 {
			return nil, nil
		}
		act := old
		act.flags |= saNoCldStop
		if err := rtSigaction(unix.SIGCHLD, &act, nil); err != nil {
			return nil, nil
		}
		return func() error {
			return rtSigaction(unix.SIGCHLD, &old, nil)
		}, nil
	})
}
