// Package pathmap translates guest paths to host paths and back, with exactly
// the result a real chroot(2) would give. It is pure: it reads the file
// system only through the FS interface and knows nothing of ptrace.
//
// This file is the contract the tracer codes against; the implementation
// may refine it.
package pathmap

import (
	"errors"

	"golang.org/x/sys/unix"
)

// FS is the narrow view of the host file system pathmap needs.
type FS interface {
	// Lstat returns the type of the file at host path p (the S_IFMT bits of
	// st_mode) without following a final symlink.
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
type ProcHook interface {
	// Self returns the pids /proc/self and /proc/thread-self denote.
	Self() (tgid, tid int)
	// Link returns the guest path of the magic link /proc/PID/NAME for NAME
	// in exe, cwd, root; ok is false when PID is not a guest process.
	Link(pid int, name string) (guest string, ok bool)
}

// Config describes one guest.
type Config struct {
	Root  string // host path of the guest root: absolute, clean, no symlinks
	Binds []Bind
	FS    FS // nil: the real file system
}

// Request is one path argument of one syscall.
type Request struct {
	Cwd    string   // guest cwd of the caller (absolute)
	Dir    string   // guest path of the dirfd for *at calls; "" means Cwd
	Path   string   // the argument as the guest passed it
	Follow bool     // follow a final symlink
	Empty  bool     // AT_EMPTY_PATH: an empty Path names Dir itself
	Proc   ProcHook // nil: /proc is not special
}

// Result of a translation.
type Result struct {
	Host  string // the path to give the kernel
	Guest string // the canonical guest path reached
}

// Mapper translates paths for one guest. It is safe for use by one
// goroutine at a time.
type Mapper struct {
	cfg Config
}

var errTODO = errors.New("pathmap: not implemented")

// New checks cfg and returns a Mapper.
func New(cfg Config) (*Mapper, error) { return &Mapper{cfg: cfg}, nil }

// Resolve translates r. The error, if any, is the unix.Errno the kernel
// would have returned for the same call in a real chroot.
func (m *Mapper) Resolve(r Request) (Result, error) { return Result{}, unix.ENOSYS }

// ToGuest maps a host path back to the guest path that reaches it, through
// the deepest bind when several do; it fails for a path the guest cannot see.
func (m *Mapper) ToGuest(host string) (string, error) { return "", errTODO }
