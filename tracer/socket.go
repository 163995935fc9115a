package tracer

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// AF_UNIX socket names are file names: translated when given (bind,
// connect, sendto, sendmsg, sendmmsg) and translated back when returned
// (getsockname, getpeername, accept, accept4, recvfrom, recvmsg,
// recvmmsg).

const (
	sunPathMax  = 108 // sizeof(sockaddr_un.sun_path)
	sockaddrMax = 2 + sunPathMax
	msghdrSize  = 56
	mmsghdrSize = 64
	uioMaxIOV   = 1024
)

func init() {
	Register(unix.SYS_BIND, Hook{Entry: func(c *Call) { sockaddrArg(c, 1, 2, false) }})
	Register(unix.SYS_CONNECT, Hook{Entry: func(c *Call) { sockaddrArg(c, 1, 2, true) }})
	nonNull := func(arg uint) []seccomp.ScmpCondition {
		cond, err := seccomp.MakeCondition(arg, seccomp.CompareNotEqual, 0)
		if err != nil {
			panic(err)
		}
		return []seccomp.ScmpCondition{cond}
	}
	Register(unix.SYS_SENDTO, Hook{Entry: func(c *Call) { sockaddrArg(c, 4, 5, true) }, When: nonNull(4)})
	Register(unix.SYS_SENDMSG, Hook{Entry: sendmsgEntry})
	Register(unix.SYS_SENDMMSG, Hook{Entry: sendmmsgEntry, Exit: sendmmsgExit})

	Register(unix.SYS_GETSOCKNAME, Hook{Entry: func(c *Call) { nameOutEntry(c, 1, 2) }, Exit: nameOutExit})
	Register(unix.SYS_GETPEERNAME, Hook{Entry: func(c *Call) { nameOutEntry(c, 1, 2) }, Exit: nameOutExit})
	Register(unix.SYS_ACCEPT, Hook{Entry: func(c *Call) { nameOutEntry(c, 1, 2) }, Exit: nameOutExit, When: nonNull(1)})
	Register(unix.SYS_ACCEPT4, Hook{Entry: func(c *Call) { nameOutEntry(c, 1, 2) }, Exit: nameOutExit, When: nonNull(1)})
	Register(unix.SYS_RECVFROM, Hook{Entry: func(c *Call) { nameOutEntry(c, 4, 5) }, Exit: nameOutExit, When: nonNull(4)})
	// recvmsg's name pointer is inside its msghdr, out of the filter's
	// reach: every recvmsg stops at entry, and only one with a msg_name
	// at exit.
	Register(unix.SYS_RECVMSG, Hook{Entry: recvmsgEntry})
	Register(unix.SYS_RECVMMSG, Hook{Entry: recvmmsgEntry})
}

// unixPath returns the file name in a sockaddr, ok false when it is not a
// named AF_UNIX address (another family, unnamed, abstract).
func unixPath(sa []byte) (string, bool) {
	if len(sa) < 3 || binary.LittleEndian.Uint16(sa) != unix.AF_UNIX || sa[2] == 0 {
		return "", false
	}
	p := sa[2:]
	if z := strings.IndexByte(string(p), 0); z >= 0 {
		p = p[:z]
	}
	return string(p), true
}

// translateSockaddr returns the sockaddr to pass the kernel instead of the
// guest's (nil: keep the guest's).
func (tr *tracer) translateSockaddr(c *Call, addr uint64, n int, follow bool) ([]byte, unix.Errno) {
	if addr == 0 || n <= 2 {
		return nil, 0
	}
	if n > sockaddrMax {
		n = sockaddrMax
	}
	var buf [sockaddrMax]byte
	if err := c.Read(addr, buf[:n]); err != nil {
		return nil, unix.EFAULT
	}
	p, ok := unixPath(buf[:n])
	if !ok {
		return nil, 0
	}
	res, errno := tr.resolve(c, noArg, pathmap.Request{Path: p, Follow: follow, Parent: !follow})
	if errno != 0 {
		return nil, errno
	}
	host := res.Host
	if follow && (c.Nr == unix.SYS_CONNECT || c.Nr == unix.SYS_SENDTO || c.Nr == unix.SYS_SENDMSG) {
		// connect follows a final symlink: a racing thread that swaps
		// one in on the way could reach a socket of the host (the
		// user's ssh-agent, a container daemon). The socket itself,
		// held open, stands for the path (rootfd.go). sendmmsg's many
		// addresses would need as many held descriptors: it keeps the
		// host path. bind keeps it too: the name it gives the socket
		// is what getsockname and the peers' recvfrom report, and a
		// held descriptor does not outlive the call.
		fd, _, own, ok, errno := tr.safeOpen(res, false, true)
		if ok {
			if errno != 0 {
				return nil, errno
			}
			if own {
				tr.hold(c.T.Tid, fd)
			}
			host = pinnedPath(fd)
		}
	}
	if len(host) >= sunPathMax {
		// Too long for sun_path: name the directory through a
		// descriptor nook holds, /proc/NOOK/fd/N/BASE.
		alias, errno := tr.sockAlias(host)
		if errno != 0 {
			return nil, errno
		}
		host = alias
	}
	sa := make([]byte, 2+len(host)+1)
	binary.LittleEndian.PutUint16(sa, unix.AF_UNIX)
	copy(sa[2:], host)
	return sa, 0
}

// sockAlias returns a short name for the long host path h.
func (tr *tracer) sockAlias(h string) (string, unix.Errno) {
	dir, base := filepath.Split(h)
	dir = filepath.Clean(dir)
	fd, ok := tr.sockDirs[dir]
	if !ok {
		var err error
		for {
			fd, err = unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != unix.EINTR {
				break
			}
		}
		if err != nil {
			return "", errnoOf(err)
		}
		if len(tr.sockDirs) >= 64 {
			// Bound the descriptors held; an evicted alias only
			// matters to a call already past its path lookup.
			for d, f := range tr.sockDirs {
				unix.Close(f)
				delete(tr.sockDirs, d)
				break
			}
		}
		tr.sockDirs[dir] = fd
	}
	alias := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/" + strconv.Itoa(fd) + "/" + base
	if len(alias) >= sunPathMax {
		return "", unix.ENAMETOOLONG
	}
	return alias, 0
}

// unalias maps a /proc/NOOK/fd/N/BASE alias back to the host path.
func (tr *tracer) unalias(h string) string {
	prefix := "/proc/" + strconv.Itoa(os.Getpid()) + "/fd/"
	rest, ok := strings.CutPrefix(h, prefix)
	if !ok {
		return h
	}
	num, base, _ := strings.Cut(rest, "/")
	fd, err := strconv.Atoi(num)
	if err != nil {
		return h
	}
	for d, f := range tr.sockDirs {
		if f == fd {
			return filepath.Join(d, base)
		}
	}
	return h
}

func (tr *tracer) closeSockDirs() {
	for d, f := range tr.sockDirs {
		unix.Close(f)
		delete(tr.sockDirs, d)
	}
}

// sockaddrArg translates the sockaddr in argument addrArg (length in
// lenArg) of bind, connect or sendto.
func sockaddrArg(c *Call, addrArg, lenArg int, follow bool) {
	sa, errno := c.tr.translateSockaddr(c, c.Arg(addrArg), int(int32(c.Arg(lenArg))), follow)
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if sa != nil {
		c.SetArg(addrArg, c.Push(sa))
		c.SetArg(lenArg, uint64(len(sa)))
	}
}

// rewriteMsghdr translates the msg_name of the msghdr in hdr (a copy of
// the guest's) and reports whether it changed.
func rewriteMsghdr(c *Call, hdr []byte) (bool, unix.Errno) {
	name := binary.LittleEndian.Uint64(hdr[0:])
	namelen := int(binary.LittleEndian.Uint32(hdr[8:]))
	sa, errno := c.tr.translateSockaddr(c, name, namelen, true)
	if errno != 0 || sa == nil {
		return false, errno
	}
	binary.LittleEndian.PutUint64(hdr[0:], c.Push(sa))
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(sa)))
	return true, 0
}

func sendmsgEntry(c *Call) {
	var hdr [msghdrSize]byte
	if err := c.Read(c.Arg(1), hdr[:]); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	changed, errno := rewriteMsghdr(c, hdr[:])
	if errno != 0 {
		c.Fail(errno)
		return
	}
	if changed {
		c.SetArg(1, c.Push(hdr[:]))
	}
}

func sendmmsgEntry(c *Call) {
	n := int(uint32(c.Arg(2)))
	if n > uioMaxIOV {
		n = uioMaxIOV
	}
	if n == 0 {
		return
	}
	vec := make([]byte, n*mmsghdrSize)
	if err := c.Read(c.Arg(1), vec); err != nil {
		c.Fail(unix.EFAULT)
		return
	}
	any := false
	for i := 0; i < n; i++ {
		changed, errno := rewriteMsghdr(c, vec[i*mmsghdrSize:])
		if errno != 0 {
			c.Fail(errno)
			return
		}
		any = any || changed
	}
	if !any {
		return
	}
	// The kernel writes msg_len back into the array it was given: the
	// guest's copy must get them too, so the copy is only used when a
	// name had to change, and the lengths are copied back at exit.
	guest := c.Arg(1)
	c.SetArg(1, c.Push(vec))
	c.SetArg(2, uint64(n))
	c.T.mine = mmsgCopy{guest: guest, copy: c.Arg(1), n: n}
}

// mmsgCopy is a sendmmsg whose vector the tracer replaced by a copy.
type mmsgCopy struct {
	guest, copy uint64
	n           int
}

// sendmmsgExit copies the msg_len the kernel set in the copy back into the
// guest's vector.
func sendmmsgExit(c *Call) {
	mc, ok := c.T.mine.(mmsgCopy)
	if !ok || c.Result() <= 0 {
		return
	}
	sent := int(c.Result())
	if sent > mc.n {
		sent = mc.n
	}
	var b [4]byte
	for i := 0; i < sent; i++ {
		off := uint64(i*mmsghdrSize + msghdrSize)
		if c.Read(mc.copy+off, b[:]) != nil || c.Write(mc.guest+off, b[:]) != nil {
			return
		}
	}
}

// nameOut is carried from entry to exit of a call returning a sockaddr.
type nameOut struct {
	addr, lenp uint64
	size       uint32
	index      int // the message's index in a recvmmsg vector
}

func nameOutEntry(c *Call, addrArg, lenArg int) {
	addr, lenp := c.Arg(addrArg), c.Arg(lenArg)
	if addr == 0 || lenp == 0 {
		return
	}
	var b [4]byte
	if err := c.Read(lenp, b[:]); err != nil {
		return
	}
	c.T.mine = nameOut{addr: addr, lenp: lenp, size: binary.LittleEndian.Uint32(b[:])}
}

// recvmsgEntry maps the msg_name recvmsg fills (msg_namelen, in the
// guest's msghdr, is where the kernel writes the name's length back).
func recvmsgEntry(c *Call) {
	var hdr [16]byte
	if err := c.Read(c.Arg(1), hdr[:]); err != nil {
		return // EFAULT, from the kernel
	}
	name := binary.LittleEndian.Uint64(hdr[0:])
	size := binary.LittleEndian.Uint32(hdr[8:])
	if name == 0 || size == 0 {
		return
	}
	c.T.mine = nameOut{addr: name, lenp: c.Arg(1) + 8, size: size}
	c.ExitOnce(func(c *Call) {
		if c != nil {
			nameOutExit(c)
		}
	})
}

// recvmmsgEntry does recvmsgEntry's work for each message of the vector
// that asks for a name; at exit, for the messages received.
func recvmmsgEntry(c *Call) {
	n := int(uint32(c.Arg(2)))
	if n > uioMaxIOV {
		n = uioMaxIOV
	}
	if n == 0 {
		return
	}
	vec := make([]byte, n*mmsghdrSize)
	if err := c.Read(c.Arg(1), vec); err != nil {
		return // EFAULT, from the kernel
	}
	var names []nameOut
	for i := 0; i < n; i++ {
		h := vec[i*mmsghdrSize:]
		name, size := binary.LittleEndian.Uint64(h[0:]), binary.LittleEndian.Uint32(h[8:])
		if name != 0 && size != 0 {
			names = append(names, nameOut{addr: name, lenp: c.Arg(1) + uint64(i*mmsghdrSize) + 8, size: size, index: i})
		}
	}
	if len(names) == 0 {
		return
	}
	c.ExitOnce(func(c *Call) {
		if c == nil || c.Result() <= 0 {
			return
		}
		for _, no := range names {
			if no.index >= int(c.Result()) {
				break
			}
			c.T.mine = no
			nameOutExit(c)
		}
	})
}

func nameOutExit(c *Call) {
	no, ok := c.T.mine.(nameOut)
	if !ok || c.Result() < 0 {
		return
	}
	var b [4]byte
	if err := c.Read(no.lenp, b[:]); err != nil {
		return
	}
	full := int(binary.LittleEndian.Uint32(b[:]))
	n := full
	if n > int(no.size) {
		n = int(no.size)
	}
	if n > sockaddrMax {
		n = sockaddrMax
	}
	var buf [sockaddrMax]byte
	if n <= 2 || c.Read(no.addr, buf[:n]) != nil {
		return
	}
	if full > n {
		// Truncated by the guest's buffer: the host name is incomplete
		// and cannot be mapped; the guest sees it as the kernel gave it.
		return
	}
	host, ok := unixPath(buf[:n])
	if !ok || !strings.HasPrefix(host, "/") {
		return
	}
	g, err := c.tr.m.ToGuest(c.tr.unalias(host))
	if err != nil {
		return
	}
	sa := make([]byte, 2+len(g)+1)
	binary.LittleEndian.PutUint16(sa, unix.AF_UNIX)
	copy(sa[2:], g)
	w := sa
	if len(w) > int(no.size) {
		w = w[:no.size]
	}
	if c.Write(no.addr, w) != nil {
		return
	}
	binary.LittleEndian.PutUint32(b[:], uint32(len(sa)))
	c.Write(no.lenp, b[:])
}
