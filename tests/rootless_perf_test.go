package tests

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The guest's first process is forked by the tracer and runs no Go code
// (tracer/perf_spawn_unsafe.go): it must start as a plain execve from nook
// would, with the RLIMIT_NOFILE soft limit nook was started with (the Go
// runtime raises its own), no blocked signals and no caught ones.
func TestRootlessStartState(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	soft := uint64(512)
	if lim.Max < soft {
		t.Skipf("RLIMIT_NOFILE hard limit %d", lim.Max)
	}
	script := fmt.Sprintf(`ulimit -Sn %d && exec "$0" "$@"`, soft)
	cmd := g.u.Command("/bin/sh", "-c", script, nookBin, "run", "--mode", "rootless", g.dir, "--",
		"/bin/sh", "-c", "ulimit -n; exec grep -E '^Sig(Blk|Cgt|Ign)' /proc/self/status")
	cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
	r := runCmd(t, cmd)
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	// Signals ignored where nook was started stay ignored, except those
	// nook catches to forward them (SIGHUP, SIGINT, SIGQUIT, SIGTERM).
	host := runCmd(t, g.u.Command("/bin/sh", "-c", "exec grep '^SigIgn' /proc/self/status"))
	ign, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(host.Stdout, "SigIgn:")), 16, 64)
	if err != nil {
		t.Fatalf("host SigIgn: %q: %v", host.Stdout, err)
	}
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM} {
		ign &^= 1 << (sig - 1)
	}
	want := fmt.Sprintf("%d\nSigBlk:\t0000000000000000\nSigIgn:\t%016x\nSigCgt:\t0000000000000000\n", soft, ign)
	if r.Stdout != want {
		t.Errorf("guest start state:\n%s\nwant:\n%s", r.Stdout, want)
	}
}

// CPU placement (tracer/placement.go) pins busy guest threads to the
// tracer's CPU; the guest must still see the mask nook started with, and a
// mask it sets itself must stay.
func TestRootlessAffinity(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	cpus := mask.Count()
	first := -1
	for i := 0; i < runtime.NumCPU()*4 && first < 0; i++ {
		if mask.IsSet(i) {
			first = i
		}
	}
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "setaff", musl(t, setAffinityC, true), 0o755)
	// A burst of short commands gets the shell pinned (with "same", the
	// whole guest is pinned from the start).
	burst := `i=0; while [ $i -lt 40 ]; do test -e /etc/passwd; /bin/true; i=$((i+1)); done; `
	for _, policy := range []string{"", "same", "off"} {
		t.Run("policy="+policy, func(t *testing.T) {
			run := func(script string) string {
				cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.dir, "--", "/bin/sh", "-c", script)
				cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home, "NOOK_PLACEMENT="+policy)
				r := runCmd(t, cmd)
				if r.Code != 0 {
					t.Fatalf("%s:\n%s", script, r)
				}
				return r.Stdout
			}
			if got, want := run(burst+"nproc"), fmt.Sprintf("%d\n", cpus); got != want {
				t.Errorf("nproc in the guest: %q, want %q", got, want)
			}
			want := fmt.Sprintf("mask %d cpus, on cpu %d\n", 1, first)
			if got := run(fmt.Sprintf("%s/setaff %d", burst, first)); got != want {
				t.Errorf("guest-set affinity: %q, want %q", got, want)
			}
		})
	}
}

// setAffinityC pins itself to the CPU given, makes a burst of trapped calls
// (which would get an unpinned thread moved) and reports its mask and CPU.
const setAffinityC = `#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
	int cpu = atoi(argv[1]);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); return 1; }
	struct stat st;
	for (int i = 0; i < 200; i++)
		stat("/etc/passwd", &st);
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set)) { perror("sched_getaffinity"); return 1; }
	printf("mask %d cpus, on cpu %d\n", CPU_COUNT(&set), sched_getcpu());
	return 0;
}
`

// The tracer caches the paths of directory descriptors, checking each use
// with kcmp against a duplicate it holds (tracer/fdcache.go). The cache
// must never answer for a descriptor that was replaced without a stop
// (dup2, in the process's table or in a thread's own one), nor with the
// path of a directory that was renamed or removed since, and the duplicate
// it holds must not keep a lock alive after the guest closed the
// descriptor it locked with.
func TestRootlessDirfdCache(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "dirfds", musl(t, dirfdsC, true, "-lpthread"), 0o755)
	// Two runs: the flock of the first turns the cache off for the rest
	// of its run.
	out := g.sh(t, "mkdir -p /tmp/d && cd /tmp/d && /dirfds")
	out += g.sh(t, "cd /tmp/d && /dirfds ofd")
	want := `replaced: fb 0 fa ENOENT
thread: fb 0 fa ENOENT, main: fa 0
renamed: fc 0
removed: ENOENT
file: ENOTDIR
exec: 0
lock: free after close
ofd lock: free after close
`
	if out != want {
		t.Errorf("dirfds:\n%s\nwant:\n%s", out, want)
	}
}

// dirfdsC makes each of those cases happen, with a stat through the
// directory descriptor first so that the cache holds it.
const dirfdsC = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *st(int dfd, const char *name) {
	struct stat s;
	if (fstatat(dfd, name, &s, AT_SYMLINK_NOFOLLOW) == 0)
		return "0";
	switch (errno) {
	case ENOENT: return "ENOENT";
	case ENOTDIR: return "ENOTDIR";
	case EBADF: return "EBADF";
	}
	return strerror(errno);
}

static int dir(const char *name) {
	mkdir(name, 0755);
	int fd = open(name, O_RDONLY | O_DIRECTORY);
	if (fd < 0) { perror(name); exit(1); }
	return fd;
}

static void file(const char *name) {
	int fd = open(name, O_WRONLY | O_CREAT, 0644);
	if (fd < 0) { perror(name); exit(1); }
	close(fd);
}

static int da, db;
static char tres[64];

static void *thread(void *arg) {
	// A table of its own: the replacement is invisible to the process.
	if (unshare(CLONE_FILES)) { perror("unshare"); exit(1); }
	dup2(db, da);
	snprintf(tres, sizeof tres, "fb %s fa %s", st(da, "fb"), st(da, "fa"));
	return arg;
}

static int ofd(void) {
	// An open file description lock (a read lock: a directory cannot be
	// opened for writing) must be gone as well once its descriptor is.
	// In a run of its own: after the flock above the cache is off.
	int dm = dir("m");
	st(dm, "nothing");
	struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET};
	if (fcntl(dm, F_OFD_SETLK, &fl)) { perror("F_OFD_SETLK"); return 1; }
	close(dm);
	dm = open("m", O_RDONLY | O_DIRECTORY);
	struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
	if (fcntl(dm, F_OFD_GETLK, &q)) { perror("F_OFD_GETLK"); return 1; }
	printf("ofd lock: %s\n", q.l_type == F_UNLCK ? "free after close" : "still held");
	return 0;
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "exit") == 0)
		return 0;
	if (argc > 1 && strcmp(argv[1], "ofd") == 0)
		return ofd();
	pid_t p;
	int ws;
	da = dir("a"); db = dir("b");
	file("a/fa"); file("b/fb");
	st(da, "fa");
	int keep = dup(da);
	dup2(db, da); // no stop: the cache must notice
	printf("replaced: fb %s fa %s\n", st(da, "fb"), st(da, "fa"));
	dup2(keep, da);
	st(da, "fa");
	pthread_t th;
	pthread_create(&th, 0, thread, 0);
	pthread_join(th, 0);
	printf("thread: %s, main: fa %s\n", tres, st(da, "fa"));

	int dc = dir("c");
	file("c/fc");
	st(dc, "fc");
	if (rename("c", "c2")) { perror("rename"); return 1; }
	dir("c");
	printf("renamed: fc %s\n", st(dc, "fc"));

	int dd = dir("d");
	file("d/x");
	st(dd, "x");
	unlink("d/x");
	if (rmdir("d")) { perror("rmdir"); return 1; }
	printf("removed: %s\n", st(dd, "x"));

	int df = dir("e");
	st(df, "nothing");
	file("f");
	int ff = open("f", O_RDONLY);
	dup2(ff, df);
	printf("file: %s\n", st(df, "x"));

	// A program open for writing, used as a directory: held by the
	// tracer, it could not be executed once the guest closed it
	// (ETXTBSY). A static one (this one): the kernel executes it itself.
	int fs = open("s", O_WRONLY | O_CREAT | O_TRUNC, 0755);
	int fbb = open("/dirfds", O_RDONLY);
	char buf[65536];
	ssize_t n;
	if (fs < 0 || fbb < 0) { perror("s"); return 1; }
	while ((n = read(fbb, buf, sizeof buf)) > 0)
		if (write(fs, buf, n) != n) { perror("write"); return 1; }
	close(fbb);
	st(fs, "x");
	close(fs);
	p = fork();
	if (p == 0) {
		execl("./s", "s", "exit", (char *)0);
		_exit(errno == ETXTBSY ? 2 : 3);
	}
	waitpid(p, &ws, 0);
	printf("exec: %d\n", WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);

	int dl = dir("l");
	st(dl, "nothing");
	if (flock(dl, LOCK_EX)) { perror("flock"); return 1; }
	close(dl);
	p = fork();
	if (p == 0) {
		int fd = open("l", O_RDONLY | O_DIRECTORY);
		_exit(flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0 : 1);
	}
	waitpid(p, &ws, 0);
	printf("lock: %s\n", WIFEXITED(ws) && WEXITSTATUS(ws) == 0 ? "free after close" : "still held");
	return 0;
}
`
