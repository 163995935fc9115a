package pathmap_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// hook plays the tracer for one guest process.
type hook struct {
	pid   int
	links map[string]string
}

func (h hook) Self() (int, int) { return h.pid, h.pid }

func (h hook) Link(pid int, name string) (string, bool) {
	if pid != h.pid {
		return "", false
	}
	g, ok := h.links[name]
	return g, ok
}

// visHook also says which one process is visible (pathmap.VisibilityHook).
type visHook struct {
	hook
	visible int
}

func (h visHook) Visible(pid int) bool { return pid == h.visible }

// TestResolveProc resolves /proc paths of a real process (the "guest") on
// the real /proc bound into a guest tree: /proc/self must be the guest's,
// not the test's, and magic links must map back into the guest or be left
// to the kernel.
func TestResolveProc(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"root/etc", "root/home/u", "root/proc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	inside := filepath.Join(root, "etc/passwd")
	outside := filepath.Join(dir, "outside")
	gone := filepath.Join(root, "gone")
	for _, f := range []string{inside, outside, gone} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open := func(p string) *os.File {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	fGone := open(gone)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	// fd 3: a guest file, 4: a pipe, 5: a deleted file, 6: a host file the
	// guest cannot see, 7: a guest directory.
	cmd := exec.Command("sleep", "60")
	cmd.Dir = filepath.Join(root, "home/u")
	cmd.ExtraFiles = []*os.File{open(inside), pr, fGone, open(outside), open(filepath.Join(root, "home"))}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pid := cmd.Process.Pid
	p := "/proc/" + strconv.Itoa(pid)

	m, err := pathmap.New(pathmap.Config{Root: root, Binds: []pathmap.Bind{{Host: "/proc", Guest: "/proc"}}, Cache: true})
	if err != nil {
		t.Fatal(err)
	}
	h := hook{pid: pid, links: map[string]string{"cwd": "/home/u"}}
	cases := []struct {
		path        string
		follow      bool
		host, guest string
		err         error
	}{
		{"/proc/self", false, "/proc/self", "/proc/self", nil},
		{"/proc/self", true, p, p, nil},
		{"/proc/self/", false, p + "/", p, nil},
		{"/proc/thread-self", true, p + "/task/" + strconv.Itoa(pid), p + "/task/" + strconv.Itoa(pid), nil},
		{"/proc/mounts", true, p + "/mounts", p + "/mounts", nil},
		{"/proc/self/cwd", true, root + "/home/u", "/home/u", nil},
		{"/proc/self/cwd/new", true, root + "/home/u/new", "/home/u/new", nil},
		{"/proc/self/cwd/../../etc/passwd", true, inside, "/etc/passwd", nil},
		{"/proc/self/cwd", false, p + "/cwd", p + "/cwd", nil},
		{"/proc/self/fd/3", true, inside, "/etc/passwd", nil},
		{"/proc/self/fd/3", false, p + "/fd/3", p + "/fd/3", nil},
		{"/proc/self/fd/3/..", true, "", "", unix.ENOTDIR},
		{"/proc/thread-self/fd/3", true, inside, "/etc/passwd", nil},
		{"/proc/self/fd/4", true, p + "/fd/4", p + "/fd/4", nil},
		{"/proc/self/fd/5", true, p + "/fd/5", p + "/fd/5", nil},
		{"/proc/self/fd/6", true, p + "/fd/6", p + "/fd/6", nil},
		{"/proc/self/fd/7/u", true, root + "/home/u", "/home/u", nil},
		{"/proc/self/fd/7/..", true, root, "/", nil},
		{"/proc/self/fd/99", true, p + "/fd/99", p + "/fd/99", nil},
		// exe is not known to the hook and is a host file: the kernel's.
		{"/proc/self/exe", true, p + "/exe", p + "/exe", nil},
		// root maps to the host's /, invisible: left to the kernel with
		// the rest of the path, as a chroot would leave it.
		{"/proc/self/root/etc//x", true, p + "/root/etc//x", p + "/root", nil},
	}
	for round := 0; round < 2; round++ {
		for _, c := range cases {
			r, err := m.Resolve(pathmap.Request{Cwd: "/", Path: c.path, Follow: c.follow, Proc: h})
			if c.err != nil {
				if err != c.err {
					t.Errorf("Resolve(%q, %v) = %+v, %v; want %v", c.path, c.follow, r, err, c.err)
				}
				continue
			}
			if err != nil || r.Host != c.host || r.Guest != c.guest {
				t.Errorf("Resolve(%q, %v) = %+v, %v; want host %q guest %q", c.path, c.follow, r, err, c.host, c.guest)
			}
		}
	}
	// A hook that knows the process is not the guest's: its links are
	// left to the caller whatever their target, even one inside the
	// guest (fd 3) or a guest directory (fd 7).
	other := visHook{hook: hook{pid: 1}, visible: 1}
	for _, c := range []struct{ path, host string }{
		{p + "/fd/3", p + "/fd/3"},
		{p + "/fd/7/u", p + "/fd/7/u"},
		{p + "/cwd/x", p + "/cwd/x"},
		{p + "/task/" + strconv.Itoa(pid) + "/fd/3", p + "/task/" + strconv.Itoa(pid) + "/fd/3"},
	} {
		r, err := m.Resolve(pathmap.Request{Cwd: "/", Path: c.path, Follow: true, Proc: other})
		if err != nil || r.Host != c.host {
			t.Errorf("invisible process: Resolve(%q) = %+v, %v; want host %q", c.path, r, err, c.host)
		}
	}
	// Visible, the same process's links map as before.
	r, err := m.Resolve(pathmap.Request{Cwd: "/", Path: p + "/fd/3", Follow: true, Proc: visHook{hook: h, visible: pid}})
	if err != nil || r.Host != inside {
		t.Errorf("visible process: %+v, %v; want %q", r, err, inside)
	}
	// Without a hook /proc is an ordinary bind.
	r, err = m.Resolve(pathmap.Request{Cwd: "/", Path: "/proc/1", Follow: true})
	if err != nil || r.Host != "/proc/1" {
		t.Errorf("no hook: %+v, %v", r, err)
	}
}
