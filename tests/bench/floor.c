// The floor of any ptrace + seccomp tracer on this machine: a tracer that
// stops the guest on the same path and stat system calls nook traps and
// resumes it doing nothing (bare) or only what every path-rewriting tracer
// must do at a stop (min: read the registers and the path argument, write
// the registers back). It translates nothing, so it runs the guest in a
// real chroot, as root; what it measures is the cost of the stops alone.
//
// Usage (as root): floor MODE PLACEMENT ROOTFS CMD [ARG...]
//   MODE: bare | min | owner (min, but only for the calls that show or
//         change an owner, mode or id: what a tracer would still have to
//         stop if the kernel translated paths, in a user namespace) |
//         work (min, plus the least a faking tracer adds: one stat on the
//         host and one write to the guest's memory, here of the path's
//         own bytes back where they were)
//   PLACEMENT: same (tracer and guest on CPU 0) | off (the scheduler's choice)
// Built and run by tests/bench/floor-run; see docs/performance.md.
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

// The calls nook traps unconditionally for their path or to fake an owner
// (tracer/*.go: Register without a When). The conditional ones (fcntl,
// ioctl, kill, prctl...) are left out: the floor is a lower bound.
static const int trapped[] = {
	SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_stat, SYS_lstat,
	SYS_fstat, SYS_newfstatat, SYS_statx, SYS_access, SYS_faccessat,
	SYS_faccessat2, SYS_readlink, SYS_readlinkat, SYS_execve, SYS_execveat,
	SYS_chdir, SYS_fchdir, SYS_getcwd, SYS_mkdir, SYS_mkdirat, SYS_unlink,
	SYS_unlinkat, SYS_rename, SYS_renameat, SYS_renameat2, SYS_rmdir,
	SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat, SYS_chmod,
	SYS_fchmod, SYS_fchmodat, SYS_chown, SYS_lchown, SYS_fchown,
	SYS_fchownat, SYS_truncate, SYS_mknod, SYS_mknodat, SYS_connect,
	SYS_bind, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
};

// The subset that returns or changes owners, modes and ids.
static const int owners[] = {
	SYS_stat, SYS_lstat, SYS_fstat, SYS_newfstatat, SYS_statx, SYS_access,
	SYS_faccessat, SYS_faccessat2, SYS_chmod, SYS_fchmod, SYS_fchmodat,
	SYS_chown, SYS_lchown, SYS_fchown, SYS_fchownat, SYS_mknod,
	SYS_mknodat, SYS_getuid, SYS_geteuid, SYS_getgid, SYS_getegid,
};

static void die(const char *what) { perror(what); exit(125); }

static void pin0(pid_t tid) {
	cpu_set_t s;
	CPU_ZERO(&s);
	CPU_SET(0, &s);
	if (sched_setaffinity(tid, sizeof s, &s) != 0) die("sched_setaffinity");
}

int main(int argc, char **argv) {
	if (argc < 5) {
		fprintf(stderr, "usage: floor bare|min|owner|work same|off ROOTFS CMD [ARG...]\n");
		return 2;
	}
	int owner = strcmp(argv[1], "owner") == 0;
	int work = strcmp(argv[1], "work") == 0;
	int min = owner || work || strcmp(argv[1], "min") == 0;
	const int *list = owner ? owners : trapped;
	size_t nlist = owner ? sizeof owners / sizeof owners[0] : sizeof trapped / sizeof trapped[0];
	int same = strcmp(argv[2], "same") == 0;
	if (same) pin0(0);
	int sync[2];
	if (pipe(sync) != 0) die("pipe");
	pid_t child = fork();
	if (child < 0) die("fork");
	if (child == 0) {
		if (chroot(argv[3]) != 0 || chdir("/") != 0) die("chroot");
		scmp_filter_ctx f = seccomp_init(SCMP_ACT_ALLOW);
		if (!f) die("seccomp_init");
		for (size_t i = 0; i < nlist; i++)
			if (seccomp_rule_add(f, SCMP_ACT_TRACE(1), list[i], 0) != 0) die("seccomp_rule_add");
		char c;
		close(sync[1]);
		if (read(sync[0], &c, 1) != 1) die("read"); // the tracer seizes us first
		if (seccomp_load(f) != 0) die("seccomp_load");
		execvp(argv[4], argv + 4);
		die("execvp");
	}
	long opts = PTRACE_O_EXITKILL | PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE |
		    PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEEXEC |
		    PTRACE_O_TRACESYSGOOD;
	int st;
	if (ptrace(PTRACE_SEIZE, child, 0, opts) != 0) die("PTRACE_SEIZE");
	if (write(sync[1], "x", 1) != 1) die("write");
	close(sync[1]);
	close(sync[0]);
	int status = 0;
	long stops = 0;
	char path[256];
	for (;;) {
		pid_t tid = waitpid(-1, &st, __WALL);
		if (tid < 0) {
			if (errno == EINTR) continue;
			if (errno == ECHILD) break;
			die("waitpid");
		}
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (tid == child) status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
			continue;
		}
		if (!WIFSTOPPED(st)) continue;
		int sig = WSTOPSIG(st), event = (unsigned)st >> 16;
		int deliver = 0;
		if (sig == SIGTRAP && event == PTRACE_EVENT_SECCOMP) {
			stops++;
			if (min) {
				struct user_regs_struct r;
				if (ptrace(PTRACE_GETREGS, tid, 0, &r) == 0) {
					// The path is the first pointer argument, or the second
					// of the *at calls: read one, as every stop must.
					unsigned long a = r.rdi < 4096 ? r.rsi : r.rdi;
					struct iovec l = {path, sizeof path}, rem = {(void *)a, sizeof path};
					ssize_t n = process_vm_readv(tid, &l, 1, &rem, 1, 0);
					if (work) {
						struct stat host;
						fstatat(AT_FDCWD, "/etc/passwd", &host, AT_SYMLINK_NOFOLLOW);
						if (n > 0) {
							// The string and its NUL, unchanged: other
							// threads' bytes beyond it stay untouched.
							size_t len = strnlen(path, n);
							l.iov_len = rem.iov_len = len + (len < (size_t)n);
							process_vm_writev(tid, &l, 1, &rem, 1, 0);
						}
					}
					ptrace(PTRACE_SETREGS, tid, 0, &r);
				}
			}
		} else if (event == PTRACE_EVENT_STOP) {
			if (sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU) {
				if (ptrace(PTRACE_LISTEN, tid, 0, 0) == 0) continue;
			}
		} else if (event == 0 && sig != (SIGTRAP | 0x80)) {
			deliver = sig; // signal-delivery stop
		}
		ptrace(PTRACE_CONT, tid, 0, deliver);
	}
	if (getenv("FLOOR_STATS")) fprintf(stderr, "floor: %ld seccomp stops\n", stops);
	return status;
}
