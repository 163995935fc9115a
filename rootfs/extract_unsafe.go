package rootfs

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// futimens sets the times of the open file fd: utimensat(fd, NULL, ts, 0),
// which x/sys does not expose (an empty path needs AT_EMPTY_PATH, which
// utimensat accepts only on recent kernels).
func futimens(fd int, ts []unix.Timespec) error {
	_, _, e := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}
