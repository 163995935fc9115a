package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// The rootless tests run nook as a real unprivileged user (unprivileged(t))
// on trees that user unpacked, so the tracer, not privilege, keeps the guest
// inside.

// guest is a rootfs tree unpacked by the unprivileged user.
type guest struct {
	u    *unprivUser
	home string // NOOK_HOME
	dir  string // the guest root
	base string // the directory holding dir: host-only files go here
}

func newGuest(t *testing.T, tarball string) *guest {
	t.Helper()
	u := unprivileged(t)
	base := u.TempDir(t)
	g := &guest{u: u, base: base, dir: filepath.Join(base, "root"), home: filepath.Join(base, "home")}
	for _, d := range []string{g.dir, g.home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	u.Untar(t, tarball, g.dir)
	// A file only the host has, beside the guest root: no path from the
	// guest may reach it.
	if err := os.WriteFile(filepath.Join(base, "HOSTONLY"), []byte("host secret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return g
}

// run runs argv in the guest as the unprivileged user.
func (g *guest) run(t *testing.T, argv ...string) result {
	t.Helper()
	return g.u.Nook(t, g.home, append([]string{"run", "--mode", "rootless", g.dir, "--"}, argv...)...)
}

// sh runs a shell script in the guest and fails t unless it exits 0.
func (g *guest) sh(t *testing.T, script string) string {
	t.Helper()
	r := g.run(t, "/bin/sh", "-c", script)
	if r.Code != 0 {
		t.Fatalf("%s:\n%s", script, r)
	}
	return r.Stdout
}

// put writes a file into the guest, owned by the user.
func (g *guest) put(t *testing.T, name string, data []byte, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(g.dir, name)
	if err := os.WriteFile(p, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, g.u.UID, g.u.GID); err != nil {
		t.Fatal(err)
	}
}

// musl compiles C source src with musl-gcc (static when static) and
// returns the program.
func musl(t *testing.T, src string, static bool, libs ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("musl-gcc"); err != nil {
		t.Skip("musl-gcc not installed")
	}
	d := t.TempDir()
	c := filepath.Join(d, "prog.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"-O1", "-o", filepath.Join(d, "prog"), c}
	if static {
		args = append([]string{"-static"}, args...)
	}
	args = append(args, libs...)
	out, err := exec.Command("musl-gcc", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("musl-gcc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(d, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var alpines = []string{alpine312, alpine320}

func TestRootlessAlpine(t *testing.T) {
	for _, tb := range alpines {
		t.Run(tb, func(t *testing.T) {
			g := newGuest(t, sharedRootfs(t, tb))

			// ls / shows the guest's tree, not the host's.
			r := g.run(t, "ls", "-1a", "/")
			if r.Code != 0 {
				t.Fatal(r)
			}
			ents, err := os.ReadDir(g.dir)
			if err != nil {
				t.Fatal(err)
			}
			want := ".\n..\n"
			for _, e := range ents {
				want += e.Name() + "\n"
			}
			if r.Stdout != want {
				t.Errorf("ls / = %q, want %q", r.Stdout, want)
			}

			if got := g.sh(t, "cd /; cd ..; pwd; cd /usr/bin; /bin/pwd"); got != "/\n/usr/bin\n" {
				t.Errorf("pwd: %q", got)
			}
			// In a removed working directory: getcwd fails, "." is
			// empty, nothing can be created, ".." is where it was.
			removed := "mkdir /tmp/d; cd /tmp/d; rmdir /tmp/d; ls -a .; echo ls=$?; touch x; echo touch=$?; " +
				"cat ../../../etc/alpine-release; echo cat=$?; /bin/pwd; echo pwd=$?"
			if r, want := g.run(t, "sh", "-c", removed), chrootRun(t, g.dir, "sh", "-c", removed); r.Stdout != want.Stdout {
				t.Errorf("in a removed directory:\nrootless: %s\nchroot: %s", r, want)
			}
			if got := g.sh(t, "readlink /proc/self/exe; readlink /proc/$$/exe"); got != "/bin/busybox\n/bin/busybox\n" {
				t.Errorf("readlink /proc/self/exe: %q", got)
			}
			if got := g.sh(t, "cd /etc; readlink /proc/self/cwd; readlink /proc/self/root"); got != "/etc\n/\n" {
				t.Errorf("readlink cwd/root: %q", got)
			}
			if r := g.run(t, "sh", "-c", "exit 7"); r.Code != 7 {
				t.Errorf("exit 7: %s", r)
			}
			if r := g.run(t, "no-such-command"); r.Code != 127 || !strings.Contains(r.Stderr, "no-such-command: command not found") {
				t.Errorf("missing command: %s", r)
			}
			if r := g.run(t, "/etc/passwd"); r.Code != 126 {
				t.Errorf("non-executable command: %s", r)
			}
			if r := g.run(t, "sh", "-c", "kill -TERM $$"); r.Code != 128+15 {
				t.Errorf("death by SIGTERM: %s", r)
			}
			release := strings.TrimPrefix(strings.TrimSuffix(tb, "-x86_64.tar.gz"), "alpine-minirootfs-")
			if got := g.sh(t, "cat /etc/alpine-release"); got != release+"\n" {
				t.Errorf("alpine-release %q, want %s", got, release)
			}
			// ps lists the guest's processes through the host's /proc.
			out := g.sh(t, "sleep 5 & ps -o pid,args; kill $!")
			mustContain(t, out, "sleep 5", "ps -o pid,args")

			// Fake root inside, the real unprivileged user outside.
			if got := g.sh(t, "id -u; id -g"); got != "0\n0\n" {
				t.Errorf("id: %q", got)
			}
			// /proc/self/status agrees with id (synthesized, see
			// rootless_procfs_test.go).
			if out = g.sh(t, "grep -E '^(Uid|Gid):' /proc/self/status"); out != "Uid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n" {
				t.Errorf("status does not agree with id: %q", out)
			}

			// Files written by the guest land in the tree, owned by
			// the unprivileged user: the guest process is that user.
			g.sh(t, "mkdir -p /tmp/a/b && echo hi > /tmp/a/b/f && ln -s /tmp/a/b/f /tmp/link && mv /tmp/a /tmp/c && cat /tmp/link 2>/dev/null; cat /tmp/c/b/f")
			if b, err := os.ReadFile(filepath.Join(g.dir, "tmp/c/b/f")); err != nil || string(b) != "hi\n" {
				t.Errorf("file written in guest: %q %v", b, err)
			}
			if fi, err := os.Stat(filepath.Join(g.dir, "tmp/c/b/f")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(g.u.UID) {
				t.Errorf("guest process is not the unprivileged user: %v %v", fi, err)
			}
		})
	}
}

func TestRootlessScripts(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	g.put(t, "s0", []byte("#!/bin/sh\necho \"0=$0 args=$*\"\n"), 0o755)
	// Nested interpreters, each with an optional argument, some through
	// relative paths and symlinks.
	g.put(t, "s1", []byte("#!/s0 one\n"), 0o755)
	g.put(t, "s2", []byte("#! /s1   two words \n"), 0o755)
	if err := os.Symlink("/s2", filepath.Join(g.dir, "s2link")); err != nil {
		t.Fatal(err)
	}
	os.Lchown(filepath.Join(g.dir, "s2link"), g.u.UID, g.u.GID)

	if got := g.sh(t, "/s0 a b"); got != "0=/s0 args=a b\n" {
		t.Errorf("s0: %q", got)
	}
	if got := g.sh(t, "/s1 a"); got != "0=/s0 args=one /s1 a\n" {
		t.Errorf("s1: %q", got)
	}
	if got := g.sh(t, "cd / && ./s2link x"); got != "0=/s0 args=one /s1 two words ./s2link x\n" {
		t.Errorf("s2: %q", got)
	}
	// The kernel follows at most five #! files (the sixth fails with
	// ELOOP); a missing interpreter is ENOENT (127 from the shell).
	for i := 3; i <= 6; i++ {
		g.put(t, fmt.Sprintf("s%d", i), []byte(fmt.Sprintf("#!/s%d\n", i-1)), 0o755)
	}
	if got := g.sh(t, "/s4"); got != "0=/s0 args=one /s1 two words /s2 /s3 /s4\n" {
		t.Errorf("s4: %q", got)
	}
	r := g.run(t, "/s5")
	if r.Code != 126 || !strings.Contains(r.Stderr, "too many levels of symbolic links") {
		t.Errorf("s5 (six scripts): %s", r)
	}
	g.put(t, "bad", []byte("#!/no/such/interp\n"), 0o755)
	if r := g.run(t, "/bad"); r.Code != 127 {
		t.Errorf("missing interpreter: %s", r)
	}
}

const helloC = `#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
	char buf[256];
	ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
	buf[n < 0 ? 0 : n] = 0;
	printf("argv0=%s exe=%s uid=%d\n", argv[0], buf, (int)getuid());
	return argc > 1 ? 3 : 0;
}
`

const threadsC = `#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#define N 8
static char want[64];
static int bad;
static void *work(void *arg) {
	char buf[64];
	for (int i = 0; i < 200; i++) {
		int fd = open("/etc/alpine-release", O_RDONLY);
		if (fd < 0) { __sync_fetch_and_add(&bad, 1); continue; }
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		buf[n < 0 ? 0 : n] = 0;
		if (strcmp(buf, want)) __sync_fetch_and_add(&bad, 1);
		char cwd[64];
		if (!getcwd(cwd, sizeof cwd) || strcmp(cwd, "/etc")) __sync_fetch_and_add(&bad, 1);
	}
	return arg;
}
int main(void) {
	int fd = open("/etc/alpine-release", O_RDONLY);
	ssize_t n = read(fd, want, sizeof want - 1);
	want[n < 0 ? 0 : n] = 0;
	close(fd);
	chdir("/etc");
	pthread_t th[N];
	for (int i = 0; i < N; i++) pthread_create(&th[i], 0, work, 0);
	for (int i = 0; i < N; i++) pthread_join(th[i], 0);
	printf("threads done, bad=%d\n", bad);
	return bad != 0;
}
`

func TestRootlessPrograms(t *testing.T) {
	for _, tb := range alpines {
		t.Run(tb, func(t *testing.T) {
			g := newGuest(t, sharedRootfs(t, tb))
			g.put(t, "usr/bin/hello-dyn", musl(t, helloC, false), 0o755)
			g.put(t, "usr/bin/hello-static", musl(t, helloC, true), 0o755)
			g.put(t, "usr/bin/threads", musl(t, threadsC, false, "-lpthread"), 0o755)

			if got := g.sh(t, "hello-dyn"); got != "argv0=hello-dyn exe=/usr/bin/hello-dyn uid=0\n" {
				t.Errorf("dynamic musl program: %q", got)
			}
			if got := g.sh(t, "cd /usr && bin/hello-static"); got != "argv0=bin/hello-static exe=/usr/bin/hello-static uid=0\n" {
				t.Errorf("static musl program: %q", got)
			}
			if r := g.run(t, "hello-dyn", "x"); r.Code != 3 {
				t.Errorf("exit status of a dynamic program: %s", r)
			}
			if got := g.sh(t, "threads"); got != "threads done, bad=0\n" {
				t.Errorf("threads: %q", got)
			}
		})
	}
}

const goProg = `package main

import (
	"fmt"
	"os"
	"os/exec"
)

func main() {
	exe, err := os.Executable()
	if err != nil {
		panic(err)
	}
	wd, _ := os.Getwd()
	if os.Getenv("CHILD") != "" {
		fmt.Printf("child exe=%s wd=%s\n", exe, wd)
		return
	}
	fmt.Printf("parent exe=%s wd=%s\n", exe, wd)
	// Re-executing /proc/self/exe, as Go programs and busybox do.
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), "CHILD=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Println("re-exec:", err)
		os.Exit(1)
	}
}
`

// goBuild builds a static Go program from src and returns it.
func goBuild(t *testing.T, src string) []byte {
	t.Helper()
	d := t.TempDir()
	if err := os.WriteFile(filepath.Join(d, "main.go"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "go.mod"), []byte("module goprog\n\ngo 1.21\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", "goprog", ".")
	build.Dir = d
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-mod=mod")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(d, "goprog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRootlessGoStatic(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "usr/local/bin/goprog", goBuild(t, goProg), 0o755)
	got := g.sh(t, "cd /tmp && goprog")
	if got != "parent exe=/usr/local/bin/goprog wd=/tmp\nchild exe=/usr/local/bin/goprog wd=/tmp\n" {
		t.Errorf("static Go program: %q", got)
	}
}

// escapeC tries the syscalls that could bypass translation; each line says
// what the guest got.
const escapeC = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdlib.h>

struct how { uint64_t flags, mode, resolve; };

static const char *ename(int e) {
	switch (e) {
	case ENOENT: return "ENOENT";
	case EXDEV: return "EXDEV";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ENOEXEC: return "ENOEXEC";
	case ELOOP: return "ELOOP";
	}
	static char buf[32];
	snprintf(buf, sizeof buf, "errno %d", e);
	return buf;
}
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

static void show(const char *what, long r) {
	if (r < 0) { printf("%s: %s\n", what, ename(errno)); return; }
	char buf[64] = "";
	ssize_t n = read((int)r, buf, sizeof buf - 1);
	if (n > 0) { buf[n] = 0; buf[strcspn(buf, "\n")] = 0; }
	printf("%s: fd %s\n", what, buf);
	close((int)r);
}

int main(int argc, char **argv) {
	const char *host = argv[1];   /* host path of HOSTONLY */
	const char *hostbin = argv[2]; /* a host-only program */
	struct how h = { O_RDONLY, 0, 0 };
	show("openat2", syscall(SYS_openat2, AT_FDCWD, host, &h, sizeof h));
	h.resolve = RESOLVE_IN_ROOT;
	show("openat2-in-root", syscall(SYS_openat2, AT_FDCWD, host, &h, sizeof h));
	int root = open("/", O_RDONLY | O_DIRECTORY);
	/* Inside the guest root, RESOLVE_IN_ROOT sees the guest's binds. */
	h.resolve = RESOLVE_IN_ROOT;
	show("openat2-in-root-proc", syscall(SYS_openat2, root, "/proc/self/comm", &h, sizeof h));
	show("openat2-in-root-dotdot", syscall(SYS_openat2, root, "../../../etc/alpine-release", &h, sizeof h));
	h.resolve = RESOLVE_BENEATH;
	show("openat2-beneath", syscall(SYS_openat2, root, "../HOSTONLY", &h, sizeof h));
	h.resolve = 0;
	show("openat2-dotdot", syscall(SYS_openat2, root, "../HOSTONLY", &h, sizeof h));
	show("openat-dotdot", openat(root, "../HOSTONLY", O_RDONLY));
	int up = openat(root, "..", O_RDONLY | O_DIRECTORY);
	struct stat a, b;
	fstat(root, &a); fstat(up, &b);
	printf("dotdot-of-root: %s\n", a.st_ino == b.st_ino && a.st_dev == b.st_dev ? "same" : "different");
	show("openat-up-HOSTONLY", openat(up, "HOSTONLY", O_RDONLY));
	char *av[] = { "x", NULL }, *ev[] = { NULL };
	long r = syscall(SYS_execveat, AT_FDCWD, hostbin, av, ev, 0);
	printf("execveat: %s\n", r < 0 ? ename(errno) : "ran");
	r = syscall(SYS_execveat, root, hostbin + 1, av, ev, 0);
	printf("execveat-rel: %s\n", r < 0 ? ename(errno) : "ran");
	r = syscall(SYS_io_uring_setup, 4, calloc(1, 120));
	printf("io_uring_setup: %s\n", r < 0 ? ename(errno) : "ok");
	char fh[128 + 8] = {0};
	*(unsigned *)fh = 128;
	int mnt;
	r = syscall(SYS_name_to_handle_at, AT_FDCWD, "/", fh, &mnt, 0);
	printf("name_to_handle_at: %s\n", r < 0 ? ename(errno) : "ok");
	r = syscall(SYS_chroot, "/tmp");
	printf("chroot: %s\n", r < 0 ? ename(errno) : "ok");
	return 0;
}
`

func TestRootlessEscapeSyscalls(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "escape", musl(t, escapeC, true), 0o755)
	hostOnly := filepath.Join(g.base, "HOSTONLY")
	hostBin, err := exec.LookPath("dpkg")
	if err != nil {
		hostBin = "/usr/bin/apt"
	}
	r := g.run(t, "/escape", hostOnly, hostBin)
	if r.Code != 0 {
		t.Fatal(r)
	}
	want := map[string]string{
		"openat2":                "ENOENT",
		"openat2-in-root":        "ENOENT",
		"openat2-in-root-proc":   "fd escape",
		"openat2-in-root-dotdot": "fd 3.20.3",
		"openat2-beneath":        "EXDEV",
		"openat2-dotdot":         "ENOENT",
		"openat-dotdot":          "ENOENT",
		"dotdot-of-root":         "same",
		"openat-up-HOSTONLY":     "ENOENT",
		"execveat":               "ENOENT",
		"execveat-rel":           "ENOENT",
		"io_uring_setup":         "ENOSYS",
		"name_to_handle_at":      "EOPNOTSUPP",
		"chroot":                 "EPERM",
	}
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		k, v, _ := strings.Cut(l, ": ")
		got[k] = v
	}
	names := make([]string, 0, len(want))
	for k := range want {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t.Run(k, func(t *testing.T) {
			if got[k] != want[k] {
				t.Errorf("got %q, want %q\n%s", got[k], want[k], r)
			}
		})
	}
}

// hostLeak fails t if out shows the host-only file's content.
func hostLeak(t *testing.T, what string, r result) {
	t.Helper()
	if strings.Contains(r.Stdout, "host secret") {
		t.Errorf("%s escaped the guest:\n%s", what, r)
	}
}

func TestRootlessEscapeDotDot(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	lsRoot := g.sh(t, "ls -a /")
	for _, dir := range []string{"/..", "/../../..", "/tmp/../../../..", "../../../.."} {
		if got := g.sh(t, "cd /etc && ls -a "+dir); got != lsRoot {
			t.Errorf("ls %s = %q, want the guest root", dir, got)
		}
	}
	for _, p := range []string{"/../HOSTONLY", "/../../HOSTONLY", "../../../HOSTONLY", "/tmp/../../HOSTONLY"} {
		hostLeak(t, p, g.run(t, "sh", "-c", "cd /etc && cat "+p))
	}
	if got := g.sh(t, "cd /tmp/../../..; pwd"); got != "/\n" {
		t.Errorf("pwd after cd up: %q", got)
	}
}

func TestRootlessEscapeSymlinks(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	g.sh(t, "ln -s /.. /up && ln -s ../../../../.. /tmp/rel && mkdir -p /a/b && ln -s ../../.. /a/b/c")
	// A symlink holding the host's absolute path of the host-only file
	// means that path inside the guest.
	if err := os.Symlink(filepath.Join(g.base, "HOSTONLY"), filepath.Join(g.dir, "abs")); err != nil {
		t.Fatal(err)
	}
	lsRoot := g.sh(t, "ls -a /")
	for _, p := range []string{"/up", "/tmp/rel", "/a/b/c", "/up/up/tmp/rel"} {
		if got := g.sh(t, "ls -a "+p+"/"); got != lsRoot {
			t.Errorf("ls %s/ = %q, want the guest root", p, got)
		}
		hostLeak(t, p, g.run(t, "cat", p+"/HOSTONLY"))
	}
	hostLeak(t, "absolute host symlink", g.run(t, "cat", "/abs"))
}

func TestRootlessEscapeProc(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	lsRoot := g.sh(t, "ls -a /")
	if got := g.sh(t, "ls -a /proc/self/root/"); got != lsRoot {
		t.Errorf("ls /proc/self/root/ = %q", got)
	}
	if got := g.sh(t, "ls -a /proc/$$/root/.."); got != lsRoot {
		t.Errorf("ls /proc/$$/root/.. = %q", got)
	}
	// Other processes' roots: pid 1 (root's, another user), and nook's own
	// (the guest's parent, the same user): neither may lead out.
	for _, p := range []string{"/proc/1/root", "/proc/$PPID/root", "/proc/$PPID/cwd", "/proc/$PPID/fd/0/.."} {
		r := g.run(t, "sh", "-c", "ls -a "+p+"/")
		if r.Code == 0 && r.Stdout != lsRoot {
			t.Errorf("ls %s/ shows a host directory:\n%s", p, r)
		}
		hostLeak(t, p, g.run(t, "sh", "-c", "cat "+p+"/"+strings.TrimPrefix(g.base, "/")+"/HOSTONLY"))
	}
}

// goStressProg runs, from many goroutines at once, execs of a dynamic
// program with long argument lists and calls on long paths: the tracer's
// scratch data for them is larger than what a goroutine stack has below
// its stack pointer, so it must go elsewhere (a mapped region) for the
// program to survive.
const goStressProg = `package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
)

func main() {
	long := "/tmp/" + strings.Repeat("x", 200) + "/" + strings.Repeat("y", 200)
	if err := os.MkdirAll(long, 0o755); err != nil {
		panic(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			args := make([]string, 300)
			for i := range args {
				args[i] = fmt.Sprint(g*1000 + i)
			}
			for n := 0; n < 5; n++ {
				out, err := exec.Command("/bin/echo", args...).Output()
				if err != nil || string(out) != strings.Join(args, " ")+"\n" {
					errs <- fmt.Errorf("echo: %v %q", err, out)
					return
				}
				p := fmt.Sprintf("%s/f%d-%d", long, g, n)
				if err := os.WriteFile(p, []byte(p), 0o644); err != nil {
					errs <- err
					return
				}
				if b, err := os.ReadFile(p); err != nil || string(b) != p {
					errs <- fmt.Errorf("read %s: %v", p, err)
					return
				}
			}
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		fmt.Println(err)
		os.Exit(1)
	}
	fmt.Println("ok")
}
`

func TestRootlessGoStress(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "usr/local/bin/stress", goBuild(t, goStressProg), 0o755)
	if got := g.sh(t, "stress"); got != "ok\n" {
		t.Errorf("Go program with long argvs and paths: %q", got)
	}
}
