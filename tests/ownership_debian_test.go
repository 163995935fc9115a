package tests

import (
	"strings"
	"testing"
)

// Debian's tools under fake root: dpkg installs a package with owners and
// set-user-ID bits it cannot really set, dpkg --verify finds nothing
// changed, GNU tar --same-owner restores owners, apt drops privileges to
// _apt and installs from the mirror.
func TestOwnershipRootlessDebian(t *testing.T) {
	g := newOwnGuest(t, debianTarball(t, false))

	out := g.sh(t, "stat -c '%U:%G %a %n' /etc/shadow /usr/bin/passwd /usr/bin/su; dpkg --verify && echo verified")
	mustContain(t, out,
		"root:shadow 640 /etc/shadow",
		"root:root 4755 /usr/bin/passwd",
		"root:root 4755 /usr/bin/su",
		"verified",
	)

	// A local package whose files belong to a system user and carry
	// set-user-ID and set-group-ID bits.
	out = g.sh(t, `set -e
mkdir -p /pkg/DEBIAN /pkg/usr/bin /pkg/var/lib/nooktest
cat > /pkg/DEBIAN/control <<EOF
Package: nooktest
Version: 1.0
Architecture: all
Maintainer: nook <nook@example.invalid>
Description: ownership test package
EOF
cp /bin/true /pkg/usr/bin/nooktest-suid
chmod 4755 /pkg/usr/bin/nooktest-suid
chown daemon:mail /pkg/var/lib/nooktest
chmod 2770 /pkg/var/lib/nooktest
dpkg-deb --build /pkg /nooktest.deb >/dev/null
dpkg-deb -c /nooktest.deb | awk '{print $1, $2, $6}'
dpkg -i /nooktest.deb >/dev/null
stat -c '%U:%G %a %n' /usr/bin/nooktest-suid /var/lib/nooktest
dpkg --verify nooktest && echo pkg-verified`)
	mustContain(t, out,
		"-rwsr-xr-x root/root ./usr/bin/nooktest-suid",
		"drwxrws--- daemon/mail ./var/lib/nooktest/",
		"root:root 4755 /usr/bin/nooktest-suid",
		"daemon:mail 2770 /var/lib/nooktest",
		"pkg-verified",
	)

	// The records survive into the next run; GNU tar keeps owners.
	out = g.sh(t, `set -e
stat -c '%U:%G %a %n' /var/lib/nooktest
mkdir /src && touch /src/a && chown 1234:5678 /src/a && chmod 640 /src/a
tar -C /src -cf /t.tar . && mkdir /dst && tar --same-owner -C /dst -xpf /t.tar
tar --numeric-owner -tvf /t.tar | awk '{print $1, $2, $6}'
stat -c '%u:%g %a %n' /dst/a`)
	mustContain(t, out,
		"daemon:mail 2770 /var/lib/nooktest",
		"-rw-r----- 1234/5678 ./a",
		"1234:5678 640 /dst/a",
	)

	// apt: the download runs as _apt (a failed privilege drop prints a
	// sandbox warning).
	network := func(out string) bool {
		for _, s := range []string{"Could not resolve", "Temporary failure", "Failed to fetch", "Could not connect", "Connection timed out"} {
			if strings.Contains(out, s) {
				return true
			}
		}
		return false
	}
	r := g.u.Nook(t, g.home, "run", "--mode", "rootless", g.name, "--", "/bin/sh", "-c", "apt-get update 2>&1")
	if r.Code != 0 || network(r.Stdout) {
		if network(r.Stdout) {
			t.Skipf("Debian mirror not reachable: %s", r.Stdout)
		}
		t.Fatalf("apt-get update: %s", r)
	}
	if strings.Contains(r.Stdout, "unsandboxed") {
		t.Fatalf("apt could not drop privileges: %s", r.Stdout)
	}
	r = g.u.Nook(t, g.home, "run", "--mode", "rootless", g.name, "--", "/bin/sh", "-c",
		"apt-get install -y -q hello 2>&1 && hello && dpkg --verify && echo all-verified && stat -c '%U:%a %n' /var/lib/apt/lists/partial")
	if r.Code != 0 && network(r.Stdout) {
		t.Skipf("Debian mirror not reachable: %s", r.Stdout)
	}
	if r.Code != 0 {
		t.Fatalf("apt-get install hello: %s", r)
	}
	mustContain(t, r.Stdout, "Hello, world!", "all-verified", "_apt:700 /var/lib/apt/lists/partial")
	if strings.Contains(r.Stdout, "unsandboxed") {
		t.Fatalf("apt privilege drop: %s", r.Stdout)
	}
}
