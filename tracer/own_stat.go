package tracer

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"

	"nook/ownership"
	"nook/pathmap"
)

// The stat family is emulated at its seccomp stop: the tracer resolves the
// path (as the translation hook would), makes the call itself on the host
// path — it runs as the same real user, so it meets the same permission
// errors —, rewrites owner, mode and device numbers from the ownership
// store (or the default rule: the real user's files look like root's) and
// writes the result into the guest's buffer. One stop per call, where
// letting the kernel run it and rewriting at the exit stop would cost two:
// stat is the hottest call of metadata-heavy programs.

func init() {
	Register(unix.SYS_STAT, Hook{Entry: func(c *Call) { ownStatEntry(c, noArg, 0, noArg, 1, true) }})
	Register(unix.SYS_LSTAT, Hook{Entry: func(c *Call) { ownStatEntry(c, noArg, 0, noArg, 1, false) }})
	Register(unix.SYS_FSTAT, Hook{Entry: func(c *Call) { ownStatEntry(c, 0, noArg, noArg, 1, true) }})
	Register(unix.SYS_NEWFSTATAT, Hook{Entry: func(c *Call) { ownStatEntry(c, 0, 1, 3, 2, true) }})
	Register(unix.SYS_STATX, Hook{Entry: ownStatxEntry})
}

// ownStatTarget is the host path a stat-like call operates on, and
// whether to follow a final symlink. A path argument of "" with
// AT_EMPTY_PATH, a NULL path (statx), or no path argument at all names
// the file open on the dirfd.
// isFd is set when the path is a /proc/PID/fd/N link. res is pathmap's
// result for a path argument (nil otherwise), for statInRoot; held, when
// set, is a cheaper race-free route to the same file (heldName).
func ownStatTarget(c *Call, dirArg, pathArg int, flags uint64, follow bool) (host string, res *pathmap.Result, held heldName, fol, isFd bool, errno unix.Errno) {
	p := ""
	if pathArg != noArg && c.Arg(pathArg) == 0 && !(c.Nr == unix.SYS_STATX && flags&unix.AT_EMPTY_PATH != 0) {
		return "", nil, held, false, false, unix.EFAULT
	}
	if pathArg != noArg && c.Arg(pathArg) != 0 {
		s, err := c.ReadString(c.Arg(pathArg))
		if err != nil {
			return "", nil, held, false, false, errnoOf(err)
		}
		p = s
	}
	fdOnly := pathArg == noArg || (c.Arg(pathArg) == 0 && c.Nr == unix.SYS_STATX && flags&unix.AT_EMPTY_PATH != 0)
	if p == "" && !fdOnly {
		if flags&unix.AT_EMPTY_PATH == 0 {
			return "", nil, held, false, false, unix.ENOENT
		}
		fdOnly = true
	}
	if fdOnly {
		fd := int32(unix.AT_FDCWD)
		if dirArg != noArg {
			fd = int32(c.Arg(dirArg))
		}
		if fd == unix.AT_FDCWD {
			cwd, err := c.tr.cwdOf(c.T)
			if err != nil {
				return "", nil, held, false, false, errnoOf(err)
			}
			res, errno := c.tr.resolve(c, noArg, pathmapRequest(cwd, true))
			return res.Host, nil, held, true, false, errno
		}
		if fd < 0 {
			return "", nil, held, false, false, unix.EBADF
		}
		// The magic link reaches the open file itself, whatever it is
		// (a pipe, a deleted file, a file outside the guest).
		return fmt.Sprintf("/proc/%d/fd/%d", c.T.Tid, fd), nil, held, true, true, 0
	}
	r, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, follow))
	if errno == 0 && dirArg != noArg {
		held = c.tr.heldNameOf(c, int(int32(c.Arg(dirArg))), p, r)
	}
	return r.Host, &r, held, follow, false, errno
}

func ownStatEntry(c *Call, dirArg, pathArg, flagsArg, bufArg int, follow bool) {
	ownDrain()
	var flags uint64
	if flagsArg != noArg {
		flags = c.Arg(flagsArg)
		if flags&^uint64(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT) != 0 {
			c.Fail(unix.EINVAL)
			return
		}
		follow = flags&unix.AT_SYMLINK_NOFOLLOW == 0
	}
	host, res, held, follow, isFd, errno := ownStatTarget(c, dirArg, pathArg, flags, follow)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	at := 0
	if !follow {
		at = unix.AT_SYMLINK_NOFOLLOW
	}
	var st unix.Stat_t
	done, err := held.stat(&st, follow)
	if !done {
		fd, inRoot, oerr := c.tr.statInRoot(res, follow)
		if inRoot {
			err = oerr
			if err == nil {
				err = ownRetry(func() error { return unix.Fstat(fd, &st) })
				unix.Close(fd)
			}
		} else {
			err = ownRetry(func() error { return unix.Fstatat(unix.AT_FDCWD, host, &st, at) })
		}
	}
	if err != nil {
		c.Fail(ownFdErrno(err, isFd))
		return
	}
	ownRun.store.FakeStat(&st, ownRun.host)
	if !isFd {
		c.tr.procfsOwner(host, &st.Uid, &st.Gid)
	}
	if err := c.Write(c.Arg(bufArg), ownership.StatBytes(&st)); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(0)
}

// atStatxSyncType is AT_STATX_SYNC_TYPE: FORCE_SYNC | DONT_SYNC.
const atStatxSyncType = unix.AT_STATX_FORCE_SYNC | unix.AT_STATX_DONT_SYNC

func ownStatxEntry(c *Call) {
	ownDrain()
	flags := c.Arg(2)
	if flags&^uint64(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH|unix.AT_NO_AUTOMOUNT|atStatxSyncType) != 0 ||
		flags&atStatxSyncType == atStatxSyncType {
		c.Fail(unix.EINVAL)
		return
	}
	mask := uint32(c.Arg(3))
	if mask&unix.STATX__RESERVED != 0 {
		c.Fail(unix.EINVAL)
		return
	}
	host, res, _, follow, isFd, errno := ownStatTarget(c, 0, 1, flags, flags&unix.AT_SYMLINK_NOFOLLOW == 0)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	at := int(flags) &^ (unix.AT_SYMLINK_NOFOLLOW | unix.AT_EMPTY_PATH)
	if !follow {
		at |= unix.AT_SYMLINK_NOFOLLOW
	}
	var stx unix.Statx_t
	// Ask for the type and inode too: the store's key needs them.
	fd, inRoot, err := c.tr.statInRoot(res, follow)
	if inRoot {
		if err == nil {
			err = ownRetry(func() error {
				return unix.Statx(fd, "", at&^unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH, int(mask|unix.STATX_TYPE|unix.STATX_INO), &stx)
			})
			unix.Close(fd)
		}
	} else {
		err = ownRetry(func() error {
			return unix.Statx(unix.AT_FDCWD, host, at, int(mask|unix.STATX_TYPE|unix.STATX_INO), &stx)
		})
	}
	if err != nil {
		c.Fail(ownFdErrno(err, isFd))
		return
	}
	ownRun.store.FakeStatx(&stx, ownRun.host)
	if !isFd {
		c.tr.procfsOwner(host, &stx.Uid, &stx.Gid)
	}
	if err := c.Write(c.Arg(4), ownership.StatxBytes(&stx)); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(0)
}

// ownFdErrno maps an error of a stat through /proc/PID/fd/N: a
// descriptor that is not open is EBADF for the guest, not ENOENT.
func ownFdErrno(err error, isFd bool) unix.Errno {
	e := errnoOf(err)
	if e == unix.ENOENT && isFd {
		return unix.EBADF
	}
	return e
}

// ownPending is a file a non-root guest process may have created with
// open(O_CREAT): the open has no exit stop (it would double the cost of
// every open), so the owner is recorded at the next stop of any guest
// thread that looks at file metadata, before the metadata is shown.
type ownPending struct {
	host   string
	creds  *ownership.Creds
	parent ownership.Stat
}

// ownDrain records the owners of the files pending opens created.
func ownDrain() {
	if len(ownRun.pending) == 0 || ownRun.store == nil {
		return
	}
	for _, p := range ownRun.pending {
		st, errno := ownStat(p.host, false)
		if errno != 0 {
			continue // the open failed, or the file is gone again
		}
		if _, ok := ownRun.store.Get(st.Key(), st.Type()); ok {
			continue // already recorded
		}
		ownRun.store.Created(st, ownRel(p.host), p.creds, p.parent, ownRun.host)
	}
	ownRun.pending = ownRun.pending[:0]
}

// heldName is a stat-like call's file as a name in a directory the tracer
// holds: the guest's own directory descriptor, duplicated (fdcache.go).
// fstatat of one name that is not followed walks nothing a racing thread
// could swap, and costs half of the RESOLVE_IN_ROOT route (no path walk,
// no descriptor to open and close; docs/performance.md). find's
// newfstatat(dirfd, "name", AT_SYMLINK_NOFOLLOW), W1's hottest call, is
// this.
type heldName struct {
	dir  int // -1 or 0 (the zero value): none
	name string
}

func (h heldName) ok() bool { return h.name != "" }

// heldNameOf returns the held route for path p relative to the guest's
// descriptor fd, which pathmap resolved to res: p is a single name, the
// descriptor's directory is held and was checked at this stop (fdGuest),
// and pathmap found the name right there (no bind mounted on it, no
// symlink it followed: Host is the directory's host path and the name).
func (tr *tracer) heldNameOf(c *Call, fd int, p string, res pathmap.Result) heldName {
	if p == "" || p == "." || p == ".." || strings.IndexByte(p, '/') >= 0 || tr.base == "" {
		return heldName{}
	}
	if len(res.Host) != len(tr.base)+1+len(p) || !strings.HasPrefix(res.Host, tr.base) ||
		res.Host[len(tr.base)] != '/' || !strings.HasSuffix(res.Host, p) {
		return heldName{}
	}
	dup, ok := tr.dirs.checked(c.T, fd)
	if !ok {
		return heldName{}
	}
	return heldName{dir: dup, name: p}
}

// stat stats h without following a final symlink, and reports whether
// that answers a call that follows one (follow) or not: a symlink where
// pathmap saw none was swapped in since, and the caller's full route
// follows it inside the guest.
func (h heldName) stat(st *unix.Stat_t, follow bool) (done bool, err error) {
	if !h.ok() {
		return false, nil
	}
	err = ownRetry(func() error { return unix.Fstatat(h.dir, h.name, st, unix.AT_SYMLINK_NOFOLLOW) })
	if err == nil && follow && st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return false, nil
	}
	return true, err
}
