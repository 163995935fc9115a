package tracer

import (
	"os"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// The guest paths of directory descriptors, cached.
//
// A call relative to a directory descriptor (find's newfstatat(dirfd,
// "name"), openat(dirfd, ...)) needs the directory's path, and reading the
// magic link /proc/TID/fd/N costs 2.9 µs here (tests/bench/micro/
// kcmp-vs-readlink.c). A descriptor can be closed, replaced (dup2) or passed
// on without any stop, so a cached path must be checked at every use: the
// tracer holds a duplicate of the open file description (pidfd_getfd), and
// kcmp(KCMP_FILE) of the guest's descriptor against it (1.1 µs) says whether
// the descriptor still names the same open directory. The path of that
// directory is re-read after any rename or removal in the guest (tr.gen),
// as for the cached working directory.
//
// Holding a reference to a guest's open file description is not invisible:
// a flock or OFD lock lives until the last reference is closed, so a lock
// the guest released by closing its descriptor would stay held by the
// tracer's duplicate. The first flock or F_OFD_SETLK(W) of a run empties
// the cache and turns it off. Only directories are held (a held regular
// file would keep a lease or make an execve of it fail with ETXTBSY; a
// held pipe would keep its reader from seeing end of file).

// dirCacheSize bounds the descriptors the tracer holds: a directory walk
// keeps a few open at a time (one per level).
const dirCacheSize = 32

// kcmpFile is KCMP_FILE of <linux/kcmp.h>.
const kcmpFile = 0

type dirEntry struct {
	p           *Process // the process whose descriptor was duplicated
	fd          int
	dup         int // the tracer's descriptor for the same open file
	guest, host string
	gen         uint64 // tr.gen when guest and host were read
	used        uint64
}

type dirCache struct {
	e    []dirEntry
	tick uint64
	off  bool
	self int
	last lastChecked
}

func init() {
	// Locks tied to an open file description: see above.
	Register(unix.SYS_FLOCK, Hook{Entry: dirCacheOff})
	for _, cmd := range []uint64{unix.F_OFD_SETLK, unix.F_OFD_SETLKW} {
		Register(unix.SYS_FCNTL, Hook{Entry: dirCacheOff, When: []seccomp.ScmpCondition{
			{Argument: 1, Op: seccomp.CompareMaskedEqual, Operand1: 0xffffffff, Operand2: cmd},
		}})
	}
}

// dirCacheOff runs at the stops of flock and of fcntl with the commands
// above; other fcntl commands stop for other files' hooks (every hook of a
// syscall runs at each of its stops).
func dirCacheOff(c *Call) {
	if c.Nr == unix.SYS_FCNTL {
		if cmd := uint32(c.Arg(1)); cmd != unix.F_OFD_SETLK && cmd != unix.F_OFD_SETLKW {
			return
		}
	}
	d := &c.tr.dirs
	d.closeAll()
	d.off = true
}

// lookup returns the cached paths of the directory open on fd in thread t.
func (d *dirCache) lookup(tr *tracer, t *Thread, fd int) (guest, host string, ok bool) {
	if d.off {
		return "", "", false
	}
	for i := range d.e {
		e := &d.e[i]
		if e.p != t.P || e.fd != fd {
			continue
		}
		r, err := kcmp(d.self, t.Tid, kcmpFile, e.dup, fd)
		if err != nil && err != unix.EBADF && err != unix.ESRCH {
			// ENOSYS (a kernel without CONFIG_KCMP), EPERM: no
			// way to check a cached descriptor.
			d.closeAll()
			d.off = true
			return "", "", false
		}
		if err != nil || r != 0 {
			// Another file on fd now, or none: fill again.
			d.drop(i)
			return "", "", false
		}
		if e.gen != tr.gen {
			g, h, errno := tr.dupPaths(e.dup)
			if errno != 0 {
				d.drop(i)
				return "", "", false
			}
			e.guest, e.host, e.gen = g, h, tr.gen
		}
		d.tick++
		e.used = d.tick
		d.last = lastChecked{t: t, fd: fd, dup: e.dup}
		return e.guest, e.host, true
	}
	return "", "", false
}

// lastChecked is the entry lookup or fill found valid last, in this stop
// or an earlier one.
type lastChecked struct {
	t   *Thread
	fd  int
	dup int
}

// checked returns the tracer's duplicate of the directory open on fd in
// thread t, if lookup or fill just checked it (fdGuest, earlier in the same
// stop: the caller must have resolved a path relative to fd in this stop).
func (d *dirCache) checked(t *Thread, fd int) (int, bool) {
	if d.off || d.last.t != t || d.last.fd != fd || d.last.dup <= 0 {
		return 0, false
	}
	return d.last.dup, true
}

// fill duplicates the directory open on fd in thread t and caches its
// paths. It reports false when the descriptor is not a directory of the
// guest (or cannot be duplicated): the caller falls back to /proc.
func (d *dirCache) fill(tr *tracer, t *Thread, fd int) (guest, host string, ok bool) {
	if d.off {
		return "", "", false
	}
	if d.self == 0 {
		d.self = os.Getpid()
	}
	dup, err := getfd(t.P.Tgid, fd)
	if err != nil {
		if err == unix.ENOSYS {
			d.off = true // no pidfd_getfd (before 5.6)
		}
		return "", "", false
	}
	keep := false
	defer func() {
		if !keep {
			closeFd(dup)
		}
	}()
	var st unix.Stat_t
	if fstatRetry(dup, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return "", "", false
	}
	if t.Tid != t.P.Tgid {
		// The duplicate came from the process's table; a thread may
		// have a table of its own (unshare(CLONE_FILES)).
		if r, err := kcmp(d.self, t.Tid, kcmpFile, dup, fd); err != nil || r != 0 {
			return "", "", false
		}
	}
	g, h, errno := tr.dupPaths(dup)
	if errno != 0 {
		return "", "", false
	}
	if len(d.e) == cap(d.e) && len(d.e) > 0 {
		lru := 0
		for i := range d.e {
			if d.e[i].used < d.e[lru].used {
				lru = i
			}
		}
		d.drop(lru)
	}
	if d.e == nil {
		d.e = make([]dirEntry, 0, dirCacheSize)
	}
	d.tick++
	d.e = append(d.e, dirEntry{p: t.P, fd: fd, dup: dup, guest: g, host: h, gen: tr.gen, used: d.tick})
	d.last = lastChecked{t: t, fd: fd, dup: dup}
	keep = true
	return g, h, true
}

// dupPaths returns the guest and host paths of the tracer's descriptor dup.
func (tr *tracer) dupPaths(dup int) (guest, host string, errno unix.Errno) {
	return tr.fdPaths(tr.dirs.self, dup, unix.EBADF)
}

// dropProcess forgets the descriptors of p (its last thread is gone, or it
// executed a program: its close-on-exec descriptors are closed).
func (d *dirCache) dropProcess(p *Process) {
	for i := 0; i < len(d.e); {
		if d.e[i].p == p {
			d.drop(i)
			continue
		}
		i++
	}
}

func (d *dirCache) drop(i int) {
	if d.last.dup == d.e[i].dup {
		d.last = lastChecked{}
	}
	closeFd(d.e[i].dup)
	last := len(d.e) - 1
	d.e[i] = d.e[last]
	d.e[last] = dirEntry{}
	d.e = d.e[:last]
}

func (d *dirCache) closeAll() {
	for len(d.e) > 0 {
		d.drop(len(d.e) - 1)
	}
}

// getfd duplicates descriptor fd of process pid into the tracer
// (close-on-exec, as pidfd_getfd always makes it).
func getfd(pid, fd int) (int, error) {
	pidfd, err := unix.PidfdOpen(pid, 0)
	for err == unix.EINTR {
		pidfd, err = unix.PidfdOpen(pid, 0)
	}
	if err != nil {
		return -1, err
	}
	defer closeFd(pidfd)
	for {
		dup, err := unix.PidfdGetfd(pidfd, fd, 0)
		if err != unix.EINTR {
			return dup, err
		}
	}
}

// kcmp compares resources of two processes: for KCMP_FILE, 0 when
// descriptor idx1 of pid1 and idx2 of pid2 are the same open file.
func kcmp(pid1, pid2, typ, idx1, idx2 int) (int, error) {
	for {
		r, _, e := unix.RawSyscall6(unix.SYS_KCMP, uintptr(pid1), uintptr(pid2), uintptr(typ), uintptr(idx1), uintptr(idx2), 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return -1, e
	}
}

func fstatRetry(fd int, st *unix.Stat_t) error {
	for {
		err := unix.Fstat(fd, st)
		if err != unix.EINTR {
			return err
		}
	}
}

// closeFd closes fd. Not retried on EINTR: on Linux the descriptor is
// released whatever close returns.
func closeFd(fd int) { unix.Close(fd) }
