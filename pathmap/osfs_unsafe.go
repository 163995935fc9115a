package pathmap

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// The hot path of Resolve on the real file system calls newfstatat and
// readlinkat directly on its own NUL-terminated buffer: unix.Lstat and
// unix.Readlink copy every path into a fresh C string, an allocation per
// component.

// lstatNUL is lstat(2) of the NUL-terminated path in p, retried on EINTR.
func lstatNUL(p []byte) (uint32, error) {
	var st unix.Stat_t
	fd := unix.AT_FDCWD
	for {
		_, _, e := unix.Syscall6(unix.SYS_NEWFSTATAT, uintptr(fd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(unsafe.Pointer(&st)), unix.AT_SYMLINK_NOFOLLOW, 0, 0)
		switch e {
		case 0:
			return st.Mode & unix.S_IFMT, nil
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}

// readlinkNUL is readlink(2) of the NUL-terminated path in p into buf,
// retried on EINTR; it returns the length read.
func readlinkNUL(p, buf []byte) (int, error) {
	fd := unix.AT_FDCWD
	for {
		n, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(fd), uintptr(unsafe.Pointer(&p[0])),
			uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
		switch e {
		case 0:
			return int(n), nil
		case unix.EINTR:
			continue
		default:
			return 0, e
		}
	}
}
