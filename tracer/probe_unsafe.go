package tracer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// seccompRetTrace is SECCOMP_RET_TRACE; SECCOMP_GET_ACTION_AVAIL asks the
// kernel whether it supports a filter return action.
const (
	seccompRetTrace       = 0x7ff00000
	seccompGetActionAvail = 2
)

// probeSeccomp reports why the tracee could not use seccomp filters that
// trap to a tracer, in the kernel's own words (nil when it can): libseccomp's
// load errors say only "operation canceled".
func probeSeccomp() error {
	act := uint32(seccompRetTrace)
	_, _, e := unix.Syscall(unix.SYS_SECCOMP, seccompGetActionAvail, 0, uintptr(unsafe.Pointer(&act)))
	if e != 0 {
		return e
	}
	return nil
}
