package pathmap

import (
	"fmt"
	"path"
	"sort"
)

// ToGuest maps a host path back to the guest path that reaches it. When
// several mounts contain it, the one whose source is the longest prefix of
// host wins (the deepest bind), then the one mounted deeper in the guest,
// then the later one; a candidate is taken only if the guest path it gives
// leads back to host through the mount table (it is not hidden by another
// bind mounted over it). It fails with an error wrapping ErrNotVisible for
// a path the guest cannot see. The file system is not consulted: host must
// be canonical (as getcwd and /proc magic links report it).
func (m *Mapper) ToGuest(host string) (string, error) {
	if !path.IsAbs(host) {
		return "", fmt.Errorf("%q: %w", host, ErrNotVisible)
	}
	h := path.Clean(host)
	if h == "/" {
		h = ""
	}
	var candBuf [8]int
	cands := candBuf[:0]
	for i := range m.mounts {
		if hasDirPrefix(h, m.mounts[i].host) {
			cands = append(cands, i)
		}
	}
	sort.SliceStable(cands, func(a, b int) bool {
		ma, mb := &m.mounts[cands[a]], &m.mounts[cands[b]]
		if len(ma.host) != len(mb.host) {
			return len(ma.host) > len(mb.host)
		}
		if ma.gdepth != mb.gdepth {
			return ma.gdepth > mb.gdepth
		}
		return cands[a] > cands[b]
	})
	for _, i := range cands {
		mt := &m.mounts[i]
		g := mt.guest + h[len(mt.host):]
		if m.mountOf(g) != i {
			continue
		}
		if g == "" {
			g = "/"
		}
		return g, nil
	}
	return "", fmt.Errorf("%q: %w", host, ErrNotVisible)
}

// mountOf returns the mount the canonical guest path g ("" for the root)
// is in: the deepest mount point on it, the later of two at the same one.
func (m *Mapper) mountOf(g string) int {
	best := 0
	for i := 1; i < len(m.mounts); i++ {
		mt := &m.mounts[i]
		if mt.gdepth >= m.mounts[best].gdepth && hasDirPrefix(g, mt.guest) {
			best = i
		}
	}
	return best
}
