package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A guest user's permission checks in rootless mode: on disk the real user
// owns every file, yet a guest user must be refused what a real chroot
// refuses it (root's 0600 files, writes in root's directories, the sticky
// bit, protected hard links). The same script runs as real root in a
// chroot and in the rootless guest; the user's outcomes must be the same.

// permPrep runs as the guest root: users, and files of several owners and
// modes.
const permPrep = `set -e
adduser -D -u 2000 myuser && adduser -D -u 2001 other
mkdir -p /w/sticky /w/ro/d /w/rw/d2 /w/mine /w/grp
chmod 1777 /w/sticky && chmod 777 /w/rw && chown myuser /w/mine
addgroup -g 2100 team && addgroup myuser team && chgrp team /w/grp && chmod 770 /w/grp
touch /w/ro/f /w/rw/f /w/sticky/root /w/secret /w/grp/f /w/sink && chmod 600 /w/secret && chmod 666 /w/ro/f /w/sink
chgrp team /w/grp/f && chmod 664 /w/grp/f
mkdir -p /w/priv/sub /w/x711/sub && touch /w/priv/sub/f /w/x711/sub/f && chmod 666 /w/priv/sub/f /w/x711/sub/f
chmod 700 /w/priv && chmod 711 /w/x711 && chmod 777 /w/priv/sub /w/x711/sub
su other -c 'touch /w/sticky/other'
touch /w/sticky/mine && chown myuser /w/sticky/mine
`

// permChecks runs as myuser: each line is an operation and its outcome
// (the error message, identical for identical errnos). A chroot has no
// /dev: output goes to a file anyone may write.
const permChecks = `t() { n=$1; shift; if out=$("$@" 2>&1 >/w/sink); then echo "$n ok"; else echo "$n: $out"; fi; }
t shadow-read cat /etc/shadow
t passwd-read cat /etc/passwd
t issue-append sh -c 'echo x >> /etc/issue'
t motd-trunc sh -c ': > /etc/motd'
t issue-rm rm -f /etc/issue
t bin-rm rm -f /bin/ls
t root-ls ls /root
t secret-read cat /w/secret
t ro-create touch /w/ro/new
t ro-write-666 sh -c 'echo y > /w/ro/f'
t ro-rm rm -f /w/ro/f
t ro-mkdir mkdir /w/ro/nd
t ro-rmdir rmdir /w/ro/d
t ro-symlink ln -s /x /w/ro/s
t ro-fifo mkfifo /w/ro/fifo
t rw-create touch /w/rw/new
t rw-mv-out mv /w/ro/d /w/rw/
t rw-mv-dir mv /w/rw/d2 /w/mine/
t rw-rm-root rm -f /w/rw/f
t sticky-rm-other rm -f /w/sticky/other
t sticky-rm-root rm -f /w/sticky/root
t sticky-mv-other mv /w/sticky/other /w/sticky/x
t sticky-rm-mine rm -f /w/sticky/mine
t sticky-create touch /w/sticky/new
t link-secret ln /w/secret /w/rw/l
t link-passwd ln /etc/passwd /w/rw/l2
t link-own ln /w/rw/new /w/rw/l3
t group-write sh -c 'echo z > /w/grp/f && touch /w/grp/g'
t mine sh -c 'cd /w/mine && touch a && mkdir b && mv a b/ && ln -s a s && rm -r b s'
t home sh -c 'cd && touch a && rm a'
t search-read cat /w/priv/sub/f
t search-write sh -c 'echo > /w/priv/sub/f'
t search-create touch /w/priv/sub/new
t search-rm rm -f /w/priv/sub/f
t search-mkdir mkdir /w/priv/sub/d
t search-x-read cat /w/x711/sub/f
t search-x-create sh -c 'touch /w/x711/sub/new && mv /w/x711/sub/new /w/x711/sub/new2 && rm /w/x711/sub/new2'
t search-x-list ls /w/x711
t dir-write sh -c 'echo > /w/ro/d'
id
stat -c '%u:%g %n' /w/rw/new /w/sticky/new /w/grp/g
`

func TestOwnershipPermMatchesRealChroot(t *testing.T) {
	requireRoot(t)
	u := unprivileged(t)
	base := u.TempDir(t)
	rootless := filepath.Join(base, "rootless")
	real := filepath.Join(base, "real")
	home := filepath.Join(base, "home")
	for _, d := range []string{rootless, home} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		os.Chown(d, u.UID, u.GID)
	}
	u.Untar(t, sharedRootfs(t, alpine320), rootless)
	if err := os.Mkdir(real, 0o755); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, exec.Command("tar", "-xzpf", sharedRootfs(t, alpine320), "-C", real)); r.Code != 0 {
		t.Fatal(r)
	}
	if err := os.WriteFile(filepath.Join(real, "chk.sh"), []byte(permChecks), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootless, "chk.sh"), []byte(permChecks), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(rootless, "chk.sh"), u.UID, u.GID)
	script := permPrep + "su myuser -c 'sh /chk.sh'"

	chroot := exec.Command("chroot", real, "/bin/sh", "-c", script)
	// busybox adduser takes the new user's shell from $SHELL: the
	// environment of nook run's guest.
	chroot.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"}
	want := runCmd(t, chroot)
	if want.Code != 0 {
		t.Fatalf("chroot: %s", want)
	}
	got := u.Nook(t, home, "run", "--mode", "rootless", rootless, "--", "/bin/sh", "-c", script)
	if got.Code != 0 {
		t.Fatalf("rootless: %s", got)
	}
	// The test must see refusals of each kind to mean anything.
	mustContain(t, want.Stdout, "Permission denied", "Operation not permitted", "mine ok", "uid=2000(myuser)")
	if got.Stdout != want.Stdout {
		gl, wl := strings.Split(got.Stdout, "\n"), strings.Split(want.Stdout, "\n")
		var diff strings.Builder
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				diff.WriteString("rootless: " + g + "\nchroot:   " + w + "\n")
			}
		}
		t.Fatalf("a guest user's outcomes differ from a real chroot's:\n%s", diff.String())
	}
}
