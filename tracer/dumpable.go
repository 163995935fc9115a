package tracer

import (
	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// A non-dumpable process's memory is out of reach of an unprivileged
// tracer: process_vm_readv, PTRACE_PEEKDATA and /proc/PID/mem all check
// the dumpable flag, and only CAP_SYS_PTRACE overrides it. A guest that
// makes itself non-dumpable (ssh-agent, gpg-agent, some daemons do, to
// keep other processes of the user out) would have every path syscall
// fail. So prctl(PR_SET_DUMPABLE) is emulated: it records the flag, which
// PR_GET_DUMPABLE reports, and leaves the process dumpable. (The other ways
// to become non-dumpable, set-user-ID programs and credential changes, do
// not happen under the tracer: no_new_privs and emulated set*id.)

func init() {
	// The option is an int: the filter, like the kernel, looks at the
	// register's low half only (a guest setting the upper half must not
	// reach the real prctl).
	for _, op := range []uint32{unix.PR_SET_DUMPABLE, unix.PR_GET_DUMPABLE} {
		Register(unix.SYS_PRCTL, Hook{
			Entry: dumpableEntry,
			When:  []seccomp.ScmpCondition{argIs(0, op)},
		})
	}
}

func dumpableEntry(c *Call) {
	p := c.T.P
	switch uint32(c.Arg(0)) {
	case unix.PR_SET_DUMPABLE:
		switch c.Arg(1) {
		case 0:
			p.notDumpable = true
		case 1:
			p.notDumpable = false
		default:
			c.Fail(unix.EINVAL)
			return
		}
		c.Return(0)
	case unix.PR_GET_DUMPABLE:
		if p.notDumpable {
			c.Return(0)
		} else {
			c.Return(1)
		}
	}
}
