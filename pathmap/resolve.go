package pathmap

import (
	"strings"

	"golang.org/x/sys/unix"
)

// frame is one position of the walk: a directory (or, last, whatever the
// walk reached). The walk keeps the canonical guest path of the position,
// so ".." is a pop and never consults the host tree; that is what makes
// ".." out of a bind land on the bind's guest parent.
type frame struct {
	gEnd int   // end of the position's guest path in Mapper.guest
	mnt  int   // index in Mapper.mounts of the mount the position is in
	node *node // cache entry of the position; nil when not cached
}

// Resolve translates r. The error, if any, is the unix.Errno the kernel
// would have returned for the same call in a real chroot, for the errors
// the walk itself decides (ENOENT or ENOTDIR of a middle component, ELOOP,
// ENAMETOOLONG, ENOENT for an empty path); what the kernel decides about
// the last component (ENOENT of a missing file, EEXIST, EISDIR, ENOTDIR
// after a trailing slash) it decides itself on Host, which is built so that
// it decides the same.
func (m *Mapper) Resolve(r Request) (Result, error) {
	if len(r.Path) >= PathMax {
		return Result{}, unix.ENAMETOOLONG
	}
	m.toRoot()
	if r.Path == "" || r.Path[0] != '/' {
		start := r.Dir
		if start == "" {
			start = r.Cwd
		}
		m.setStart(start)
		if r.Path == "" {
			if !r.Empty {
				return Result{}, unix.ENOENT
			}
			return m.result(false, -1)
		}
		if r.Dir != "" {
			// path_init: a dirfd that is not a directory fails any
			// non-empty path, even ".".
			mode, _, err := m.stat()
			if err != nil {
				return Result{}, err
			}
			if mode != unix.S_IFDIR {
				return Result{}, unix.ENOTDIR
			}
		}
	}

	m.pending = append(m.pending[:0], r.Path)
	links := 0
	mustDir := false
	for {
		name, final, slash := m.next()
		if name == "" {
			// Only slashes were left: the path named the position itself
			// (LAST_ROOT for "/", or a symlink to "/").
			if r.Parent {
				return Result{Host: "/", Guest: "/", MountID: m.rootMount()}, nil
			}
			return m.result(false, -1)
		}
		if r.Parent && final {
			return m.parentResult(name, slash)
		}
		switch name {
		case ".":
			if final {
				return m.result(false, -1)
			}
			continue
		case "..":
			m.pop()
			if final {
				return m.result(false, -1)
			}
			continue
		}
		if len(name) > NameMax {
			return Result{}, unix.ENAMETOOLONG
		}
		follow := !final || r.Follow || slash
		if final && slash {
			// LOOKUP_DIRECTORY sticks through the final symlink's body.
			mustDir = true
		}

		if follow && r.Proc != nil && m.atProcRoot() && (name == "self" || name == "thread-self") {
			if links++; links > MaxSymlinks {
				return Result{}, unix.ELOOP
			}
			m.pending = append(m.pending, m.selfTarget(r.Proc, name == "thread-self"))
			continue
		}

		m.push(name)
		mode, target, err := m.stat()
		if err == unix.ENOENT && !final && m.onMountPath() {
			// A missing directory on the way to a bind's mount point:
			// walk through it (see Config.Binds).
			mode, err = unix.S_IFDIR, nil
		}
		if err != nil {
			if final && err == unix.ENOENT {
				// The kernel creates it (O_CREAT through a dangling link
				// creates the target) or reports ENOENT itself.
				return m.result(mustDir, -1)
			}
			return Result{}, err
		}
		if mode == unix.S_IFLNK && follow {
			if links++; links > MaxSymlinks {
				return Result{}, unix.ELOOP
			}
			if m.inProcPID(r.Proc) {
				var magic bool
				target, magic = m.procLink(r.Proc, name, target)
				if magic {
					return m.magicResult()
				}
			}
			m.pop()
			if target == "" {
				return Result{}, unix.ENOENT
			}
			if target[0] == '/' {
				m.toRoot()
			}
			m.pending = append(m.pending, target)
			continue
		}
		if !final {
			if mode != unix.S_IFDIR {
				return Result{}, unix.ENOTDIR
			}
			continue
		}
		res, err := m.result(mustDir, -1)
		res.Type = mode
		return res, err
	}
}

// next takes the next component off the pending texts (the argument at the
// bottom, the bodies of the symlinks being followed above it). final is set
// when nothing but slashes is left anywhere, slash when some slash is.
func (m *Mapper) next() (name string, final, slash bool) {
	for len(m.pending) > 0 {
		top := len(m.pending) - 1
		s := m.pending[top]
		i := 0
		for i < len(s) && s[i] == '/' {
			i++
		}
		if i == len(s) {
			m.pending = m.pending[:top]
			continue
		}
		j := strings.IndexByte(s[i:], '/')
		if j < 0 {
			j = len(s)
		} else {
			j += i
		}
		name = s[i:j]
		m.pending[top] = s[j:]
		final = true
		for k := top; k >= 0 && final; k-- {
			t := m.pending[k]
			for c := 0; c < len(t); c++ {
				if t[c] != '/' {
					final = false
					break
				}
			}
			if len(t) > 0 {
				slash = true
			}
		}
		return name, final, slash
	}
	return "", false, false
}

// toRoot moves the walk to the guest root.
func (m *Mapper) toRoot() {
	m.guest = m.guest[:0]
	root := m.rootMount()
	var n *node
	if m.cache != nil {
		n = m.cache.root(root, m.mounts[root].volatile)
	}
	m.frames = append(m.frames[:0], frame{gEnd: 0, mnt: root, node: n})
	m.setHost()
}

// rootMount is the mount seen at the guest root: a bind at "/" if any.
func (m *Mapper) rootMount() int {
	for i := len(m.mounts) - 1; i > 0; i-- {
		if m.mounts[i].guest == "" {
			return i
		}
	}
	return 0
}

// setStart moves the walk to the canonical guest path p without looking
// at the host: p is a cwd or a dirfd the tracer got from an earlier
// Resolve. With the cache, positions on the way get entries whose type is
// unknown yet, so that what is looked up below them can be cached.
func (m *Mapper) setStart(p string) {
	for p != "" {
		var name string
		name, p, _ = strings.Cut(p, "/")
		switch name {
		case "", ".":
			continue
		case "..":
			m.pop()
			continue
		}
		m.push(name)
		if m.cache != nil {
			top := &m.frames[len(m.frames)-1]
			if top.node == nil {
				top.node = m.cache.add(m.frames[len(m.frames)-2].node, name)
			}
		}
	}
}

// push descends into name, crossing into a bind mounted there.
func (m *Mapper) push(name string) {
	parent := m.frames[len(m.frames)-1]
	m.guest = append(m.guest, '/')
	m.guest = append(m.guest, name...)
	d := len(m.frames)
	for i := len(m.mounts) - 1; i > 0; i-- {
		mt := &m.mounts[i]
		if mt.gdepth == d && mt.guest == bstr(m.guest) {
			var n *node
			if m.cache != nil {
				n = m.cache.root(i, mt.volatile)
			}
			m.frames = append(m.frames, frame{gEnd: len(m.guest), mnt: i, node: n})
			m.setHost()
			return
		}
	}
	var n *node
	if parent.node != nil {
		n = parent.node.kids[name]
	}
	m.frames = append(m.frames, frame{gEnd: len(m.guest), mnt: parent.mnt, node: n})
	m.host = append(m.host, '/')
	m.host = append(m.host, name...)
}

// pop goes to the parent position; at the guest root it stays, as ".."
// does at a process's root.
func (m *Mapper) pop() {
	n := len(m.frames)
	if n == 1 {
		return
	}
	top := m.frames[n-1]
	m.frames = m.frames[:n-1]
	parent := m.frames[n-2]
	m.guest = m.guest[:parent.gEnd]
	if top.mnt != parent.mnt {
		m.setHost()
		return
	}
	mt := &m.mounts[parent.mnt]
	m.host = m.host[:len(mt.host)+parent.gEnd-len(mt.guest)]
}

// setHost rebuilds the host path of the top position: within one mount the
// host path is the mount's source followed by the guest path below the
// mount point.
func (m *Mapper) setHost() {
	top := m.frames[len(m.frames)-1]
	mt := &m.mounts[top.mnt]
	m.host = append(m.host[:0], mt.host...)
	m.host = append(m.host, m.guest[len(mt.guest):top.gEnd]...)
}

// stat returns the type of the top position, and its target if it is a
// symlink, from the cache or the file system.
func (m *Mapper) stat() (mode uint32, target string, err error) {
	top := &m.frames[len(m.frames)-1]
	if top.node != nil && top.node.mode != 0 {
		return top.node.mode, top.node.target, nil
	}
	if len(m.host) >= PathMax {
		return 0, "", unix.ENAMETOOLONG
	}
	if _, ok := m.fs.(OSFS); ok {
		mode, target, err = m.osStat()
	} else {
		h := "/"
		if len(m.host) > 0 {
			h = bstr(m.host)
		}
		mode, err = m.fs.Lstat(h)
		if err == nil && mode == unix.S_IFLNK {
			target, err = m.fs.Readlink(h)
		}
	}
	if err != nil {
		return 0, "", err
	}
	if m.cache != nil && !m.mounts[top.mnt].volatile {
		if top.node == nil && len(m.frames) > 1 {
			prev := m.frames[len(m.frames)-2]
			if prev.mnt == top.mnt {
				top.node = m.cache.add(prev.node, bstr(m.guest[prev.gEnd+1:top.gEnd]))
			}
		}
		if top.node != nil {
			top.node.mode = mode
			top.node.target = target
		}
	}
	return mode, target, nil
}

// result returns the top position; slash appends a trailing slash for the
// kernel to check (LOOKUP_DIRECTORY) or to refuse (O_CREAT). parentMnt is
// the mount of the parent directory for a Parent request, else -1.
func (m *Mapper) result(slash bool, parentMnt int) (Result, error) {
	n := len(m.host)
	if n == 0 {
		n, slash = 1, false
	}
	if slash {
		n++
	}
	if n >= PathMax {
		return Result{}, unix.ENAMETOOLONG
	}
	// One allocation for both strings.
	b := make([]byte, 0, n+len(m.guest)+1)
	if len(m.host) == 0 {
		b = append(b, '/')
	} else {
		b = append(b, m.host...)
	}
	if slash {
		b = append(b, '/')
	}
	if len(m.guest) == 0 {
		b = append(b, '/')
	} else {
		b = append(b, m.guest...)
	}
	s := bstr(b)
	res := Result{Host: s[:n], Guest: s[n:], MountID: m.frames[len(m.frames)-1].mnt}
	if parentMnt >= 0 {
		res.Mount = res.MountID != parentMnt
		res.MountID = parentMnt
	}
	return res, nil
}

// parentResult ends a Parent request at its last component name, which is
// passed to the kernel literally.
func (m *Mapper) parentResult(name string, slash bool) (Result, error) {
	switch name {
	case ".", "..":
		mnt := m.frames[len(m.frames)-1].mnt
		host := string(m.host) + "/" + name
		if len(m.host) == 0 {
			host = "/" + name
		}
		if name == ".." {
			m.pop()
		}
		g := "/"
		if len(m.guest) > 0 {
			g = string(m.guest)
		}
		if len(host) >= PathMax {
			return Result{}, unix.ENAMETOOLONG
		}
		return Result{Host: host, Guest: g, MountID: mnt}, nil
	}
	if len(name) > NameMax {
		return Result{}, unix.ENAMETOOLONG
	}
	parentMnt := m.frames[len(m.frames)-1].mnt
	m.push(name)
	return m.result(slash, parentMnt)
}

// osStat is stat for OSFS without allocating: the host buffer is
// NUL-terminated in place for the syscalls.
func (m *Mapper) osStat() (mode uint32, target string, err error) {
	n := len(m.host)
	if n == 0 {
		m.host = append(m.host, '/')
	}
	m.host = append(m.host, 0)
	defer func() { m.host = m.host[:n] }()
	if mode, err = lstatNUL(m.host); err != nil || mode != unix.S_IFLNK {
		return mode, "", err
	}
	if len(m.link) < PathMax {
		m.link = make([]byte, PathMax)
	}
	k, err := readlinkNUL(m.host, m.link)
	if err != nil {
		return 0, "", err
	}
	if k >= PathMax {
		return 0, "", unix.ENAMETOOLONG
	}
	return mode, string(m.link[:k]), nil
}

// onMountPath reports whether the top position is a proper ancestor of a
// bind's mount point (or, while New mounts a bind, of its target).
func (m *Mapper) onMountPath() bool {
	g := bstr(m.guest)
	for i := 1; i < len(m.mounts); i++ {
		if mg := m.mounts[i].guest; len(mg) > len(g) && hasDirPrefix(mg, g) {
			return true
		}
	}
	return len(m.glue) > len(g) && hasDirPrefix(m.glue, g)
}
