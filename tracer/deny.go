package tracer

import "golang.org/x/sys/unix"

// Calls that would bypass path translation fail in the seccomp filter
// itself (no stop): see docs/design.md, "The rootless tracer", for the choice of each
// errno.
func init() {
	// io_uring performs opens, stats and renames in the kernel with no
	// syscall to rewrite; ENOSYS is what programs (liburing users, Rust's
	// and Go's runtimes) check to fall back to plain syscalls.
	Deny(unix.SYS_IO_URING_SETUP, unix.ENOSYS)
	// File handles name files by inode, beside any path: "operation not
	// supported" is what a file system without handles answers, and
	// callers (systemd, mountinfo users) fall back to paths.
	Deny(unix.SYS_NAME_TO_HANDLE_AT, unix.EOPNOTSUPP)
	Deny(unix.SYS_OPEN_BY_HANDLE_AT, unix.EOPNOTSUPP)
	// Mounts and root changes need privileges the real user lacks; a
	// real unprivileged chroot answers EPERM too.
	Deny(unix.SYS_MOUNT, unix.EPERM)
	Deny(unix.SYS_UMOUNT2, unix.EPERM)
	Deny(unix.SYS_PIVOT_ROOT, unix.EPERM)
	Deny(unix.SYS_CHROOT, unix.EPERM)
	Deny(unix.SYS_SWAPON, unix.EPERM)
	Deny(unix.SYS_SWAPOFF, unix.EPERM)
	Deny(unix.SYS_ACCT, unix.EPERM)
	// The new mount API opens trees by path (open_tree without
	// OPEN_TREE_CLONE is an O_PATH open); libmount falls back to mount(2)
	// on ENOSYS.
	for _, nr := range []int{unix.SYS_OPEN_TREE, unix.SYS_MOVE_MOUNT, unix.SYS_FSOPEN,
		unix.SYS_FSCONFIG, unix.SYS_FSMOUNT, unix.SYS_FSPICK, unix.SYS_MOUNT_SETATTR, sysOpenTreeAttr} {
		Deny(nr, unix.ENOSYS)
	}
	// ptrace of any process: the guest's own are already traced by nook
	// (a second tracer gets EPERM from the kernel), and those outside it
	// must stay out of reach (a guest that can PTRACE_SEIZE a host
	// process of the same user makes it do anything). gdb and strace do
	// not work inside a rootless guest.
	Deny(unix.SYS_PTRACE, unix.EPERM)
	// One guest process writing another's memory could rewrite a path
	// the tracer translated before the kernel reads it
	// (confine_region.go); nothing but debuggers and checkpointers use
	// it, and the kernel answers EPERM where ptrace is not allowed.
	Deny(unix.SYS_PROCESS_VM_WRITEV, unix.EPERM)
	// uselib loads a library by path (a.out era); no x86_64 program
	// uses it.
	Deny(unix.SYS_USELIB, unix.ENOSYS)
}
