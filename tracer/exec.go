package tracer

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// The kernel reads a program's #! line and its ELF interpreter (PT_INTERP)
// from the host file system, where the guest's paths mean nothing. So an
// execve is rewritten at its seccomp stop: the tracer walks the #! chain
// itself and starts a dynamic ELF through the guest's own dynamic loader,
// given the program's guest path ("ld.so --argv0 ARGV0 PROGRAM ARGS"); the
// loader's own opens are translated like any other.

func init() {
	Register(unix.SYS_EXECVE, Hook{Entry: func(c *Call) { c.tr.execEntry(c, false) }})
	Register(unix.SYS_EXECVEAT, Hook{Entry: func(c *Call) { c.tr.execEntry(c, true) }})
}

// maxScripts is how many #! files the kernel follows in one execve (its
// exec_binprm gives up at depth 5, so the sixth script fails with ELOOP).
const maxScripts = 5

// binprmBufSize is how much of a file the kernel reads to recognise its
// format (BINPRM_BUF_SIZE).
const binprmBufSize = 256

// maxArgs bounds the argv the tracer is willing to copy (the kernel's own
// limit, MAX_ARG_STRINGS, is larger, but the stack limit E2BIG comes
// first in practice).
const maxArgs = 1 << 20

// arg is one element of a new argv: a pointer already in the tracee's
// memory, or a new string.
type arg struct {
	ptr uint64
	s   string
}

type loaderKey struct {
	dev, ino uint64
	mtime    int64
}

// exeKind is what inspectStat found.
type exeKind int

const (
	kindScript exeKind = iota
	kindStatic
	kindDynamic
	kindOpaque // cannot be read: let the kernel execute it as it is
)

type exeInfo struct {
	kind   exeKind
	interp string // #! interpreter or PT_INTERP
	optarg string // #! optional argument
	hasArg bool
}

// execPinArg is how execEntry pins the file it executes: its parent, held,
// and the name.
var execPinArg = pathArg{dir: noArg, path: 0, flags: noArg, follow: followParent}

func (tr *tracer) execEntry(c *Call, at bool) {
	c.T.pendingStatOK = false
	dirArg, pathArg, argvArg := noArg, 0, 1
	var flags uint64
	if at {
		dirArg, pathArg, argvArg = 0, 1, 2
		flags = c.Arg(4)
		if flags&^uint64(unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW) != 0 {
			c.Fail(unix.EINVAL)
			return
		}
	}
	name, err := c.ReadString(c.Arg(pathArg))
	if err != nil {
		c.Fail(errnoOf(err))
		return
	}
	// filename is what the kernel would pass a #! interpreter as the
	// script's path (bprm->filename).
	filename := name
	// comm is the name the kernel would give the process (kbasename of
	// bprm->filename); the tracer may exec something else (procfs.go).
	comm := name
	var layout loaderLayout
	var loader string
	var host, guest string
	// hostRes is pathmap's result for host, when host came from a path
	// (not from a descriptor): the kernel then gets it pinned (see the
	// end).
	var hostRes *pathmap.Result
	origArgv, origEnvp := c.Arg(argvArg), c.Arg(argvArg+1)
	if at && name == "" && flags&unix.AT_EMPTY_PATH != 0 {
		fd := int(int32(c.Arg(0)))
		h, err := readlinkProc(c.T.Tid, "fd/"+strconv.Itoa(fd))
		if err != nil {
			c.Fail(unix.EBADF)
			return
		}
		host = h
		guest, _ = tr.m.ToGuest(h)
		filename = "/dev/fd/" + strconv.Itoa(fd)
		comm = h
		if _, err := os.Lstat(host); err != nil {
			// A memfd or a deleted file: only the kernel can run it,
			// and it can only do it right for a static program.
			return
		}
	} else {
		if name == "" {
			c.Fail(unix.ENOENT)
			return
		}
		if at && name[0] != '/' && int32(c.Arg(0)) != unix.AT_FDCWD {
			filename = "/dev/fd/" + strconv.Itoa(int(int32(c.Arg(0)))) + "/" + name
		}
		res, errno := tr.resolve(c, dirArg, pathmap.Request{Path: name, Follow: flags&unix.AT_SYMLINK_NOFOLLOW == 0})
		if errno != 0 {
			c.Fail(errno)
			return
		}
		host, guest = res.Host, res.Guest
		hostRes = &res
	}

	// The argv array is read only when it must change (a script or a
	// dynamic program), not for a static one.
	var args []arg
	changedArgv := false
	for scripts := 0; ; scripts++ {
		info, ist, errno := tr.inspectStat(host)
		if errno != 0 {
			c.Fail(errno)
			return
		}
		if !changedArgv && info.kind == kindScript {
			if args, errno = readArgv(c, c.Arg(argvArg)); errno != 0 {
				c.Fail(errno)
				return
			}
		}
		switch info.kind {
		case kindScript:
			if scripts >= maxScripts {
				c.Fail(unix.ELOOP)
				return
			}
			n := []arg{{s: info.interp}}
			if info.hasArg {
				n = append(n, arg{s: info.optarg})
			}
			n = append(n, arg{s: filename})
			if len(args) > 1 {
				n = append(n, args[1:]...)
			}
			args, changedArgv = n, true
			filename = info.interp
			res, errno := tr.resolve(c, noArg, follow(info.interp))
			if errno != 0 {
				c.Fail(errno)
				return
			}
			host, guest = res.Host, res.Guest
			hostRes = &res
			continue
		case kindDynamic:
			// The kernel counts argv (EFAULT) before it opens the
			// interpreter: an unreadable argv wins over a bad loader.
			failLoader := func(errno unix.Errno) {
				if !changedArgv {
					if _, e := readArgv(c, c.Arg(argvArg)); e != 0 {
						errno = e
					}
				}
				c.Fail(errno)
			}
			res, errno := tr.resolve(c, noArg, follow(info.interp))
			if errno != 0 {
				failLoader(errno)
				return
			}
			li, lst, errno := tr.inspectStat(res.Host)
			if errno != 0 {
				failLoader(errno)
				return
			}
			if li.kind != kindStatic && li.kind != kindOpaque {
				// An interpreter that needs an interpreter.
				failLoader(unix.ELIBBAD)
				return
			}
			if tr.hostLoaderSame(info.interp, res.Host, &lst) {
				// The kernel maps the very loader the guest has:
				// exec the program itself (exec_hostloader.go).
				c.T.pendingExe = guest
				c.T.pendingStat, c.T.pendingStatOK = ist, true
				break
			}
			if !changedArgv {
				if args, errno = readArgv(c, c.Arg(argvArg)); errno != 0 {
					c.Fail(errno)
					return
				}
			}
			n := []arg{{s: info.interp}}
			prog := guest
			loader, layout = info.interp, loaderPlain
			if tr.loaderTakesArgv0(res.Host, &lst) && len(args) > 0 {
				layout = loaderArgv0
				n = append(n, arg{s: "--argv0"}, args[0])
			} else if !strings.Contains(filename, "/") {
				// Without --argv0 the program sees its path as
				// argv[0]: give the one it was called by.
				prog = "./" + filename
			} else {
				prog = filename
			}
			if prog == "" {
				prog = filename
			}
			n = append(n, arg{s: prog})
			if len(args) > 1 {
				n = append(n, args[1:]...)
			}
			args, changedArgv = n, true
			c.T.pendingExe = guest
			c.T.pendingStat, c.T.pendingStatOK = ist, true
			host = res.Host
			hostRes = &res
		default:
			c.T.pendingExe = guest
			c.T.pendingStat, c.T.pendingStatOK = ist, true
		}
		break
	}
	// One reservation for all of it: a long argv may need a region
	// (see region.go).
	total := len(host) + 16 + 8*(len(args)+1) + 16
	for _, a := range args {
		if a.ptr == 0 {
			total += len(a.s) + 16
		}
	}
	if !changedArgv {
		total = len(host) + 16
	}
	// The kernel walks the path it is given after this stop: a racing
	// thread could swap a component of the program's or the loader's
	// path for a symlink to a host program. It gets the held parent
	// directory and the name instead, through execveat with
	// AT_SYMLINK_NOFOLLOW (rootfd.go); the name keeps comm right.
	pinned := ""
	if hostRes != nil {
		p, errno, ok := tr.pin(c, execPinArg, *hostRes)
		if ok && errno != 0 {
			c.Fail(errno)
			return
		}
		if ok {
			pinned = p
			total += len(p) + 16
		}
	}
	if !c.reserveAll(total) {
		return
	}
	if pinned != "" {
		argv := origArgv
		if changedArgv {
			argv = pushArgv(c, args)
		}
		c.T.pendingView = newProcView(comm, host, loader, layout)
		c.Regs.Orig_rax = unix.SYS_EXECVEAT
		fdcwd := int64(unix.AT_FDCWD)
		c.SetArg(0, uint64(fdcwd))
		c.SetArg(1, c.PushString(pinned))
		c.SetArg(2, argv)
		c.SetArg(3, origEnvp)
		c.SetArg(4, unix.AT_SYMLINK_NOFOLLOW)
		return
	}
	c.SetArg(pathArg, c.PushString(host))
	c.T.pendingView = newProcView(comm, host, loader, layout)
	if at {
		fdcwd := int64(unix.AT_FDCWD)
		c.SetArg(0, uint64(fdcwd))
		c.SetArg(4, 0)
	}
	if changedArgv {
		c.SetArg(argvArg, pushArgv(c, args))
	}
}

// readArgv reads the argv pointer array at addr (NULL: empty).
func readArgv(c *Call, addr uint64) ([]arg, unix.Errno) {
	if addr == 0 {
		return nil, 0
	}
	var args []arg
	var buf [64 * 8]byte
	for {
		// Read up to the page boundary: the array may end just before
		// an unmapped page.
		n := int(pageSize - addr%pageSize)
		if n > len(buf) {
			n = len(buf)
		}
		n &^= 7
		if n == 0 {
			n = 8
		}
		if err := c.Read(addr, buf[:n]); err != nil {
			return nil, unix.EFAULT
		}
		for i := 0; i < n; i += 8 {
			p := binary.LittleEndian.Uint64(buf[i:])
			if p == 0 {
				return args, 0
			}
			args = append(args, arg{ptr: p})
			if len(args) > maxArgs {
				return nil, unix.E2BIG
			}
		}
		addr += uint64(n)
	}
}

// pushArgv writes the new strings of args and the pointer array below the
// stack pointer and returns the array's address.
func pushArgv(c *Call, args []arg) uint64 {
	ptrs := make([]byte, 8*(len(args)+1))
	for i, a := range args {
		p := a.ptr
		if p == 0 {
			p = c.PushString(a.s)
		}
		binary.LittleEndian.PutUint64(ptrs[8*i:], p)
	}
	return c.Push(ptrs)
}

// fileKey identifies a version of a file: a change of content, mode or
// owner changes its ctime.
type fileKey struct {
	dev, ino     uint64
	mtime, ctime int64
	size         int64
}

// keyOf is the version of the file whose stat is st.
func keyOf(st *unix.Stat_t) fileKey {
	return fileKey{dev: st.Dev, ino: st.Ino, mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(), size: st.Size}
}

// maxExeCache bounds the cache of inspected programs.
const maxExeCache = 4096

// inspectStat is inspectFile with a cache: most execs run the same few
// programs, and a stat tells whether a file changed. It also returns that
// stat (valid when errno is 0), which the exec's other checks reuse.
func (tr *tracer) inspectStat(h string) (exeInfo, unix.Stat_t, unix.Errno) {
	var st unix.Stat_t
	if err := statRetry(h, &st); err != nil {
		return exeInfo{}, st, errnoOf(err)
	}
	k := keyOf(&st)
	if e, ok := tr.exes[k]; ok {
		return e.info, st, e.errno
	}
	info, errno := inspectFile(h, &st)
	if errno == unix.ENOENT || errno == unix.ENOTDIR {
		// Raced with a removal: nothing to remember.
		return info, st, errno
	}
	if len(tr.exes) >= maxExeCache {
		clear(tr.exes)
	}
	tr.exes[k] = exeResult{info, errno}
	return info, st, errno
}

type exeResult struct {
	info  exeInfo
	errno unix.Errno
}

// inspectFile checks host path h, whose stat is st, the way execve would
// (EACCES for a directory, a special file or a missing x bit) and tells
// what it is.
func inspectFile(h string, st *unix.Stat_t) (exeInfo, unix.Errno) {
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return exeInfo{}, unix.EACCES
	}
	if err := unix.Faccessat(unix.AT_FDCWD, h, unix.X_OK, unix.AT_EACCESS); err != nil {
		return exeInfo{}, errnoOf(err)
	}
	f, err := os.Open(h)
	if err != nil {
		// Execute-only: the kernel can run it, the tracer cannot look.
		return exeInfo{kind: kindOpaque}, 0
	}
	defer f.Close()
	var buf [binprmBufSize]byte
	n, _ := f.ReadAt(buf[:], 0)
	if n >= 2 && buf[0] == '#' && buf[1] == '!' {
		return parseShebang(buf[:])
	}
	if n >= 4 && bytes.Equal(buf[:4], []byte(elf.ELFMAG)) {
		return parseELF(f)
	}
	return exeInfo{}, unix.ENOEXEC
}

func statRetry(p string, st *unix.Stat_t) error {
	for {
		err := unix.Stat(p, st)
		if err != unix.EINTR {
			return err
		}
	}
}

// parseShebang parses a #! line exactly as fs/binfmt_script.c does: buf is
// the first 256 bytes of the file, zero-padded.
func parseShebang(buf []byte) (exeInfo, unix.Errno) {
	spacetab := func(b byte) bool { return b == ' ' || b == '\t' }
	end := bytes.IndexByte(buf, '\n')
	if end < 0 {
		// No newline in the buffer: fine only if the interpreter name
		// ends inside it.
		i := 2
		for i < len(buf) && spacetab(buf[i]) {
			i++
		}
		if i == len(buf) {
			return exeInfo{}, unix.ENOEXEC
		}
		j := i
		for j < len(buf) && !spacetab(buf[j]) && buf[j] != 0 {
			j++
		}
		if j == len(buf) {
			return exeInfo{}, unix.ENOEXEC
		}
		end = len(buf)
	}
	for end > 2 && spacetab(buf[end-1]) {
		end--
	}
	i := 2
	for i < end && spacetab(buf[i]) {
		i++
	}
	if i >= end {
		return exeInfo{}, unix.ENOEXEC
	}
	j := i
	for j < end && !spacetab(buf[j]) && buf[j] != 0 {
		j++
	}
	info := exeInfo{kind: kindScript, interp: string(buf[i:j])}
	if j < end && buf[j] != 0 {
		k := j
		for k < end && spacetab(buf[k]) {
			k++
		}
		if k < end {
			a := buf[k:end]
			if z := bytes.IndexByte(a, 0); z >= 0 {
				a = a[:z]
			}
			info.optarg, info.hasArg = string(a), true
		}
	}
	return info, 0
}

// parseELF tells a static from a dynamic x86_64 ELF program.
func parseELF(f *os.File) (exeInfo, unix.Errno) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return exeInfo{}, unix.ENOEXEC
	}
	if ef.Class != elf.ELFCLASS64 || ef.Machine != elf.EM_X86_64 {
		// i386 and x32 programs would make syscalls the filter refuses.
		return exeInfo{}, unix.ENOEXEC
	}
	if ef.Type != elf.ET_EXEC && ef.Type != elf.ET_DYN {
		return exeInfo{}, unix.ENOEXEC
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		if p.Filesz == 0 || p.Filesz > unix.PathMax {
			return exeInfo{}, unix.ENOEXEC
		}
		b := make([]byte, p.Filesz)
		if _, err := f.ReadAt(b, int64(p.Off)); err != nil {
			return exeInfo{}, unix.EIO
		}
		if z := bytes.IndexByte(b, 0); z >= 0 {
			b = b[:z]
		}
		return exeInfo{kind: kindDynamic, interp: string(b)}, 0
	}
	return exeInfo{kind: kindStatic}, 0
}

// loaderTakesArgv0 tells whether the dynamic loader at host path h, whose
// stat is st, accepts --argv0 (glibc >= 2.33, musl >= 1.1.? — both Alpine
// 3.12's 1.1.24 and 3.20's 1.2.5 do). The answer is cached per file.
func (tr *tracer) loaderTakesArgv0(h string, st *unix.Stat_t) bool {
	k := loaderKey{dev: st.Dev, ino: st.Ino, mtime: st.Mtim.Nano()}
	if v, ok := tr.loaders[k]; ok {
		return v
	}
	b, err := os.ReadFile(h)
	v := err == nil && bytes.Contains(b, []byte("argv0"))
	tr.loaders[k] = v
	return v
}
