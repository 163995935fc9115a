package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"golang.org/x/sys/unix"
)

// inrootTree is a guest tree with symlinks that try to leave it, and a
// host directory beside it that must never be touched.
func inrootTree(t *testing.T) (root, host string) {
	t.Helper()
	base := t.TempDir()
	root, host = filepath.Join(base, "guest"), filepath.Join(base, "host")
	for _, d := range []string{root + "/etc", root + "/var", host} {
		if err := os.MkdirAll(d, 0755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("guest hosts\n"), 0644))
	must(os.WriteFile(filepath.Join(host, "secret"), []byte("host\n"), 0644))
	must(os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(root, "etc/resolv.conf")))
	must(os.Symlink(host, filepath.Join(root, "abs")))                   // absolute, to the host's path
	must(os.Symlink("../../../../../..", filepath.Join(root, "var/up"))) // climbs past the top
	must(os.Symlink("/var/run", filepath.Join(root, "var/run")))         // a loop
	must(os.Symlink("/etc", filepath.Join(root, "etcl")))
	return root, host
}

func TestGuestRootResolve(t *testing.T) {
	root, host := inrootTree(t)
	g, err := OpenGuestRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct {
		path string
		want string // contents, or "" for an error
		err  error
	}{
		{path: "/etc/hosts", want: "guest hosts\n"},
		{path: "etcl/hosts", want: "guest hosts\n"},
		{path: "/var/up/etc/hosts", want: "guest hosts\n"},
		{path: "/../../../etc/hosts", want: "guest hosts\n"},
		{path: "/var/up/etcl/../etc/./hosts", want: "guest hosts\n"},
		{path: "/abs/secret", err: unix.ENOENT},
		{path: "/var/up/" + host + "/secret", err: unix.ENOENT},
		{path: "/var/run/x", err: unix.ELOOP},
		{path: "/etc/hosts/x", err: unix.ENOTDIR},
	} {
		data, err := g.ReadFile(tc.path)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || string(data) != tc.want {
			t.Errorf("%s: %q, %v", tc.path, data, err)
		}
	}
}

func TestGuestRootCreateFile(t *testing.T) {
	root, host := inrootTree(t)
	g, err := OpenGuestRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	for _, tc := range []struct {
		path    string
		created []string
		err     error
	}{
		{path: "/etc/hosts"},
		{path: "/etc/resolv.conf", created: []string{"/run", "/run/systemd", "/run/systemd/resolve", "/run/systemd/resolve/stub-resolv.conf"}},
		{path: "/etc/resolv.conf"},
		{path: "/new/dir/file", created: []string{"/new", "/new/dir", "/new/dir/file"}},
		// mkdir -p through a dangling directory symlink fails, as it does
		// in a chroot; nothing is created on the host either way.
		{path: "/abs/secret", err: unix.ENOENT},
		{path: "/var/run/x", err: unix.ELOOP},
	} {
		created, err := g.CreateFile(tc.path, 0644, false)
		if tc.err != nil {
			if !errors.Is(err, tc.err) {
				t.Errorf("%s: err %v, want %v", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		if !reflect.DeepEqual(created, tc.created) && !(len(created) == 0 && len(tc.created) == 0) {
			t.Errorf("%s: created %q, want %q", tc.path, created, tc.created)
		}
		if st, err := g.Stat(tc.path); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
			t.Errorf("%s: not a regular file afterwards: %v", tc.path, err)
		}
	}
	// The host directory the guest's /abs names was never written.
	if ents, _ := os.ReadDir(host); len(ents) != 1 {
		t.Fatalf("host directory changed: %v", ents)
	}
}
