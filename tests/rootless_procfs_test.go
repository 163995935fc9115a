package tests

import (
	"path/filepath"
	"strings"
	"testing"
)

// What a rootless guest reads in /proc about its own processes: the argv
// and name the program was started with (not the dynamic loader's), and
// the fake identity, as in a real chroot.

func TestRootlessProcfsCmdlineComm(t *testing.T) {
	u, home := rootlessStore(t)
	script := `cat /proc/self/cmdline | tr '\0' ' '; echo
cat /proc/self/comm
cut -d' ' -f2 /proc/self/stat
grep -E '^(Name|TracerPid):' /proc/self/status
readlink /proc/self/exe
ps -o pid,ppid,args | awk -v s=$$ '$1 == s || $2 == s'`
	// A TMPDIR of its own, to see that the snapshots' directory goes.
	tmp := u.TempDir(t)
	cmd := u.Command(nookBin, "run", "--mode", "rootless", "a320", "--", "sh", "-c", script)
	cmd.Env = append(cmd.Env, "NOOK_HOME="+home, "TMPDIR="+tmp)
	r := runCmd(t, cmd)
	if r.Code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(r.Stdout, "\n")
	want := []string{"cat /proc/self/cmdline ", "cat", "(cut)", "Name:\tgrep", "TracerPid:\t0"}
	for i, w := range want {
		if i >= len(lines) || lines[i] != w {
			t.Fatalf("line %d: want %q\n%s", i, w, r.Stdout)
		}
	}
	// The guest's own processes (the host's are in the same /proc).
	mustContain(t, r.Stdout, "\n/bin/busybox\n", " ps -o pid,ppid,args\n", " awk -v s=", " sh -c cat /proc/self/cmdline")
	for _, bad := range []string{"ld-musl", "--argv0", home, "ld-linux"} {
		if strings.Contains(r.Stdout, bad) {
			t.Fatalf("output shows %q:\n%s", bad, r.Stdout)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "*")); len(left) != 0 {
		t.Fatalf("left behind: %v", left)
	}
}

func TestRootlessProcfsStatusIdentity(t *testing.T) {
	u, home := rootlessStore(t)
	r := u.Nook(t, home, "run", "--mode", "rootless", "a320", "--", "sh", "-c",
		`adduser -D -u 2000 myuser && addgroup -g 2100 extra && addgroup myuser extra &&
grep -E '^(Uid|Gid|Groups|CapEff|CapPrm):' /proc/self/status &&
su - myuser -c 'grep -E "^(Uid|Gid|Groups|CapEff|CapPrm):" /proc/self/status; touch f; id -u; stat -c %u f'`)
	if r.Code != 0 {
		t.Fatal(r)
	}
	got := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	want := []string{
		"Uid:\t0\t0\t0\t0",
		"Gid:\t0\t0\t0\t0",
		// Groups: the root user's supplementary groups, as in the guest's /etc/group.
		"",
		"CapPrm:\t000001ffffffffff",
		"CapEff:\t000001ffffffffff",
		"Uid:\t2000\t2000\t2000\t2000",
		"Gid:\t2000\t2000\t2000\t2000",
		"Groups:\t2000 2100 ", // su initialises the groups with the primary one
		"CapPrm:\t0000000000000000",
		"CapEff:\t0000000000000000",
		"2000",
		"2000",
	}
	if len(got) != len(want) {
		t.Fatalf("got:\n%s", r.Stdout)
	}
	for i, w := range want {
		switch {
		case i == 2:
			if !strings.HasPrefix(got[i], "Groups:\t0 ") {
				t.Fatalf("line %d: %q", i, got[i])
			}
		case i == 3 || i == 4:
			// Root's capabilities: all of nook's bounding set.
			if !strings.HasPrefix(got[i], w[:8]) || got[i] == w[:8]+"0000000000000000" {
				t.Fatalf("line %d: %q", i, got[i])
			}
		case got[i] != w:
			t.Fatalf("line %d: want %q, got %q\n%s", i, w, got[i], r.Stdout)
		}
	}
	// -u: the guest's first process already runs as the user.
	r = u.Nook(t, home, "run", "--mode", "rootless", "-u", "eph:3000", "a320", "--", "sh", "-c",
		`cd /tmp && touch g && id -u && stat -c %u g && grep -E '^Uid:' /proc/$$/status`)
	if r.Code != 0 || r.Stdout != "3000\n3000\nUid:\t3000\t3000\t3000\t3000\n" {
		t.Fatal(r)
	}
}
