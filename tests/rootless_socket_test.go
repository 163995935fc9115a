package tests

import (
	"os"
	"path/filepath"
	"testing"
)

// unixSockC binds, connects and names AF_UNIX sockets at the guest path
// argv[1], printing what the guest sees of the names.
const unixSockC = `#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	strcpy(a.sun_path, argv[1]);
	unlink(argv[1]);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
	listen(s, 1);
	struct sockaddr_un n = { 0 };
	socklen_t len = sizeof n;
	getsockname(s, (struct sockaddr *)&n, &len);
	printf("sockname %s\n", n.sun_path);
	fflush(stdout);
	if (fork() == 0) {
		int c = socket(AF_UNIX, SOCK_STREAM, 0);
		if (connect(c, (struct sockaddr *)&a, sizeof a)) { perror("connect"); _exit(1); }
		struct sockaddr_un p = { 0 };
		socklen_t pl = sizeof p;
		getpeername(c, (struct sockaddr *)&p, &pl);
		printf("peername %s\n", p.sun_path);
		fflush(stdout);
		write(c, "hi", 2);
		_exit(0);
	}
	int c = accept(s, 0, 0);
	char buf[4] = "";
	read(c, buf, 2);
	int st;
	wait(&st);
	printf("got %s\n", buf);
	/* A datagram to a named socket with sendto. */
	strcat(a.sun_path, "d");
	unlink(a.sun_path);
	int d = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (bind(d, (struct sockaddr *)&a, sizeof a)) { perror("bind dgram"); return 1; }
	int e = socket(AF_UNIX, SOCK_DGRAM, 0);
	if (sendto(e, "yo", 2, 0, (struct sockaddr *)&a, sizeof a) != 2) { perror("sendto"); return 1; }
	recv(d, buf, 2, 0);
	printf("dgram %s\n", buf);
	/* sendmsg with a name, and recvfrom reading the sender's name. */
	struct sockaddr_un b = { .sun_family = AF_UNIX };
	snprintf(b.sun_path, sizeof b.sun_path, "%se", argv[1]);
	unlink(b.sun_path);
	if (bind(e, (struct sockaddr *)&b, sizeof b)) { perror("bind sender"); return 1; }
	struct iovec iov = { "ok", 2 };
	struct msghdr m = { .msg_name = &a, .msg_namelen = sizeof a, .msg_iov = &iov, .msg_iovlen = 1 };
	if (sendmsg(e, &m, 0) != 2) { perror("sendmsg"); return 1; }
	struct sockaddr_un from = { 0 };
	socklen_t fl = sizeof from;
	recvfrom(d, buf, 2, 0, (struct sockaddr *)&from, &fl);
	printf("sendmsg %s from %s\n", buf, strcmp(from.sun_path, b.sun_path) ? from.sun_path : "sender");
	return 0;
}
`

func TestRootlessUnixSockets(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "sock", musl(t, unixSockC, false), 0o755)
	// The second path fits sun_path in the guest but not once prefixed
	// with the guest root's host path.
	long := "/tmp/"
	for i := 0; i < 8; i++ {
		long += "directory" + string(rune('a'+i))
	}
	if err := os.MkdirAll(filepath.Join(g.dir, long), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(filepath.Join(g.dir, long), g.u.UID, g.u.GID)
	for _, p := range []string{"/tmp/s.sock", long + "/s"} {
		if len(filepath.Join(g.dir, p)) < 108 && p != "/tmp/s.sock" {
			t.Fatalf("test path %s is not long enough", p)
		}
		got := g.sh(t, "cd / && /sock "+p)
		want := "sockname " + p + "\npeername " + p + "\ngot hi\ndgram yo\nsendmsg ok from sender\n"
		if got != want {
			t.Errorf("unix sockets at %s:\n%q\nwant\n%q", p, got, want)
		}
		if _, err := os.Lstat(filepath.Join(g.dir, p)); err != nil {
			t.Errorf("socket not created in the guest tree: %v", err)
		}
	}
}
