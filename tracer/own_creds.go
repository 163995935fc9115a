package tracer

import (
	"encoding/binary"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"nook/ownership"
)

// Kernel-accurate fake credentials: these hooks replace the simple model
// of creds.go (this file's init runs after it) with ownership.Creds, which
// follows kernel/sys.c and security/commoncap.c: EPERM where the kernel
// refuses, the capability sets following uid changes, setfsuid's return.

func init() {
	get := func(f func(cr *ownership.Creds) uint32) Hook {
		return Hook{Entry: func(c *Call) { c.Return(int64(f(ownCreds(c.T.P)))) }}
	}
	Replace(unix.SYS_GETUID, get(func(cr *ownership.Creds) uint32 { return cr.UID }))
	Replace(unix.SYS_GETEUID, get(func(cr *ownership.Creds) uint32 { return cr.EUID }))
	Replace(unix.SYS_GETGID, get(func(cr *ownership.Creds) uint32 { return cr.GID }))
	Replace(unix.SYS_GETEGID, get(func(cr *ownership.Creds) uint32 { return cr.EGID }))
	Replace(unix.SYS_GETRESUID, Hook{Entry: func(c *Call) {
		cr := ownCreds(c.T.P)
		ownPutIDs(c, cr.UID, cr.EUID, cr.SUID)
	}})
	Replace(unix.SYS_GETRESGID, Hook{Entry: func(c *Call) {
		cr := ownCreds(c.T.P)
		ownPutIDs(c, cr.GID, cr.EGID, cr.SGID)
	}})
	Replace(unix.SYS_GETGROUPS, Hook{Entry: ownGetgroups})
	Replace(unix.SYS_SETGROUPS, Hook{Entry: ownSetgroups})

	set := func(f func(c *Call, cr *ownership.Creds) error) Hook {
		return Hook{Entry: func(c *Call) {
			err := f(c, ownCreds(c.T.P))
			ownSync(c.T.P)
			if err != nil {
				c.Fail(err.(unix.Errno))
				return
			}
			c.Return(0)
		}}
	}
	id := func(c *Call, i int) uint32 { return uint32(c.Arg(i)) }
	Replace(unix.SYS_SETUID, set(func(c *Call, cr *ownership.Creds) error { return cr.Setuid(id(c, 0)) }))
	Replace(unix.SYS_SETGID, set(func(c *Call, cr *ownership.Creds) error { return cr.Setgid(id(c, 0)) }))
	Replace(unix.SYS_SETREUID, set(func(c *Call, cr *ownership.Creds) error { return cr.Setreuid(id(c, 0), id(c, 1)) }))
	Replace(unix.SYS_SETREGID, set(func(c *Call, cr *ownership.Creds) error { return cr.Setregid(id(c, 0), id(c, 1)) }))
	Replace(unix.SYS_SETRESUID, set(func(c *Call, cr *ownership.Creds) error {
		return cr.Setresuid(id(c, 0), id(c, 1), id(c, 2))
	}))
	Replace(unix.SYS_SETRESGID, set(func(c *Call, cr *ownership.Creds) error {
		return cr.Setresgid(id(c, 0), id(c, 1), id(c, 2))
	}))
	Replace(unix.SYS_SETFSUID, Hook{Entry: func(c *Call) {
		old := ownCreds(c.T.P).Setfsuid(id(c, 0))
		ownSync(c.T.P)
		c.Return(int64(old))
	}})
	Replace(unix.SYS_SETFSGID, Hook{Entry: func(c *Call) {
		old := ownCreds(c.T.P).Setfsgid(id(c, 0))
		ownSync(c.T.P)
		c.Return(int64(old))
	}})
	Replace(unix.SYS_CAPGET, Hook{Entry: ownCapget})
	Replace(unix.SYS_CAPSET, Hook{Entry: ownCapset})
	// Only the prctl options about capabilities stop in the tracer.
	for _, op := range []uint64{unix.PR_SET_KEEPCAPS, unix.PR_GET_KEEPCAPS, unix.PR_CAPBSET_READ, unix.PR_CAPBSET_DROP} {
		Register(unix.SYS_PRCTL, Hook{
			Entry: ownPrctl,
			When:  []seccomp.ScmpCondition{argIs(0, uint32(op))},
		})
	}
}

// ownPutIDs writes three ids to the uid_t pointers of getres[ug]id.
func ownPutIDs(c *Call, a, b, d uint32) {
	for i, v := range [3]uint32{a, b, d} {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], v)
		if err := c.Write(c.Arg(i), buf[:]); err != nil {
			c.Fail(unix.EFAULT)
			return
		}
	}
	c.Return(0)
}

func ownGetgroups(c *Call) {
	groups, n, err := ownCreds(c.T.P).Getgroups(int(int32(c.Arg(0))))
	if err != nil {
		c.Fail(err.(unix.Errno))
		return
	}
	if len(groups) > 0 {
		buf := make([]byte, 4*len(groups))
		for i, g := range groups {
			binary.LittleEndian.PutUint32(buf[4*i:], g)
		}
		if err := c.Write(c.Arg(1), buf); err != nil {
			c.Fail(unix.EFAULT)
			return
		}
	}
	c.Return(int64(n))
}

func ownSetgroups(c *Call) {
	cr := ownCreds(c.T.P)
	if !cr.Capable(unix.CAP_SETGID) {
		c.Fail(unix.EPERM)
		return
	}
	n := uint32(c.Arg(0))
	if n > ownership.NGroupsMax {
		c.Fail(unix.EINVAL)
		return
	}
	buf := make([]byte, 4*n)
	if n > 0 {
		if err := c.Read(c.Arg(1), buf); err != nil {
			c.Fail(unix.EFAULT)
			return
		}
	}
	groups := make([]uint32, n)
	for i := range groups {
		groups[i] = binary.LittleEndian.Uint32(buf[4*i:])
	}
	if err := cr.Setgroups(groups); err != nil {
		c.Fail(err.(unix.Errno))
		return
	}
	ownSync(c.T.P)
	c.Return(0)
}

// capHeader reads struct __user_cap_header_struct and checks its version
// (cap_validate_magic): an unknown version is answered with the kernel's
// preferred one written back and EINVAL. words is how many 32-bit halves
// each set has in the data array.
func capHeader(c *Call) (words int, pid int32, errno unix.Errno) {
	var hdr [8]byte
	if err := c.Read(c.Arg(0), hdr[:]); err != nil {
		return 0, 0, unix.EFAULT
	}
	switch binary.LittleEndian.Uint32(hdr[:]) {
	case unix.LINUX_CAPABILITY_VERSION_1:
		words = 1
	case unix.LINUX_CAPABILITY_VERSION_2, unix.LINUX_CAPABILITY_VERSION_3:
		words = 2
	default:
		var v [4]byte
		binary.LittleEndian.PutUint32(v[:], unix.LINUX_CAPABILITY_VERSION_3)
		if err := c.Write(c.Arg(0), v[:]); err != nil {
			return 0, 0, unix.EFAULT
		}
		return 0, 0, unix.EINVAL
	}
	return words, int32(binary.LittleEndian.Uint32(hdr[4:])), 0
}

func ownCapget(c *Call) {
	words, pid, errno := capHeader(c)
	if c.Arg(1) == 0 {
		// A probe for the version: no data pointer, EINVAL turned to 0.
		if errno == unix.EINVAL {
			errno = 0
		}
		if errno != 0 {
			c.Fail(errno)
		} else {
			c.Return(0)
		}
		return
	}
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if pid < 0 {
		c.Fail(unix.EINVAL)
		return
	}
	cr := ownCreds(c.T.P)
	if pid != 0 && int(pid) != c.T.P.Tgid && int(pid) != c.T.Tid {
		t, ok := c.tr.threads[int(pid)]
		if !ok {
			c.Fail(unix.ESRCH)
			return
		}
		cr = ownCreds(t.P)
	}
	eff, perm, inh := cr.Capget()
	buf := make([]byte, 12*words)
	for i := 0; i < words; i++ {
		binary.LittleEndian.PutUint32(buf[12*i:], uint32(eff>>(32*i)))
		binary.LittleEndian.PutUint32(buf[12*i+4:], uint32(perm>>(32*i)))
		binary.LittleEndian.PutUint32(buf[12*i+8:], uint32(inh>>(32*i)))
	}
	if err := c.Write(c.Arg(1), buf); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(0)
}

func ownCapset(c *Call) {
	words, pid, errno := capHeader(c)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if pid != 0 && int(pid) != c.T.P.Tgid && int(pid) != c.T.Tid {
		c.Fail(unix.EPERM)
		return
	}
	buf := make([]byte, 12*words)
	if err := c.Read(c.Arg(1), buf); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	var eff, perm, inh uint64
	for i := 0; i < words; i++ {
		eff |= uint64(binary.LittleEndian.Uint32(buf[12*i:])) << (32 * i)
		perm |= uint64(binary.LittleEndian.Uint32(buf[12*i+4:])) << (32 * i)
		inh |= uint64(binary.LittleEndian.Uint32(buf[12*i+8:])) << (32 * i)
	}
	// A version 1 caller's upper halves are zero, as in the kernel.
	cr := ownCreds(c.T.P)
	if err := cr.Capset(eff, perm, inh); err != nil {
		c.Fail(err.(unix.Errno))
		return
	}
	c.Return(0)
}

func ownPrctl(c *Call) {
	cr := ownCreds(c.T.P)
	// The option is an int: the kernel ignores the register's upper half.
	switch uint32(c.Arg(0)) {
	case unix.PR_SET_KEEPCAPS:
		if c.Arg(1) > 1 {
			c.Fail(unix.EINVAL)
			return
		}
		cr.KeepCaps = c.Arg(1) == 1
		c.Return(0)
	case unix.PR_GET_KEEPCAPS:
		if cr.KeepCaps {
			c.Return(1)
		} else {
			c.Return(0)
		}
	case unix.PR_CAPBSET_READ:
		if c.Arg(1) > unix.CAP_LAST_CAP {
			c.Fail(unix.EINVAL)
			return
		}
		c.Return(int64(cr.Caps.Bounding >> c.Arg(1) & 1))
	case unix.PR_CAPBSET_DROP:
		if c.Arg(1) > unix.CAP_LAST_CAP {
			c.Fail(unix.EINVAL)
			return
		}
		if !cr.Capable(unix.CAP_SETPCAP) {
			c.Fail(unix.EPERM)
			return
		}
		cr.Caps.Bounding &^= 1 << c.Arg(1)
		c.Return(0)
	}
}
