package tracer

import (
	"strings"
	"testing"

	seccomp "github.com/seccomp/libseccomp-golang"
)

// Every x86_64 syscall that takes a file name (field notes, section 3, and
// the newer *xattrat and file_*attr calls) must be either translated or
// refused: one that is neither bypasses the guest's root.
func TestEveryPathSyscallIsHandled(t *testing.T) {
	names := []string{"open", "openat", "openat2", "creat", "stat", "lstat", "newfstatat", "statx",
		"access", "faccessat", "faccessat2", "readlink", "readlinkat", "chdir", "chroot", "mkdir",
		"mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
		"symlink", "symlinkat", "mknod", "mknodat", "chmod", "fchmodat", "fchmodat2", "chown", "lchown",
		"fchownat", "truncate", "utime", "utimes", "utimensat", "futimesat", "execve", "execveat",
		"statfs", "getxattr", "lgetxattr", "setxattr", "lsetxattr", "listxattr", "llistxattr",
		"removexattr", "lremovexattr", "inotify_add_watch", "fanotify_mark", "mount", "umount2",
		"pivot_root", "swapon", "swapoff", "acct", "uselib", "name_to_handle_at", "open_by_handle_at",
		"quotactl", "bind", "connect", "sendto", "sendmsg", "sendmmsg", "getcwd", "getsockname",
		"getpeername", "accept", "accept4", "recvfrom", "io_uring_setup", "open_tree", "move_mount",
		"fsopen", "fspick", "mount_setattr"}
	for _, n := range names {
		nr, err := seccomp.GetSyscallFromName(n)
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		if len(table[nr]) == 0 && !denials[nr].set {
			t.Errorf("%s (%d) is neither translated nor refused", n, nr)
		}
	}
	for _, nr := range []int{sysSetxattrat, sysGetxattrat, sysListxattrat, sysRemovexattrat, sysFileGetattr, sysFileSetattr} {
		if len(table[nr]) == 0 {
			t.Errorf("syscall %d is not translated", nr)
		}
	}
	if !denials[sysOpenTreeAttr].set {
		t.Errorf("open_tree_attr is not refused")
	}
}

func TestFilterBuilds(t *testing.T) {
	f, err := buildFilter()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	act, err := f.GetBadArchAction()
	if err != nil {
		t.Fatal(err)
	}
	if act.GetReturnCode() != 38 {
		t.Errorf("foreign-architecture syscalls get %v, want ENOSYS", act)
	}
}

func TestParseShebang(t *testing.T) {
	pad := func(s string) []byte {
		b := make([]byte, binprmBufSize)
		copy(b, s)
		return b
	}
	for _, tc := range []struct {
		in           string
		interp, arg  string
		hasArg, fail bool
	}{
		{in: "#!/bin/sh\n", interp: "/bin/sh"},
		{in: "#! /bin/sh  \n", interp: "/bin/sh"},
		{in: "#!/usr/bin/env python3 -u \nrest", interp: "/usr/bin/env", arg: "python3 -u", hasArg: true},
		{in: "#!\t/bin/x\ta b\tc\n", interp: "/bin/x", arg: "a b\tc", hasArg: true},
		{in: "#!\n", fail: true},
		{in: "#!   \n", fail: true},
		{in: "#!/bin/sh", interp: "/bin/sh"},
	} {
		info, errno := parseShebang(pad(tc.in))
		if tc.fail {
			if errno == 0 {
				t.Errorf("%q: parsed as %+v, want ENOEXEC", tc.in, info)
			}
			continue
		}
		if errno != 0 || info.interp != tc.interp || info.optarg != tc.arg || info.hasArg != tc.hasArg {
			t.Errorf("%q: got %+v %v, want %q %q", tc.in, info, errno, tc.interp, tc.arg)
		}
	}
	// An interpreter name running past the 256 bytes the kernel reads is
	// truncated: ENOEXEC.
	long := "#!/" + strings.Repeat("a", 300)
	if _, errno := parseShebang(pad(long)); errno == 0 {
		t.Errorf("truncated interpreter accepted")
	}
}
