// Package pathmaptest provides MemFS, an in-memory pathmap.FS for tests.
package pathmaptest

import (
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Entry is one file of a MemFS.
type Entry struct {
	Mode   uint32 // S_IFDIR, S_IFREG, S_IFLNK, ...
	Target string // symlink body
	Ino    uint64 // identity, unique in the MemFS
}

// MemFS is a host file system in memory, keyed by clean absolute path. It
// answers like the kernel would for a walk that never follows a symlink in
// the middle of a host path: a symlink met before the last component of a
// path it is asked about is recorded in Escapes (pathmap must never hand
// such a path over, since the host kernel would follow the link outside
// the guest) and answered as the kernel would not: with EXDEV.
type MemFS struct {
	files   map[string]*Entry
	ino     uint64
	Escapes []string
	Calls   int // Lstat and Readlink calls
}

// New returns a MemFS holding only the root directory.
func New() *MemFS {
	f := &MemFS{files: map[string]*Entry{}}
	f.add("/", unix.S_IFDIR, "")
	return f
}

func (f *MemFS) add(p string, mode uint32, target string) {
	f.ino++
	f.files[p] = &Entry{Mode: mode, Target: target, Ino: f.ino}
}

func (f *MemFS) mkParents(p string) {
	for i := 1; i < len(p); i++ {
		if p[i] == '/' {
			if _, ok := f.files[p[:i]]; !ok {
				f.add(p[:i], unix.S_IFDIR, "")
			}
		}
	}
}

// Dir creates directory p and its missing parents.
func (f *MemFS) Dir(p string) { f.mkParents(p + "/") }

// File creates regular file p and its missing parents.
func (f *MemFS) File(p string) { f.mkParents(p); f.add(p, unix.S_IFREG, "") }

// Symlink creates symlink p with body target and p's missing parents.
func (f *MemFS) Symlink(p, target string) { f.mkParents(p); f.add(p, unix.S_IFLNK, target) }

// Remove deletes p and everything below it.
func (f *MemFS) Remove(p string) {
	for k := range f.files {
		if k == p || strings.HasPrefix(k, p+"/") {
			delete(f.files, k)
		}
	}
}

// Get returns the entry at p, like Lstat.
func (f *MemFS) Get(p string) (*Entry, error) {
	if len(p) >= unix.PathMax {
		return nil, unix.ENAMETOOLONG
	}
	if !strings.HasPrefix(p, "/") {
		return nil, unix.EINVAL
	}
	if p == "/" {
		return f.files["/"], nil
	}
	// Walk the host path as the kernel would, so that ENOTDIR and ENOENT
	// come out in the kernel's order.
	for i := 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		comp := p[strings.LastIndexByte(p[:i], '/')+1 : i]
		if len(comp) > unix.NAME_MAX {
			return nil, unix.ENAMETOOLONG
		}
		if comp == "" || comp == "." || comp == ".." {
			return nil, fmt.Errorf("memfs: unclean path %q", p)
		}
		e, ok := f.files[p[:i]]
		if !ok {
			return nil, unix.ENOENT
		}
		if i == len(p) {
			return e, nil
		}
		switch e.Mode {
		case unix.S_IFDIR:
		case unix.S_IFLNK:
			f.Escapes = append(f.Escapes, p)
			return nil, unix.EXDEV
		default:
			return nil, unix.ENOTDIR
		}
	}
	panic("unreachable")
}

// Lstat implements pathmap.FS.
func (f *MemFS) Lstat(p string) (uint32, error) {
	f.Calls++
	e, err := f.Get(p)
	if err != nil {
		return 0, err
	}
	return e.Mode, nil
}

// Readlink implements pathmap.FS.
func (f *MemFS) Readlink(p string) (string, error) {
	f.Calls++
	e, err := f.Get(p)
	if err != nil {
		return "", err
	}
	if e.Mode != unix.S_IFLNK {
		return "", unix.EINVAL
	}
	return e.Target, nil
}

// Paths lists every path in f, sorted.
func (f *MemFS) Paths() []string {
	var out []string
	for k := range f.files {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
