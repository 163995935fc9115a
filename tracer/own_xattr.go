package tracer

import (
	"bytes"

	"golang.org/x/sys/unix"
)

// The file capability attribute (security.capability) needs privileges
// the real user lacks; the store keeps it, so that setcap, getcap and
// package managers that set capabilities see it, and execve grants it.
// Every other attribute goes to the kernel untouched.

// maxCapXattr bounds a security.capability value (struct vfs_ns_cap_data
// is 24 bytes).
const maxCapXattr = 64

// ownCapName reports whether the call's name argument is
// security.capability.
func ownCapName(c *Call) bool {
	name, err := c.ReadString(c.Arg(1))
	return err == nil && name == "security.capability"
}

func ownSetxattr(c *Call, dirArg, pathArg int, follow bool) {
	if !ownCapName(c) {
		return
	}
	ownDrain()
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, false)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	cr := ownCreds(c.T.P)
	if !cr.Capable(unix.CAP_SETFCAP) {
		c.Fail(unix.EPERM)
		return
	}
	size := c.Arg(3)
	if size > maxCapXattr || size < 4 {
		c.Fail(unix.EINVAL)
		return
	}
	val := make([]byte, size)
	if err := c.Read(c.Arg(2), val); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	_, exists := ownRun.store.Cap(st)
	switch fl := c.Arg(4); {
	case fl&^uint64(unix.XATTR_CREATE|unix.XATTR_REPLACE) != 0:
		c.Fail(unix.EINVAL)
		return
	case fl&unix.XATTR_CREATE != 0 && exists:
		c.Fail(unix.EEXIST)
		return
	case fl&unix.XATTR_REPLACE != 0 && !exists:
		c.Fail(unix.ENODATA)
		return
	}
	if st.Type() != unix.S_IFREG {
		// Capabilities belong to regular files (cap_convert_nscap
		// refuses others).
		c.Fail(unix.EINVAL)
		return
	}
	if err := ownRun.store.SetCap(st, ownHint(host), val, ownRun.host); err != nil {
		c.Fail(unix.EIO)
		return
	}
	c.Return(0)
}

func ownGetxattr(c *Call, dirArg, pathArg int, follow bool) {
	if !ownCapName(c) {
		return
	}
	ownDrain()
	_, st, errno := ownTarget(c, dirArg, pathArg, follow, false)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	val, ok := ownRun.store.Cap(st)
	if !ok {
		// Nothing faked: a real attribute (a tree root unpacked) or
		// ENODATA comes from the kernel.
		return
	}
	size := c.Arg(3)
	if size == 0 {
		c.Return(int64(len(val)))
		return
	}
	if size < uint64(len(val)) {
		c.Fail(unix.ERANGE)
		return
	}
	if err := c.Write(c.Arg(2), val); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(int64(len(val)))
}

func ownRemovexattr(c *Call, dirArg, pathArg int, follow bool) {
	if !ownCapName(c) {
		return
	}
	ownDrain()
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, false)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if !ownCreds(c.T.P).Capable(unix.CAP_SETFCAP) {
		c.Fail(unix.EPERM)
		return
	}
	if _, ok := ownRun.store.Cap(st); !ok {
		// No faked attribute. A real one (a tree root unpacked) the
		// real user cannot remove: the kernel says EPERM. None at all
		// is ENODATA, which the kernel would hide behind the EPERM of
		// the capability check.
		get := unix.Getxattr
		if !follow {
			get = unix.Lgetxattr
		}
		if _, err := get(host, "security.capability", nil); err == unix.ENODATA {
			c.Fail(unix.ENODATA)
		}
		return
	}
	if err := ownRun.store.SetCap(st, ownHint(host), nil, ownRun.host); err != nil {
		c.Fail(unix.EIO)
		return
	}
	c.Return(0)
}

// ownListxattr adds security.capability to the names of a file that has
// a faked one, so that copies that preserve attributes (cp -a, tar
// --xattrs, rsync -X) carry it along.
func ownListxattr(c *Call, dirArg, pathArg int, follow bool) {
	ownDrain()
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, false)
	if errno != 0 {
		return // the kernel fails the call the same way
	}
	if _, ok := ownRun.store.Cap(st); !ok {
		return
	}
	list := unix.Listxattr
	if !follow {
		list = unix.Llistxattr
	}
	var names []byte
	for {
		n, err := list(host, nil)
		if err != nil {
			c.Fail(errnoOf(err))
			return
		}
		names = make([]byte, n)
		if n == 0 {
			break
		}
		m, err := list(host, names)
		if err == unix.ERANGE {
			continue // grew in between
		}
		if err != nil {
			c.Fail(errnoOf(err))
			return
		}
		names = names[:m]
		break
	}
	const capName = "security.capability\x00"
	if !bytes.Contains(append([]byte{0}, names...), []byte("\x00"+capName)) {
		names = append(names, capName...)
	}
	size := c.Arg(2)
	switch {
	case size == 0:
		c.Return(int64(len(names)))
		return
	case size < uint64(len(names)):
		c.Fail(unix.ERANGE)
		return
	}
	if err := c.Write(c.Arg(1), names); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(int64(len(names)))
}
