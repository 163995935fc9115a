package pathmap

import (
	"path"
	"strings"
)

// The cache remembers, per mount, the tree of host entries the walk has
// looked up: their type and, for symlinks, their body. An entry can only
// go stale when the name is removed or replaced (a symlink's body never
// changes, a name never changes type in place), that is by unlink, rmdir
// and rename; creating a name cannot make an entry wrong because missing
// names are never cached. Nothing in a bind of /proc or below it is cached.

// maxNodes bounds the cache; when it is reached the cache starts over.
const maxNodes = 1 << 16

type node struct {
	mode   uint32 // S_IFMT bits; 0 while unknown
	target string // body of a symlink
	kids   map[string]*node
}

type cache struct {
	roots []*node // by mount index
	n     int
}

func newCache(mounts int) *cache {
	c := &cache{roots: make([]*node, mounts)}
	c.reset()
	return c
}

func (c *cache) reset() {
	for i := range c.roots {
		c.roots[i] = &node{}
	}
	c.n = 0
}

func (c *cache) root(mnt int, volatile bool) *node {
	if volatile {
		return nil
	}
	return c.roots[mnt]
}

// add returns the entry for name below parent, creating it with an unknown
// type; nil when parent is not cached.
func (c *cache) add(parent *node, name string) *node {
	if parent == nil {
		return nil
	}
	if n := parent.kids[name]; n != nil {
		return n
	}
	if c.n >= maxNodes {
		c.reset()
		return nil
	}
	c.n++
	n := &node{}
	if parent.kids == nil {
		parent.kids = make(map[string]*node)
	}
	parent.kids[strings.Clone(name)] = n
	return n
}

// Invalidate must be called, when the cache is on, after every successful
// syscall that removed or replaced a name: unlink, unlinkat, rmdir, rename,
// renameat, renameat2 (both names, also for RENAME_EXCHANGE), with the
// Result.Host the call was given. It forgets host and everything below it,
// through every mount that shows it. It is cheap (a walk down the tree)
// and harmless for a name that was never cached.
func (m *Mapper) Invalidate(host string) {
	if m.cache == nil || !strings.HasPrefix(host, "/") {
		return
	}
	h := path.Clean(host)
	if h == "/" {
		h = ""
	}
	for i := range m.mounts {
		mh := m.mounts[i].host
		if !hasDirPrefix(h, mh) {
			continue
		}
		rel := h[len(mh):]
		if rel == "" {
			m.cache.roots[i] = &node{}
			continue
		}
		n := m.cache.roots[i]
		rel = rel[1:]
		for n != nil {
			name, rest, more := strings.Cut(rel, "/")
			if !more {
				delete(n.kids, name)
				break
			}
			n, rel = n.kids[name], rest
		}
	}
}

// Flush forgets the whole cache. A tracer that cannot tell what a syscall
// changed (mount, a write it did not see) calls it.
func (m *Mapper) Flush() {
	if m.cache != nil {
		m.cache.reset()
	}
}
