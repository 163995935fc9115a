package ownership

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// ptr and ptr32 pass Go buffers to raw syscalls in the kernel comparison
// tests.
func ptr(s []uint32) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

func ptr32(p *uint32) unsafe.Pointer { return unsafe.Pointer(p) }

func statBytes(st *unix.Stat_t) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(st)), SizeofStat)
}

func statFromBytes(b []byte) unix.Stat_t {
	var st unix.Stat_t
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&st)), SizeofStat), b)
	return st
}
