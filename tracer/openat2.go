package tracer

import (
	"encoding/binary"
	"strings"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// openat2(dirfd, path, how, size): struct open_how { u64 flags, mode,
// resolve }.
const openHowSize = 24

func init() {
	Register(unix.SYS_OPENAT2, Hook{Entry: openat2Entry})
}

// openat2Entry translates openat2's path unless the guest confined the
// lookup to its dirfd (RESOLVE_IN_ROOT, RESOLVE_BENEATH): the kernel then
// keeps the lookup inside that directory, which is inside the guest, so
// passing the call untouched cannot escape (a bind mounted below that
// directory is not seen, though: the lookup stays in the host tree). The
// common RESOLVE_IN_ROOT from the guest's root directory is translated. Other
// resolve flags are honoured by pathmap's result only in part:
// RESOLVE_NO_SYMLINKS and RESOLVE_NO_MAGICLINKS see the translated path,
// from which pathmap already removed the guest's symlinks.
func openat2Entry(c *Call) {
	size := c.Arg(3)
	if size < openHowSize {
		c.Fail(unix.EINVAL)
		return
	}
	var how [openHowSize]byte
	if err := c.Read(c.Arg(2), how[:]); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	flags := binary.LittleEndian.Uint64(how[0:])
	resolve := binary.LittleEndian.Uint64(how[16:])
	if resolve&(unix.RESOLVE_IN_ROOT|unix.RESOLVE_BENEATH) != 0 {
		// Only a directory inside the guest confines: one the guest
		// got from the host (an inherited descriptor) would not.
		var dir string
		var err error
		if fd := int32(c.Arg(0)); fd == unix.AT_FDCWD {
			dir, err = c.tr.cwdOf(c.T)
		} else {
			var errno unix.Errno
			if dir, _, errno = c.tr.fdGuest(c.T.Tid, int(fd)); errno != 0 {
				err = errno
			}
		}
		if err != nil {
			c.Fail(errnoOf(err))
			return
		}
		if dir == "/" && resolve&unix.RESOLVE_BENEATH == 0 {
			// In the guest's root directory, RESOLVE_IN_ROOT is the
			// guest's ordinary resolution: translate, and drop the
			// flag (the host path is absolute).
			inRootAtGuestRoot(c, how[:], flags)
		}
		return
	}
	a := pathArg{dir: 0, path: 1, flags: noArg, follow: openFollow(flags)}
	if rootRun.guest {
		p, err := c.ReadString(c.Arg(1))
		if err != nil {
			c.Fail(errnoOf(err))
			return
		}
		if p == "" {
			return // the kernel's ENOENT
		}
		res, errno := c.tr.resolve(c, 0, pathmap.Request{Path: p, Follow: a.follows(c)})
		if errno != 0 {
			c.Fail(errno)
			return
		}
		if rel, ok := inRootPath(res); ok {
			// As open and openat (rootfd.go): the kernel walks the
			// canonical guest path from the guest root descriptor,
			// with the guest's own resolve flags added.
			n := make([]byte, openHowSize)
			copy(n, how[:])
			binary.LittleEndian.PutUint64(n[16:], resolve|unix.RESOLVE_IN_ROOT)
			c.SetArg(0, guestRootFd)
			c.SetArg(1, c.PushString(rel))
			c.SetArg(2, c.Push(n))
			c.SetArg(3, openHowSize)
			return
		}
		if resolve&(unix.RESOLVE_NO_MAGICLINKS|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_XDEV) == 0 &&
			openat2Pinned(c, how[:], res) {
			return
		}
	}
	c.tr.translateArg(c, a)
}

// openat2Pinned is openPinned (rootfd.go) for openat2, whose flags are in
// the open_how: the held parent directory and the last name with
// O_NOFOLLOW. The path goes through a magic link of nook's, which the
// guest's RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS and RESOLVE_NO_XDEV
// would refuse: the caller keeps the host path then.
func openat2Pinned(c *Call, how []byte, res pathmap.Result) bool {
	p, errno, ok := c.tr.pin(c, openPinArg, res)
	if !ok {
		return false
	}
	if errno != 0 {
		c.Fail(errno)
		return true
	}
	n := make([]byte, openHowSize)
	copy(n, how)
	if !strings.HasSuffix(p, "/") {
		binary.LittleEndian.PutUint64(n[0:], binary.LittleEndian.Uint64(n[0:])|unix.O_NOFOLLOW)
	}
	c.SetArg(1, c.PushString(p))
	c.SetArg(2, c.Push(n))
	c.SetArg(3, openHowSize)
	return true
}

// openFollow is the follow rule of open flags.
func openFollow(flags uint64) followRule {
	if flags&unix.O_NOFOLLOW != 0 || flags&(unix.O_CREAT|unix.O_EXCL) == unix.O_CREAT|unix.O_EXCL {
		return followNever
	}
	return followAlways
}

// inRootAtGuestRoot translates openat2(dirfd at the guest root, path,
// RESOLVE_IN_ROOT): an absolute path means the same as a relative one, and
// ".." stops at the root, as pathmap resolves anyway.
func inRootAtGuestRoot(c *Call, how []byte, flags uint64) {
	p, err := c.ReadString(c.Arg(1))
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	if p == "" {
		// The kernel's answer (ENOENT) needs no translation.
		return
	}
	if p[0] != '/' {
		p = "/" + p
	}
	f := openFollow(flags)
	res, errno := c.tr.resolve(c, noArg, pathmap.Request{Path: p, Follow: f == followAlways})
	if errno != 0 {
		c.Fail(errno)
		return
	}
	n := make([]byte, openHowSize)
	copy(n, how)
	binary.LittleEndian.PutUint64(n[16:], binary.LittleEndian.Uint64(how[16:])&^unix.RESOLVE_IN_ROOT)
	c.SetArg(1, c.PushString(res.Host))
	c.SetArg(2, c.Push(n))
	c.SetArg(3, openHowSize)
}
