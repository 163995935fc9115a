package tests

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// restartC opens a FIFO that has no writer yet, so open blocks; a signal
// with an SA_RESTART handler interrupts it, and the handler scribbles over
// the stack below the stack pointer, where the tracer put the translated
// path, and makes a translated call of its own. The kernel then restarts
// the open with the same registers.
const restartC = `#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
static volatile int hits;
static void handler(int s) {
	volatile char junk[16384];
	memset((char *)junk, 'X', sizeof junk);
	/* A translated call of the handler's own, between the interrupted
	   call and its restart. */
	int fd = open("/etc/passwd", O_RDONLY);
	if (fd >= 0) close(fd);
	hits += junk[100] == 'X' && fd >= 0;
}
int main(void) {
	unlink("/tmp/fifo");
	if (mkfifo("/tmp/fifo", 0600)) { perror("mkfifo"); return 1; }
	struct sigaction sa = { 0 };
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigaction(SIGALRM, &sa, 0);
	pid_t child = fork();
	if (child == 0) {
		usleep(1500000);
		int fd = open("/tmp/fifo", O_WRONLY);
		if (fd < 0) { perror("child open"); _exit(1); }
		write(fd, "through\n", 8);
		_exit(0);
	}
	alarm(1);
	int fd = open("/tmp/fifo", O_RDONLY);
	if (fd < 0) { perror("open after restart"); return 1; }
	char buf[32] = "";
	read(fd, buf, sizeof buf - 1);
	int st;
	waitpid(child, &st, 0);
	printf("handler ran %d, read %s", hits, buf);
	return 0;
}
`

func TestRootlessSyscallRestart(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "restart", musl(t, restartC, false), 0o755)
	if got := g.sh(t, "/restart"); got != "handler ran 1, read through\n" {
		t.Errorf("restarted open: %q", got)
	}
}

// foreignC makes syscalls through the i386 (int 0x80) and x32 ABIs, which
// the filter must refuse rather than let through untranslated.
const foreignC = `#include <errno.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
int main(int argc, char **argv) {
	long r;
	/* i386 open(argv[1], O_RDONLY) */
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(5L), "b"((long)argv[1]), "c"(0L) : "memory");
	printf("int80 open: %ld\n", r);
	/* x32 open */
	r = syscall(0x40000000L | SYS_open, argv[1], 0);
	printf("x32 open: %ld\n", r < 0 ? -(long)errno : r);
	return 0;
}
`

func TestRootlessForeignABIs(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	g.put(t, "foreign", musl(t, foreignC, true), 0o755)
	out := g.sh(t, "/foreign /etc/alpine-release")
	if out != "int80 open: -38\nx32 open: -38\n" {
		t.Errorf("foreign ABI syscalls: %q", out)
	}
}

func TestRootlessJobControl(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	// A stopped job stays stopped (PTRACE_LISTEN) until SIGCONT, then
	// goes on; its parent still reaps it.
	out := g.sh(t, `(while :; do echo x >> /tmp/c; sleep 0.05; done) & p=$!
sleep 0.4; kill -STOP $p; sleep 0.3
a=$(wc -l < /tmp/c); sleep 0.6; b=$(wc -l < /tmp/c)
grep State /proc/$p/status
kill -CONT $p; sleep 1; c=$(wc -l < /tmp/c)
kill $p; wait $p
[ "$a" = "$b" ] && echo stopped; [ "$c" -gt "$b" ] && echo resumed`)
	mustContain(t, out, "stopped\n", "resumed\n")
}

func TestRootlessSignalsAndExit(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	// A termination signal sent to nook (without a terminal) reaches the
	// guest, which dies of it: 128+N.
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.dir, "--", "sh", "-c", "echo ready; exec sleep 30")
		cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Signal only once the guest runs (nook forwards from then on).
		var b [6]byte
		if _, err := io.ReadFull(out, b[:]); err != nil || string(b[:]) != "ready\n" {
			t.Fatalf("guest did not start: %q %v", b, err)
		}
		cmd.Process.Signal(sig)
		err = cmd.Wait()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 128+int(sig) || time.Since(start) > 10*time.Second {
			t.Errorf("%v to nook: %v after %v", sig, err, time.Since(start))
		}
	}

	// Processes left running when the first one exits are killed.
	r := g.run(t, "sh", "-c", "sleep 31337 & echo started")
	if r.Code != 0 {
		t.Fatal(r)
	}
	time.Sleep(200 * time.Millisecond)
	if pids := processesWith(t, "31337"); len(pids) > 0 {
		t.Errorf("guest process still running after the first exited: %v", pids)
	}

	// The guest dies with nook (PTRACE_O_EXITKILL).
	cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.dir, "--", "sh", "-c", "sleep 31338; echo done")
	cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	time.Sleep(200 * time.Millisecond)
	if pids := processesWith(t, "31338"); len(pids) > 0 {
		t.Errorf("guest survived nook's death: %v", pids)
	}
}

// processesWith returns the pids whose command line contains s.
func processesWith(t *testing.T, s string) []string {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []string
	for _, e := range ents {
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if strings.Contains(string(b), s) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// procsC exercises process creation paths: posix_spawn (CLONE_VM|
// CLONE_VFORK in musl), /proc/self/fd and getcwd edge cases, then an execve
// from a thread that is not the leader (the thread takes over the pid).
const procsC = `#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;
static void *execer(void *arg) {
	char *av[] = { "sh", "-c", "echo exec from thread: $(readlink /proc/self/exe) $(readlink /proc/$$/cwd)", 0 };
	execve("/bin/sh", av, environ);
	perror("execve");
	return arg;
}
int main(void) {
	pid_t pid;
	char *av[] = { "echo", "spawned", 0 };
	if (posix_spawn(&pid, "/bin/echo", 0, 0, av, environ)) { perror("posix_spawn"); return 1; }
	int st;
	waitpid(pid, &st, 0);
	chdir("/usr/lib");
	int fd = open("../share/../bin/../lib/../../etc/alpine-release", O_RDONLY);
	char p[64], l[256];
	snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(p, l, sizeof l - 1);
	l[n < 0 ? 0 : n] = 0;
	printf("fd link %s\n", l);
	char small[4];
	printf("small getcwd %s\n", getcwd(small, sizeof small) == 0 && errno == ERANGE ? "ERANGE" : "wrong");
	printf("getcwd %s\n", getcwd(l, sizeof l));
	fflush(stdout);
	pthread_t t;
	pthread_create(&t, 0, execer, 0);
	for (;;) pause();
}
`

func TestRootlessProcesses(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "procs", musl(t, procsC, false, "-lpthread"), 0o755)
	want := "spawned\nfd link /etc/alpine-release\nsmall getcwd ERANGE\ngetcwd /usr/lib\nexec from thread: /bin/busybox /usr/lib\n"
	if got := g.sh(t, "/procs"); got != want {
		t.Errorf("processes:\n%q\nwant\n%q", got, want)
	}
}

// denyC runs argv[3:] under a seccomp filter that fails syscall argv[1]
// with errno argv[2] (and prctl(PR_SET_SECCOMP) too when argv[1] is
// seccomp's number): a system where ptrace or seccomp is forbidden, as in
// some containers.
const denyC = `#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(int argc, char **argv) {
	unsigned nr = atoi(argv[1]), err = atoi(argv[2]);
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 157, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, args[0])),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr == 317 ? PR_SET_SECCOMP : 0xffff, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | err),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof f / sizeof f[0], f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("seccomp");
		return 2;
	}
	execv(argv[3], argv + 3);
	perror("execv");
	return 2;
}
`

func TestRootlessUnavailable(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	deny := filepath.Join(g.base, "deny")
	if err := os.WriteFile(deny, hostCC(t, denyC), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		nr, errno string
		msg       string
	}{
		{"ptrace", "101", "1", "PTRACE_SEIZE"},
		{"seccomp", "317", "22", "seccomp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := g.u.Command(deny, tc.nr, tc.errno, nookBin, "run", "--mode", "rootless", g.dir, "--", "true")
			cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
			r := runCmd(t, cmd)
			if r.Code != 125 || !strings.Contains(r.Stderr, "unavailable") || !strings.Contains(r.Stderr, tc.msg) {
				t.Errorf("without %s: %s", tc.name, r)
			}
		})
	}
}

// hostCC compiles a helper that runs on the host (with the host's kernel
// headers, which musl-gcc lacks).
func hostCC(t *testing.T, src string) []byte {
	t.Helper()
	d := t.TempDir()
	c := filepath.Join(d, "prog.c")
	if err := os.WriteFile(c, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O1", "-o", filepath.Join(d, "prog"), c).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(d, "prog"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestRootlessInteractiveJobControl drives an interactive bash on a
// pseudo-terminal (script(1)): Ctrl-Z stops the foreground job, the shell
// reports it stopped, and fg resumes it.
func TestRootlessInteractiveJobControl(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) not installed")
	}
	g := newGuest(t, debianTarball(t, false))
	nookLine := strings.Join([]string{nookBin, "run", "--mode", "rootless", g.dir, "--", "bash", "--norc", "-i"}, " ")
	cmd := g.u.Command("script", "-qec", nookLine, "/dev/null")
	cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		input string
		wait  time.Duration
	}{
		{"sleep 3; echo after-stop\n", 1500 * time.Millisecond},
		{"\x1a", 1500 * time.Millisecond},
		{"jobs; fg; echo resumed-$?\n", 5 * time.Second},
		{"exit\n", 0},
	}
	for _, s := range steps {
		time.Sleep(500 * time.Millisecond)
		in.Write([]byte(s.input))
		time.Sleep(s.wait)
	}
	in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("script: %v", err)
		}
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("interactive shell hung:\n%s", out.String())
	}
	o := strings.ReplaceAll(out.String(), "\r", "")
	mustContain(t, o, "Stopped", "after-stop\n", "resumed-0\n")
}

// fexecC runs a program from a descriptor (execveat AT_EMPTY_PATH, as
// fexecve does) and, with a relative path, from a directory descriptor.
const fexecC = `#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
#include <sys/syscall.h>
extern char **environ;
int main(int argc, char **argv) {
	int fd = open(argv[1], O_RDONLY);
	int dir = open("/bin", O_RDONLY | O_DIRECTORY);
	if (fd < 0 || dir < 0) { perror("open"); return 1; }
	if (fork() == 0) {
		char *av[] = { "echo", "from", "dirfd", 0 };
		syscall(SYS_execveat, dir, "echo", av, environ, 0);
		perror("execveat dirfd");
		_exit(1);
	}
	sleep(1);
	char *av[] = { argv[2], "from", "fd", 0 };
	syscall(SYS_execveat, fd, "", av, environ, AT_EMPTY_PATH);
	perror("execveat");
	return 1;
}
`

func TestRootlessExecveat(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "fexec", musl(t, fexecC, false), 0o755)
	g.put(t, "script", []byte("#!/bin/sh\necho \"script $*\"\n"), 0o755)
	if got := g.sh(t, "/fexec /bin/busybox echo"); got != "from dirfd\nfrom fd\n" {
		t.Errorf("execveat of a dynamic program: %q", got)
	}
	// A script run from a descriptor gets /dev/fd/N as its path, which
	// its interpreter opens through the guest's /dev and /proc.
	if got := g.sh(t, "/fexec /script x"); got != "from dirfd\nscript from fd\n" {
		t.Errorf("execveat of a script: %q", got)
	}
}

// fakeLoaderC stands in for a dynamic loader too old for --argv0 (its text
// must not contain that option's name): it prints the argv it was given.
const fakeLoaderC = `#include <stdio.h>
int main(int argc, char **argv) {
	for (int i = 0; i < argc; i++) printf("[%s]", argv[i]);
	printf("\n");
	return 0;
}
`

func TestRootlessLoaderWithoutArgv0(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	g.put(t, "fakeld", musl(t, fakeLoaderC, true), 0o755)
	g.put(t, "usr/bin/prog", musl(t, helloC, false, "-Wl,--dynamic-linker=/fakeld"), 0o755)
	// The program's path as the caller gave it replaces argv[0].
	if got := g.sh(t, "prog a b; cd /usr/bin && ./prog c"); got != "[/fakeld][/usr/bin/prog][a][b]\n[/fakeld][./prog][c]\n" {
		t.Errorf("loader without --argv0: %q", got)
	}
}

// noDumpC makes itself non-dumpable, as ssh-agent does; an unprivileged
// tracer cannot read such a process's memory, so the flag is emulated.
const noDumpC = `#include <fcntl.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <unistd.h>
int main(void) {
	if (prctl(PR_SET_DUMPABLE, 0)) { perror("prctl"); return 1; }
	char buf[64] = "";
	int fd = open("/etc/alpine-release", O_RDONLY);
	if (fd < 0) { perror("open"); return 1; }
	read(fd, buf, sizeof buf - 1);
	printf("dumpable %d, read %s", prctl(PR_GET_DUMPABLE), buf);
	return 0;
}
`

func TestRootlessNotDumpable(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine312))
	g.put(t, "nodump", musl(t, noDumpC, true), 0o755)
	if got := g.sh(t, "/nodump"); got != "dumpable 0, read 3.12.12\n" {
		t.Errorf("non-dumpable guest: %q", got)
	}
}
