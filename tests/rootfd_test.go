package tests

import (
	"strings"
	"testing"
)

// TestRootlessRootDescriptor: the guest root descriptor that makes opens
// immune to the symlink-swap race (tracer/rootfd.go) cannot be closed,
// replaced or made close-on-exec by the guest, close_range around it still
// closes everything else, and opens keep working in this process and in
// an executed child. Without the protection, the opens after the attempts
// fail (openat2 on a closed or foreign descriptor).
func TestRootlessRootDescriptor(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "rootfd", musl(t, testSource(t, "rootfd/rootfd.c"), true), 0o755)
	r := g.run(t, "/rootfd")
	if r.Code != 0 {
		t.Fatal(r)
	}
	want := []string{
		"close: EBADF",
		"close-highbits: EBADF",
		"dup2: EBADF",
		"dup3: EBADF",
		"setfd: EBADF",
		"open-after-close: ok",
		"dup2-above: ok",
		"close_range: ok",
		"above-closed: EBADF",
		"open-after-close_range: ok",
		"close_range-exact: ok",
		"open-after-exact: ok",
		"close_range-cloexec: ok",
		"child-open: ok",
		"open-at-end: ok",
	}
	got := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s\nstderr: %s", r.Stdout, strings.Join(want, "\n"), r.Stderr)
	}
}

// TestRootlessWithoutOpenat2: on a kernel without openat2 (before 5.6, or
// a container that refuses it), which NOOK_OPENAT2=off stands for, the
// guest holds no root descriptor and paths are translated as before the
// race fix: ordinary work still runs, and the escapes a non-racing guest
// tries still fail.
func TestRootlessWithoutOpenat2(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.dir, "--", "/bin/sh", "-c", `
set -e
ls /proc/self/fd/ | grep -qx 1023 && echo HAS-ROOT-FD
cat /etc/alpine-release
mkdir -p /tmp/w/d && cd /tmp/w && echo hi > d/f && ln -s d l && cat l/f && mv d e && ls e
chown 12:34 e/f && stat -c '%u:%g' e/f
readlink /proc/self/exe
cat ../../../../../../HOSTONLY 2>/dev/null || echo no-host-file
`)
	cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home, "NOOK_OPENAT2=off")
	r := runCmd(t, cmd)
	if r.Code != 0 {
		t.Fatal(r)
	}
	want := "3.20.3\nhi\nf\n12:34\n/bin/busybox\nno-host-file\n"
	if r.Stdout != want {
		t.Fatalf("got:\n%s\nwant:\n%s\nstderr: %s", r.Stdout, want, r.Stderr)
	}
}
