package tracer

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestHostLoaderSame(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: the host loader must be owned by root")
	}
	dir := t.TempDir()
	loader := []byte("\x7fELF a loader's bytes")
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	guest := write("guest", loader, 0o755)
	var gst unix.Stat_t
	if err := unix.Stat(guest, &gst); err != nil {
		t.Fatal(err)
	}
	other := append([]byte(nil), loader...)
	other[len(other)-1] ^= 1
	for _, tc := range []struct {
		name  string
		setup func() string
		want  bool
	}{
		{"identical", func() string { return write("same", loader, 0o755) }, true},
		{"through a symlink", func() string {
			p := filepath.Join(dir, "link")
			if err := os.Symlink(write("same2", loader, 0o755), p); err != nil {
				t.Fatal(err)
			}
			return p
		}, true},
		{"same size, other bytes", func() string { return write("other", other, 0o755) }, false},
		{"longer", func() string { return write("longer", append(loader, 0), 0o755) }, false},
		{"group-writable", func() string { return write("gw", loader, 0o775) }, false},
		{"world-writable", func() string { return write("ww", loader, 0o757) }, false},
		{"not executable", func() string { return write("nx", loader, 0o644) }, false},
		{"not owned by root", func() string {
			p := write("user", loader, 0o755)
			if err := os.Chown(p, 1, 1); err != nil {
				t.Fatal(err)
			}
			return p
		}, false},
		{"a directory", func() string { return dir }, false},
		{"missing", func() string { return filepath.Join(dir, "missing") }, false},
		{"relative", func() string { return "guest" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := &tracer{hostLoaders: map[hostLoaderKey]bool{}}
			interp := tc.setup()
			if got := tr.hostLoaderSame(interp, guest, &gst); got != tc.want {
				t.Fatalf("hostLoaderSame(%s) = %v, want %v", interp, got, tc.want)
			}
			// The cached answer is the same.
			if got := tr.hostLoaderSame(interp, guest, &gst); got != tc.want {
				t.Fatalf("cached: %v, want %v", got, tc.want)
			}
		})
	}

	// A new version of the host's file (a package upgrade writes a new
	// file and renames it) is a new comparison, not the cached answer.
	tr := &tracer{hostLoaders: map[hostLoaderKey]bool{}}
	host := write("changing", loader, 0o755)
	if !tr.hostLoaderSame(host, guest, &gst) {
		t.Fatal("identical files compare different")
	}
	if err := os.Rename(write("new", other, 0o755), host); err != nil {
		t.Fatal(err)
	}
	if tr.hostLoaderSame(host, guest, &gst) {
		t.Fatal("a rewritten host loader still compares identical")
	}
}
