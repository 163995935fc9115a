package tracer

import (
	"encoding/binary"

	"golang.org/x/sys/unix"
)

// The simple fake-credential model: get*id report the process's fake ids,
// set*id always succeed and set them. A file of the ownership package can
// Replace these hooks with kernel-accurate ones.
func init() {
	get := func(f func(cr *Creds) int) Hook {
		return Hook{Entry: func(c *Call) { c.Return(int64(f(&c.T.P.Creds))) }}
	}
	Register(unix.SYS_GETUID, get(func(cr *Creds) int { return cr.Ruid }))
	Register(unix.SYS_GETEUID, get(func(cr *Creds) int { return cr.Euid }))
	Register(unix.SYS_GETGID, get(func(cr *Creds) int { return cr.Rgid }))
	Register(unix.SYS_GETEGID, get(func(cr *Creds) int { return cr.Egid }))
	Register(unix.SYS_GETRESUID, Hook{Entry: func(c *Call) {
		cr := &c.T.P.Creds
		putIDs(c, cr.Ruid, cr.Euid, cr.Suid)
	}})
	Register(unix.SYS_GETRESGID, Hook{Entry: func(c *Call) {
		cr := &c.T.P.Creds
		putIDs(c, cr.Rgid, cr.Egid, cr.Sgid)
	}})
	Register(unix.SYS_GETGROUPS, Hook{Entry: getgroupsEntry})

	set := func(f func(c *Call, cr *Creds) int64) Hook {
		return Hook{Entry: func(c *Call) { c.Return(f(c, &c.T.P.Creds)) }}
	}
	Register(unix.SYS_SETUID, set(func(c *Call, cr *Creds) int64 {
		id := int(int32(c.Arg(0)))
		cr.Ruid, cr.Euid, cr.Suid, cr.Fsuid = id, id, id, id
		return 0
	}))
	Register(unix.SYS_SETGID, set(func(c *Call, cr *Creds) int64 {
		id := int(int32(c.Arg(0)))
		cr.Rgid, cr.Egid, cr.Sgid, cr.Fsgid = id, id, id, id
		return 0
	}))
	Register(unix.SYS_SETREUID, set(func(c *Call, cr *Creds) int64 {
		setIf(&cr.Ruid, c.Arg(0))
		if setIf(&cr.Euid, c.Arg(1)) {
			cr.Fsuid = cr.Euid
		}
		return 0
	}))
	Register(unix.SYS_SETREGID, set(func(c *Call, cr *Creds) int64 {
		setIf(&cr.Rgid, c.Arg(0))
		if setIf(&cr.Egid, c.Arg(1)) {
			cr.Fsgid = cr.Egid
		}
		return 0
	}))
	Register(unix.SYS_SETRESUID, set(func(c *Call, cr *Creds) int64 {
		setIf(&cr.Ruid, c.Arg(0))
		if setIf(&cr.Euid, c.Arg(1)) {
			cr.Fsuid = cr.Euid
		}
		setIf(&cr.Suid, c.Arg(2))
		return 0
	}))
	Register(unix.SYS_SETRESGID, set(func(c *Call, cr *Creds) int64 {
		setIf(&cr.Rgid, c.Arg(0))
		if setIf(&cr.Egid, c.Arg(1)) {
			cr.Fsgid = cr.Egid
		}
		setIf(&cr.Sgid, c.Arg(2))
		return 0
	}))
	Register(unix.SYS_SETFSUID, set(func(c *Call, cr *Creds) int64 {
		old := cr.Fsuid
		setIf(&cr.Fsuid, c.Arg(0))
		return int64(old)
	}))
	Register(unix.SYS_SETFSGID, set(func(c *Call, cr *Creds) int64 {
		old := cr.Fsgid
		setIf(&cr.Fsgid, c.Arg(0))
		return int64(old)
	}))
	Register(unix.SYS_SETGROUPS, Hook{Entry: setgroupsEntry})
}

// setIf sets *id to v unless v is -1 (the "unchanged" value of the set*id
// calls); it reports whether it did.
func setIf(id *int, v uint64) bool {
	if int32(v) == -1 {
		return false
	}
	*id = int(uint32(v))
	return true
}

// putIDs writes three ids to the uid_t pointers of getres[ug]id.
func putIDs(c *Call, a, b, d int) {
	for i, v := range [3]int{a, b, d} {
		var buf [4]byte
		binary.LittleEndian.PutUint32(buf[:], uint32(v))
		if err := c.Write(c.Arg(i), buf[:]); err != nil {
			c.Fail(unix.EFAULT)
			return
		}
	}
	c.Return(0)
}

func getgroupsEntry(c *Call) {
	g := c.T.P.Creds.Groups
	size := int(int32(c.Arg(0)))
	switch {
	case size < 0:
		c.Fail(unix.EINVAL)
		return
	case size == 0:
		c.Return(int64(len(g)))
		return
	case size < len(g):
		c.Fail(unix.EINVAL)
		return
	}
	buf := make([]byte, 4*len(g))
	for i, id := range g {
		binary.LittleEndian.PutUint32(buf[4*i:], uint32(id))
	}
	if err := c.Write(c.Arg(1), buf); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(int64(len(g)))
}

// ngroupsMax is the kernel's NGROUPS_MAX.
const ngroupsMax = 65536

func setgroupsEntry(c *Call) {
	n := int(int32(c.Arg(0)))
	if n < 0 || n > ngroupsMax {
		c.Fail(unix.EINVAL)
		return
	}
	buf := make([]byte, 4*n)
	if err := c.Read(c.Arg(1), buf); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	g := make([]int, n)
	for i := range g {
		g[i] = int(binary.LittleEndian.Uint32(buf[4*i:]))
	}
	c.T.P.Creds.Groups = g
	c.Return(0)
}
