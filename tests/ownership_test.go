package tests

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tarListing is `tar --numeric-owner -tv` of a tarball, one entry per line,
// sorted, with the date and time columns dropped unless keepTimes.
func tarListing(t *testing.T, tarball string, keepTimes bool) string {
	t.Helper()
	out, err := exec.Command("tar", "--numeric-owner", "-tvf", tarball).Output()
	if err != nil {
		t.Fatalf("tar -tvf %s: %v", tarball, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("odd listing line %q", l)
		}
		if !keepTimes {
			f = append(f[:3], f[5:]...)
		}
		lines = append(lines, strings.Join(f, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A non-root import records what the archive says about owners and modes,
// and export writes it back: import, export, import, export gives the
// archive's metadata each time.
func TestOwnershipImportExportRoundTrip(t *testing.T) {
	u := unprivileged(t)
	home := u.TempDir(t)
	src := sharedRootfs(t, alpine312)

	if r := u.Nook(t, home, "import", "--name", "a1", src); r.Code != 0 {
		t.Fatalf("import: %s", r)
	}
	out1 := filepath.Join(home, "a1.tar")
	if r := u.Nook(t, home, "export", "a1", out1); r.Code != 0 {
		t.Fatalf("export: %s", r)
	}
	orig := tarListing(t, src, false)
	got := tarListing(t, out1, false)
	if got != orig {
		t.Fatalf("export differs from the imported archive:\n--- archive\n%s\n--- export\n%s", orig, got)
	}
	mustContain(t, got,
		"-rw-r----- 0/42 422 ./etc/shadow",
		"drwx------ 0/0 0 ./root/",
		"dr-xr-xr-x 0/0 0 ./var/empty/",
		"drwxrwxrwt 0/0 0 ./tmp/",
	)

	if r := u.Nook(t, home, "import", "--name", "a2", out1); r.Code != 0 {
		t.Fatalf("second import: %s", r)
	}
	out2 := filepath.Join(home, "a2.tar")
	if r := u.Nook(t, home, "export", "a2", out2); r.Code != 0 {
		t.Fatalf("second export: %s", r)
	}
	if a, b := tarListing(t, out1, true), tarListing(t, out2, true); a != b {
		t.Fatalf("second round trip differs:\n--- first\n%s\n--- second\n%s", a, b)
	}
}

func TestOwnershipExportUnknownName(t *testing.T) {
	home := t.TempDir()
	r := nook(t, home, "export", "nosuch", filepath.Join(home, "x.tar"))
	if r.Code != 125 {
		t.Fatalf("export of an unknown name: %s", r)
	}
	mustContain(t, r.Stderr, "nook: error:", "nook: hint:")
}

// ownGuest is an Alpine rootfs imported into a store by the unprivileged
// user; runs use its ownership store.
type ownGuest struct {
	u    *unprivUser
	home string
	name string
}

// newOwnGuest imports the tarball at path tarball.
func newOwnGuest(t *testing.T, tarball string) *ownGuest {
	t.Helper()
	u := unprivileged(t)
	g := &ownGuest{u: u, home: u.TempDir(t), name: "g"}
	if r := u.Nook(t, g.home, "import", "--name", g.name, tarball); r.Code != 0 {
		t.Fatalf("import: %s", r)
	}
	return g
}

// sh runs script in the guest (extra nook run options first) and fails t
// unless it exits 0.
func (g *ownGuest) sh(t *testing.T, script string, opts ...string) string {
	t.Helper()
	args := append([]string{"run", "--mode", "rootless"}, opts...)
	args = append(args, g.name, "--", "/bin/sh", "-c", script)
	r := g.u.Nook(t, g.home, args...)
	if r.Code != 0 {
		t.Fatalf("%s:\n%s", script, r)
	}
	return r.Stdout
}

// The imported tree shows the archive's owners and modes, and the guest
// root is root.
func TestOwnershipRootlessImportedView(t *testing.T) {
	g := newOwnGuest(t, sharedRootfs(t, alpine312))
	out := g.sh(t, "id; stat -c '%U:%G %a %n' /etc/shadow /root /var/empty /tmp /bin/busybox; touch /var/empty/x && echo wrote-var-empty")
	mustContain(t, out,
		"uid=0(root) gid=0(root)",
		"root:shadow 640 /etc/shadow",
		"root:root 700 /root",
		"root:root 555 /var/empty",
		"root:root 1777 /tmp",
		"root:root 755 /bin/busybox",
		"wrote-var-empty",
	)
}

// chown, chmod and mknod persist in the rootfs's store across runs, and
// unlinking the last name of a file drops its record.
func TestOwnershipRootlessPersists(t *testing.T) {
	g := newOwnGuest(t, sharedRootfs(t, alpine320))
	g.sh(t, "touch /f /g && chown 123:456 /f && chmod 4711 /f && mknod /tmp/null c 1 3 && chown 7:8 /g && ln /g /g2 && rm /g")
	out := g.sh(t, "stat -c '%u:%g %a %F %n' /f /g2; stat -c '%t,%T %F' /tmp/null")
	mustContain(t, out,
		"123:456 4711 regular",
		"7:8 644 regular empty file /g2",
		"1,3 character special file",
	)
	// chown by root clears set-user-ID, as the kernel does.
	out = g.sh(t, "chown 5 /f; stat -c '%u:%g %a' /f; rm /f /g2; touch /f /g2; stat -c '%u:%g %n' /f /g2")
	mustContain(t, out, "5:456 711", "0:0 /f", "0:0 /g2")
}

// A guest user made with --user/--group owns its home and the files it
// creates; the guest root can su to it.
func TestOwnershipRootlessUser(t *testing.T) {
	g := newOwnGuest(t, sharedRootfs(t, alpine312))
	out := g.sh(t, "id; cd && touch x && mkdir d && ls -ln x d && ls -l x; ls -ld ~; test -r /etc/shadow || echo no-shadow; test -w ~ && echo home-writable",
		"--user", "myuser:2000", "--group", "mygroup:2000")
	mustContain(t, out, "uid=2000(myuser) gid=2000(mygroup)", "myuser   mygroup", "myuser   mygroup       4096", "no-shadow", "home-writable")
	// User setup rewrote /etc/shadow and /etc/group: their faked owners
	// stay.
	out = g.sh(t, "stat -c '%U:%G %a %n' /etc/shadow; stat -c '%U:%G %n' /home/myuser/x /home/myuser/d; su - myuser -c id; su myuser -c 'touch /tmp/by-user'; stat -c '%u:%g' /tmp/by-user")
	mustContain(t, out,
		"root:shadow 640 /etc/shadow",
		"myuser:mygroup /home/myuser/x",
		"myuser:mygroup /home/myuser/d",
		"uid=2000(myuser) gid=2000(mygroup)",
		"2000:2000",
	)
	// A non-root guest cannot give files away or touch root's files'
	// owners.
	r := g.u.Nook(t, g.home, "run", "--mode", "rootless", "--user", "myuser", g.name, "--", "/bin/sh", "-c", "chown 0 ~/x")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Operation not permitted") {
		t.Fatalf("non-root chown to root: %s", r)
	}
}

// A set-user-ID root program (set in the fake world) runs with euid 0 for
// a guest user; the guest root reads a file it made unreadable and writes
// into a directory it made read-only, as real root does, and the modes it
// set are the ones it sees.
func TestOwnershipRootlessSetuidAndPermissions(t *testing.T) {
	g := newOwnGuest(t, sharedRootfs(t, alpine320))
	prog := musl(t, `#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
int main(void) {
	uid_t r, e, s;
	getresuid(&r, &e, &s);
	printf("resuid=%d,%d,%d\n", (int)r, (int)e, (int)s);
	/* a set-user-ID program may drop to the real uid and regain euid 0 */
	if (seteuid(r) || seteuid(0)) { perror("seteuid"); return 1; }
	getresuid(&r, &e, &s);
	printf("regained=%d,%d,%d\n", (int)r, (int)e, (int)s);
	return 0;
}`, true)
	p := filepath.Join(g.home, "rootfs", g.name, "rootfs", "usr", "bin", "showid")
	if err := os.WriteFile(p, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, g.u.UID, g.u.GID); err != nil {
		t.Fatal(err)
	}
	g.sh(t, "true", "--user", "myuser:2000")
	g.sh(t, "chmod 4755 /usr/bin/showid")
	out := g.sh(t, "showid; id -u", "--user", "myuser")
	mustContain(t, out, "resuid=2000,0,0\n", "regained=2000,0,0\n", "\n2000\n")

	out = g.sh(t, "echo secret > /f && chmod 000 /f && cat /f && mkdir /ro && chmod 555 /ro && touch /ro/new && stat -c '%a %n' /f /ro; test -w /f && echo f-writable; test -x /f || echo f-not-executable")
	mustContain(t, out, "secret", "0 /f", "555 /ro", "f-writable", "f-not-executable")
}

// busybox tar run by the guest root restores owners it archived.
func TestOwnershipRootlessTarSameOwner(t *testing.T) {
	g := newOwnGuest(t, sharedRootfs(t, alpine320))
	out := g.sh(t, `mkdir -p /src/d && touch /src/d/a /src/b && chown 12:34 /src/d/a && chown 56:78 /src/d && chmod 2750 /src/d &&
cd /src && tar -cf /t.tar . && mkdir /dst && cd /dst && tar -xpf /t.tar && stat -c '%u:%g %a %n' /dst/d/a /dst/d /dst/b`)
	mustContain(t, out, "12:34 644 /dst/d/a", "56:78 2750 /dst/d", "0:0 644 /dst/b")
}

// Two runs on one rootfs at once share its ownership store: neither loses
// the other's records, and each sees the other's changes.
func TestOwnershipRootlessConcurrentRuns(t *testing.T) {
	g := newOwnGuest(t, sharedRootfs(t, alpine320))
	script := func(prefix string) string {
		return fmt.Sprintf(`for i in $(seq 1 60); do touch /%[1]s$i && chown $i:%[2]d /%[1]s$i; done`, prefix, len(prefix))
	}
	cmds := []*exec.Cmd{}
	for _, p := range []string{"a", "bb"} {
		cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.name, "--", "/bin/sh", "-c", script(p))
		cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("concurrent run: %v", err)
		}
	}
	out := g.sh(t, "stat -c '%u:%g %n' /a* /bb* | sort -n")
	for i := 1; i <= 60; i++ {
		mustContain(t, out, fmt.Sprintf("%d:1 /a%d\n", i, i), fmt.Sprintf("%d:2 /bb%d\n", i, i))
	}
}

// credsProg exercises the credential syscalls and prints the outcome of
// each: run by real root in a chroot and by the rootless guest root, the
// outputs must be identical.
const credsProg = `#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

struct cap_header { unsigned version; int pid; };
struct cap_data { unsigned effective, permitted, inheritable; };

static void show(const char *what, long r) {
	uid_t ru, eu, su; gid_t rg, eg, sg; gid_t gs[32];
	struct cap_header h = {0x20080522, 0};
	struct cap_data d[2];
	int e = r < 0 ? errno : 0;
	getresuid(&ru, &eu, &su); getresgid(&rg, &eg, &sg);
	int n = getgroups(32, gs);
	syscall(SYS_capget, &h, d);
	printf("%-28s r=%ld e=%s uid=%u,%u,%u fsuid=%d gid=%u,%u,%u fsgid=%d ngroups=%d cap=%x,%x/%x,%x\n",
		what, r, e ? strerror(e) : "-", ru, eu, su, setfsuid(-1), rg, eg, sg, setfsgid(-1), n,
		d[0].effective, d[1].effective, d[0].permitted, d[1].permitted);
}
#define T(call) show(#call, (long)(call))
int main(int argc, char **argv) {
	gid_t g[] = {7, 3, 5};
	if (argc > 1) {
		show(argv[1], 0);
		return 0;
	}
	/* VFS_CAP_REVISION_2, cap_net_raw permitted, no effective bit */
	unsigned char cap[20] = {0, 0, 0, 2, 0, 0x20, 0, 0}, buf[64];
	const char *f = "/tmp/credsfile", *n = "security.capability";
	T(setgroups(3, g));
	T(setxattr(f, n, cap, sizeof cap, XATTR_REPLACE));
	T(setxattr(f, n, cap, sizeof cap, 0));
	T(setxattr(f, n, cap, sizeof cap, XATTR_CREATE));
	T(getxattr(f, n, buf, sizeof buf));
	T(getxattr(f, n, buf, 4));
	T(getxattr(f, n, NULL, 0));
	T(memcmp(buf, cap, sizeof cap));
	T(chown(f, 0, 0));
	T(getxattr(f, n, buf, sizeof buf));
	T(setxattr(f, n, cap, sizeof cap, 0));
	T(removexattr(f, n));
	T(removexattr(f, n));
	cap[0] = 1; /* the effective flag */
	T(setxattr("/usr/bin/credscap", n, cap, sizeof cap, 0));
	T(listxattr("/usr/bin/credscap", NULL, 0));
	T(listxattr("/usr/bin/credscap", (char *)buf, sizeof buf));
	T(strcmp((char *)buf, n));
	T(listxattr("/usr/bin/credscap", (char *)buf, 3));
	T(setresgid(10, 20, 30));
	T(setfsuid(44));
	T(setfsuid(0));
	T(seteuid(100));
	T(setuid(5));
	T(seteuid(0));
	T(setreuid(100, 200));
	T(setreuid(-1, 0));
	T(prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0));
	T(setresuid(300, 300, 300));
	T(setresuid(0, 0, 0));
	T(setgid(10));
	T(setgroups(0, g));
	T(chown("/tmp/credsfile", 1, 1));
	T(mknod("/tmp/credsdev", S_IFCHR | 0600, makedev(1, 3)));
	fflush(stdout);
	/* execve: file capabilities, then a set-user-ID root program */
	if (fork() == 0) {
		execl("/usr/bin/credscap", "credscap", "exec-filecaps", (char *)0);
		return 127;
	}
	wait(NULL);
	fflush(stdout);
	execl("/usr/bin/credsuid", "credsuid", "exec-setuid", (char *)0);
	return 127;
}`

func TestOwnershipRootlessCredsMatchRealRoot(t *testing.T) {
	u := unprivileged(t)
	prog := musl(t, credsProg, true)
	base := u.TempDir(t)
	dir := filepath.Join(base, "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(dir, u.UID, u.GID)
	u.Untar(t, sharedRootfs(t, alpine320), dir)
	p := filepath.Join(dir, "usr/bin/creds")
	if err := os.WriteFile(p, prog, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(p, u.UID, u.GID)
	home := filepath.Join(base, "home")
	os.Mkdir(home, 0o755)
	os.Chown(home, u.UID, u.GID)

	prep := "rm -f /tmp/credsfile /tmp/credsdev; touch /tmp/credsfile; " +
		"cp /usr/bin/creds /usr/bin/credscap; cp /usr/bin/creds /usr/bin/credsuid; chmod 4755 /usr/bin/credsuid; "
	got := u.Nook(t, home, "run", "--mode", "rootless", dir, "--", "/bin/sh", "-c", prep+"creds")
	if got.Code != 0 {
		t.Fatalf("rootless: %s", got)
	}
	want := runCmd(t, exec.Command("chroot", dir, "/bin/sh", "-c", prep+"creds"))
	if want.Code != 0 {
		t.Fatalf("chroot: %s", want)
	}
	mustContain(t, got.Stdout, "exec-filecaps", "exec-setuid")
	if got.Stdout != want.Stdout {
		t.Fatalf("credentials differ from real root's:\n--- rootless\n%s--- chroot\n%s", got.Stdout, want.Stdout)
	}
}

// metadataScript changes owners, modes and names under /w the ways
// package managers and archivers do, then lists what it left.
const metadataScript = `set -e
mkdir -p /w/a/b /w/d && cd /w
touch f1 f2 f3
chown 12:34 f1 && chmod 4755 f1
chmod 2755 f2 && chown :7 f2
chmod 2644 f3 && chown 1:1 f3
chown 5:6 a && chmod 2775 a
touch a/inherit && mkdir a/sub && mkdir -m 700 a/sub/deep && ln -s f1 a/sl && chown -h 7:8 a/sl
mknod a/cdev c 1 3 && mknod a/bdev b 8 1 && mkfifo a/fifo && chmod 640 a/fifo && chown 9:9 a/cdev
ln f1 hl && ln -s f1 sl && chown -h 3:3 sl
mv a/b a/c && mv f2 a/c/f2 && mv a d/a
rm hl
chown 9 f1
chmod 1777 d && chmod 0 f3 && chmod 750 d/a/sub
cp -p d/a/c/f2 f2copy
mkdir -m 555 ro && touch ro/x && mkdir -m 0 ro/none && touch ro/none/y
tar -cf /w.tar -C /w . && mkdir /x && tar -xpf /w.tar -C /x
for r in /w /x; do
  find $r | sort | while read -r p; do stat -c '%u:%g %A %h %F %n' "$p"; done
done
stat -c '%t,%T %n' /w/d/a/cdev /w/d/a/bdev /x/d/a/cdev /x/d/a/bdev
`

// The same script as real root in a chroot and as the rootless guest
// root leaves the same owners, modes, types and link counts.
func TestOwnershipRootlessMetadataMatchesRealRoot(t *testing.T) {
	for _, tarball := range []string{sharedRootfs(t, alpine320), debianTarball(t, false)} {
		u := unprivileged(t)
		base := u.TempDir(t)
		dir := filepath.Join(base, "root")
		home := filepath.Join(base, "home")
		for _, d := range []string{dir, home} {
			os.Mkdir(d, 0o755)
			os.Chown(d, u.UID, u.GID)
		}
		u.Untar(t, tarball, dir)
		// A copy for the chroot: real root changes the real tree.
		ref := filepath.Join(t.TempDir(), "root")
		if out, err := exec.Command("cp", "-a", dir, ref).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		got := u.Nook(t, home, "run", "--mode", "rootless", dir, "--", "/bin/sh", "-c", metadataScript)
		if got.Code != 0 {
			t.Fatalf("rootless: %s", got)
		}
		want := runCmd(t, exec.Command("chroot", ref, "/bin/sh", "-c", metadataScript))
		if want.Code != 0 {
			t.Fatalf("chroot: %s", want)
		}
		if got.Stdout != want.Stdout {
			t.Fatalf("metadata differs from real root's:\n--- rootless\n%s--- chroot\n%s", got.Stdout, want.Stdout)
		}
	}
}
