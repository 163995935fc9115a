package ownership

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// SizeofStat and SizeofStatx are the sizes of the kernel's struct stat
// (for this architecture's stat/fstat/newfstatat) and struct statx: what
// the tracer reads from and writes back to tracee memory.
const (
	SizeofStat  = int(unsafe.Sizeof(unix.Stat_t{}))
	SizeofStatx = int(unsafe.Sizeof(unix.Statx_t{}))
)

// FakeStatBytes rewrites a raw struct stat, as the kernel wrote it into
// the tracee, in place. b must hold at least SizeofStat bytes; it is
// copied rather than cast because tracee buffers need not be aligned.
func (s *Store) FakeStatBytes(b []byte, h Host) error {
	if len(b) < SizeofStat {
		return unix.EINVAL
	}
	var st unix.Stat_t
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&st)), SizeofStat)
	copy(raw, b)
	s.FakeStat(&st, h)
	copy(b, raw)
	return nil
}

// FakeStatxBytes is FakeStatBytes for struct statx.
func (s *Store) FakeStatxBytes(b []byte, h Host) error {
	if len(b) < SizeofStatx {
		return unix.EINVAL
	}
	var stx unix.Statx_t
	raw := unsafe.Slice((*byte)(unsafe.Pointer(&stx)), SizeofStatx)
	copy(raw, b)
	s.FakeStatx(&stx, h)
	copy(b, raw)
	return nil
}

// StatBytes is the kernel's byte layout of st, to write into a tracee.
func StatBytes(st *unix.Stat_t) []byte {
	b := make([]byte, SizeofStat)
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(st)), SizeofStat))
	return b
}

// StatxBytes is the kernel's byte layout of stx.
func StatxBytes(stx *unix.Statx_t) []byte {
	b := make([]byte, SizeofStatx)
	copy(b, unsafe.Slice((*byte)(unsafe.Pointer(stx)), SizeofStatx))
	return b
}
