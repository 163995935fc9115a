package tracer

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// The symlink-swap race. The tracer resolves a guest path at the seccomp
// stop and hands the kernel a host path; the kernel walks that path again
// afterwards. Another guest thread (or process) that replaces a component
// of it with a symlink in between — renameat2(RENAME_EXCHANGE) of a
// directory and a symlink to "/" does it in one step — makes the kernel
// follow the symlink on the host: out of the guest. No check in the tracer
// can close that window, because the kernel's walk comes after every
// check.
//
// What closes it is a walk the kernel itself keeps inside the guest root:
// openat2(2) with RESOLVE_IN_ROOT treats its dirfd as the root for
// everything the walk meets (absolute symlinks, ".."), atomically. So every
// guest process holds an O_PATH descriptor of the guest root at fd
// guestRootFd (the first process gets it from the tracer before its
// execve; fork, clone and execve keep it), and:
//
//   - open, openat and creat become openat2(guestRootFd, canonical guest
//     path, RESOLVE_IN_ROOT) with the same flags and mode;
//   - the stat family, which the tracer emulates, opens the file with
//     openat2(RESOLVE_IN_ROOT) from the tracer's own descriptor of the root
//     and stats that descriptor.
//
// Whatever a racing thread swaps, the kernel's walk stays below the root.
// The rewrite applies when pathmap's canonical result crosses no bind
// (RESOLVE_IN_ROOT does not know nook's binds, which are not mounts): paths
// into binds (/dev, /proc, /sys, --bind) still take the translated host
// path, and so does every other path syscall (docs/security.md lists what
// the race still reaches).
//
// The descriptor must stay what it is for the guest's whole life: the
// filter fails close, dup2 and dup3 onto it and fcntl(F_SETFD) of it with
// EBADF without a stop (they are hot: only those exact arguments are
// refused), and close_range over it is split around it (closeRangeEntry).
// Nothing else can replace or remove an open descriptor: new descriptors
// (open, accept, recvmsg's SCM_RIGHTS, pidfd_getfd, F_DUPFD) take free
// numbers only, and io_uring and seccomp listeners are refused.

// guestRootFd is where every guest process holds the guest root. High, to
// stay out of the way of programs that count on the lowest free numbers,
// and below 1024, the soft RLIMIT_NOFILE most systems start with (a
// descriptor at or above the limit cannot be created with dup2, though it
// may be kept).
const guestRootFd = 1023

// rootRun is the state of the in-root resolution for this process's one
// rootless run (like ownRun, set once before the loop starts).
var rootRun struct {
	// fd is the tracer's own O_PATH descriptor of the guest root (-1:
	// none).
	fd int
	// host is the host path of the guest root.
	host string
	// guest is set when guest processes hold guestRootFd.
	guest bool
}

func init() {
	rootRun.fd = -1
	// The arguments are 32-bit: the kernel ignores the upper half of the
	// register, so must the filter.
	fdIs := func(arg uint) seccomp.ScmpCondition {
		c, err := seccomp.MakeCondition(arg, seccomp.CompareMaskedEqual, 0xffffffff, guestRootFd)
		if err != nil {
			panic(err)
		}
		return c
	}
	setfd, err := seccomp.MakeCondition(1, seccomp.CompareMaskedEqual, 0xffffffff, unix.F_SETFD)
	if err != nil {
		panic(err)
	}
	DenyWhen(unix.SYS_CLOSE, unix.EBADF, fdIs(0))
	DenyWhen(unix.SYS_DUP2, unix.EBADF, fdIs(1))
	DenyWhen(unix.SYS_DUP3, unix.EBADF, fdIs(1))
	DenyWhen(unix.SYS_FCNTL, unix.EBADF, fdIs(0), setfd)
	// close_range(first, last) covers guestRootFd when first <= fd <=
	// last, a comparison the filter cannot make on the 32-bit halves:
	// every close_range stops (it is rare: once before an execve, in
	// programs that close what they inherited).
	Register(unix.SYS_CLOSE_RANGE, Hook{Entry: closeRangeEntry, Exit: closeRangeExit})
}

// openRoot opens the tracer's descriptor of the guest root at host path
// root, for guests to inherit at guestRootFd when that is possible.
//
// Without openat2 and RESOLVE_IN_ROOT (kernels before 5.6, or a container
// whose seccomp profile refuses openat2) nothing of this file applies: the
// kernel gets translated host paths, as every ptrace translator does, and
// the race stays open (docs/security.md). NOOK_OPENAT2=off makes a newer
// kernel behave so, for the tests of that fallback.
func openRoot(root string) error {
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	if !openat2Works(fd) {
		unix.Close(fd)
		rootRun.fd, rootRun.guest = -1, false
		return nil
	}
	rootRun.fd, rootRun.host = fd, strings.TrimSuffix(root, "/")
	var lim unix.Rlimit
	// dup2 refuses a target at or above the soft limit; the tracee
	// starts with the raised one (the Go runtime's: the hard limit) and
	// lowers it after the dup2.
	rootRun.guest = unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && lim.Max > guestRootFd
	return nil
}

// openat2Works probes openat2 with RESOLVE_IN_ROOT from root (an O_PATH
// descriptor), the way the tracer and the guest will use it.
func openat2Works(root int) bool {
	if os.Getenv("NOOK_OPENAT2") == "off" {
		return false
	}
	how := unix.OpenHow{Flags: unix.O_PATH | unix.O_CLOEXEC, Resolve: unix.RESOLVE_IN_ROOT}
	for {
		fd, err := unix.Openat2(root, "/", &how)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false
		}
		unix.Close(fd)
		return true
	}
}

// closeRoot closes the tracer's descriptor of the guest root.
func closeRoot() {
	closePins()
	for id, fd := range bindRoots {
		if fd >= 0 {
			unix.Close(fd)
		}
		delete(bindRoots, id)
	}
	if rootRun.fd >= 0 {
		unix.Close(rootRun.fd)
	}
	rootRun.fd, rootRun.guest = -1, false
}

// inRootPath returns the path to give openat2(RESOLVE_IN_ROOT) from the
// guest root for pathmap's result res, and whether the kernel's walk of it
// reaches what res names: the canonical guest path crosses no bind (mount
// 0 is the guest root's own tree, and a position's mount is the deepest
// bind on its path), and Host is the root's host path followed by it (not
// a magic link left to the kernel). A trailing slash of Host (the kernel
// must check for a directory) is kept.
func inRootPath(res pathmap.Result) (string, bool) {
	if res.MountID != 0 || rootRun.fd < 0 {
		return "", false
	}
	g := res.Guest
	if g == "/proc" || strings.HasPrefix(g, "/proc/") {
		// Left to procfs.go's synthesized files even when /proc is
		// not bound.
		return "", false
	}
	rest, ok := strings.CutPrefix(res.Host, rootRun.host)
	if !ok {
		return "", false
	}
	switch {
	case g == "/" && (rest == "" || rest == "/"):
		return "/", true
	case rest == g, rest == g+"/":
		return rest, true
	}
	return "", false
}

// Open flags as the kernel's build_open_how (fs/open.c) derives them for
// open, openat and creat: openat2 refuses what those ignore.
const (
	validOpenFlags = 037777703 // VALID_OPEN_FLAGS on x86_64
	oPathFlags     = unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_PATH | unix.O_CLOEXEC
	sIALLUGO       = 07777
)

// openHow is build_open_how(flags, mode) with RESOLVE_IN_ROOT: the
// arguments are an int and a umode_t, so only their low 32 and 16 bits
// count.
func openHow(flags uint64, mode uint64) [openHowSize]byte {
	fl := uint64(uint32(flags) & validOpenFlags)
	if fl&unix.O_PATH != 0 {
		fl &= oPathFlags
	}
	m := uint64(uint16(mode) & sIALLUGO)
	if fl&(unix.O_CREAT|unix.O_TMPFILE) == 0 {
		m = 0
	}
	var how [openHowSize]byte
	binary.LittleEndian.PutUint64(how[0:], fl)
	binary.LittleEndian.PutUint64(how[8:], m)
	binary.LittleEndian.PutUint64(how[16:], unix.RESOLVE_IN_ROOT)
	return how
}

// openInRoot rewrites the open, openat or creat c, whose path pathmap
// resolved to res, into openat2(guestRootFd, guest path, RESOLVE_IN_ROOT).
// It reports false when the call must keep the translated host path.
func openInRoot(c *Call, res pathmap.Result) bool {
	if !rootRun.guest {
		return false
	}
	rel, ok := inRootPath(res)
	if !ok {
		return false
	}
	var flags, mode uint64
	switch c.Nr {
	case unix.SYS_OPEN:
		flags, mode = c.Arg(1), c.Arg(2)
	case unix.SYS_OPENAT:
		flags, mode = c.Arg(2), c.Arg(3)
	case unix.SYS_CREAT:
		flags, mode = unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC, c.Arg(1)
	default:
		return false
	}
	how := openHow(flags, mode)
	path := c.PushString(rel)
	howAddr := c.Push(how[:])
	// A changed syscall number at a seccomp stop is checked by the filter
	// again (without stopping for SECCOMP_RET_TRACE a second time).
	c.Regs.Orig_rax = unix.SYS_OPENAT2
	c.SetArg(0, guestRootFd)
	c.SetArg(1, path)
	c.SetArg(2, howAddr)
	c.SetArg(3, openHowSize)
	return true
}

// statInRoot opens, from the tracer, the file a stat-like call's path
// argument names (res, nil for no path argument; following a final
// symlink or not): an O_PATH descriptor to stat, so that the stat cannot
// be led out of the guest by a racing symlink swap (safeOpen). ok is false
// when res does not allow it: the caller stats the host path.
func (tr *tracer) statInRoot(res *pathmap.Result, follow bool) (fd int, ok bool, err error) {
	if res == nil {
		return -1, false, nil
	}
	fd, _, own, ok, errno := tr.safeOpen(*res, false, follow)
	if !ok {
		return -1, false, nil
	}
	if errno != 0 {
		return -1, true, errno
	}
	if !own {
		// A bind's own root descriptor: the caller closes what it
		// gets.
		if fd, err = unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0); err != nil {
			return -1, true, err
		}
	}
	return fd, true, nil
}

// closeRangeScratch is the part of a close_range split around
// guestRootFd that is still to do.
type closeRangeScratch struct{ first, last, flags uint32 }

// closeRangeEntry keeps guestRootFd out of close_range(first, last,
// flags): it narrows the range, or runs the call for the part below the
// descriptor and, at the exit stop, once more for the part above
// (closeRangeExit).
func closeRangeEntry(c *Call) {
	c.T.mine = nil
	if !rootRun.guest {
		return
	}
	first, last, flags := uint32(c.Arg(0)), uint32(c.Arg(1)), uint32(c.Arg(2))
	if first > last || first > guestRootFd || last < guestRootFd {
		return // the kernel's EINVAL, or a range without it
	}
	switch {
	case first == guestRootFd && last == guestRootFd:
		c.Return(0)
	case first == guestRootFd:
		c.SetArg(0, guestRootFd+1)
	case last == guestRootFd:
		c.SetArg(1, guestRootFd-1)
	default:
		c.SetArg(1, guestRootFd-1)
		c.T.mine = closeRangeScratch{guestRootFd + 1, last, flags}
	}
}

// closeRangeExit runs the second half of a split close_range: it rewinds
// the thread to its syscall instruction with the upper range in the
// argument registers, so the guest enters close_range again (the filter
// and closeRangeEntry see it like any other call).
func closeRangeExit(c *Call) {
	s, ok := c.T.mine.(closeRangeScratch)
	c.T.mine = nil
	if !ok || c.Result() != 0 {
		return
	}
	c.Regs.Rax = unix.SYS_CLOSE_RANGE
	c.Regs.Orig_rax = unix.SYS_CLOSE_RANGE
	c.Regs.Rip -= 2 // the syscall instruction: 0f 05
	c.Regs.Rdi = uint64(s.first)
	c.Regs.Rsi = uint64(s.last)
	c.Regs.Rdx = uint64(s.flags)
	c.dirty = true
}

// Every other path syscall of a path inside the guest root's own tree is
// pinned: the tracer opens, with RESOLVE_IN_ROOT, an O_PATH descriptor of
// the file (when the call follows a final symlink) or of its parent
// directory (when it acts on the last component itself: mkdir, unlink,
// rename, lchown, ...), and gives the kernel "/proc/NOOK/fd/N" or
// "/proc/NOOK/fd/N/name". The kernel's walk jumps through the magic link
// to exactly the file or directory the tracer holds, and then at most looks
// up one name it does not follow: nothing a racing thread swaps is ever
// followed. (The guest itself cannot reach /proc/NOOK/fd: foreignMagic.)
//
// A descriptor must stay open until the kernel has finished the call: each
// thread's last pinRing descriptors are kept, and the oldest closed when it
// pins a new one. A call has at most two paths, so that covers the calls
// the restart records cover (Thread.last): a call restarted after a signal
// finds its descriptors open.

// pinRing holds a thread's most recent pinned descriptors (-1: none).
type pinRing struct {
	fds  [8]int
	next int
}

// pinState is the pinned descriptors of every thread, by tid.
var pinState struct {
	rings  map[int]*pinRing
	prefix string // "/proc/NOOKPID/fd/"
}

// bindRoots holds the tracer's O_PATH descriptors of the binds' host
// trees, by pathmap mount id, opened when first needed.
var bindRoots map[int]int

// safeOpen opens, without following anything a racing guest thread could
// swap in, an O_PATH descriptor of what res names (parent false) or of the
// directory holding it (parent true: name is then the last component,
// which the caller hands to the kernel unfollowed):
//
//   - in the guest root's own tree, with RESOLVE_IN_ROOT from the root: the
//     canonical guest path, whatever a swap puts in it, stays below the
//     root (a chroot would follow the swapped link the same way);
//   - in a bind (/dev, --bind DIR, ...), with RESOLVE_BENEATH and
//     RESOLVE_NO_SYMLINKS from the bind's host tree: the path is canonical
//     there (pathmap followed every symlink), so any symlink met is a swap,
//     and the walk fails (ELOOP, EXDEV) instead of following it.
//
// Paths in /proc (magic links, per-process entries) and the last
// components "." and ".." are left alone (ok false), as are binds of
// files for a parent. own is false when fd is a bind's root descriptor
// itself, which the caller must not close. A non-zero errno is the walk's
// failure, which the call would have met too.
func (tr *tracer) safeOpen(res pathmap.Result, parent, follow bool) (fd int, name string, own, ok bool, errno unix.Errno) {
	if rootRun.fd < 0 || (parent && res.Mount) {
		return -1, "", false, false, 0
	}
	g := res.Guest
	if g == "/proc" || strings.HasPrefix(g, "/proc/") {
		return -1, "", false, false, 0
	}
	var dirFd int
	var rel string
	var resolve uint64
	if res.MountID == 0 {
		r, ok := inRootPath(res)
		if !ok {
			return -1, "", false, false, 0
		}
		dirFd, rel, resolve = rootRun.fd, strings.TrimSuffix(r, "/"), unix.RESOLVE_IN_ROOT
		if rel == "" {
			rel = "/"
		}
	} else {
		host, volatile, ok := tr.m.MountHost(res.MountID)
		if !ok || volatile {
			return -1, "", false, false, 0
		}
		rest := res.Host
		if host != "/" {
			if rest, ok = strings.CutPrefix(res.Host, host); !ok || (rest != "" && rest[0] != '/') {
				return -1, "", false, false, 0
			}
		}
		if dirFd, ok = bindRoot(res.MountID, host); !ok {
			return -1, "", false, false, 0
		}
		rel = strings.Trim(rest, "/")
		resolve = unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS
	}
	if parent {
		i := strings.LastIndexByte(rel, '/')
		if res.MountID == 0 {
			if i < 0 || rel == "/" {
				return -1, "", false, false, 0
			}
			rel, name = rel[:i], rel[i+1:]
			if rel == "" {
				rel = "/"
			}
		} else {
			if rel == "" {
				return -1, "", false, false, 0 // the bind itself
			}
			if i < 0 {
				rel, name = "", rel
			} else {
				rel, name = rel[:i], rel[i+1:]
			}
		}
		if name == "" || name == "." || name == ".." {
			return -1, "", false, false, 0
		}
	}
	if rel == "" {
		// The bind's root itself, already held.
		return dirFd, name, false, true, 0
	}
	fl := uint64(unix.O_PATH | unix.O_CLOEXEC)
	if parent {
		fl |= unix.O_DIRECTORY
	} else if !follow {
		fl |= unix.O_NOFOLLOW
	}
	how := unix.OpenHow{Flags: fl, Resolve: resolve}
	for tries := 0; ; tries++ {
		fd, err := unix.Openat2(dirFd, rel, &how)
		// EAGAIN: a rename somewhere on the system while the walk went
		// through "..", which only a swapped-in symlink can contain
		// (the path is canonical). Bounded: a guest renaming in a loop
		// gets EAGAIN rather than a tracer spinning.
		if err == unix.EINTR || (err == unix.EAGAIN && tries < 8) {
			continue
		}
		if err != nil {
			return -1, "", false, true, errnoOf(err)
		}
		return fd, name, true, true, 0
	}
}

// bindRoot returns the tracer's descriptor of the bind id's host tree.
func bindRoot(id int, host string) (int, bool) {
	if fd, ok := bindRoots[id]; ok {
		return fd, fd >= 0
	}
	if bindRoots == nil {
		bindRoots = map[int]int{}
	}
	fd, err := unix.Open(host, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		fd = -1
	}
	bindRoots[id] = fd
	return fd, fd >= 0
}

// pin returns the path to give the kernel for the argument a of c that
// pathmap resolved to res (see above), or ok false when the call keeps
// the translated host path. A non-zero errno fails the call: the walk found
// nothing there, as the kernel's would have.
func (tr *tracer) pin(c *Call, a pathArg, res pathmap.Result) (p string, errno unix.Errno, ok bool) {
	// A trailing slash makes the kernel follow a final symlink even for
	// a call that does not (pathmap did): pin the file then. For calls
	// that act on the name itself (rmdir "d/") it only asks for a
	// directory.
	slash := len(res.Host) > 1 && res.Host[len(res.Host)-1] == '/'
	parent := a.follow == followParent || (!a.follows(c) && !slash)
	fd, name, own, ok, errno := tr.safeOpen(res, parent, true)
	if !ok || errno != 0 {
		return "", errno, ok
	}
	if own {
		tr.hold(c.T.Tid, fd)
	}
	p = pinnedPath(fd)
	if parent {
		p += "/" + name
	}
	if slash {
		p += "/"
	}
	return p, 0, true
}

// setPathArg sets the path argument a of c to what the kernel should walk
// for res: the pinned path where pin allows it, else the host path. It
// reports false when it failed the call.
func (tr *tracer) setPathArg(c *Call, a pathArg, res pathmap.Result) bool {
	arg := res.Host
	if pinned, errno, ok := tr.pin(c, a, res); ok {
		if errno != 0 {
			c.Fail(errno)
			return false
		}
		arg = pinned
	}
	c.SetArg(int(a.path), c.PushString(arg))
	return true
}

// pinnedPath is the magic link of the tracer's descriptor fd, as the
// guest's kernel and the tracer itself can both walk it.
func pinnedPath(fd int) string {
	if pinState.prefix == "" {
		pinState.prefix = "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/"
	}
	return pinState.prefix + strconv.Itoa(fd)
}

// isPinned reports whether p is a path pinnedPath made.
func isPinned(p string) bool {
	return pinState.prefix != "" && strings.HasPrefix(p, pinState.prefix)
}

// hold keeps fd open for thread tid's call (see pinRing).
func (tr *tracer) hold(tid, fd int) {
	r := pinState.rings[tid]
	if r == nil {
		if pinState.rings == nil {
			pinState.rings = map[int]*pinRing{}
		}
		if len(pinState.rings) >= 2*len(tr.threads)+64 {
			// Threads that are gone keep their rings until a sweep:
			// amortized, one pass per as many new rings as live threads.
			for t, old := range pinState.rings {
				if _, live := tr.threads[t]; !live {
					old.close()
					delete(pinState.rings, t)
				}
			}
		}
		r = &pinRing{}
		for i := range r.fds {
			r.fds[i] = -1
		}
		pinState.rings[tid] = r
	}
	if old := r.fds[r.next]; old >= 0 {
		unix.Close(old)
	}
	r.fds[r.next] = fd
	r.next = (r.next + 1) % len(r.fds)
}

func (r *pinRing) close() {
	for i, fd := range r.fds {
		if fd >= 0 {
			unix.Close(fd)
			r.fds[i] = -1
		}
	}
}

// closePins closes every pinned descriptor (the run is over).
func closePins() {
	for t, r := range pinState.rings {
		r.close()
		delete(pinState.rings, t)
	}
}

// unpinHost returns the host path a pinned path p names now (the held
// descriptor's path, then the rest of p), for exit hooks that read a call's
// path argument back; ok is false when p is not a pinned path.
func unpinHost(p string) (string, bool) {
	if pinState.prefix == "" {
		return "", false
	}
	rest, ok := strings.CutPrefix(p, pinState.prefix)
	if !ok {
		return "", false
	}
	num, tail, _ := strings.Cut(rest, "/")
	if _, err := strconv.Atoi(num); err != nil {
		return "", false
	}
	dir, err := os.Readlink("/proc/self/fd/" + num)
	if err != nil || !strings.HasPrefix(dir, "/") {
		return "", false
	}
	if tail == "" {
		return dir, true
	}
	return strings.TrimSuffix(dir, "/") + "/" + strings.TrimSuffix(tail, "/"), true
}

// openPinned rewrites an open, openat or creat that openInRoot cannot
// take (a path in a bind, or no root descriptor in the guest): the kernel
// gets the held parent directory and the last name, with O_NOFOLLOW added
// (pathmap followed a final symlink already: one there now is a swap), or,
// for a path with a trailing slash, the held directory itself. handled is
// false when the call keeps the translated host path; a non-zero errno
// fails it.
func (tr *tracer) openPinned(c *Call, pathIdx int, res pathmap.Result) (handled bool, errno unix.Errno) {
	p, errno, ok := tr.pin(c, openPinArg, res)
	if !ok || errno != 0 {
		return ok, errno
	}
	if !strings.HasSuffix(p, "/") {
		switch c.Nr {
		case unix.SYS_OPEN:
			c.SetArg(1, c.Arg(1)|unix.O_NOFOLLOW)
		case unix.SYS_OPENAT:
			c.SetArg(2, c.Arg(2)|unix.O_NOFOLLOW)
		case unix.SYS_CREAT:
			// creat has no flags to add O_NOFOLLOW to: make it the open
			// it is defined as.
			c.Regs.Orig_rax = unix.SYS_OPEN
			c.SetArg(2, c.Arg(1))
			c.SetArg(1, unix.O_CREAT|unix.O_WRONLY|unix.O_TRUNC|unix.O_NOFOLLOW)
		}
	}
	c.SetArg(pathIdx, c.PushString(p))
	return true, 0
}

// openPinArg pins an open as pin pins a call that acts on the name itself:
// the held parent and the name (the open then gets O_NOFOLLOW), or, after
// a trailing slash, which makes the kernel follow anyway, the held
// directory itself (the path pin returns ends with "/").
var openPinArg = pathArg{dir: noArg, path: noArg, flags: noArg, follow: followNever}
