package tracer

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

func init() {
	Register(unix.SYS_GETCWD, Hook{Entry: getcwdEntry})
	Register(unix.SYS_READLINK, Hook{Entry: func(c *Call) { readlinkEntry(c, noArg, 0, 1, 2) }})
	Register(unix.SYS_READLINKAT, Hook{Entry: func(c *Call) { readlinkEntry(c, 0, 1, 2, 3) }})
}

// getcwdEntry emulates getcwd(buf, size) entirely: the kernel's answer
// would be a host path.
func getcwdEntry(c *Call) {
	cwd, err := c.tr.cwdOf(c.T)
	if err != nil {
		c.Fail(unix.ENOENT)
		return
	}
	size := c.Arg(1)
	n := uint64(len(cwd) + 1)
	if size < n {
		c.Fail(unix.ERANGE)
		return
	}
	b := append([]byte(cwd), 0)
	if err := c.Write(c.Arg(0), b); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	c.Return(int64(n))
}

// readlinkEntry translates the path of readlink(at); for the magic links of
// /proc (exe, cwd, root, fd/N of guest processes) it emulates the call with
// the guest path of the target. Other symlinks' contents are guest paths
// already.
func readlinkEntry(c *Call, dirArg, pathIdx, bufArg, sizeArg int) {
	p, err := c.ReadString(c.Arg(pathIdx))
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	if p == "" {
		if dirArg == noArg {
			c.Fail(unix.ENOENT)
		}
		// readlinkat(fd, "") reads the symlink fd was opened on (O_PATH).
		return
	}
	res, errno := c.tr.resolve(c, dirArg, pathmap.Request{Path: p})
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if target, ok := c.tr.procLink(res.Host); ok {
		if int64(c.Arg(sizeArg)) <= 0 || int32(c.Arg(sizeArg)) <= 0 {
			c.Fail(unix.EINVAL)
			return
		}
		b := []byte(target)
		if uint64(len(b)) > c.Arg(sizeArg) {
			b = b[:c.Arg(sizeArg)]
		}
		if err := c.Write(c.Arg(bufArg), b); err != nil {
			c.Fail(unix.EFAULT)
			return
		}
		c.Return(int64(len(b)))
		return
	}
	if res.Type != 0 && res.Type != unix.S_IFLNK && !strings.HasSuffix(res.Host, "/") {
		// Not a symlink, as the walk just saw: the kernel's EINVAL,
		// without asking it. gcc's realpath reads every component of
		// every include directory this way (W3 in docs/performance.md).
		c.Fail(unix.EINVAL)
		return
	}
	// readlink reads the last component itself: the held parent and the
	// name, so that a racing swap does not make it read a host symlink
	// (rootfd.go).
	c.tr.setPathArg(c, pathArg{dir: noArg, path: int8(pathIdx), flags: noArg, follow: followNever}, res)
}

// procPath parses host path h as /proc/PID/REST or /proc/PID/task/TID/REST
// and returns the last PID or TID and REST. "self" and "thread-self" name
// the calling guest thread's process and the thread, as the kernel reads
// them for the caller (in the tracer they would name the tracer).
func (tr *tracer) procPath(h string) (id int, rest string, ok bool) {
	rest, ok = strings.CutPrefix(h, "/proc/")
	if !ok {
		return 0, "", false
	}
	pidStr, rest, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, "", false
	}
	if id, ok = tr.procID(pidStr); !ok {
		return 0, "", false
	}
	if t, ok := strings.CutPrefix(rest, "task/"); ok {
		tidStr, r, ok := strings.Cut(t, "/")
		if !ok {
			return 0, "", false
		}
		n, err := strconv.Atoi(tidStr)
		if err != nil {
			return 0, "", false
		}
		id, rest = n, r
	}
	return id, rest, true
}

// procID is the process or thread a /proc entry's name stands for.
func (tr *tracer) procID(name string) (int, bool) {
	switch name {
	case "self":
		return tr.proc.cur.P.Tgid, true
	case "thread-self":
		return tr.proc.cur.Tid, true
	}
	n, err := strconv.Atoi(name)
	return n, err == nil
}

// procLink returns the guest view of host path h when it is a magic link of
// a guest process: /proc/PID/{exe,cwd,root,fd/N}, also under task/TID.
func (tr *tracer) procLink(h string) (string, bool) {
	pid, rest, ok := tr.procPath(h)
	if !ok {
		return "", false
	}
	th, ok := tr.threads[pid]
	if !ok {
		return "", false
	}
	switch {
	case rest == "exe":
		if th.P.Exe != "" {
			return th.P.Exe, true
		}
		g, err := tr.guestOfLink(pid, "exe")
		return g, err == nil
	case rest == "cwd":
		g, err := tr.cwdOf(th)
		return g, err == nil
	case rest == "root":
		return "/", true
	case strings.HasPrefix(rest, "fd/"):
		host, err := readlinkProc(pid, rest)
		if err != nil {
			return "", false
		}
		if !strings.HasPrefix(host, "/") {
			return host, true
		}
		deleted := ""
		if h, ok := strings.CutSuffix(host, " (deleted)"); ok {
			host, deleted = h, " (deleted)"
		}
		if g, err := tr.m.ToGuest(host); err == nil {
			return g + deleted, true
		}
		return host + deleted, true
	}
	return "", false
}
