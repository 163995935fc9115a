package tracer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ptrace_syscall_info.op values (linux/ptrace.h).
const (
	ptraceSyscallInfoEntry = 1
	ptraceSyscallInfoExit  = 2
)

// syscallStopOp tells a syscall-entry stop from a syscall-exit stop
// (PTRACE_GET_SYSCALL_INFO, Linux 5.3+); 0 when the kernel cannot say.
func syscallStopOp(tid int) uint8 {
	// struct ptrace_syscall_info: op is the first byte; the largest
	// variant (seccomp) is 84 bytes.
	var info [88]byte
	if err := ptrace4(unix.PTRACE_GET_SYSCALL_INFO, tid, uintptr(len(info)), uintptr(unsafe.Pointer(&info[0]))); err != nil {
		return 0
	}
	return info[0]
}
