package tracer

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Where a thread's directories are: the guest and host paths of its
// working directory and of its directory descriptors, read from /proc.

// fdGuest returns the guest and host paths of the file open on fd in
// thread tid. Directories come from the cache of fdcache.go.
func (tr *tracer) fdGuest(tid, fd int) (guest, host string, errno unix.Errno) {
	if fd < 0 {
		return "", "", unix.EBADF
	}
	if t := tr.threads[tid]; t != nil {
		if g, h, ok := tr.dirs.lookup(tr, t, fd); ok {
			return g, h, 0
		}
		if g, h, ok := tr.dirs.fill(tr, t, fd); ok {
			return g, h, 0
		}
	}
	// pipe:[N], socket:[N], anon_inode:...: not a directory.
	return tr.fdPaths(tid, fd, unix.ENOTDIR)
}

// fdPaths reads the magic link /proc/PID/fd/FD and maps it to the guest:
// notPath is the error for a file that has no path (a pipe, a socket),
// ENOENT for a deleted one, EACCES for a directory the guest cannot see
// (inherited from the host: resolving relative to it would escape the
// guest).
func (tr *tracer) fdPaths(pid, fd int, notPath unix.Errno) (guest, host string, errno unix.Errno) {
	host, err := readlinkProc(pid, "fd/"+strconv.Itoa(fd))
	if err != nil {
		return "", "", unix.EBADF
	}
	if !strings.HasPrefix(host, "/") {
		return "", "", notPath
	}
	if strings.HasSuffix(host, " (deleted)") {
		return "", "", unix.ENOENT
	}
	g, err := tr.m.ToGuest(host)
	if err != nil {
		return "", "", unix.EACCES
	}
	return g, host, 0
}

// cwdOf returns the guest working directory of t's process.
func (tr *tracer) cwdOf(t *Thread) (string, error) {
	p := t.P
	if p.cwd != "" && p.cwdGen == tr.gen {
		return p.cwd, nil
	}
	host, err := readlinkProc(t.Tid, "cwd")
	if err != nil {
		return "", err
	}
	if strings.HasSuffix(host, " (deleted)") {
		return "", errCwdRemoved
	}
	g, err := tr.m.ToGuest(host)
	if err != nil {
		return "", unix.ENOENT
	}
	p.cwd, p.cwdHost, p.cwdGen = g, host, tr.gen
	return g, nil
}

// removedCwd returns the guest path a removed working directory of t had.
func (tr *tracer) removedCwd(t *Thread) (string, bool) {
	host, err := readlinkProc(t.Tid, "cwd")
	if err != nil {
		return "", false
	}
	host, ok := strings.CutSuffix(host, " (deleted)")
	if !ok {
		return "", false
	}
	g, err := tr.m.ToGuest(host)
	return g, err == nil
}

// errCwdRemoved is cwdOf's error for a working directory that was removed:
// ENOENT, getcwd's answer then.
var errCwdRemoved = fmt.Errorf("working directory removed: %w", unix.ENOENT)

// hasDotDot reports whether path p has a ".." component.
func hasDotDot(p string) bool {
	for p != "" {
		var comp string
		comp, p, _ = strings.Cut(p, "/")
		if comp == ".." {
			return true
		}
	}
	return false
}

// guestOfLink reads the magic link /proc/PID/NAME and maps it to the guest.
func (tr *tracer) guestOfLink(pid int, name string) (string, error) {
	host, err := readlinkProc(pid, name)
	if err != nil {
		return "", err
	}
	return tr.m.ToGuest(host)
}

// readlinkProc reads /proc/PID/NAME.
func readlinkProc(pid int, name string) (string, error) {
	var buf [unix.PathMax]byte
	p := "/proc/" + strconv.Itoa(pid) + "/" + name
	for {
		n, err := unix.Readlink(p, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}
