package tracer

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nook/ownership"
	"nook/rootfs"
)

// Synthesized /proc files. The guest's processes have fake credentials and
// some run through the guest's dynamic loader; the kernel's /proc shows
// neither. When a guest opens, read-only, /proc/PID/{status,cmdline,comm,
// stat} of a guest process and the kernel's content differs from what a
// real chroot would show, the tracer reads the real file, rewrites it,
// writes the result to a file in a private directory and opens that
// instead. The file is unlinked at the open's exit stop (an exit stop for
// this one call only), so nothing but the guest's descriptor keeps it.
//
// The content is a snapshot taken at open time; the kernel generates these
// files at read time, which a reader that keeps the descriptor open and
// seeks back to the start would notice (ps, top and id open anew every
// time).

// loaderLayout is how the tracer started a dynamic program through its
// loader (exec.go), which decides what the kernel shows as its cmdline.
type loaderLayout uint8

const (
	loaderNone  loaderLayout = iota
	loaderArgv0              // LOADER --argv0 ARGV0 PROGRAM ARGS...
	loaderPlain              // LOADER PROGRAM ARGS...
)

// procView is what the guest should see of the program a process runs
// where the tracer's way of running it differs from the kernel's.
type procView struct {
	// comm is the guest's comm; realComm what the kernel set at the exec
	// (the loader's or a symlink target's name). Only while the kernel's
	// comm is still realComm is it replaced: a later PR_SET_NAME or
	// write to /proc/PID/comm is the program's own.
	comm, realComm string
	// loader is the argv[0] the tracer gave the loader.
	loader string
	layout loaderLayout
}

// taskCommLen is the kernel's TASK_COMM_LEN, with the NUL.
const taskCommLen = 16

// newProcView returns the view of a program execve was called with as
// name, which the tracer runs as host (the loader's host path for a
// dynamic program, started with argv[0] loader).
func newProcView(name, host, loader string, layout loaderLayout) procView {
	v := procView{loader: loader, layout: layout}
	if c, r := taskComm(name), taskComm(host); c != r {
		v.comm, v.realComm = c, r
	}
	return v
}

// taskComm is the comm the kernel derives from an execve file name
// (__set_task_comm(kbasename(filename)), truncated).
func taskComm(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[i+1:]
	}
	if len(p) > taskCommLen-1 {
		p = p[:taskCommLen-1]
	}
	return p
}

// procfsRun is the private directory of the run in progress.
var procfsRun struct {
	dir string
}

func init() {
	OnStart(procfsStart)
	Register(unix.SYS_OPEN, Hook{Entry: func(c *Call) { procfsOpen(c, noArg, 0, c.orig.Rsi) }})
	Register(unix.SYS_OPENAT, Hook{Entry: func(c *Call) { procfsOpen(c, 0, 1, c.orig.Rdx) }})
	Register(unix.SYS_OPENAT2, Hook{Entry: procfsOpenat2})
}

func procfsStart(spec *rootfs.RunSpec, opts Options) (func() error, error) {
	dir, err := os.MkdirTemp("", "nook-proc-")
	if err != nil {
		return nil, fmt.Errorf("rootless: /proc files directory: %w", err)
	}
	procfsRun.dir = dir
	return func() error {
		procfsRun.dir = ""
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("rootless: remove /proc files directory: %w", err)
		}
		return nil
	}, nil
}

func procfsOpenat2(c *Call) {
	if c.Done() || c.orig.R10 < openHowSize {
		return
	}
	var how [openHowSize]byte
	if err := c.Read(c.orig.Rdx, how[:]); err != nil {
		return
	}
	if binary.LittleEndian.Uint64(how[16:]) != 0 {
		// Resolve restrictions: the call stays as translated.
		return
	}
	procfsOpen(c, 0, 1, binary.LittleEndian.Uint64(how[0:]))
}

// procfsOpen runs after the path translation (paths.go, openat2.go):
// it reads the guest's path again from the original registers.
func procfsOpen(c *Call, dirArg, pathArg int, flags uint64) {
	if c.Done() || procfsRun.dir == "" {
		return
	}
	if flags&unix.O_ACCMODE != unix.O_RDONLY || flags&(unix.O_PATH|unix.O_DIRECTORY|unix.O_CREAT|unix.O_TMPFILE) != 0 {
		return
	}
	// The translation's result, when it rewrote the path, is in the data
	// pushed for this stop: no need to read the guest's memory again.
	host, ok := c.pushedString(c.Arg(pathArg))
	if !ok {
		var addr uint64
		switch pathArg {
		case 0:
			addr = c.orig.Rdi
		case 1:
			addr = c.orig.Rsi
		}
		p, err := c.ReadString(addr)
		if err != nil || !procfsName(p) {
			return
		}
		res, errno := c.tr.resolve(c, dirArg, follow(p))
		if errno != 0 {
			return
		}
		host = res.Host
	}
	// Most opens end here, before any lookup.
	if !procfsName(host) {
		return
	}
	t, file, ok := c.tr.procfsTarget(host)
	if !ok {
		return
	}
	real, err := os.ReadFile(host)
	if err != nil {
		return // the kernel's open gives the guest its own error
	}
	var b []byte
	switch file {
	case "status":
		b = procfsStatus(real, t.P)
	case "cmdline":
		b = procfsCmdline(real, t.P.view)
	case "comm":
		if v := t.P.view; v.comm != "" && string(real) == v.realComm+"\n" {
			b = []byte(v.comm + "\n")
		}
	case "stat":
		b = procfsStat(real, t.P.view)
	}
	if b == nil {
		return
	}
	name, err := procfsWrite(b)
	if err != nil {
		return
	}
	c.SetArg(pathArg, c.PushString(name))
	c.ExitOnce(func(*Call) { unlinkRetry(name) })
}

// procfsName reports whether path p ends in a name procfsOpen may
// synthesize.
func procfsName(p string) bool {
	switch p[strings.LastIndexByte(p, '/')+1:] {
	case "status", "cmdline", "comm", "stat":
		return true
	}
	return false
}

// pushedString returns the string an earlier hook of this stop pushed at
// addr (PushString), if any.
func (c *Call) pushedString(addr uint64) (string, bool) {
	for i := len(c.writes) - 1; i >= 0; i-- {
		if w := c.writes[i]; w.addr == addr && w.n > 0 && c.data[w.off+w.n-1] == 0 {
			return string(c.data[w.off : w.off+w.n-1]), true
		}
	}
	return "", false
}

// ExitOnce runs f at the exit stop of this call only (also when the call
// fails; not when the process dies first, nor when a later hook of the
// stop emulates or fails the call: procfs.go's hooks come last for open). A previous ExitOnce of the
// thread whose call never reached its exit (the call was restarted to map
// a scratch region first) runs now, with a nil Call.
func (c *Call) ExitOnce(f func(*Call)) {
	if old := c.T.exitOnce; old != nil {
		c.T.exitOnce = nil
		old(nil)
	}
	c.T.exitOnce = f
}

func unlinkRetry(p string) {
	ownRetry(func() error { return unix.Unlink(p) })
}

// procfsWrite stores b in a new file of the private directory.
func procfsWrite(b []byte) (string, error) {
	f, err := os.CreateTemp(procfsRun.dir, "p")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		unlinkRetry(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// procfsTarget recognises host path h as /proc/PID/FILE or
// /proc/PID/task/TID/FILE of a guest thread.
func (tr *tracer) procfsTarget(h string) (*Thread, string, bool) {
	id, rest, ok := tr.procPath(h)
	if !ok {
		return nil, "", false
	}
	th, ok := tr.threads[id]
	if !ok || strings.Contains(rest, "/") {
		return nil, "", false
	}
	return th, rest, true
}

// procfsStatus rewrites /proc/PID/status for the process's fake
// credentials: the ids, groups and capability sets, the name, and
// TracerPid (a real chroot's processes are not traced).
func procfsStatus(real []byte, p *Process) []byte {
	cr := ownCreds(p)
	var out bytes.Buffer
	out.Grow(len(real) + 64)
	for line := range bytes.Lines(real) {
		key, _, ok := bytes.Cut(line, []byte(":\t"))
		if !ok {
			out.Write(line)
			continue
		}
		switch string(key) {
		case "Name":
			if v := p.view; v.comm != "" && string(line) == "Name:\t"+procfsEscape(v.realComm)+"\n" {
				fmt.Fprintf(&out, "Name:\t%s\n", procfsEscape(v.comm))
				continue
			}
		case "TracerPid":
			out.WriteString("TracerPid:\t0\n")
			continue
		case "Uid":
			fmt.Fprintf(&out, "Uid:\t%d\t%d\t%d\t%d\n", cr.UID, cr.EUID, cr.SUID, cr.FSUID)
			continue
		case "Gid":
			fmt.Fprintf(&out, "Gid:\t%d\t%d\t%d\t%d\n", cr.GID, cr.EGID, cr.SGID, cr.FSGID)
			continue
		case "Groups":
			out.WriteString("Groups:\t")
			for _, g := range cr.Groups {
				out.WriteString(strconv.FormatUint(uint64(g), 10))
				out.WriteByte(' ')
			}
			out.WriteByte('\n')
			continue
		case "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb":
			fmt.Fprintf(&out, "%s:\t%016x\n", key, procfsCap(cr, string(key)))
			continue
		}
		out.Write(line)
	}
	return out.Bytes()
}

func procfsCap(cr *ownership.Creds, key string) uint64 {
	switch key {
	case "CapInh":
		return cr.Caps.Inheritable
	case "CapPrm":
		return cr.Caps.Permitted
	case "CapEff":
		return cr.Caps.Effective
	case "CapBnd":
		return cr.Caps.Bounding
	}
	return cr.Caps.Ambient
}

// procfsEscape is how status shows a name (proc_task_name with
// ESCAPE_SPACE|ESCAPE_SPECIAL: "\n" and "\\" escaped).
func procfsEscape(s string) string {
	if !strings.ContainsAny(s, "\\\n\t") {
		return s
	}
	r := strings.NewReplacer("\\", "\\\\", "\n", "\\n", "\t", "\\t")
	return r.Replace(s)
}

// procfsCmdline removes the loader's arguments from a dynamic program's
// command line, if it still has them (the program may have rewritten its
// argument area, as setproctitle does: then it is shown as it is).
func procfsCmdline(real []byte, v procView) []byte {
	if v.layout == loaderNone || v.loader == "" {
		return nil
	}
	first, rest, ok := bytes.Cut(real, []byte{0})
	if !ok || string(first) != v.loader {
		return nil
	}
	switch v.layout {
	case loaderPlain:
		return rest
	case loaderArgv0:
		opt, rest, ok := bytes.Cut(rest, []byte{0})
		if !ok || string(opt) != "--argv0" {
			return nil
		}
		argv0, rest, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return nil
		}
		_, args, ok := bytes.Cut(rest, []byte{0})
		if !ok {
			return nil
		}
		out := make([]byte, 0, len(argv0)+1+len(args))
		out = append(append(out, argv0...), 0)
		return append(out, args...)
	}
	return nil
}

// procfsStat replaces the comm field of /proc/PID/stat ("PID (COMM) S
// ..."; the comm may itself hold parentheses: it ends at the last ')').
func procfsStat(real []byte, v procView) []byte {
	if v.comm == "" {
		return nil
	}
	i := bytes.IndexByte(real, '(')
	j := bytes.LastIndexByte(real, ')')
	if i < 0 || j < i || string(real[i+1:j]) != v.realComm {
		return nil
	}
	out := make([]byte, 0, len(real)+len(v.comm))
	out = append(out, real[:i+1]...)
	out = append(out, v.comm...)
	return append(out, real[j:]...)
}

// procfsOwner gives /proc/PID of a guest process, and the files directly
// in it, the owner the kernel would: the process's effective ids
// (task_dump_owner), here its fake ones. ps takes a process's user from
// them. Magic links (exe, cwd, root) are left alone: a stat that follows
// them is about another file.
func (tr *tracer) procfsOwner(host string, uid, gid *uint32) {
	if !strings.HasPrefix(host, "/proc/") {
		return
	}
	rest := host[len("/proc/"):]
	pidStr, file, _ := strings.Cut(rest, "/")
	if strings.Contains(file, "/") {
		return
	}
	switch file {
	case "exe", "cwd", "root":
		return
	}
	id, ok := tr.procID(pidStr)
	if !ok {
		return
	}
	th, ok := tr.threads[id]
	if !ok {
		return
	}
	cr := ownCreds(th.P)
	*uid, *gid = cr.EUID, cr.EGID
}
