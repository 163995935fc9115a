// Package pathmap translates guest paths to host paths and back, with exactly
// the result a real chroot(2) would give. It is pure: it reads the file
// system only through the FS interface and knows nothing of ptrace.
//
// The guest sees the tree below Config.Root, with each Bind's host tree
// mounted at its guest path (the deepest guest path wins, a later bind at
// the same guest path hides an earlier one). Resolve walks a guest path
// component by component the way the kernel's link_path_walk does and
// returns the host path to hand to the kernel; ToGuest maps a host path the
// kernel reported (getcwd, readlink of /proc magic links) back.
package pathmap

import (
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kernel limits the translation honours (include/uapi/linux/limits.h).
const (
	PathMax = 4096 // bytes of a path argument including its NUL
	NameMax = 255  // bytes of one component
	// MaxSymlinks is the kernel's MAXSYMLINKS: the 41st link followed in
	// one lookup fails with ELOOP.
	MaxSymlinks = 40
)

// FS is the narrow view of the host file system pathmap needs. The string
// passed to its methods may alias a buffer pathmap reuses: an
// implementation must not retain it after returning.
type FS interface {
	// Lstat returns the type of the file at host path p (the S_IFMT bits of
	// st_mode) without following a final symlink. Errors are unix.Errno.
	Lstat(p string) (mode uint32, err error)
	// Readlink returns the target of the symlink at host path p.
	Readlink(p string) (string, error)
}

// Bind makes host path Host appear at guest path Guest.
type Bind struct {
	Host  string
	Guest string
}

// ProcHook answers what only the tracer knows about the calling process.
// It is consulted only when a bind of the host's /proc exists.
type ProcHook interface {
	// Self returns the pids /proc/self and /proc/thread-self denote.
	Self() (tgid, tid int)
	// Link returns the guest path of the magic link /proc/PID/NAME for NAME
	// in exe, cwd, root; ok is false when PID is not a guest process. For
	// /proc/TGID/task/TID/NAME, pid is the TID.
	Link(pid int, name string) (guest string, ok bool)
}

// Config describes one guest.
type Config struct {
	// Root is the host path of the guest root. It must exist and be a
	// directory; symlinks in it are resolved once by New.
	Root string
	// Binds are mounted in the guest, shallowest guest path first, later
	// entries over earlier ones at the same guest path. Host is resolved
	// on the host following symlinks (as mount(2) does with a bind's
	// source); Guest is resolved inside the guest as it stands before the
	// bind, following symlinks (as mount(2) run inside the chroot does with
	// the target). A Guest that does not exist in the tree is mounted
	// anyway, as if nook had created the mount point and its missing
	// parents: the walk goes through missing directories on the way to a
	// mount point (they still do not exist for stat, open or readdir).
	// A Guest that cannot be reached otherwise (a file or a dangling
	// symlink on the way, a symlink loop) fails New, as mount(2) would.
	Binds []Bind
	FS    FS // nil: the real file system (OSFS)
	// Cache enables the cache of looked-up host entries. With it on, the
	// caller must call Invalidate after every successful unlink, rmdir and
	// rename (see Invalidate); without it every lookup asks FS.
	Cache bool
}

// Request is one path argument of one syscall.
type Request struct {
	Cwd    string   // guest cwd of the caller: canonical, as a Result.Guest
	Dir    string   // canonical guest path of the dirfd of *at calls; "" means Cwd
	Path   string   // the argument as the guest passed it (up to its NUL)
	Follow bool     // follow a final symlink
	Empty  bool     // AT_EMPTY_PATH: an empty Path names Dir itself
	Proc   ProcHook // nil: /proc is not special

	// Parent is for calls that resolve only the parent directory and act
	// on the last component themselves: unlink, rmdir, mkdir, mknod,
	// rename (both names), link's and symlink's new name. The last
	// component is neither followed nor looked up, and it is passed to the
	// kernel literally, with its trailing slash, "." or "..", so that the
	// kernel gives the errors it gives for those (EISDIR, ENOTDIR, EINVAL,
	// ENOTEMPTY, EEXIST, EBUSY) on the right parent directory. Follow is
	// ignored.
	Parent bool
}

// Result of a translation.
type Result struct {
	// Host is the path to give the kernel: every component of it is a
	// directory, except the last, which is whatever the guest named (the
	// symlink itself when not following). A trailing slash of the guest's
	// path is kept where it changes the kernel's answer. Paths the tracer
	// must leave to the kernel unresolved (/proc/PID/fd/N of a pipe or a
	// deleted file, magic links to places the guest cannot see) are
	// returned as the host magic path followed by the rest of the argument.
	Host string
	// Guest is the canonical guest path reached (the file itself, without
	// a trailing slash); for a magic path left to the kernel it is the
	// guest path of the magic link.
	Guest string
	// Mount is set when the last component named by a Parent request is a
	// bind mount point: in a chroot, unlink, rmdir and rename of it fail
	// with EBUSY (the tracer must fail them itself), while creating it
	// fails with EEXIST (Host names the bind's source, which exists).
	Mount bool
	// MountID identifies the mount (0 is the guest root's tree, then one
	// per bind) holding the parent directory of the last component for a
	// Parent request, the file reached otherwise. In a chroot, rename(2)
	// and link(2) whose two names' MountIDs differ fail with EXDEV (checked
	// before EBUSY), even when the host paths are on one file system: the
	// tracer must fail them itself.
	MountID int
	// Type is the file type (unix.S_IFMT bits) of what Host names, when
	// the walk looked at it (an existing last component, from the host or
	// the cache), else 0. The kernel may still see another type by the
	// time it acts (another process changing the tree).
	Type uint32
}

// ErrNotVisible is returned by ToGuest for a host path the guest cannot see.
var ErrNotVisible = errors.New("pathmap: host path not visible in the guest")

// mount is the guest root (index 0) or a bind.
type mount struct {
	host   string // "" for the host root, else absolute and clean
	guest  string // "" for the guest root, else "/a/b"
	gdepth int    // components in guest
	proc   bool   // host is the host's /proc
	// volatile: entries come and go by themselves (anything in /proc),
	// so nothing in the mount is cached.
	volatile bool
}

// Mapper translates paths for one guest. It is safe for use by one
// goroutine at a time.
type Mapper struct {
	fs     FS
	mounts []mount // [0] is the root; the rest in the order they stack
	proc   int     // index of the /proc bind, or -1
	cache  *cache  // nil: no cache

	// Scratch space reused by Resolve so that the common case does not
	// allocate.
	guest   []byte
	host    []byte
	frames  []frame
	pending []string
	num     []byte
	link    []byte // readlink buffer
	glue    string // target of the bind New is mounting
}

// New checks cfg and returns a Mapper.
func New(cfg Config) (*Mapper, error) {
	m := &Mapper{fs: cfg.FS, proc: -1}
	if m.fs == nil {
		m.fs = OSFS{}
	}
	root, err := m.hostEval(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("pathmap: root %q: %w", cfg.Root, err)
	}
	if mode, err := m.fs.Lstat(orSlash(root)); err != nil {
		return nil, fmt.Errorf("pathmap: root %q: %w", cfg.Root, err)
	} else if mode != unix.S_IFDIR {
		return nil, fmt.Errorf("pathmap: root %q: %w", cfg.Root, unix.ENOTDIR)
	}
	m.mounts = append(m.mounts, mount{host: root})

	// Mount shallow binds first so that a deeper bind's guest path is
	// resolved through the ones above it, as sequential mount(2) calls
	// would; the sort is stable so later binds at the same depth stay on
	// top.
	binds := make([]Bind, len(cfg.Binds))
	copy(binds, cfg.Binds)
	for i, b := range binds {
		if !path.IsAbs(b.Guest) || !path.IsAbs(b.Host) {
			return nil, fmt.Errorf("pathmap: bind %s:%s: paths must be absolute", b.Host, b.Guest)
		}
		binds[i].Guest = path.Clean(b.Guest)
	}
	sort.SliceStable(binds, func(i, j int) bool { return depth(binds[i].Guest) < depth(binds[j].Guest) })
	for _, b := range binds {
		host, err := m.hostEval(b.Host)
		if err != nil {
			return nil, fmt.Errorf("pathmap: bind source %q: %w", b.Host, err)
		}
		if _, err := m.fs.Lstat(orSlash(host)); err != nil {
			return nil, fmt.Errorf("pathmap: bind source %q: %w", b.Host, err)
		}
		guest := b.Guest
		if guest != "/" {
			m.glue = guest
			r, err := m.Resolve(Request{Cwd: "/", Path: guest, Follow: true})
			m.glue = ""
			if err != nil {
				return nil, fmt.Errorf("pathmap: bind target %q: %w", b.Guest, err)
			}
			guest = r.Guest
		}
		if guest == "/" {
			guest = ""
		}
		mt := mount{host: host, guest: guest, gdepth: depth(guest),
			proc: host == "/proc", volatile: hasDirPrefix(host, "/proc")}
		m.mounts = append(m.mounts, mt)
	}
	for i := len(m.mounts) - 1; i > 0; i-- {
		if m.mounts[i].proc {
			m.proc = i
			break
		}
	}
	if cfg.Cache {
		m.cache = newCache(len(m.mounts))
	}
	return m, nil
}

// hostEval resolves p on the host, following every symlink, like
// realpath(3) but through m.fs. It returns "" for the host root.
func (m *Mapper) hostEval(p string) (string, error) {
	if !path.IsAbs(p) {
		return "", fmt.Errorf("not absolute")
	}
	var out string
	rest := p
	links := 0
	for rest != "" {
		var name string
		rest = strings.TrimLeft(rest, "/")
		name, rest, _ = strings.Cut(rest, "/")
		switch name {
		case "", ".":
			continue
		case "..":
			if i := strings.LastIndexByte(out, '/'); i >= 0 {
				out = out[:i]
			}
			continue
		}
		next := out + "/" + name
		mode, err := m.fs.Lstat(next)
		if err != nil {
			return "", err
		}
		if mode != unix.S_IFLNK {
			if rest != "" && mode != unix.S_IFDIR {
				return "", unix.ENOTDIR
			}
			out = next
			continue
		}
		if links++; links > MaxSymlinks {
			return "", unix.ELOOP
		}
		t, err := m.fs.Readlink(next)
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(t, "/") {
			out = ""
		}
		rest = t + "/" + rest
	}
	return out, nil
}

func orSlash(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// depth counts the components of a clean absolute path.
func depth(p string) int {
	if p == "/" || p == "" {
		return 0
	}
	return strings.Count(p, "/")
}

// hasDirPrefix reports whether p is dir or below it; dir is "" for "/".
func hasDirPrefix(p, dir string) bool {
	return strings.HasPrefix(p, dir) && (len(p) == len(dir) || p[len(dir)] == '/')
}

// MountHost returns the host path of the tree mounted as mount id (a
// Result's MountID: 0 for the guest root, then one per bind) and whether
// that tree is the host's /proc or below it (magic links, entries that
// come and go). ok is false for an unknown id.
func (m *Mapper) MountHost(id int) (host string, proc, ok bool) {
	if id < 0 || id >= len(m.mounts) {
		return "", false, false
	}
	mt := &m.mounts[id]
	h := mt.host
	if h == "" {
		h = "/"
	}
	return h, mt.proc || mt.volatile, true
}
