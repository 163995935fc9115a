package tracer

import (
	"bytes"

	"golang.org/x/sys/unix"

	"nook/ownership"
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

// ownCapTarget starts the handling of a call on security.capability: it
// resolves the file and, for a change, checks CAP_SETFCAP (failing the
// call where either fails), and reports whether the call goes on here.
func ownCapTarget(c *Call, dirArg, pathArg int, follow, change bool) (string, ownership.Stat, bool) {
	if !ownCapName(c) {
		return "", ownership.Stat{}, false
	}
	ownDrain()
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, false)
	if errno == 0 && change && !ownCreds(c.T.P).Capable(unix.CAP_SETFCAP) {
		errno = unix.EPERM
	}
	if errno != 0 {
		c.Fail(errno)
		return "", ownership.Stat{}, false
	}
	return host, st, true
}

// ownSetCap stores val (nil: none) as the file's capability attribute
// and completes the call.
func ownSetCap(c *Call, host string, st ownership.Stat, val []byte) {
	if err := ownRun.store.SetCap(st, ownHint(host), val, ownRun.host); err != nil {
		c.Fail(unix.EIO)
		return
	}
	c.Return(0)
}

// ownReturnBuffer completes a call that fills the guest's buffer (argument
// bufArg, of the size in argument bufArg+1) with val, as getxattr and
// listxattr do: size 0 asks for the length, a short buffer is ERANGE.
func ownReturnBuffer(c *Call, bufArg int, val []byte) {
	size := c.Arg(bufArg + 1)
	switch {
	case size == 0:
		c.Return(int64(len(val)))
		return
	case size < uint64(len(val)):
		c.Fail(unix.ERANGE)
		return
	}
	if err := c.Write(c.Arg(bufArg), val); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(int64(len(val)))
}

func ownSetxattr(c *Call, dirArg, pathArg int, follow bool) {
	host, st, ok := ownCapTarget(c, dirArg, pathArg, follow, true)
	if !ok {
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
	ownSetCap(c, host, st, val)
}

func ownGetxattr(c *Call, dirArg, pathArg int, follow bool) {
	_, st, ok := ownCapTarget(c, dirArg, pathArg, follow, false)
	if !ok {
		return
	}
	val, ok := ownRun.store.Cap(st)
	if !ok {
		// Nothing faked: a real attribute (a tree root unpacked) or
		// ENODATA comes from the kernel.
		return
	}
	ownReturnBuffer(c, 2, val)
}

func ownRemovexattr(c *Call, dirArg, pathArg int, follow bool) {
	host, st, ok := ownCapTarget(c, dirArg, pathArg, follow, true)
	if !ok {
		return
	}
	if _, ok := ownRun.store.Cap(st); !ok {
		// No faked attribute. A real one (a tree root unpacked) the
		// real user cannot remove: the kernel says EPERM. None at all
		// is ENODATA, which the kernel would hide behind the EPERM of
		// the capability check.
		get := unix.Getxattr
		if !ownFollows(host, follow) {
			get = unix.Lgetxattr
		}
		if _, err := get(host, "security.capability", nil); err == unix.ENODATA {
			c.Fail(unix.ENODATA)
		}
		return
	}
	ownSetCap(c, host, st, nil)
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
	if !ownFollows(host, follow) {
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
	ownReturnBuffer(c, 1, names)
}
