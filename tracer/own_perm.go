package tracer

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"nook/ownership"
)

// Permission checks for a guest user. On disk the real user owns the
// guest's files, so the kernel lets every open, removal and creation of
// the guest through; a real chroot would hold a guest user (su, -u, apt's
// privilege drop) to the files' owners and modes. At the seccomp stop,
// before the kernel runs the call, these hooks make the classic DAC
// checks against the guest's view of the files (ownership's records) and
// credentials, and fail the call with the kernel's errno:
//
//   - open, openat, openat2, creat, truncate: read/write on an existing
//     file (generic_permission), write and search on the parent when
//     creating;
//   - unlink, rmdir, rename, mkdir, mknod, symlink, link: write and search
//     on the parent directory (may_create, may_delete), the sticky-bit
//     rule (EPERM), write on a directory that moves to another parent,
//     and the protected_hardlinks rule for link's source.
//
//   - all of these and the stat family: search permission on every
//     directory from the guest root down to the file's parent (may_lookup),
//     on the path pathmap resolved (the directories of a symlink's own
//     path are not seen, its target's are).
//
// Only files inside the guest's own tree are checked: bind mounts and
// host files (/dev, /proc) are the kernel's to judge, with the real ids.
// access and faccessat answer from own_access.go, without the search
// check. A caller with
// CAP_DAC_OVERRIDE and CAP_FOWNER (the guest root) passes every check
// here, so these hooks cost nothing for it.
//
// Errors that do not depend on identity (ENOENT, EEXIST, ENOTDIR, ELOOP,
// EISDIR...) are left to the kernel, which reports them before or
// instead of these: a check that cannot stat its file does nothing.

func init() {
	Register(unix.SYS_OPEN, Hook{Entry: func(c *Call) { permOpen(c, noArg, 0, c.Arg(1)) }})
	Register(unix.SYS_OPENAT, Hook{Entry: func(c *Call) { permOpen(c, 0, 1, c.Arg(2)) }})
	Register(unix.SYS_OPENAT2, Hook{Entry: permOpenat2})
	Register(unix.SYS_CREAT, Hook{Entry: func(c *Call) {
		permOpen(c, noArg, 0, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC)
	}})
	Register(unix.SYS_TRUNCATE, Hook{Entry: permTruncate})

	Register(unix.SYS_MKDIR, Hook{Entry: func(c *Call) { permCreate(c, noArg, 0) }})
	Register(unix.SYS_MKDIRAT, Hook{Entry: func(c *Call) { permCreate(c, 0, 1) }})
	Register(unix.SYS_MKNOD, Hook{Entry: func(c *Call) { permCreate(c, noArg, 0) }})
	Register(unix.SYS_MKNODAT, Hook{Entry: func(c *Call) { permCreate(c, 0, 1) }})
	Register(unix.SYS_SYMLINK, Hook{Entry: func(c *Call) { permCreate(c, noArg, 1) }})
	Register(unix.SYS_SYMLINKAT, Hook{Entry: func(c *Call) { permCreate(c, 1, 2) }})
	Register(unix.SYS_LINK, Hook{Entry: func(c *Call) { permLink(c, noArg, 0, noArg, 1, 0) }})
	Register(unix.SYS_LINKAT, Hook{Entry: func(c *Call) { permLink(c, 0, 1, 2, 3, c.Arg(4)) }})

	// The stat family: search permission only (this file's hooks run
	// before own_stat.go's, which emulate the calls).
	Register(unix.SYS_STAT, Hook{Entry: func(c *Call) { permLookup(c, noArg, 0, true) }})
	Register(unix.SYS_LSTAT, Hook{Entry: func(c *Call) { permLookup(c, noArg, 0, false) }})
	Register(unix.SYS_NEWFSTATAT, Hook{Entry: func(c *Call) { permLookup(c, 0, 1, c.Arg(3)&unix.AT_SYMLINK_NOFOLLOW == 0) }})
	Register(unix.SYS_STATX, Hook{Entry: func(c *Call) {
		if c.Arg(1) != 0 {
			permLookup(c, 0, 1, c.Arg(2)&unix.AT_SYMLINK_NOFOLLOW == 0)
		}
	}})

	Register(unix.SYS_UNLINK, Hook{Entry: func(c *Call) { permDelete(c, noArg, 0, false) }})
	Register(unix.SYS_RMDIR, Hook{Entry: func(c *Call) { permDelete(c, noArg, 0, true) }})
	Register(unix.SYS_UNLINKAT, Hook{Entry: func(c *Call) { permDelete(c, 0, 1, c.Arg(2)&unix.AT_REMOVEDIR != 0) }})
	Register(unix.SYS_RENAME, Hook{Entry: func(c *Call) { permRename(c, noArg, 0, noArg, 1, 0) }})
	Register(unix.SYS_RENAMEAT, Hook{Entry: func(c *Call) { permRename(c, 0, 1, 2, 3, 0) }})
	Register(unix.SYS_RENAMEAT2, Hook{Entry: func(c *Call) { permRename(c, 0, 1, 2, 3, c.Arg(4)) }})
}

// permCreds returns the caller's credentials when it is subject to the
// checks (nil for one that would pass them all).
func permCreds(c *Call) *ownership.Creds {
	if c.Done() || ownRun.store == nil {
		return nil
	}
	cr := ownCreds(c.T.P)
	if cr.Capable(unix.CAP_DAC_OVERRIDE) && cr.Capable(unix.CAP_FOWNER) {
		return nil
	}
	return cr
}

// permFile is a path argument resolved for a check.
type permFile struct {
	host   string
	exists bool
	st     ownership.Stat // real stat, if exists
	view   ownership.Stat // guest view, if exists
	// denied is set when a directory on the way may not be searched:
	// the call fails with EACCES, whatever else.
	denied bool
}

// permSearch checks search permission on dir and each of its ancestors up
// to the guest root (the kernel's may_lookup on every component). The
// host path is the one pathmap resolved: the directories of a symlink's
// own path on the way are not seen, its target's are.
func permSearch(c *Call, dir string) error {
	cr := ownCreds(c.T.P)
	for _, d := range permAncestors(dir) {
		st, errno := ownStat(d, true)
		if errno != 0 || st.Type() != unix.S_IFDIR {
			return nil // the kernel's own error
		}
		if err := ownership.Permission(cr, ownRun.store.View(st, ownRun.host), ownership.MayExec); err != nil {
			return err
		}
	}
	return nil
}

// permAncestors lists the guest root, then each directory down to dir,
// which is in the guest's tree.
func permAncestors(dir string) []string {
	if !ownInside(dir) {
		return nil
	}
	var out []string
	for d := dir; ; d = filepath.Dir(d) {
		out = append(out, d)
		if d == ownRun.root || len(d) <= len(ownRun.root) {
			break
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// permLook resolves path argument pathArg (following a final symlink if
// follow). ok is false when the call is not the checks' business: the
// path does not resolve, names "." or "..", or is outside the guest.
func permLook(c *Call, dirArg, pathArg int, follow bool) (f permFile, ok bool) {
	p, err := c.ReadString(c.Arg(pathArg))
	if err != nil || p == "" {
		return f, false
	}
	switch last := p[strings.LastIndexByte(strings.TrimRight(p, "/"), '/')+1:]; strings.TrimRight(last, "/") {
	case ".", "..", "":
		return f, false
	}
	res, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, follow))
	if errno != 0 || !ownInside(res.Host) || res.Host == ownRun.root {
		return f, false
	}
	f.host = res.Host
	if permSearch(c, filepath.Dir(res.Host)) != nil {
		f.denied = true
		return f, true
	}
	st, errno := ownStat(res.Host, follow)
	switch errno {
	case 0:
		f.exists, f.st, f.view = true, st, ownRun.store.View(st, ownRun.host)
	case unix.ENOENT:
	default:
		return f, false
	}
	return f, true
}

// permParent is the guest's view of the directory holding f.
func permParent(f permFile) (ownership.Stat, bool) {
	st, errno := ownStat(filepath.Dir(f.host), true)
	if errno != 0 || st.Type() != unix.S_IFDIR {
		return ownership.Stat{}, false
	}
	return ownRun.store.View(st, ownRun.host), true
}

// permLookup fails a call whose path goes through a directory the caller
// may not search.
func permLookup(c *Call, dirArg, pathArg int, follow bool) {
	if permCreds(c) == nil {
		return
	}
	permFind(c, dirArg, pathArg, follow)
}

// permFind is permLook for a check that goes on: it fails the call with
// EACCES when the path goes through a directory the caller may not
// search, and then reports !ok as well.
func permFind(c *Call, dirArg, pathArg int, follow bool) (f permFile, ok bool) {
	f, ok = permLook(c, dirArg, pathArg, follow)
	if ok && f.denied {
		c.Fail(unix.EACCES)
		return f, false
	}
	return f, ok
}

// permMayCreate is may_create: write and search on the parent.
func permMayCreate(cr *ownership.Creds, f permFile) unix.Errno {
	dir, ok := permParent(f)
	if !ok {
		return 0
	}
	if ownership.Permission(cr, dir, ownership.MayWrite|ownership.MayExec) != nil {
		return unix.EACCES
	}
	return 0
}

// permMayDelete is may_delete for an existing f: write and search on the
// parent, then the sticky-bit rule (check_sticky: the owner of the file
// or of the directory, or CAP_FOWNER).
func permMayDelete(cr *ownership.Creds, f permFile) unix.Errno {
	dir, ok := permParent(f)
	if !ok {
		return 0
	}
	if ownership.Permission(cr, dir, ownership.MayWrite|ownership.MayExec) != nil {
		return unix.EACCES
	}
	if dir.Mode&unix.S_ISVTX != 0 && cr.FSUID != f.view.UID && cr.FSUID != dir.UID && !cr.Capable(unix.CAP_FOWNER) {
		return unix.EPERM
	}
	return 0
}

// permOpenMask is the access an open asks for (ACC_MODE, and write for
// O_TRUNC); 0 for O_PATH, which checks nothing.
func permOpenMask(flags uint64) int {
	if flags&unix.O_PATH != 0 {
		return 0
	}
	mask := [4]int{ownership.MayRead, ownership.MayWrite, ownership.MayRead | ownership.MayWrite,
		ownership.MayRead | ownership.MayWrite}[flags&unix.O_ACCMODE]
	if flags&unix.O_TRUNC != 0 {
		mask |= ownership.MayWrite
	}
	return mask
}

func permOpen(c *Call, dirArg, pathArg int, flags uint64) {
	cr := permCreds(c)
	if cr == nil {
		return
	}
	mask := permOpenMask(flags)
	if mask == 0 {
		return
	}
	creat := flags&unix.O_CREAT != 0
	excl := creat && flags&unix.O_EXCL != 0
	follow := flags&unix.O_NOFOLLOW == 0 && !excl
	f, ok := permFind(c, dirArg, pathArg, follow)
	if !ok {
		return
	}
	switch {
	case f.exists && excl:
		// EEXIST, from the kernel.
	case f.exists:
		if f.view.Type() == unix.S_IFLNK {
			return // O_NOFOLLOW: ELOOP, from the kernel
		}
		if f.view.Type() == unix.S_IFDIR && mask&ownership.MayWrite != 0 {
			return // EISDIR, which may_open reports first
		}
		if ownership.Permission(cr, f.view, mask) != nil {
			c.Fail(unix.EACCES)
		}
	case creat:
		if errno := permMayCreate(cr, f); errno != 0 {
			c.Fail(errno)
		}
	}
}

func permOpenat2(c *Call) {
	if c.Arg(3) < openHowSize {
		return // EINVAL, from openat2.go
	}
	var how [openHowSize]byte
	if err := c.Read(c.Arg(2), how[:]); err != nil {
		return
	}
	if binary.LittleEndian.Uint64(how[16:])&(unix.RESOLVE_IN_ROOT|unix.RESOLVE_BENEATH) != 0 {
		// Resolved by the kernel from the dirfd (openat2.go): the path
		// is not the guest's to resolve here.
		return
	}
	permOpen(c, 0, 1, binary.LittleEndian.Uint64(how[0:]))
}

func permTruncate(c *Call) {
	cr := permCreds(c)
	if cr == nil {
		return
	}
	f, ok := permFind(c, noArg, 0, true)
	if !ok || !f.exists || f.view.Type() != unix.S_IFREG {
		return
	}
	if ownership.Permission(cr, f.view, ownership.MayWrite) != nil {
		c.Fail(unix.EACCES)
	}
}

// permCreate checks mkdir, mknod and symlink (pathArg is the new name).
func permCreate(c *Call, dirArg, pathArg int) {
	cr := permCreds(c)
	if cr == nil {
		return
	}
	f, ok := permFind(c, dirArg, pathArg, false)
	if !ok || f.exists {
		return // EEXIST comes first, from the kernel
	}
	if errno := permMayCreate(cr, f); errno != 0 {
		c.Fail(errno)
	}
}

// permLink checks link and linkat: may_create for the new name, and
// fs.protected_hardlinks for the source (may_linkat: a caller that does
// not own the source and lacks CAP_FOWNER may link only a regular file,
// neither set-user-ID nor executable set-group-ID, that it may read and
// write).
func permLink(c *Call, oldDir, oldPath, newDir, newPath int, flags uint64) {
	cr := permCreds(c)
	if cr == nil {
		return
	}
	if flags&unix.AT_EMPTY_PATH != 0 {
		return // linkat of a descriptor: CAP_DAC_READ_SEARCH, the kernel's
	}
	src, ok := permFind(c, oldDir, oldPath, flags&unix.AT_SYMLINK_FOLLOW != 0)
	if !ok || !src.exists {
		return
	}
	dst, ok := permFind(c, newDir, newPath, false)
	if !ok || dst.exists {
		return
	}
	if errno := permMayCreate(cr, dst); errno != 0 {
		c.Fail(errno)
		return
	}
	if permProtectedHardlinks() && cr.FSUID != src.view.UID && !cr.Capable(unix.CAP_FOWNER) {
		v := src.view
		if v.Type() != unix.S_IFREG || v.Mode&unix.S_ISUID != 0 ||
			v.Mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP ||
			ownership.Permission(cr, v, ownership.MayRead|ownership.MayWrite) != nil {
			c.Fail(unix.EPERM)
		}
	}
}

// permProtectedHardlinks reads fs.protected_hardlinks (default 1).
func permProtectedHardlinks() bool {
	b, err := os.ReadFile("/proc/sys/fs/protected_hardlinks")
	return err != nil || strings.TrimSpace(string(b)) != "0"
}

func permDelete(c *Call, dirArg, pathArg int, dir bool) {
	cr := permCreds(c)
	if cr == nil {
		return
	}
	f, ok := permFind(c, dirArg, pathArg, false)
	if !ok || !f.exists || (f.view.Type() == unix.S_IFDIR) != dir {
		return // ENOENT, EISDIR, ENOTDIR: the kernel's
	}
	if errno := permMayDelete(cr, f); errno != 0 {
		c.Fail(errno)
	}
}

// permRename is vfs_rename's checks: may_delete of the source, may_delete
// of an existing target or may_create of a new one, and write on a
// directory that changes parent (its ".." entry changes).
func permRename(c *Call, oldDir, oldPath, newDir, newPath int, flags uint64) {
	cr := permCreds(c)
	if cr == nil {
		return
	}
	src, ok := permFind(c, oldDir, oldPath, false)
	if !ok || !src.exists {
		return
	}
	dst, ok := permFind(c, newDir, newPath, false)
	if !ok || (dst.exists && flags&unix.RENAME_NOREPLACE != 0) || (!dst.exists && flags&unix.RENAME_EXCHANGE != 0) {
		return
	}
	if src.st.Key() == dst.st.Key() && dst.exists {
		return // the same file: rename does nothing
	}
	errno := permMayDelete(cr, src)
	if errno == 0 {
		if dst.exists {
			errno = permMayDelete(cr, dst)
		} else {
			errno = permMayCreate(cr, dst)
		}
	}
	if errno == 0 && filepath.Dir(src.host) != filepath.Dir(dst.host) {
		if src.view.Type() == unix.S_IFDIR && ownership.Permission(cr, src.view, ownership.MayWrite) != nil {
			errno = unix.EACCES
		}
		if flags&unix.RENAME_EXCHANGE != 0 && dst.view.Type() == unix.S_IFDIR &&
			ownership.Permission(cr, dst.view, ownership.MayWrite) != nil {
			errno = unix.EACCES
		}
	}
	if errno != 0 {
		c.Fail(errno)
	}
}
