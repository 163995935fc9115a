package tests

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// chrootRun runs argv in a real chroot of dir as root: the reference the
// rootless mode must match.
func chrootRun(t *testing.T, dir string, argv ...string) result {
	t.Helper()
	requireRoot(t)
	return runCmd(t, exec.Command("chroot", append([]string{dir}, argv...)...))
}

// withoutOwners drops the owner and group columns of ls -l output, and
// the lines of the directories rootless mode binds from the host (and the
// block total, which counts them).
func withoutOwners(ls string) string {
	var out []string
	for _, l := range strings.Split(ls, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && f[0] == "total" {
			// Counts the blocks of the bound directories too.
			continue
		}
		if len(f) < 7 {
			out = append(out, l)
			continue
		}
		switch f[len(f)-1] {
		case "proc", "sys", "dev":
			continue
		}
		out = append(out, strings.Join(append(f[:2:2], f[4:]...), " "))
	}
	return strings.Join(out, "\n")
}

func TestRootlessDebian(t *testing.T) {
	g := newGuest(t, debianTarball(t, false))

	if got := g.sh(t, "bash -c 'echo $BASH_VERSION'"); !strings.HasPrefix(got, "5.2") {
		t.Errorf("bash version: %q", got)
	}
	ls := []string{"ls", "-la", "--time-style=+%s", "/"}
	r, want := g.run(t, ls...), chrootRun(t, g.dir, ls...)
	if r.Code != 0 || want.Code != 0 {
		t.Fatalf("ls -la /:\nrootless: %s\nchroot: %s", r, want)
	}
	if withoutOwners(r.Stdout) != withoutOwners(want.Stdout) {
		t.Errorf("ls -la / differs from a chroot's:\nrootless:\n%s\nchroot:\n%s", r.Stdout, want.Stdout)
	}
	find := []string{"sh", "-c", "find /usr | sort | md5sum"}
	r, want = g.run(t, find...), chrootRun(t, g.dir, find...)
	if r.Code != 0 || r.Stdout != want.Stdout {
		t.Errorf("find /usr differs from a chroot's:\nrootless: %s\nchroot: %s", r, want)
	}
	if got := g.sh(t, `perl -e 'print join(",", map { $_ * 2 } 1..3), "\n"'`); got != "2,4,6\n" {
		t.Errorf("perl: %q", got)
	}

	// File operations on guest paths.
	out := g.sh(t, `set -e
cd /tmp
mkdir -p src/sub && echo one > src/sub/f && ln -s sub/f src/link
tar -cf /tmp/t.tar src && mkdir x && tar -xf /tmp/t.tar -C x
cp -a src copy && mv copy moved
cat x/src/link moved/link
readlink moved/link
rm -r src x moved t.tar
ls -A /tmp`)
	if out != "one\none\nsub/f\n" {
		t.Errorf("file operations: %q", out)
	}
}

func TestRootlessDebianBuild(t *testing.T) {
	g := newGuest(t, debianTarball(t, true))
	out := g.sh(t, `set -e
mkdir -p /tmp/p && cd /tmp/p
for i in 1 2 3 4; do printf 'int f%d(void) { return %d; }\n' $i $i > f$i.c; done
cat > main.c <<'C'
#include <stdio.h>
int f1(void), f2(void), f3(void), f4(void);
int main(void) { printf("sum=%d\n", f1() + f2() + f3() + f4()); return 0; }
C
cat > Makefile <<'M'
OBJS = main.o f1.o f2.o f3.o f4.o
prog: $(OBJS)
	gcc -o $@ $(OBJS)
%.o: %.c
	gcc -O2 -c -o $@ $<
M
make -s -j2
./prog
gcc -o hello -x c - <<'C'
#include <stdio.h>
int main(void) { puts("hello from gcc"); return 0; }
C
./hello`)
	if out != "sum=10\nhello from gcc\n" {
		t.Errorf("build: %q", out)
	}
}

// A dynamic program whose PT_INTERP names, on the host, a root-owned file
// identical to the guest's loader is given to the kernel as it is; any
// other goes through the guest's loader. Both must look the same to the
// guest but for the path of the loader's mapping, which tells them apart.
func TestRootlessHostLoader(t *testing.T) {
	g := newGuest(t, debianTarball(t, false))
	const interp = "/lib64/ld-linux-x86-64.so.2"
	script := `grep -o '/[^ ]*ld-linux-x86-64.so.2' /proc/self/maps | head -n 1
cat /proc/self/cmdline | tr '\0' ' '; echo
cat /proc/self/comm
readlink /proc/self/exe
bash -c 'echo "$BASH_VERSION $0"' arg0
ls -l /bin/true | cut -d' ' -f1`
	run := func(env ...string) (maps, rest string) {
		t.Helper()
		cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.dir, "--", "/bin/sh", "-c", script)
		cmd.Env = append(cmd.Env, append(env, "NOOK_HOME="+g.home)...)
		r := runCmd(t, cmd)
		if r.Code != 0 {
			t.Fatal(r)
		}
		maps, rest, _ = strings.Cut(r.Stdout, "\n")
		return maps, rest
	}
	hostFile, _ := filepath.EvalSymlinks(interp)
	same := sameFile(t, hostFile, filepath.Join(g.dir, "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"))

	mapsOn, on := run()
	mapsOff, off := run("NOOK_HOSTLOADER=off")
	want := "cat /proc/self/cmdline \ncat\n/usr/bin/readlink\n"
	if !strings.HasPrefix(on, want) || on != off {
		t.Fatalf("the guest sees a difference:\nhost loader:\n%s\nguest loader:\n%s", on, off)
	}
	if !strings.HasPrefix(mapsOff, g.dir+"/") {
		t.Errorf("NOOK_HOSTLOADER=off: loader mapped from %q, want the guest's under %s", mapsOff, g.dir)
	}
	if same && strings.HasPrefix(mapsOn, g.dir+"/") {
		t.Errorf("the host's loader is the guest's, but the guest's was started: %q", mapsOn)
	}
	if !same && mapsOn != mapsOff {
		t.Errorf("the host's loader differs from the guest's, but was mapped: %q", mapsOn)
	}

	// A guest loader that differs by one byte from the host's is the one
	// that runs.
	g.sh(t, "printf '\\0' >> /usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
	if m, r := run(); !strings.HasPrefix(m, g.dir+"/") || r != off {
		t.Errorf("a changed guest loader: mapped %q, output:\n%s", m, r)
	}
}

// sameFile tells whether files a and b have the same bytes.
func sameFile(t *testing.T, a, b string) bool {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(x, y)
}
