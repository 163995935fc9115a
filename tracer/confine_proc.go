package tracer

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// procPublic are the files of /proc/PID (and /proc/PID/task/TID) a guest
// may read for a process outside it: what ps, top and pgrep read, all
// readable by any user for any process. Everything else there (mem,
// environ, maps, the fd and map_files directories, the cwd, root and exe
// links, ns, ...) is refused with EACCES, as the kernel refuses it for
// processes one may not ptrace.
var procPublic = map[string]bool{
	"":        true, // the directory itself
	"stat":    true,
	"status":  true,
	"statm":   true,
	"cmdline": true,
	"comm":    true,
	"wchan":   true,
	"cgroup":  true,
	"task":    true,
}

// confineProc checks the host path a guest path resolved to for two ways
// out through /proc (docs/security.md):
//   - any name below /proc/PID of a process outside the guest (nook
//     itself among them) but the public ones;
//   - a walk continuing through a magic link (fd/N, cwd, root, exe,
//     map_files/X) whose target is a directory the guest cannot see:
//     pathmap leaves such links to the kernel, which would follow them
//     out of the guest root (a directory descriptor received from a host
//     process, or fchdir to it).
func (tr *tracer) confineProc(host string) unix.Errno {
	rest, ok := strings.CutPrefix(host, "/proc/")
	if !ok {
		return 0
	}
	pidStr, rest, _ := strings.Cut(rest, "/")
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return 0
	}
	dir := "/proc/" + pidStr
	if t, ok := strings.CutPrefix(rest, "task/"); ok {
		tidStr, r, _ := strings.Cut(t, "/")
		if tid, err := strconv.Atoi(tidStr); err == nil && tid > 0 {
			if !tr.isGuest(pid) || !tr.isGuest(tid) {
				if !procPublic[r] {
					return unix.EACCES
				}
				return 0
			}
			pid, rest, dir = tid, r, dir+"/task/"+tidStr
		}
	}
	if !tr.isGuest(pid) {
		if !procPublic[strings.TrimRight(rest, "/")] {
			return unix.EACCES
		}
		return 0
	}
	comp, sub, _ := strings.Cut(rest, "/")
	if comp == "mem" {
		// Not even a guest process's: writing it rewrites the paths
		// the tracer translated (confine_region.go).
		return unix.EACCES
	}
	link := comp
	switch comp {
	case "cwd", "root", "exe":
	case "fd", "map_files":
		n, after, _ := strings.Cut(sub, "/")
		link, sub = comp+"/"+n, after
		if n == "" {
			return 0
		}
	default:
		return 0
	}
	if strings.Trim(sub, "/") == "" {
		// The link itself: the open file, already the guest's.
		return 0
	}
	target, err := readlinkAt(dir, link)
	if err != nil {
		return 0 // the kernel's lookup gives the error
	}
	if strings.HasPrefix(target, "/") {
		if _, err := tr.m.ToGuest(target); err != nil || strings.HasSuffix(target, " (deleted)") {
			return unix.EACCES
		}
	}
	return 0
}

// readlinkAt reads the magic link dir/name of /proc.
func readlinkAt(dir, name string) (string, error) {
	var buf [unix.PathMax]byte
	for {
		n, err := unix.Readlink(dir+"/"+name, buf[:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
}

// Visible tells pathmap which /proc/PID belong to the guest (see
// pathmap.VisibilityHook).
func (h *procHook) Visible(pid int) bool { return h.tr.isGuest(pid) }
