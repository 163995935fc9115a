package tests

import (
	"fmt"
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
su - myuser -c 'grep -E "^(Uid|Gid|Groups|CapEff|CapPrm):" /proc/self/status; touch f; id -u; stat -c %u f /proc/self; ps -o user,args | grep "^myuser *ps -o"'`)
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
		"2000", // /proc/PID belongs to the process's effective user
		"myuser   ps -o user,args",
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

// recvmsgC receives datagrams with recvmsg and recvmmsg and prints the
// sender's name from msg_name.
const recvmsgC = `#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
int main(int argc, char **argv) {
	struct sockaddr_un a = { .sun_family = AF_UNIX }, b = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
	snprintf(b.sun_path, sizeof b.sun_path, "%se", argv[1]);
	unlink(a.sun_path);
	unlink(b.sun_path);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0), e = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(d, (struct sockaddr *)&a, sizeof a) || bind(e, (struct sockaddr *)&b, sizeof b)) { perror("bind"); return 1; }
	if (sendto(e, "ok", 2, 0, (struct sockaddr *)&a, sizeof a) != 2) { perror("sendto"); return 1; }
	char buf[4] = "";
	struct sockaddr_un from = { 0 };
	struct iovec iov = { buf, 2 };
	struct msghdr m = { .msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1 };
	if (recvmsg(d, &m, 0) != 2) { perror("recvmsg"); return 1; }
	printf("%s from %s len %d\n", buf, from.sun_path, (int)m.msg_namelen);
	/* recvmmsg: two datagrams, the first without a name buffer. */
	sendto(e, "m1", 2, 0, (struct sockaddr *)&a, sizeof a);
	sendto(e, "m2", 2, 0, (struct sockaddr *)&a, sizeof a);
	char b1[4] = "", b2[4] = "";
	struct sockaddr_un f2 = { 0 };
	struct iovec v1 = { b1, 2 }, v2 = { b2, 2 };
	struct mmsghdr mm[2] = {
		{ .msg_hdr = { .msg_iov = &v1, .msg_iovlen = 1 } },
		{ .msg_hdr = { .msg_name = &f2, .msg_namelen = sizeof f2, .msg_iov = &v2, .msg_iovlen = 1 } },
	};
	if (recvmmsg(d, mm, 2, MSG_WAITFORONE, 0) != 2) { perror("recvmmsg"); return 1; }
	printf("%s %s from %s len %d\n", b1, b2, f2.sun_path, (int)mm[1].msg_hdr.msg_namelen);
	return 0;
}
`

// AF_UNIX names returned by recvmsg and recvmmsg are guest paths, as
// recvfrom's.
func TestRootlessRecvmsgName(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "recvmsg", musl(t, recvmsgC, false), 0o755)
	got := g.sh(t, "/recvmsg /tmp/r.sock")
	// sun_family, the path and its NUL.
	n := 2 + len("/tmp/r.socke") + 1
	want := fmt.Sprintf("ok from /tmp/r.socke len %d\nm1 m2 from /tmp/r.socke len %d\n", n, n)
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
