package pathmap

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The guest's /proc is the host's (a bind of /proc), so what it says about
// "the calling process" is about whoever reads it: pathmap runs in the
// tracer, not in the guest. Resolve therefore answers /proc/self and
// /proc/thread-self from the ProcHook, and treats every symlink below
// /proc/PID as a magic link: its host target means nothing in the guest
// until mapped back (ToGuest), and a target that cannot be mapped (a pipe,
// a socket, a deleted file, a place outside the guest) is left to the
// kernel, which follows magic links without reading their text.

// atProcRoot reports whether the walk stands at the root of the /proc bind.
func (m *Mapper) atProcRoot() bool {
	if m.proc < 0 {
		return false
	}
	top := m.frames[len(m.frames)-1]
	return top.mnt == m.proc && top.gEnd == len(m.mounts[m.proc].guest)
}

// inProcPID reports whether the top position (just pushed) is a name below
// /proc/PID, where every symlink is a magic link.
func (m *Mapper) inProcPID(hook ProcHook) bool {
	if m.proc < 0 || hook == nil || len(m.frames) < 2 {
		return false
	}
	top, parent := m.frames[len(m.frames)-1], m.frames[len(m.frames)-2]
	return top.mnt == m.proc && parent.mnt == m.proc && parent.gEnd > len(m.mounts[m.proc].guest)
}

// selfTarget is the body /proc/self or /proc/thread-self has for the
// calling guest process.
func (m *Mapper) selfTarget(hook ProcHook, thread bool) string {
	tgid, tid := hook.Self()
	m.num = strconv.AppendInt(m.num[:0], int64(tgid), 10)
	if thread {
		m.num = append(m.num, "/task/"...)
		m.num = strconv.AppendInt(m.num, int64(tid), 10)
	}
	return string(m.num)
}

// procLink maps the magic link name (host body target) below /proc/PID to
// the guest path to continue at; magic is set when the walk must stop and
// leave the link to the kernel.
func (m *Mapper) procLink(hook ProcHook, name, target string) (guest string, magic bool) {
	parent := m.frames[len(m.frames)-2]
	rel := string(m.guest[len(m.mounts[m.proc].guest)+1 : parent.gEnd])
	pid, ok := procPID(rel)
	if v, isV := hook.(VisibilityHook); isV {
		if owner := procOwner(rel); owner > 0 && !v.Visible(owner) {
			// Another process's links lead to its files, not the
			// guest's: the caller decides about the kernel's walk.
			return "", true
		}
	}
	if ok && (name == "exe" || name == "cwd" || name == "root") {
		if g, ok := hook.Link(pid, name); ok && strings.HasPrefix(g, "/") {
			return g, false
		}
	}
	if strings.HasPrefix(target, "/") && !strings.HasSuffix(target, " (deleted)") {
		if g, err := m.ToGuest(target); err == nil {
			return g, false
		}
	}
	return "", true
}

// VisibilityHook is implemented by a ProcHook that knows which processes
// the guest may see. Every symlink below /proc/PID of an invisible PID is
// then left to the caller as a magic link (Result.Host below /proc/PID),
// never mapped to a guest path by its target: a host process's fd that
// happens to point into the guest (or at /dev/null) is still that
// process's, not the guest's.
type VisibilityHook interface {
	Visible(pid int) bool
}

// procOwner returns the process or thread that the links below
// /proc/REL belong to: REL is "PID[/task/TID]/...".
func procOwner(rel string) int {
	first, rest, _ := strings.Cut(rel, "/")
	pid, err := strconv.Atoi(first)
	if err != nil || pid <= 0 {
		return 0
	}
	if t, ok := strings.CutPrefix(rest, "task/"); ok {
		tid, _, _ := strings.Cut(t, "/")
		if n, err := strconv.Atoi(tid); err == nil {
			return n
		}
	}
	return pid
}

// procPID parses "PID" or "PID/task/TID" and returns the process or
// thread the magic links below it belong to.
func procPID(rel string) (int, bool) {
	first, rest, _ := strings.Cut(rel, "/")
	pid, err := strconv.Atoi(first)
	if err != nil || pid <= 0 {
		return 0, false
	}
	if rest == "" {
		return pid, true
	}
	task, tid, _ := strings.Cut(rest, "/")
	if task != "task" {
		return 0, false
	}
	n, err := strconv.Atoi(tid)
	if err != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// magicResult stops the walk at the magic link on top and hands it, with
// the rest of the argument, to the kernel.
func (m *Mapper) magicResult() (Result, error) {
	var b strings.Builder
	b.Write(m.host)
	for k := len(m.pending) - 1; k >= 0; k-- {
		b.WriteString(m.pending[k])
	}
	if b.Len() >= PathMax {
		return Result{}, unix.ENAMETOOLONG
	}
	return Result{Host: b.String(), Guest: string(m.guest), MountID: m.frames[len(m.frames)-1].mnt}, nil
}
