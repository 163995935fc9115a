package tracer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"nook/ownership"
	"nook/pathmap"
	"nook/rootfs"
)

// Fake ownership: the state shared by the own_*.go files.
//
// Every guest process carries kernel-accurate fake credentials
// (ownership.Creds, in Process.Own); the run's ownership store records
// what chown, chmod, mknod and setxattr(security.capability) did, and the
// stat family's results are rewritten from it at their exit stops.

// ownRun is the store of the run in progress (one tracer per nook process).
var ownRun struct {
	store *ownership.Store
	host  ownership.Host // how the real user's files appear in stat results
	root  string         // host path of the guest root
	// bounding is nook's own capability bounding set, the guest's.
	bounding uint64
	// pending are files a non-root guest may have created with open;
	// they are checked at the next stop (see ownDrain).
	pending []ownPending
}

// ownProc is a process's fake ownership state.
type ownProc struct {
	creds *ownership.Creds
	// execOld is the credentials before an execve in progress, restored
	// if it fails.
	execOld *ownership.Creds
}

// ownThread is what a hook carries from the entry of a call to its exit.
type ownThread struct {
	unlink  ownFile // file an unlink/rmdir/rename removes
	rename  ownFile // source of a rename
	created string  // host path a mkdir/mknod/symlink creates
	parent  ownership.Stat
}

// ownFile is a file as seen at a call's entry.
type ownFile struct {
	ok  bool
	st  ownership.Stat
	rel string
}

func init() {
	OnStart(ownStart)
	OnProcess(func(parent, child *Process, thread bool) {
		if thread {
			return
		}
		if parent == nil {
			cr := child.Creds
			groups := make([]uint32, len(cr.Groups))
			for i, g := range cr.Groups {
				groups[i] = uint32(g)
			}
			creds := ownership.NewCreds(uint32(cr.Ruid), uint32(cr.Rgid), groups)
			// Real root here would be held to nook's own bounding set
			// (containers and some sites drop capabilities from it).
			creds.Caps.Bounding = ownRun.bounding
			creds.Caps.Permitted &= ownRun.bounding
			creds.Caps.Effective &= ownRun.bounding
			child.Own = &ownProc{creds: creds}
			return
		}
		child.Own = &ownProc{creds: ownCreds(parent).Clone()}
	})
}

// ownStart opens the run's ownership store: the rootfs's own, or a
// temporary one for a run without (directories, ephemeral copies), so
// that chown and friends still hold for the run's duration.
func ownStart(spec *rootfs.RunSpec, opts Options) (func() error, error) {
	root, err := filepath.EvalSymlinks(spec.Root)
	if err != nil {
		return nil, fmt.Errorf("rootless: guest root: %w", err)
	}
	db := opts.OwnershipDB
	var tmp string
	if db == "" {
		tmp, err = os.MkdirTemp("", "nook-own-")
		if err != nil {
			return nil, fmt.Errorf("rootless: ownership store: %w", err)
		}
		db = filepath.Join(tmp, "ownership.db")
	}
	s, err := ownership.Open(db, root, ownership.Options{})
	if err != nil {
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("rootless: %w", err)
	}
	ownRun.store = s
	ownRun.root = root
	ownRun.host = ownership.Host{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}
	if err := s.ApplyFloor(ownRun.host); err != nil {
		s.Close()
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return nil, fmt.Errorf("rootless: %w", err)
	}
	ownRun.pending = nil
	ownRun.bounding = ownBounding()
	return func() error {
		ownDrain()
		err := s.Close()
		ownRun.store = nil
		if tmp != "" {
			os.RemoveAll(tmp)
		}
		return err
	}, nil
}

// ownProcOf returns the fake ownership state of p.
func ownProcOf(p *Process) *ownProc {
	if o, ok := p.Own.(*ownProc); ok {
		return o
	}
	// A process the hooks have not seen (cannot happen: OnProcess runs
	// for every one); give it the ids the tracer knows.
	cr := p.Creds
	o := &ownProc{creds: ownership.NewCreds(uint32(cr.Ruid), uint32(cr.Rgid), nil)}
	p.Own = o
	return o
}

// ownCreds returns the fake credentials of p.
func ownCreds(p *Process) *ownership.Creds { return ownProcOf(p).creds }

// ownSync copies the fake credentials into Process.Creds, which the rest
// of the tracer reads.
func ownSync(p *Process) {
	c := ownCreds(p)
	p.Creds.Ruid, p.Creds.Euid, p.Creds.Suid, p.Creds.Fsuid = int(c.UID), int(c.EUID), int(c.SUID), int(c.FSUID)
	p.Creds.Rgid, p.Creds.Egid, p.Creds.Sgid, p.Creds.Fsgid = int(c.GID), int(c.EGID), int(c.SGID), int(c.FSGID)
	p.Creds.Groups = p.Creds.Groups[:0]
	for _, g := range c.Groups {
		p.Creds.Groups = append(p.Creds.Groups, int(g))
	}
}

func ownThreadOf(t *Thread) *ownThread {
	if o, ok := t.Own.(*ownThread); ok {
		return o
	}
	o := &ownThread{}
	t.Own = o
	return o
}

// ownRel is the store's path hint for a host path: relative to the guest
// root, or the host path itself for a file outside it (a bind mount).
func ownRel(host string) string {
	if host == ownRun.root {
		return "."
	}
	if strings.HasPrefix(host, ownRun.root+"/") {
		return host[len(ownRun.root)+1:]
	}
	return host
}

// ownStat stats host path p, following a final symlink if follow.
func ownStat(p string, follow bool) (ownership.Stat, unix.Errno) {
	var st unix.Stat_t
	var err error
	for {
		if follow {
			err = unix.Stat(p, &st)
		} else {
			err = unix.Lstat(p, &st)
		}
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return ownership.Stat{}, errnoOf(err)
	}
	return ownership.StatFrom(&st), 0
}

// ownTarget finds the file a metadata call operates on: a path argument
// (with the dirfd in dirArg, noArg for none), or with pathArg noArg the
// file open on the descriptor in dirArg. An empty path with AT_EMPTY_PATH
// (emptyOK) names the dirfd's file. It returns the host path to operate
// on and the file's real stat.
func ownTarget(c *Call, dirArg, pathArg int, follow, emptyOK bool) (string, ownership.Stat, unix.Errno) {
	var host string
	p := ""
	if pathArg != noArg {
		s, err := c.ReadString(c.Arg(pathArg))
		if err != nil {
			return "", ownership.Stat{}, errnoOf(err)
		}
		p = s
	}
	if pathArg == noArg || (p == "" && emptyOK) {
		fd := unix.AT_FDCWD
		if dirArg != noArg {
			fd = int(int32(c.Arg(dirArg)))
		}
		if fd == unix.AT_FDCWD {
			cwd, err := c.tr.cwdOf(c.T)
			if err != nil {
				return "", ownership.Stat{}, errnoOf(err)
			}
			res, errno := c.tr.resolve(c, noArg, pathmapRequest(cwd, true))
			if errno != 0 {
				return "", ownership.Stat{}, errno
			}
			host = res.Host
		} else {
			if fd < 0 {
				return "", ownership.Stat{}, unix.EBADF
			}
			// The magic link reaches the open file even when its
			// name is gone or outside the guest.
			host = fmt.Sprintf("/proc/%d/fd/%d", c.T.Tid, fd)
			if _, err := os.Readlink(host); err != nil {
				return "", ownership.Stat{}, unix.EBADF
			}
			follow = true
		}
	} else {
		res, errno := c.tr.resolve(c, dirArg, pathmapRequest(p, follow))
		if errno != 0 {
			return "", ownership.Stat{}, errno
		}
		host = res.Host
		// The file itself, held open, stands for the path: what the
		// caller does to it (chmod, access, xattrs) cannot be led out of
		// the guest by a racing symlink swap (rootfd.go). The magic link
		// leads to the file it holds, a symlink too when the call does
		// not follow one: callers use the following variants of the host
		// calls on it (ownFollows). Hints map it back (ownHint).
		fd, _, own, ok, errno := c.tr.safeOpen(res, false, follow)
		if ok {
			if errno != 0 {
				return "", ownership.Stat{}, errno
			}
			if own {
				c.tr.hold(c.T.Tid, fd)
			}
			host, follow = pinnedPath(fd), true
		}
	}
	st, errno := ownStat(host, follow)
	return host, st, errno
}

// ownFollows reports whether a host call on host, which ownTarget
// returned, must follow a final symlink: when the call does (follow), and
// always on a held descriptor's magic link, which names the file itself.
func ownFollows(host string, follow bool) bool {
	return follow || isPinned(host)
}

// ownHint is the path hint of the file at host path p, which may be a
// /proc/PID/fd/N link.
func ownHint(p string) string {
	if strings.HasPrefix(p, "/proc/") {
		if t, err := os.Readlink(p); err == nil && strings.HasPrefix(t, "/") {
			return ownRel(t)
		}
	}
	return ownRel(p)
}

func pathmapRequest(p string, follow bool) pathmap.Request {
	return pathmap.Request{Path: p, Follow: follow}
}

// ownBounding reads this process's capability bounding set.
func ownBounding() uint64 {
	var b uint64
	for cap := 0; cap <= unix.CAP_LAST_CAP; cap++ {
		r, err := unix.PrctlRetInt(unix.PR_CAPBSET_READ, uintptr(cap), 0, 0, 0)
		if err == nil && r == 1 {
			b |= 1 << cap
		}
	}
	if b == 0 {
		// prctl refused (a seccomp profile): assume the full set.
		b = ownership.AllCaps
	}
	return b
}
