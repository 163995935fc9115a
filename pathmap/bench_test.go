package pathmap_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// BenchmarkResolve resolves a 6-component path with two symlinks (one
// relative, one absolute) on the real file system, as the tracer does for
// every filename syscall.
func BenchmarkResolve(b *testing.B) {
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a/b/c/d/e"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/c/d/e/f"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("b", filepath.Join(root, "a/l1")); err != nil {
		b.Fatal(err)
	}
	if err := os.Symlink("/a/b/c/d", filepath.Join(root, "a/b/c/l2")); err != nil {
		b.Fatal(err)
	}
	const p = "/a/l1/c/l2/e/f"
	// The floor without a cache: the 11 lstat and 2 readlink calls the
	// walk makes, done directly (the absolute link restarts at the root).
	b.Run("syscalls", func(b *testing.B) {
		var st unix.Stat_t
		buf := make([]byte, 256)
		walk := []string{"a", "a/l1", "a/b", "a/b/c", "a/b/c/l2", "a", "a/b", "a/b/c", "a/b/c/d", "a/b/c/d/e", "a/b/c/d/e/f"}
		b.ReportAllocs()
		for b.Loop() {
			for _, q := range walk {
				q = filepath.Join(root, q)
				if err := unix.Lstat(q, &st); err != nil {
					b.Fatal(err)
				}
				if st.Mode&unix.S_IFMT == unix.S_IFLNK {
					if _, err := unix.Readlink(q, buf); err != nil {
						b.Fatal(err)
					}
				}
			}
		}
	})
	for _, cache := range []bool{false, true} {
		name := "nocache"
		if cache {
			name = "cache"
		}
		b.Run(name, func(b *testing.B) {
			m, err := pathmap.New(pathmap.Config{Root: root, Cache: cache})
			if err != nil {
				b.Fatal(err)
			}
			req := pathmap.Request{Cwd: "/", Path: p, Follow: true}
			want := filepath.Join(root, "a/b/c/d/e/f")
			b.ReportAllocs()
			for b.Loop() {
				r, err := m.Resolve(req)
				if err != nil || r.Host != want {
					b.Fatalf("Resolve = %+v, %v", r, err)
				}
			}
		})
	}
}

// BenchmarkResolveRelative resolves a name relative to a cwd five
// directories deep, with the cache: the cost of starting at the cwd.
func BenchmarkResolveRelative(b *testing.B) {
	root := b.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "a/b/c/d/e"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "a/b/c/d/e/f"), nil, 0o644); err != nil {
		b.Fatal(err)
	}
	m, err := pathmap.New(pathmap.Config{Root: root, Cache: true})
	if err != nil {
		b.Fatal(err)
	}
	req := pathmap.Request{Cwd: "/a/b/c/d/e", Path: "f", Follow: true}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := m.Resolve(req); err != nil {
			b.Fatal(err)
		}
	}
}
