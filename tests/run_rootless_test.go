package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The run command's preparation in rootless mode: the same user setup,
// environment, ephemeral copies and layers as root mode, handed to the
// tracer. (The tracer's own behaviour is tested in its files.)

func rootlessStore(t *testing.T) (*unprivUser, string) {
	t.Helper()
	u := unprivileged(t)
	home := filepath.Join(u.TempDir(t), "store")
	r := u.Nook(t, home, "import", "--name", "a320", sharedRootfs(t, alpine320))
	if r.Code != 0 {
		t.Fatalf("import: %s", r)
	}
	return u, home
}

func TestRunRootlessUser(t *testing.T) {
	u, home := rootlessStore(t)
	passwd := filepath.Join(home, "rootfs", "a320", "rootfs", "etc", "passwd")
	args := []string{"run", "--mode", "rootless", "-u", "myuser:2000", "-g", "mygroup:2000", "a320", "--",
		"sh", "-c", "cd && touch x && ls -ld . x && id"}
	r := u.Nook(t, home, args...)
	if r.Code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 3 || !strings.Contains(lines[0], " myuser ") || !strings.Contains(lines[0], " mygroup ") ||
		!strings.Contains(lines[1], " myuser ") || !strings.Contains(lines[1], " mygroup ") ||
		lines[2] != "uid=2000(myuser) gid=2000(mygroup) groups=2000(mygroup)" {
		t.Fatalf("home and file owners, id:\n%s", r.Stdout)
	}
	before, beforeSt := readWithStat(t, passwd)
	if r := u.Nook(t, home, args...); r.Code != 0 {
		t.Fatal(r)
	}
	after, afterSt := readWithStat(t, passwd)
	if !bytes.Equal(before, after) || beforeSt.Mtim != afterSt.Mtim || beforeSt.Ino != afterSt.Ino {
		t.Fatal("second run rewrote /etc/passwd")
	}
	r = u.Nook(t, home, "run", "--mode", "rootless", "-u", "myuser:2001", "a320", "true")
	if r.Code != 125 || !strings.Contains(r.Stderr, "nook: error: user myuser exists in the guest with uid 2000, not 2001") {
		t.Fatal(r)
	}
}

func TestRunRootlessEphemeralLayers(t *testing.T) {
	u, home := rootlessStore(t)
	stored := filepath.Join(home, "rootfs", "a320", "rootfs")
	layer := filepath.Join(u.TempDir(t), "layer")
	for p, c := range map[string]string{"etc/.wh.motd": "", "added/file": "new\n"} {
		full := filepath.Join(layer, p)
		if err := os.MkdirAll(filepath.Dir(full), 0755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0644); err != nil {
			t.Fatal(err)
		}
	}
	r := runCmd(t, exec.Command("chown", "-R", u.Name, layer))
	if r.Code != 0 {
		t.Fatal(r)
	}
	before := treeSum(t, stored)
	// The guest root changes root's files in an ephemeral copy; a guest
	// user is refused as in a real chroot, and gets its home there.
	r = u.Nook(t, home, "run", "--mode", "rootless", "--ephemeral", "a320", "--",
		"sh", "-c", "echo changed > /etc/issue && rm /bin/ls && cat /etc/issue && test ! -e /bin/ls")
	if r.Code != 0 || r.Stdout != "changed\n" {
		t.Fatal(r)
	}
	r = u.Nook(t, home, "run", "--mode", "rootless", "--ephemeral", "-u", "eph:3000", "a320", "--",
		"sh", "-c", "id -u && ls -ld ~ && touch ~/f && ! rm /bin/ls 2>/dev/null && test -e /bin/ls")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "3000\n") || !strings.Contains(r.Stdout, " eph ") {
		t.Fatal(r)
	}
	r = u.Nook(t, home, "run", "--mode", "rootless", "--layer", layer, "a320", "--",
		"sh", "-c", "cat /added/file; test -e /etc/motd && echo motd; ls /added")
	if r.Code != 0 || r.Stdout != "new\nfile\n" {
		t.Fatal(r)
	}
	if after := treeSum(t, stored); after != before {
		t.Fatalf("stored tree changed: %s -> %s", before, after)
	}
	if left := tmpEntries(t, home); len(left) != 0 {
		t.Fatalf("ephemeral runs left %v", left)
	}
}

func TestRunRootlessHostBindsEnvStatus(t *testing.T) {
	u, home := rootlessStore(t)
	run := func(args ...string) result {
		t.Helper()
		return u.Nook(t, home, append([]string{"run", "--mode", "rootless"}, args...)...)
	}
	if r := run("--host-binds=", "a320", "sh", "-c", "ls -A /proc | wc -l"); r.Code != 0 || strings.TrimSpace(r.Stdout) != "0" {
		t.Fatalf("--host-binds= still shows /proc: %s", r)
	}
	if r := run("a320", "sh", "-c", "test -e /proc/self/status && echo proc"); r.Stdout != "proc\n" {
		t.Fatalf("default /proc: %s", r)
	}
	if r := run("-w", "/etc", "-e", "A=b", "a320", "sh", "-c", `echo "$(pwd) $A $HOME $USER"`); r.Stdout != "/etc b /root root\n" {
		t.Fatal(r)
	}
	if r := run("a320", "sh", "-c", "exit 7"); r.Code != 7 {
		t.Fatal(r)
	}
	if r := run("a320", "nosuchcommand"); r.Code != 127 || !strings.HasPrefix(r.Stderr, "nook: error: ") {
		t.Fatal(r)
	}
	r := u.Nook(t, home, "run", "--mode", "root", "a320", "true")
	if r.Code != 125 || !strings.Contains(r.Stderr, "nook: error: root mode needs root") {
		t.Fatalf("--mode root without root: %s", r)
	}
}
