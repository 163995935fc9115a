package pathmap_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// FuzzChroot is the differential test on random trees: the tree FuzzResolve
// builds in memory is built on disk, the bind targets are mounted inside a
// real chroot, and stat, open and open(O_CREAT) of the fuzzed path must
// reach the same file or fail the same way there and through pathmap. It
// needs root; each input costs a fork and exec, so it runs at a few
// hundred inputs a second.
func FuzzChroot(f *testing.F) {
	f.Add([]byte{0, 0, 0, 2, 1, 0, 8, 2, 4}, "/a/b/c", uint8(0))
	f.Add([]byte{0, 0, 0, 4, 1, 0, 6, 2, 3, 2, 1, 7}, "a/../b/", uint8(9))
	f.Add([]byte{1, 0, 0, 2, 1, 13, 0, 5, 0, 4, 0, 0}, "/m/n/../../b/x", uint8(2))
	f.Add([]byte{0, 1, 0, 2, 0, 3, 6, 2, 16, 0, 3, 0}, "/m/../b/a/", uint8(8))
	f.Fuzz(func(t *testing.T, tree []byte, p string, sel uint8) {
		if os.Geteuid() != 0 {
			t.Skip("needs root for chroot and mounts")
		}
		if i := strings.IndexByte(p, 0); i >= 0 {
			p = p[:i] // a C string, as the tracer reads it
		}
		mem, memBinds := fuzzTree(tree)
		base := t.TempDir()
		for _, q := range mem.Paths() {
			if q == "/" {
				continue
			}
			e, _ := mem.Get(q)
			var err error
			switch e.Mode {
			case unix.S_IFDIR:
				err = os.Mkdir(base+q, 0o755)
			case unix.S_IFLNK:
				err = os.Symlink(e.Target, base+q)
			default:
				err = os.WriteFile(base+q, nil, 0o644)
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		root := filepath.Join(base, "r")
		var binds []pathmap.Bind
		for _, b := range memBinds {
			binds = append(binds, pathmap.Bind{Host: base + b.Host, Guest: b.Guest})
		}
		if _, err := pathmap.New(pathmap.Config{Root: root, Binds: binds}); err != nil {
			t.Skip() // mount(2) would fail too; checked by TestNewBindErrors
		}
		// Create the mount points, as root mode does, so that both sides
		// see the same tree (pathmap alone would mount them virtually).
		// Each target is looked up with the binds before it (they are in
		// mount order).
		for i, b := range binds {
			before, err := pathmap.New(pathmap.Config{Root: root, Binds: binds[:i]})
			if err != nil {
				t.Fatal(err)
			}
			r, err := before.Resolve(pathmap.Request{Cwd: "/", Path: b.Guest, Follow: true})
			if err != nil {
				t.Fatalf("bind target %s: %v", b.Guest, err)
			}
			if r.Guest == "/" {
				// pathmap (like root mode, which mounts before chroot)
				// puts it over the root; mounted after the chroot it
				// stays under the caller's root, so the sides differ.
				t.Skip("bind over the guest root")
			}
			var st unix.Stat_t
			if unix.Lstat(r.Host, &st) != nil {
				if err := os.MkdirAll(r.Host, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
		m, err := pathmap.New(pathmap.Config{Root: root, Binds: binds, Cache: sel&1 != 0})
		if err != nil {
			t.Fatal(err)
		}
		dir := ""
		if sel&8 != 0 {
			if r, err := m.Resolve(pathmap.Request{Cwd: "/", Path: []string{"/a", "/m", "/a/b", "/m/n", "/b"}[int(sel>>4)%5], Follow: true}); err == nil {
				var st unix.Stat_t
				if unix.Lstat(r.Host, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR {
					dir = r.Guest
				}
			}
		}
		cases := []diffCase{
			{Op: "stat", Dir: dir, Path: p, Follow: true},
			{Op: "stat", Dir: dir, Path: p, Follow: false},
			{Op: "open", Dir: dir, Path: p, Follow: false},
			{Op: "creat", Dir: dir, Path: p, Follow: sel&2 != 0},
		}
		got := viaPathmap(t, m, cases)
		want, err := inChroot(root, binds, cases)
		if errors.Is(err, errMount) {
			// A target the chroot cannot mount on (missing, or a file
			// under a directory bind): pathmap mounts it virtually.
			t.Skip(err)
		}
		if err != nil {
			t.Fatal(err)
		}
		compareOutcomes(t, cases, got, want)
	})
}
