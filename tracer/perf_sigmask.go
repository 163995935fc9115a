package tracer

import "golang.org/x/sys/unix"

// blockChildSignal blocks SIGCHLD on the calling thread, the tracer's.
//
// Precondition: the OS thread is locked, and the tracee is already
// spawned (a child inherits its creator's signal mask).
//
// A tracee's exit sends SIGCHLD to its tracer *thread* (do_notify_parent:
// the ptrace parent is a task, not a process), and complete_signal hands a
// process-directed signal to the target task first when it does not block
// it. So about once per exited guest process the tracer thread, asleep in
// wait4, was woken to run the Go runtime's handler for a signal nobody
// wants (nook does not Notify SIGCHLD), saved and restored its FPU state
// in a signal frame, and restarted wait4, all on the guest's CPU and in
// the guest's critical path. wait4 itself never needs the signal: the exit
// wakes the waiters directly (__wake_up_parent). Blocked here, the signal
// goes to another thread of nook, which is idle and usually on the other
// CPU. SA_NOCLDSTOP (perf_sigchld_unsafe.go) already keeps stops from
// raising it.
func blockChildSignal() {
	var set unix.Sigset_t
	set.Val[(unix.SIGCHLD-1)/64] |= 1 << ((uint(unix.SIGCHLD) - 1) % 64)
	// A failure leaves the signals coming, as before: slower, not wrong.
	_ = unix.PthreadSigmask(unix.SIG_BLOCK, &set, nil)
}
