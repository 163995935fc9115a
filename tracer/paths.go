package tracer

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// followRule says whether a call follows a symlink in the final component
// of its path.
type followRule uint8

const (
	followAlways   followRule = iota
	followNever               // lstat, unlink, mkdir, rename, ...: the link itself
	followUnlessAt            // flags argument: AT_SYMLINK_NOFOLLOW
	followIfAt                // flags argument: AT_SYMLINK_FOLLOW (linkat)
	followOpen                // open flags: O_NOFOLLOW, O_CREAT|O_EXCL
	followInotify             // mask: IN_DONT_FOLLOW
	followFanotify            // flags: FAN_MARK_DONT_FOLLOW
	// followParent: the call acts on the last component itself (creates,
	// removes or renames it): only its parent is resolved (see
	// pathmap.Request.Parent).
	followParent
)

const noArg = -1

// pathArg describes one path argument of a syscall.
type pathArg struct {
	dir    int8 // argument index of the dirfd; noArg: AT_FDCWD
	path   int8 // argument index of the path
	flags  int8 // argument index of the flags the follow rule reads
	follow followRule
	empty  bool // AT_EMPTY_PATH in flags makes "" name the dirfd
	null   bool // a NULL path names the dirfd (utimensat, ...)
	busy   bool // fails with EBUSY on a bind mount point (removal, rename)
}

func p0(f followRule) pathArg { return pathArg{dir: noArg, path: 0, flags: noArg, follow: f} }
func pAt(d, p int8, f followRule) pathArg {
	return pathArg{dir: d, path: p, flags: noArg, follow: f}
}
func busy(a pathArg) pathArg { a.busy = true; return a }
func pAtFlags(d, p, fl int8, f followRule, empty bool) pathArg {
	return pathArg{dir: d, path: p, flags: fl, follow: f, empty: empty}
}

// Every x86_64 syscall that takes file names (field notes, section 3),
// except those handled specially (execve, openat2, readlink, getcwd,
// sockets) or refused (deny.go).
var pathSyscalls = map[int][]pathArg{
	unix.SYS_OPEN:              {{dir: noArg, path: 0, flags: 1, follow: followOpen}},
	unix.SYS_CREAT:             {p0(followAlways)},
	unix.SYS_OPENAT:            {{dir: 0, path: 1, flags: 2, follow: followOpen}},
	unix.SYS_STAT:              {p0(followAlways)},
	unix.SYS_LSTAT:             {p0(followNever)},
	unix.SYS_NEWFSTATAT:        {pAtFlags(0, 1, 3, followUnlessAt, true)},
	unix.SYS_STATX:             {{dir: 0, path: 1, flags: 2, follow: followUnlessAt, empty: true, null: true}},
	unix.SYS_ACCESS:            {p0(followAlways)},
	unix.SYS_FACCESSAT:         {pAt(0, 1, followAlways)},
	unix.SYS_FACCESSAT2:        {pAtFlags(0, 1, 3, followUnlessAt, true)},
	unix.SYS_MKDIR:             {p0(followParent)},
	unix.SYS_MKDIRAT:           {pAt(0, 1, followParent)},
	unix.SYS_RMDIR:             {busy(p0(followParent))},
	unix.SYS_UNLINK:            {busy(p0(followParent))},
	unix.SYS_UNLINKAT:          {busy(pAt(0, 1, followParent))},
	unix.SYS_RENAME:            {busy(p0(followParent)), busy(pathArg{dir: noArg, path: 1, flags: noArg, follow: followParent})},
	unix.SYS_RENAMEAT:          {busy(pAt(0, 1, followParent)), busy(pAt(2, 3, followParent))},
	unix.SYS_RENAMEAT2:         {busy(pAt(0, 1, followParent)), busy(pAt(2, 3, followParent))},
	unix.SYS_LINK:              {p0(followNever), {dir: noArg, path: 1, flags: noArg, follow: followParent}},
	unix.SYS_LINKAT:            {pAtFlags(0, 1, 4, followIfAt, true), pAt(2, 3, followParent)},
	unix.SYS_SYMLINK:           {{dir: noArg, path: 1, flags: noArg, follow: followParent}},
	unix.SYS_SYMLINKAT:         {pAt(1, 2, followParent)},
	unix.SYS_MKNOD:             {p0(followParent)},
	unix.SYS_MKNODAT:           {pAt(0, 1, followParent)},
	unix.SYS_CHMOD:             {p0(followAlways)},
	unix.SYS_FCHMODAT:          {pAt(0, 1, followAlways)},
	unix.SYS_FCHMODAT2:         {pAtFlags(0, 1, 3, followUnlessAt, true)},
	unix.SYS_CHOWN:             {p0(followAlways)},
	unix.SYS_LCHOWN:            {p0(followNever)},
	unix.SYS_FCHOWNAT:          {pAtFlags(0, 1, 4, followUnlessAt, true)},
	unix.SYS_TRUNCATE:          {p0(followAlways)},
	unix.SYS_UTIME:             {p0(followAlways)},
	unix.SYS_UTIMES:            {p0(followAlways)},
	unix.SYS_FUTIMESAT:         {{dir: 0, path: 1, flags: noArg, follow: followAlways, null: true}},
	unix.SYS_UTIMENSAT:         {{dir: 0, path: 1, flags: 3, follow: followUnlessAt, empty: true, null: true}},
	unix.SYS_STATFS:            {p0(followAlways)},
	unix.SYS_GETXATTR:          {p0(followAlways)},
	unix.SYS_LGETXATTR:         {p0(followNever)},
	unix.SYS_SETXATTR:          {p0(followAlways)},
	unix.SYS_LSETXATTR:         {p0(followNever)},
	unix.SYS_LISTXATTR:         {p0(followAlways)},
	unix.SYS_LLISTXATTR:        {p0(followNever)},
	unix.SYS_REMOVEXATTR:       {p0(followAlways)},
	unix.SYS_LREMOVEXATTR:      {p0(followNever)},
	sysSetxattrat:              {pAtFlags(0, 1, 2, followUnlessAt, true)},
	sysGetxattrat:              {pAtFlags(0, 1, 2, followUnlessAt, true)},
	sysListxattrat:             {pAtFlags(0, 1, 2, followUnlessAt, true)},
	sysRemovexattrat:           {pAtFlags(0, 1, 2, followUnlessAt, true)},
	sysFileGetattr:             {pAtFlags(0, 1, 4, followUnlessAt, true)},
	sysFileSetattr:             {pAtFlags(0, 1, 4, followUnlessAt, true)},
	unix.SYS_INOTIFY_ADD_WATCH: {{dir: noArg, path: 1, flags: 2, follow: followInotify}},
	unix.SYS_FANOTIFY_MARK:     {{dir: 3, path: 4, flags: 1, follow: followFanotify, null: true}},
	unix.SYS_QUOTACTL:          {{dir: noArg, path: 1, flags: noArg, follow: followAlways, null: true}},
}

// Syscalls newer than golang.org/x/sys's tables.
const (
	sysSetxattrat    = 463
	sysGetxattrat    = 464
	sysListxattrat   = 465
	sysRemovexattrat = 466
	sysOpenTreeAttr  = 467
	sysFileGetattr   = 468
	sysFileSetattr   = 469
)

func init() {
	for nr, args := range pathSyscalls {
		args := args
		Register(nr, Hook{Entry: func(c *Call) {
			for _, a := range args {
				if !c.tr.translateArg(c, a) {
					return
				}
			}
		}})
	}
	// A rename can move the directory a cached working directory is in.
	for _, nr := range []int{unix.SYS_RENAME, unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2} {
		Register(nr, Hook{Entry: func(c *Call) { c.tr.gen++ }})
	}
	for _, nr := range []int{unix.SYS_UNLINK, unix.SYS_UNLINKAT, unix.SYS_RMDIR,
		unix.SYS_RENAME, unix.SYS_RENAMEAT, unix.SYS_RENAMEAT2} {
		Register(nr, Hook{Exit: invalidateExit})
	}
	Register(unix.SYS_CHDIR, Hook{Entry: chdirEntry, Exit: chdirExit})
	Register(unix.SYS_FCHDIR, Hook{Exit: chdirExit})
}

// follows evaluates a's follow rule for the call.
func (a pathArg) follows(c *Call) bool {
	var fl uint64
	if a.flags != noArg {
		fl = c.Arg(int(a.flags))
	}
	switch a.follow {
	case followNever:
		return false
	case followUnlessAt:
		return fl&unix.AT_SYMLINK_NOFOLLOW == 0
	case followIfAt:
		return fl&unix.AT_SYMLINK_FOLLOW != 0
	case followOpen:
		return fl&unix.O_NOFOLLOW == 0 && fl&(unix.O_CREAT|unix.O_EXCL) != unix.O_CREAT|unix.O_EXCL
	case followInotify:
		return fl&unix.IN_DONT_FOLLOW == 0
	case followFanotify:
		return fl&unix.FAN_MARK_DONT_FOLLOW == 0
	}
	return true
}

// translateArg rewrites one path argument of c to its host path. It reports
// false when it failed the call.
func (tr *tracer) translateArg(c *Call, a pathArg) bool {
	addr := c.Arg(int(a.path))
	if addr == 0 && a.null {
		return true
	}
	p, err := c.ReadString(addr)
	if err != nil {
		c.Fail(errnoOf(err))
		return false
	}
	if p == "" && a.empty && a.flags != noArg && c.Arg(int(a.flags))&unix.AT_EMPTY_PATH != 0 {
		// The call operates on the dirfd itself, already a host file.
		return true
	}
	dir := noArg
	if a.dir != noArg {
		dir = int(a.dir)
	}
	res, errno := tr.resolve(c, dir, pathmap.Request{Path: p, Follow: a.follows(c), Parent: a.follow == followParent})
	if errno == 0 && res.Mount && a.busy {
		errno = unix.EBUSY
	}
	if errno != 0 {
		c.Fail(errno)
		return false
	}
	if a.busy {
		c.T.invalidate = append(c.T.invalidate, res.Host)
	}
	if a.follow == followOpen || c.Nr == unix.SYS_CREAT {
		if openInRoot(c, res) {
			// The kernel resolves the guest path itself, inside
			// the guest root whatever another thread swaps
			// (rootfd.go).
			return true
		}
		if handled, errno := tr.openPinned(c, int(a.path), res); handled {
			if errno != 0 {
				c.Fail(errno)
				return false
			}
			return true
		}
	} else if c.Nr != unix.SYS_OPENAT2 {
		if pinned, errno, ok := tr.pin(c, a, res); ok {
			if errno != 0 {
				c.Fail(errno)
				return false
			}
			c.SetArg(int(a.path), c.PushString(pinned))
			return true
		}
	}
	if tr.base != "" && len(res.Host) == len(tr.base)+1+len(p) &&
		strings.HasPrefix(res.Host, tr.base) && res.Host[len(tr.base)] == '/' && strings.HasSuffix(res.Host, p) {
		// The kernel, walking p from the same directory, reaches the
		// same host path (no symlink, "..", bind or magic link on
		// the way): leave the call as it is, which saves writing the
		// tracee's memory and registers.
		return true
	}
	c.SetArg(int(a.path), c.PushString(res.Host))
	return true
}

// invalidateExit tells pathmap's cache which names a successful unlink,
// rmdir or rename removed or replaced: the only calls that can make a
// cached entry wrong (see pathmap.Config.Cache).
func invalidateExit(c *Call) {
	if c.Result() == 0 {
		for _, h := range c.T.invalidate {
			c.tr.m.Invalidate(h)
		}
		// A cached working directory may be the one removed.
		c.tr.gen++
	}
	c.T.invalidate = c.T.invalidate[:0]
}

// resolve translates guest path p of the calling thread, relative to the
// dirfd in argument dirArg (noArg: the working directory).
//
// For a relative path it sets tr.base to the host path of the directory the
// kernel would start from (the dirfd's or the working directory's; "" when
// unknown).
func (tr *tracer) resolve(c *Call, dirArg int, req pathmap.Request) (pathmap.Result, unix.Errno) {
	req.Cwd, req.Proc = "/", &tr.proc
	tr.base = ""
	p := req.Path
	if p == "" {
		return pathmap.Result{}, unix.ENOENT
	}
	if p[0] != '/' {
		fd := int32(unix.AT_FDCWD)
		if dirArg != noArg {
			fd = int32(c.Arg(dirArg))
		}
		if fd == unix.AT_FDCWD {
			cwd, err := tr.cwdOf(c.T)
			if err == errCwdRemoved {
				if !hasDotDot(p) {
					// The kernel still resolves below a removed
					// working directory (it is empty: "." is all
					// there is), through the thread's own cwd
					// link. Without "..", nothing leads out.
					return pathmap.Result{Host: "/proc/" + strconv.Itoa(c.T.Tid) + "/cwd/" + p}, 0
				}
				// ".." leads to where the directory was: resolve
				// from its former guest path.
				if g, ok := tr.removedCwd(c.T); ok {
					cwd, err = g, nil
				}
			}
			if err != nil {
				return pathmap.Result{}, errnoOf(err)
			}
			req.Cwd = cwd
			tr.base = c.T.P.cwdHost
			if cwd != c.T.P.cwd {
				tr.base = ""
			}
		} else {
			d, host, errno := tr.fdGuest(c.T.Tid, int(fd))
			if errno != 0 {
				return pathmap.Result{}, errno
			}
			req.Dir = d
			tr.base = host
		}
	}
	res, err := tr.m.Resolve(req)
	if err != nil {
		return pathmap.Result{}, errnoOf(err)
	}
	if tr.foreignMagic(res.Host) {
		return pathmap.Result{}, unix.EACCES
	}
	if errno := tr.confineProc(res.Host); errno != 0 {
		return pathmap.Result{}, errno
	}
	return res, 0
}

// foreignMagic reports whether host path h goes through a magic link of a
// process that is not a guest's (/proc/PID/{root,cwd,exe,fd/N,map_files/X}
// of nook itself or of another host process). pathmap leaves magic links
// it cannot map to the kernel, which would follow them to wherever that
// process's root, cwd or files are on the host: out of the guest. The
// kernel denies these links for processes one may not ptrace with EACCES;
// the guest gets the same for processes outside it.
func (tr *tracer) foreignMagic(h string) bool {
	rest, ok := strings.CutPrefix(h, "/proc/")
	if !ok {
		return false
	}
	pidStr, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return false
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil {
		return false
	}
	if t, ok := strings.CutPrefix(rest, "task/"); ok {
		tidStr, r, ok := strings.Cut(t, "/")
		if !ok {
			return false
		}
		if tid, err := strconv.Atoi(tidStr); err == nil {
			pid, rest = tid, r
		}
	}
	if _, guest := tr.threads[pid]; guest {
		return false
	}
	comp, sub, _ := strings.Cut(rest, "/")
	switch comp {
	case "root", "cwd", "exe":
		return true
	case "fd", "map_files":
		return sub != ""
	}
	return false
}

// follow is the request for path p, following a final symlink.
func follow(p string) pathmap.Request { return pathmap.Request{Path: p, Follow: true} }

type chdirScratch struct{ guest, host string }

func chdirEntry(c *Call) {
	p, err := c.ReadString(c.Arg(0))
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	res, errno := c.tr.resolve(c, noArg, follow(p))
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if !c.tr.setPathArg(c, p0(followAlways), res) {
		return
	}
	c.T.mine = chdirScratch{res.Guest, res.Host}
}

// chdirExit updates the cached working directory once the change is done
// (at entry another thread could still refill the cache with the old one).
func chdirExit(c *Call) {
	if c.Result() != 0 {
		return
	}
	p := c.T.P
	if s, ok := c.T.mine.(chdirScratch); ok && s.guest != "" {
		// The host path chdir was given names the new working
		// directory, so a path relative to it that pathmap translates
		// to the same string prefixed with it needs no rewriting.
		p.cwd, p.cwdHost, p.cwdGen = s.guest, s.host, c.tr.gen
		return
	}
	p.cwd = ""
}
