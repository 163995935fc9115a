package tracer

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nook/ownership"
)

// Metadata calls the real user could not make: chown, chmod beyond the
// real permissions, mknod of devices, the file capability xattr. They are
// emulated at their seccomp stop against the ownership store (the kernel
// never runs them, so these hooks run before path translation: this
// file's init runs before paths.go's). Calls that remove, rename or create
// files run for real and keep the store in step at their exit.

func init() {
	chown := func(dirArg, pathArg, uidArg, flagsArg int, follow bool) Hook {
		return Hook{Entry: func(c *Call) { ownChown(c, dirArg, pathArg, uidArg, flagsArg, follow) }}
	}
	Register(unix.SYS_CHOWN, chown(noArg, 0, 1, noArg, true))
	Register(unix.SYS_LCHOWN, chown(noArg, 0, 1, noArg, false))
	Register(unix.SYS_FCHOWN, chown(0, noArg, 1, noArg, true))
	Register(unix.SYS_FCHOWNAT, chown(0, 1, 2, 4, true))

	chmod := func(dirArg, pathArg, modeArg, flagsArg int) Hook {
		return Hook{Entry: func(c *Call) { ownChmod(c, dirArg, pathArg, modeArg, flagsArg) }}
	}
	Register(unix.SYS_CHMOD, chmod(noArg, 0, 1, noArg))
	Register(unix.SYS_FCHMOD, chmod(0, noArg, 1, noArg))
	Register(unix.SYS_FCHMODAT, chmod(0, 1, 2, noArg))
	Register(unix.SYS_FCHMODAT2, chmod(0, 1, 2, 3))

	Register(unix.SYS_MKNOD, Hook{Entry: func(c *Call) { ownMknod(c, noArg, 0) }, Exit: ownCreatedExit})
	Register(unix.SYS_MKNODAT, Hook{Entry: func(c *Call) { ownMknod(c, 0, 1) }, Exit: ownCreatedExit})
	Register(unix.SYS_MKDIR, Hook{Entry: func(c *Call) { ownCreating(c, noArg, 0) }, Exit: ownCreatedExit})
	Register(unix.SYS_MKDIRAT, Hook{Entry: func(c *Call) { ownCreating(c, 0, 1) }, Exit: ownCreatedExit})
	Register(unix.SYS_SYMLINK, Hook{Entry: func(c *Call) { ownCreating(c, noArg, 1) }, Exit: ownCreatedExit})
	Register(unix.SYS_SYMLINKAT, Hook{Entry: func(c *Call) { ownCreating(c, 1, 2) }, Exit: ownCreatedExit})
	Register(unix.SYS_OPEN, Hook{Entry: func(c *Call) { ownOpen(c, noArg, 0, c.Arg(1)) }})
	Register(unix.SYS_OPENAT, Hook{Entry: func(c *Call) { ownOpen(c, 0, 1, c.Arg(2)) }})
	Register(unix.SYS_CREAT, Hook{Entry: func(c *Call) { ownOpen(c, noArg, 0, unix.O_CREAT) }})

	Register(unix.SYS_UNLINK, Hook{Entry: func(c *Call) { ownRemoving(c, noArg, 0) }, Exit: ownRemovedExit})
	Register(unix.SYS_RMDIR, Hook{Entry: func(c *Call) { ownRemoving(c, noArg, 0) }, Exit: ownRemovedExit})
	Register(unix.SYS_UNLINKAT, Hook{Entry: func(c *Call) { ownRemoving(c, 0, 1) }, Exit: ownRemovedExit})
	Register(unix.SYS_RENAME, Hook{Entry: func(c *Call) { ownRenaming(c, noArg, 0, noArg, 1, 0) }, Exit: ownRenamedExit})
	Register(unix.SYS_RENAMEAT, Hook{Entry: func(c *Call) { ownRenaming(c, 0, 1, 2, 3, 0) }, Exit: ownRenamedExit})
	Register(unix.SYS_RENAMEAT2, Hook{Entry: func(c *Call) { ownRenaming(c, 0, 1, 2, 3, c.Arg(4)) }, Exit: ownRenamedExit})

	for nr, h := range map[int]Hook{
		unix.SYS_SETXATTR:     {Entry: func(c *Call) { ownSetxattr(c, noArg, 0, true) }},
		unix.SYS_LSETXATTR:    {Entry: func(c *Call) { ownSetxattr(c, noArg, 0, false) }},
		unix.SYS_FSETXATTR:    {Entry: func(c *Call) { ownSetxattr(c, 0, noArg, true) }},
		unix.SYS_GETXATTR:     {Entry: func(c *Call) { ownGetxattr(c, noArg, 0, true) }},
		unix.SYS_LGETXATTR:    {Entry: func(c *Call) { ownGetxattr(c, noArg, 0, false) }},
		unix.SYS_FGETXATTR:    {Entry: func(c *Call) { ownGetxattr(c, 0, noArg, true) }},
		unix.SYS_REMOVEXATTR:  {Entry: func(c *Call) { ownRemovexattr(c, noArg, 0, true) }},
		unix.SYS_LREMOVEXATTR: {Entry: func(c *Call) { ownRemovexattr(c, noArg, 0, false) }},
		unix.SYS_FREMOVEXATTR: {Entry: func(c *Call) { ownRemovexattr(c, 0, noArg, true) }},
		unix.SYS_LISTXATTR:    {Entry: func(c *Call) { ownListxattr(c, noArg, 0, true) }},
		unix.SYS_LLISTXATTR:   {Entry: func(c *Call) { ownListxattr(c, noArg, 0, false) }},
		unix.SYS_FLISTXATTR:   {Entry: func(c *Call) { ownListxattr(c, 0, noArg, true) }},
	} {
		Register(nr, h)
	}
}

// ownFollow evaluates AT_SYMLINK_NOFOLLOW and AT_EMPTY_PATH in argument
// flagsArg (noArg: neither).
func ownFollow(c *Call, flagsArg int, follow bool) (bool, bool) {
	if flagsArg == noArg {
		return follow, false
	}
	fl := c.Arg(flagsArg)
	return fl&unix.AT_SYMLINK_NOFOLLOW == 0, fl&unix.AT_EMPTY_PATH != 0
}

func ownChown(c *Call, dirArg, pathArg, uidArg, flagsArg int, follow bool) {
	ownDrain()
	if flagsArg != noArg && c.Arg(flagsArg)&^uint64(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		c.Fail(unix.EINVAL)
		return
	}
	follow, empty := ownFollow(c, flagsArg, follow)
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, empty)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	uid, gid := uint32(c.Arg(uidArg)), uint32(c.Arg(uidArg+1))
	cr := ownCreds(c.T.P)
	v := ownRun.store.View(st, ownRun.host)
	if err := ownership.ChownAllowed(cr, v, uid, gid); err != nil {
		c.Fail(err.(unix.Errno))
		return
	}
	if ownReadOnly(host) {
		c.Fail(unix.EROFS)
		return
	}
	if err := ownRun.store.Chown(st, ownHint(host), uid, gid, cr, ownRun.host); err != nil {
		c.Fail(unix.EIO)
		return
	}
	c.Return(0)
}

func ownChmod(c *Call, dirArg, pathArg, modeArg, flagsArg int) {
	ownDrain()
	follow, empty := ownFollow(c, flagsArg, true)
	if flagsArg != noArg && c.Arg(flagsArg)&^uint64(unix.AT_SYMLINK_NOFOLLOW|unix.AT_EMPTY_PATH) != 0 {
		c.Fail(unix.EINVAL)
		return
	}
	host, st, errno := ownTarget(c, dirArg, pathArg, follow, empty)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if st.Type() == unix.S_IFLNK {
		// fchmodat2(AT_SYMLINK_NOFOLLOW) on a symlink: Linux cannot
		// change a symlink's mode.
		c.Fail(unix.EOPNOTSUPP)
		return
	}
	mode := uint32(c.Arg(modeArg)) & 0o7777
	cr := ownCreds(c.T.P)
	v := ownRun.store.View(st, ownRun.host)
	if err := ownership.OwnerOrCapable(cr, v); err != nil {
		c.Fail(err.(unix.Errno))
		return
	}
	if ownReadOnly(host) {
		c.Fail(unix.EROFS)
		return
	}
	if st.UID == ownRun.host.UID {
		disk := ownership.DiskMode(st.Mode, mode)
		if disk != st.Mode&0o7777 {
			if err := ownRetry(func() error { return unix.Chmod(host, disk) }); err != nil {
				c.Fail(errnoOf(err))
				return
			}
			st.Mode = st.Mode&unix.S_IFMT | disk
		}
	}
	if err := ownRun.store.Chmod(st, ownHint(host), mode, cr, ownRun.host); err != nil {
		c.Fail(unix.EIO)
		return
	}
	c.Return(0)
}

// ownReadOnly reports whether host path p is on a read-only mount, where
// the kernel refuses metadata changes with EROFS even to root.
func ownReadOnly(p string) bool {
	var fs unix.Statfs_t
	if err := ownRetry(func() error { return unix.Statfs(p, &fs) }); err != nil {
		return false
	}
	return fs.Flags&unix.ST_RDONLY != 0
}

func ownRetry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// ownParent is the guest's view of the directory that will hold host
// path p.
func ownParent(p string) (ownership.Stat, bool) {
	st, errno := ownStat(filepath.Dir(p), true)
	if errno != 0 {
		return ownership.Stat{}, false
	}
	return ownRun.store.View(st, ownRun.host), true
}

// ownNeedsOwner reports whether a file the caller creates under parent
// needs a record: not when root creates it in an ordinary directory.
func ownNeedsOwner(cr *ownership.Creds, parent ownership.Stat) bool {
	return cr.FSUID != 0 || cr.FSGID != 0 || parent.Mode&unix.S_ISGID != 0
}

// ownCreating notes at the entry of mkdir or symlink what to record at
// its exit.
func ownCreating(c *Call, dirArg, pathArg int) {
	ownDrain()
	o := ownThreadOf(c.T)
	o.created = ""
	p, err := c.ReadString(c.Arg(pathArg))
	if err != nil || p == "" {
		return
	}
	res, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, false))
	if errno != 0 {
		return
	}
	parent, ok := ownParent(res.Host)
	if !ok || !ownNeedsOwner(ownCreds(c.T.P), parent) {
		return
	}
	o.created, o.parent = res.Host, parent
}

func ownCreatedExit(c *Call) {
	o := ownThreadOf(c.T)
	host := o.created
	o.created = ""
	if c.Result() != 0 {
		return
	}
	if c.Nr == unix.SYS_MKDIR || c.Nr == unix.SYS_MKDIRAT {
		ownDirFloor(c, host)
	}
	if host == "" {
		return
	}
	st, errno := ownStat(host, false)
	if errno != 0 {
		return
	}
	ownRun.store.Created(st, ownRel(host), ownCreds(c.T.P), o.parent, ownRun.host)
}

// ownDirFloor gives a directory just made with a mode that shuts out its
// owner (mkdir -m 555) the owner's access on disk, and records the mode
// for the guest (see ownership.DiskMode): the guest root must still be
// able to create files in it, as real root can. host is the directory if
// known; otherwise its path is read back from the call's argument as the
// kernel saw it: a host path, or a relative path the translation left
// alone because the kernel reaches the same file from the real working
// directory or dirfd, or a pinned path (rootfd.go).
func ownDirFloor(c *Call, host string) {
	if host == "" {
		arg, dirfd := 0, int32(unix.AT_FDCWD)
		if c.Nr == unix.SYS_MKDIRAT {
			arg, dirfd = 1, int32(c.Arg(0))
		}
		p, err := c.ReadString(c.Arg(arg))
		if err != nil || p == "" {
			return
		}
		if h, ok := unpinHost(p); ok {
			p = h
		} else if p[0] != '/' {
			link := fmt.Sprintf("/proc/%d/cwd", c.T.Tid)
			if dirfd != unix.AT_FDCWD {
				link = fmt.Sprintf("/proc/%d/fd/%d", c.T.Tid, dirfd)
			}
			base, err := os.Readlink(link)
			if err != nil {
				return
			}
			p = filepath.Join(base, p)
		}
		if !ownInside(p) {
			return
		}
		host = p
	}
	st, errno := ownStat(host, false)
	if errno != 0 || st.Type() != unix.S_IFDIR || st.Mode&0o700 == 0o700 || st.UID != ownRun.host.UID {
		return
	}
	mode := st.Mode & 0o7777
	disk := ownership.DiskMode(st.Mode, mode)
	if err := ownRetry(func() error { return unix.Chmod(host, disk) }); err != nil {
		return
	}
	st.Mode = st.Mode&unix.S_IFMT | disk
	ownRun.store.Chmod(st, ownRel(host), mode, ownCreds(c.T.P), ownRun.host)
}

// ownInside reports whether host path p is in the guest's own tree.
func ownInside(p string) bool {
	return p == ownRun.root || strings.HasPrefix(p, ownRun.root+"/")
}

// ownOpen remembers a file a guest may create with O_CREAT whose owner
// the default rule would get wrong: one made by a guest user, or under a
// set-group-ID directory. Root in ordinary directories, the common case,
// costs nothing here.
func ownOpen(c *Call, dirArg, pathArg int, flags uint64) {
	cr := ownCreds(c.T.P)
	if flags&unix.O_CREAT == 0 || (cr.FSUID == 0 && cr.FSGID == 0 && !ownRun.store.HasSetgidDirs()) {
		return
	}
	p, err := c.ReadString(c.Arg(pathArg))
	if err != nil || p == "" {
		return
	}
	follow := flags&unix.O_NOFOLLOW == 0 && flags&unix.O_EXCL == 0
	res, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, follow))
	if errno != 0 {
		return // the translation fails the call the same way
	}
	if _, errno := ownStat(res.Host, false); errno != unix.ENOENT {
		return
	}
	parent, ok := ownParent(res.Host)
	if ok && ownNeedsOwner(cr, parent) {
		ownRun.pending = append(ownRun.pending, ownPending{host: res.Host, creds: cr.Clone(), parent: parent})
	}
}

// ownMknod emulates mknod of device nodes, which the real user cannot
// create: an empty regular file stands for the node and the store gives
// it its type and device number. Fifos, sockets and regular files are
// made by the kernel and only get their owner recorded.
func ownMknod(c *Call, dirArg, pathArg int) {
	ownDrain()
	modeArg := pathArg + 1
	mode := uint32(c.Arg(modeArg))
	typ := mode & unix.S_IFMT
	switch typ {
	case 0, unix.S_IFREG, unix.S_IFIFO, unix.S_IFSOCK:
		ownCreating(c, dirArg, pathArg)
		return
	case unix.S_IFCHR, unix.S_IFBLK:
	default:
		c.Fail(unix.EINVAL)
		return
	}
	cr := ownCreds(c.T.P)
	p, err := c.ReadString(c.Arg(pathArg))
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	if p == "" {
		c.Fail(unix.ENOENT)
		return
	}
	res, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, false))
	if errno != 0 {
		c.Fail(errno)
		return
	}
	// The kernel's order: the name must be free (filename_create), the
	// directory writable (may_create), and only then CAP_MKNOD.
	if _, errno := ownStat(res.Host, false); errno != unix.ENOENT {
		if errno == 0 {
			errno = unix.EEXIST
		}
		c.Fail(errno)
		return
	}
	if parent, ok := ownParent(res.Host); ok {
		if err := ownership.Permission(cr, parent, ownership.MayWrite|ownership.MayExec); err != nil {
			c.Fail(unix.EACCES)
			return
		}
	}
	if !cr.Capable(unix.CAP_MKNOD) {
		c.Fail(unix.EPERM)
		return
	}
	perm := mode & 0o7777 &^ ownUmask(c.T.Tid)
	// The file is created in the held parent directory (rootfd.go): a
	// racing thread's swap cannot make it appear in a host directory.
	dirFd, name := unix.AT_FDCWD, res.Host
	if pfd, pname, own, ok, errno := c.tr.safeOpen(res, true, false); ok {
		if errno != 0 {
			c.Fail(errno)
			return
		}
		if own {
			defer unix.Close(pfd)
		}
		dirFd, name = pfd, pname
	}
	var fd int
	err = ownRetry(func() (err error) {
		fd, err = unix.Openat(dirFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		return err
	})
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	unix.Fchmod(fd, ownership.DiskMode(unix.S_IFREG, perm))
	var sys unix.Stat_t
	err = ownRetry(func() error { return unix.Fstat(fd, &sys) })
	unix.Close(fd)
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	st := ownership.StatFrom(&sys)
	parent, _ := ownParent(res.Host)
	dev := c.Arg(modeArg + 1)
	// The kernel's mknod takes the device number in its 32-bit "new"
	// encoding (new_decode_dev).
	major := uint32((dev & 0xfff00) >> 8)
	minor := uint32((dev & 0xff) | ((dev >> 12) & 0xfff00))
	rel := ownRel(res.Host)
	s := ownRun.store
	if err := s.Mknod(st, rel, typ|perm, unix.Mkdev(major, minor), cr, parent, ownRun.host); err != nil {
		c.Fail(unix.EIO)
		return
	}
	if perm != st.Mode&0o7777 {
		s.Chmod(st, rel, perm, ownership.NewCreds(0, 0, nil), ownRun.host)
	}
	c.Return(0)
}

// ownUmask reads the umask of thread tid (Linux 4.7+ shows it in status).
func ownUmask(tid int) uint32 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", tid))
	if err != nil {
		return 0o022
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Umask:"); ok {
			if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
				return uint32(m)
			}
		}
	}
	return 0o022
}

// ownLook stats what path argument pathArg names. rel is set when the
// path resolved, ok when the file exists.
func ownLook(c *Call, dirArg, pathArg int, follow bool) ownFile {
	p, err := c.ReadString(c.Arg(pathArg))
	if err != nil || p == "" {
		return ownFile{}
	}
	res, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, follow))
	if errno != 0 {
		return ownFile{}
	}
	f := ownFile{rel: ownRel(res.Host)}
	f.st, errno = ownStat(res.Host, follow)
	f.ok = errno == 0
	return f
}

func ownRemoving(c *Call, dirArg, pathArg int) {
	ownDrain()
	o := ownThreadOf(c.T)
	o.unlink = ownLook(c, dirArg, pathArg, false)
	if o.unlink.ok {
		if _, ok := ownRun.store.Get(o.unlink.st.Key(), o.unlink.st.Type()); !ok {
			o.unlink.ok = false
		}
	}
}

func ownRemovedExit(c *Call) {
	o := ownThreadOf(c.T)
	f := o.unlink
	o.unlink = ownFile{}
	if !f.ok || c.Result() != 0 {
		return
	}
	ownRun.store.Unlinked(f.st.Key(), f.st.Type(), f.st.Nlink, f.rel)
}

func ownRenaming(c *Call, oldDir, oldPath, newDir, newPath int, flags uint64) {
	ownDrain()
	o := ownThreadOf(c.T)
	o.rename = ownLook(c, oldDir, oldPath, false)
	o.unlink = ownLook(c, newDir, newPath, false)
	if flags&unix.RENAME_EXCHANGE != 0 {
		// Both names stay: each file's hint moves to the other name.
		if o.rename.ok && o.unlink.ok {
			o.rename.rel, o.unlink.rel = o.rename.rel+"\x00"+o.unlink.rel, o.unlink.rel+"\x00"+o.rename.rel
		}
		return
	}
	if o.unlink.ok && o.rename.ok && o.unlink.st.Key() == o.rename.st.Key() {
		o.unlink.ok = false // rename onto another link of itself: a no-op
	}
}

func ownRenamedExit(c *Call) {
	o := ownThreadOf(c.T)
	src, dst := o.rename, o.unlink
	o.rename, o.unlink = ownFile{}, ownFile{}
	if c.Result() != 0 || !src.ok {
		return
	}
	s := ownRun.store
	if a, b, ok := strings.Cut(src.rel, "\x00"); ok {
		// RENAME_EXCHANGE: a and b swap. Through a name no path can
		// have, so that hints below two exchanged directories are not
		// moved twice.
		const tmp = "\x00exchange"
		s.Renamed(src.st.Key(), src.st.Type(), a, tmp)
		s.Renamed(dst.st.Key(), dst.st.Type(), b, a)
		s.Renamed(src.st.Key(), src.st.Type(), tmp, b)
		return
	}
	if dst.ok {
		s.Unlinked(dst.st.Key(), dst.st.Type(), dst.st.Nlink, dst.rel)
	}
	if dst.rel != "" {
		s.Renamed(src.st.Key(), src.st.Type(), src.rel, dst.rel)
	}
}
