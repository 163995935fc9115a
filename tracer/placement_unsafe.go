package tracer

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// currentCPU returns the CPU the calling thread runs on.
func currentCPU() (int, error) {
	var cpu uint32
	_, _, e := unix.RawSyscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&cpu)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(cpu), nil
}

// cpuSetBytes is the memory of set as sched_getaffinity writes it.
func cpuSetBytes(set *unix.CPUSet) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(set)), unsafe.Sizeof(*set))
}
