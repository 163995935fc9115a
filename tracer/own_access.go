package tracer

import (
	"golang.org/x/sys/unix"

	"nook/ownership"
)

// access, faccessat and faccessat2 answer for the guest's credentials and
// view of the file: a guest user (--user) is refused root's 0600 files it
// really owns on disk, and the guest root is granted what real root would
// be. Errors that do not depend on identity (ENOENT, EROFS, ETXTBSY, ...)
// come from the real call, which the tracer makes on the host path.

func init() {
	Register(unix.SYS_ACCESS, Hook{Entry: func(c *Call) { ownAccess(c, noArg, 0, 1, noArg) }})
	Register(unix.SYS_FACCESSAT, Hook{Entry: func(c *Call) { ownAccess(c, 0, 1, 2, noArg) }})
	Register(unix.SYS_FACCESSAT2, Hook{Entry: func(c *Call) { ownAccess(c, 0, 1, 2, 3) }})
}

func ownAccess(c *Call, dirArg, pathArg, modeArg, flagsArg int) {
	ownDrain()
	mode := uint32(c.Arg(modeArg))
	if mode&^uint32(unix.R_OK|unix.W_OK|unix.X_OK) != 0 {
		c.Fail(unix.EINVAL)
		return
	}
	var flags uint64
	if flagsArg != noArg {
		flags = c.Arg(flagsArg)
		if flags&^uint64(unix.AT_EACCESS|unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
			c.Fail(unix.EINVAL)
			return
		}
	}
	follow := flags&unix.AT_SYMLINK_NOFOLLOW == 0
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, flags&unix.AT_EMPTY_PATH != 0)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if mode == unix.F_OK {
		c.Return(0)
		return
	}
	at := 0
	if !ownFollows(host, follow) {
		at = unix.AT_SYMLINK_NOFOLLOW
	}
	realErr := ownRetry(func() error { return unix.Faccessat(unix.AT_FDCWD, host, mode, at) })
	if realErr != nil && realErr != unix.EACCES {
		c.Fail(errnoOf(realErr))
		return
	}
	cr := ownCreds(c.T.P).Clone()
	if flags&unix.AT_EACCESS == 0 {
		// access_override_creds: the real ids, and root's capabilities
		// only for a real uid of 0.
		cr.FSUID, cr.FSGID = cr.UID, cr.GID
		if cr.UID != 0 {
			cr.Caps.Effective = 0
		} else {
			cr.Caps.Effective = cr.Caps.Permitted
		}
	}
	if err := ownership.Permission(cr, ownRun.store.View(st, ownRun.host), int(mode)); err != nil {
		c.Fail(unix.EACCES)
		return
	}
	c.Return(0)
}
