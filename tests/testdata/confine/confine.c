/* confine tries every route out of a rootless guest that the field notes
 * list (sections 2 and 3) and prints one line per attempt:
 *   NAME: RESULT
 * where RESULT is an errno name, "ok" for a success that stayed inside, or
 * "LEAK" when the host-only marker's content was read. It runs inside the
 * guest as the unprivileged user; the test reads the lines.
 *
 * argv: 1 host path of the marker, 2 its content, 3 host path of a
 * listening unix socket outside the guest, 4 pid of a host process of the
 * same user (cwd: the marker's directory, marker open on fd 3),
 * 5 abstract socket name of a host process that hands out a marker fd
 * (and, with "P" appended, a pidfd of the process of argument 4). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <stddef.h>
#include <unistd.h>

/* seccomp user notification, spelled out: musl-gcc has no kernel
 * headers. */
struct bpf_insn { uint16_t code; uint8_t jt, jf; uint32_t k; };
struct bpf_prog { unsigned short len; struct bpf_insn *filter; };
struct sc_data { int nr; uint32_t arch; uint64_t ip; uint64_t args[6]; };
struct sc_notif { uint64_t id; uint32_t pid, flags; struct sc_data data; };
struct sc_resp { uint64_t id; int64_t val; int32_t error; uint32_t flags; };
#define NOTIF_RECV 0xc0502100UL /* SECCOMP_IOCTL_NOTIF_RECV */
#define NOTIF_SEND 0xc0182101UL /* SECCOMP_IOCTL_NOTIF_SEND */

static const char *marker, *content, *hostsock, *abstract;
static char hostrel[4096];
static int sleeper;

static const char *ename(int e) {
	switch (e) {
	case ENOENT: return "ENOENT";
	case EXDEV: return "EXDEV";
	case EACCES: return "EACCES";
	case EPERM: return "EPERM";
	case ENOSYS: return "ENOSYS";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case ELOOP: return "ELOOP";
	case EINVAL: return "EINVAL";
	case ENOTDIR: return "ENOTDIR";
	case EBADF: return "EBADF";
	case ECONNREFUSED: return "ECONNREFUSED";
	case ESRCH: return "ESRCH";
	case EEXIST: return "EEXIST";
	case EBUSY: return "EBUSY";
	case EAGAIN: return "EAGAIN";
	case ECHILD: return "ECHILD";
	case ENOTTY: return "ENOTTY";
	case EIO: return "EIO";
	}
	static char buf[32];
	snprintf(buf, sizeof buf, "errno%d", e);
	return buf;
}

/* report prints the outcome of an open-like call: the fd's content is
 * compared with the marker. */
static void report(const char *what, long fd) {
	if (fd < 0) {
		printf("%s: %s\n", what, ename(errno));
		return;
	}
	char buf[256] = "";
	ssize_t n = pread((int)fd, buf, sizeof buf - 1, 0);
	close((int)fd);
	if (n > 0) buf[n] = 0;
	printf("%s: %s\n", what, n > 0 && strstr(buf, content) ? "LEAK" : "ok");
}

static void result(const char *what, long r) {
	printf("%s: %s\n", what, r < 0 ? ename(errno) : "ok");
}

struct how { uint64_t flags, mode, resolve; };
#define RESOLVE_NO_XDEV 0x01
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_NO_SYMLINKS 0x04
#define RESOLVE_BENEATH 0x08
#define RESOLVE_IN_ROOT 0x10

static long openat2(int dfd, const char *p, uint64_t resolve) {
	struct how h = { O_RDONLY | O_CLOEXEC, 0, resolve };
	return syscall(SYS_openat2, dfd, p, &h, sizeof h);
}

static char *cat(const char *a, const char *b) {
	static char bufs[8][8192];
	static int i;
	char *s = bufs[i++ % 8];
	snprintf(s, 8192, "%s%s", a, b);
	return s;
}

/* i386 system call through int $0x80: pointers must fit 32 bits, so the
 * strings are copied to a static buffer of this (non-PIE, static) binary. */
static char low[3][512];
static long int80(long nr, const char *a, const char *b, long c) {
	long r;
	if (a) snprintf(low[0], sizeof low[0], "%s", a);
	if (b) snprintf(low[1], sizeof low[1], "%s", b);
	__asm__ volatile("int $0x80" : "=a"(r)
		: "a"(nr), "b"(a ? (long)low[0] : 0L), "c"(b ? (long)low[1] : c), "d"(c)
		: "memory");
	return r;
}

static int sendfd(int s, int fd) {
	char c = 'x';
	struct iovec iov = { &c, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof fd);
	return sendmsg(s, &m, 0) == 1 ? 0 : -1;
}

static int recvfd(int s) {
	char c;
	struct iovec iov = { &c, 1 };
	union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(int))]; } u;
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf };
	if (recvmsg(s, &m, 0) != 1) return -1;
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
	if (!cm || cm->cmsg_type != SCM_RIGHTS) { errno = EBADF; return -1; }
	int fd;
	memcpy(&fd, CMSG_DATA(cm), sizeof fd);
	return fd;
}

static int listener;

/* supervisor answers every notification with "continue": the kernel then
 * performs the call as the guest made it. */
static void *supervisor(void *arg) {
	for (;;) {
		struct sc_notif n;
		memset(&n, 0, sizeof n);
		if (ioctl(listener, NOTIF_RECV, &n) < 0) {
			if (errno == EINTR) continue;
			return arg;
		}
		struct sc_resp r = { n.id, 0, 0, 1 /* SECCOMP_USER_NOTIF_FLAG_CONTINUE */ };
		ioctl(listener, NOTIF_SEND, &r);
	}
}

/* user_notif installs a filter of the guest's own that sends openat to a
 * listener in this process (SECCOMP_RET_USER_NOTIF takes precedence over
 * the tracer's SECCOMP_RET_TRACE), answered "continue", then opens the
 * marker by its host path. Runs in a child: the filter stays with it. */
static void user_notif(void) {
	pid_t c = fork();
	if (c == 0) {
		struct bpf_insn f[] = {
			{ 0x20, 0, 0, 0 },           /* ld [nr] */
			{ 0x15, 0, 1, SYS_openat },  /* jeq openat */
			{ 0x06, 0, 0, 0x7fc00000U }, /* ret USER_NOTIF */
			{ 0x06, 0, 0, 0x7fff0000U }, /* ret ALLOW */
		};
		struct bpf_prog prog = { 4, f };
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		/* op is an unsigned int: the kernel ignores the high half of
		 * the register, a filter comparing all of it does not. */
		long l = syscall(SYS_seccomp, 1L | 1L << 32, 1 << 3, &prog);
		printf("seccomp-user-notif-highbits: %s\n", l >= 0 ? "LISTENER" : ename(errno));
		listener = syscall(SYS_seccomp, 1 /* SET_MODE_FILTER */, 1 << 3 /* NEW_LISTENER */, &prog);
		if (listener < 0) {
			printf("seccomp-user-notif: blocked (%s)\n", ename(errno));
			_exit(0);
		}
		pthread_t t;
		pthread_create(&t, 0, supervisor, 0);
		long fd = syscall(SYS_openat, AT_FDCWD, marker, O_RDONLY);
		char buf[256] = "";
		if (fd >= 0) pread((int)fd, buf, sizeof buf - 1, 0);
		printf("seccomp-user-notif: %s\n", fd >= 0 && strstr(buf, content) ? "LEAK" : "blocked");
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
}

/* guest_trace installs a filter of the guest's own that returns
 * SECCOMP_RET_TRACE with data of its own for every call (it outranks
 * nothing of the tracer's and its data is what the tracer would see):
 * translation must go on as before, the marker stays out of reach and the
 * guest's own files in reach. */
static void guest_trace(void) {
	pid_t c = fork();
	if (c == 0) {
		struct bpf_insn f[] = {
			{ 0x06, 0, 0, 0x7ff0ffffU }, /* ret TRACE|0xffff */
		};
		struct bpf_prog prog = { 1, f };
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (syscall(SYS_seccomp, 1 /* SET_MODE_FILTER */, 0, &prog) < 0) {
			printf("guest-ret-trace: %s\n", ename(errno));
			_exit(0);
		}
		report("guest-ret-trace-marker", open(marker, O_RDONLY));
		long fd = open("/etc/alpine-release", O_RDONLY);
		printf("guest-ret-trace-inside: %s\n", fd >= 0 ? "ok" : ename(errno));
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
}

static void mseal_refused_start(const char *self, const char *longp);

/* pid_calls tries the other calls that name a process, a process group or
 * a user on the host process (argument 4, leader of a group of its own):
 * each must fail as for a process that does not exist (ESRCH) or that one
 * may not touch (EPERM), while the same calls on the guest's own processes
 * work. */
static void pid_calls(void) {
	long r;
	result("setpriority-host-process", setpriority(PRIO_PROCESS, sleeper, 5));
	errno = 0;
	r = getpriority(PRIO_PROCESS, sleeper);
	result("getpriority-host-process", r == -1 && errno ? -1 : 0);
	result("setpriority-host-group", setpriority(PRIO_PGRP, sleeper, 5));
	errno = 0;
	r = getpriority(PRIO_PGRP, sleeper);
	result("getpriority-host-group", r == -1 && errno ? -1 : 0);
	errno = 0;
	r = getpriority(PRIO_PROCESS, 0);
	result("getpriority-self", r == -1 && errno ? -1 : 0);

	/* ioprio: IOPRIO_WHO_PROCESS 1, _PGRP 2, _USER 3; class BE 2. */
	result("ioprio_set-host-process", syscall(SYS_ioprio_set, 1, sleeper, 2 << 13 | 7));
	result("ioprio_get-host-process", syscall(SYS_ioprio_get, 1, sleeper));
	result("ioprio_set-host-group", syscall(SYS_ioprio_set, 2, sleeper, 2 << 13 | 7));
	result("ioprio_get-host-group", syscall(SYS_ioprio_get, 2, sleeper));
	result("ioprio_set-user", syscall(SYS_ioprio_set, 3, 0, 2 << 13 | 7));
	result("ioprio_get-user", syscall(SYS_ioprio_get, 3, 0));
	result("ioprio_set-self", syscall(SYS_ioprio_set, 1, 0, 2 << 13 | 4));
	r = syscall(SYS_ioprio_get, 1, getpid());
	printf("ioprio_get-self: %s\n", r < 0 ? ename(errno) : r == (2 << 13 | 4) ? "ok" : "WRONG");

	result("getpgid-host-process", getpgid(sleeper));
	result("getsid-host-process", getsid(sleeper));
	result("getpgid-guest", getpgid(getpid()));
	result("getsid-guest", getsid(getpid()));

	/* The scheduler calls (musl's sched_getparam and friends are
	 * stubs: the raw calls). */
	cpu_set_t cs;
	result("sched_getaffinity-host", sched_getaffinity(sleeper, sizeof cs, &cs));
	sched_getaffinity(0, sizeof cs, &cs);
	result("sched_setaffinity-host", sched_setaffinity(sleeper, sizeof cs, &cs));
	struct sched_param sp = {0};
	result("sched_getparam-host", syscall(SYS_sched_getparam, sleeper, &sp));
	result("sched_setparam-host", syscall(SYS_sched_setparam, sleeper, &sp));
	result("sched_getscheduler-host", syscall(SYS_sched_getscheduler, sleeper));
	result("sched_setscheduler-host", syscall(SYS_sched_setscheduler, sleeper, SCHED_OTHER, &sp));
	struct timespec ts;
	result("sched_rr_get_interval-host", syscall(SYS_sched_rr_get_interval, sleeper, &ts));
	uint32_t attr[14] = { 56 };
	result("sched_getattr-host", syscall(SYS_sched_getattr, sleeper, attr, sizeof attr, 0));
	result("sched_getparam-guest", syscall(SYS_sched_getparam, getpid(), &sp));

	/* Other calls naming a process. */
	result("kcmp-host", syscall(SYS_kcmp, getpid(), sleeper, 1 /* KCMP_VM */, 0, 0));
	void *head;
	size_t hlen;
	result("get_robust_list-host", syscall(SYS_get_robust_list, sleeper, &head, &hlen));
	unsigned long mask = 1;
	result("migrate_pages-host", syscall(SYS_migrate_pages, sleeper, 8 * sizeof mask, &mask, &mask));
	result("move_pages-host", syscall(SYS_move_pages, sleeper, 0, 0, 0, 0, 0));
	siginfo_t si;
	memset(&si, 0, sizeof si);
	si.si_code = SI_QUEUE;
	si.si_pid = getpid();
	result("tgsigqueue-host-process", syscall(SYS_rt_tgsigqueueinfo, sleeper, sleeper, 0, &si));
	struct { uint32_t version; int pid; } caph = { 0x20080522, sleeper };
	uint32_t capd[6];
	result("capget-host", syscall(SYS_capget, &caph, capd));
	/* A user-space software counter of another process of the same
	 * user is allowed by perf_event_paranoid 2. */
	uint64_t pattr[16] = {0};
	pattr[0] = 1 /* PERF_TYPE_SOFTWARE */ | (uint64_t)sizeof pattr << 32;
	pattr[5] = 1 << 5 | 1 << 6; /* exclude_kernel, exclude_hv */
	result("perf_event_open-host", syscall(SYS_perf_event_open, pattr, sleeper, -1, -1, 0));
	result("perf_event_open-self", syscall(SYS_perf_event_open, pattr, 0, -1, -1, 0));
	result("waitid-host-group", waitid(P_PGID, sleeper, &si, WEXITED | WNOHANG));

	/* Joining the host process's group (same session) would put the
	 * caller in its group: kill(0) would then reach it. */
	pid_t c = fork();
	if (c == 0) {
		result("setpgid-host-group", setpgid(0, sleeper));
		result("setpgid-new-group", setpgid(0, 0));
		/* A guest process's pidfd signals its process, or the group
		 * it leads (PIDFD_SIGNAL_PROCESS_GROUP; none for the parent). */
		int ppfd = syscall(SYS_pidfd_open, getppid(), 0);
		result("pidfd-signal-guest", syscall(SYS_pidfd_send_signal, ppfd, 0, 0, 0));
		result("pidfd-group-not-leader", syscall(SYS_pidfd_send_signal, ppfd, 0, 0, 4));
		int spfd = syscall(SYS_pidfd_open, getpid(), 0);
		result("pidfd-group-leader", syscall(SYS_pidfd_send_signal, spfd, 0, 0, 4));
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);

	/* SIGIO owners: a signal to the host process, or its group, when
	 * the descriptor has data. This process ignores SIGIO: it is the
	 * owner the guest is allowed to set. */
	signal(SIGIO, SIG_IGN);
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	result("fcntl-setown-guest", fcntl(sv[0], F_SETOWN, getpid()));
	result("fcntl-setown-host", fcntl(sv[0], F_SETOWN, sleeper));
	result("fcntl-setown-host-group", fcntl(sv[0], F_SETOWN, -sleeper));
	/* This process's group holds nook (and the test) too. */
	result("fcntl-setown-own-group", fcntl(sv[0], F_SETOWN, -getpgrp()));
	struct f_owner_ex ox = { F_OWNER_TID, sleeper };
	result("fcntl-setown_ex-host", fcntl(sv[0], F_SETOWN_EX, &ox));
	ox.type = F_OWNER_PGRP;
	result("fcntl-setown_ex-host-group", fcntl(sv[0], F_SETOWN_EX, &ox));
	int who = sleeper;
	result("ioctl-fiosetown-host", ioctl(sv[0], 0x8901 /* FIOSETOWN */, &who));
	who = -sleeper;
	result("ioctl-siocspgrp-host-group", ioctl(sv[0], 0x8902 /* SIOCSPGRP */, &who));
	/* The guest's own owners work, through the tracer's copy of the
	 * value. */
	ox.type = F_OWNER_PID;
	ox.pid = getpid();
	result("fcntl-setown_ex-guest", fcntl(sv[0], F_SETOWN_EX, &ox));
	memset(&ox, 0, sizeof ox);
	fcntl(sv[0], F_GETOWN_EX, &ox);
	printf("fcntl-getown_ex: %s\n", ox.type == F_OWNER_PID && ox.pid == getpid() ? "self" : "OTHER");
	who = getpid();
	result("ioctl-fiosetown-guest", ioctl(sv[0], 0x8901 /* FIOSETOWN */, &who));
	printf("fcntl-getown: %s\n", fcntl(sv[0], F_GETOWN) == getpid() ? "self" : "OTHER");
	/* Whatever owner stuck gets SIGIO now (the test checks the host
	 * process survived). */
	fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_ASYNC);
	write(sv[1], "x", 1);
	usleep(100000);
	close(sv[0]);
	close(sv[1]);
}

/* host_pidfd tries the calls that take a pidfd with a pidfd of the host
 * process, handed out by a host process over an abstract socket. */
static void host_pidfd(void) {
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path + 1, sizeof a.sun_path - 1, "%sP", abstract);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 2 + strlen(abstract)) < 0) {
		printf("host-pidfd: %s\n", ename(errno));
		return;
	}
	int pfd = recvfd(s);
	close(s);
	if (pfd < 0) {
		printf("host-pidfd: %s\n", ename(errno));
		return;
	}
	result("pidfd_send_signal-host", syscall(SYS_pidfd_send_signal, pfd, 0, 0, 0));
	/* The host process holds the marker open as fd 3. */
	report("pidfd_getfd-host", syscall(SYS_pidfd_getfd, pfd, 3, 0));
	result("process_mrelease-host", syscall(448 /* process_mrelease */, pfd, 0));
	result("process_madvise-host", syscall(SYS_process_madvise, pfd, 0, 0, 0, 0));
	result("setns-host-pidfd", setns(pfd, CLONE_NEWUTS));
	siginfo_t si;
	result("waitid-host-pidfd", waitid(3 /* P_PIDFD */, pfd, &si, WEXITED | WNOHANG));
	close(pfd);
}

/* priority_groups sets the nice value of the caller's process group and of
 * every process of its user: only the guest's processes may change (the
 * test checks the host process's). */
static void priority_groups(void) {
	result("setpriority-own-group", setpriority(PRIO_PGRP, 0, 3));
	printf("getpriority-own-group: %d\n", getpriority(PRIO_PGRP, 0));
	result("setpriority-user", setpriority(PRIO_USER, 0, 7));
	printf("getpriority-user: %d\n", getpriority(PRIO_USER, 0));
	printf("getpriority-self-after-user: %d\n", getpriority(PRIO_PROCESS, 0));
}

/* scratch_region attacks the region the tracer maps in the guest for long
 * translated paths: found in /proc/self/maps (anonymous, read-only), it
 * must stay read-only and in place whatever the guest tries, or another
 * thread could rewrite a translated path before the kernel reads it. */
static void scratch_region(void) {
	/* A long host path (over the stack budget) makes the tracer map
	 * one: three levels of 200-byte names. */
	char longp[1024] = "/tmp", name[201];
	memset(name, 'r', 200);
	name[200] = 0;
	for (int i = 0; i < 3; i++) {
		strcat(longp, "/");
		strcat(longp, name);
		mkdir(longp, 0755);
	}
	strcat(longp, "/f");
	result("region-long-path", open(longp, O_WRONLY | O_CREAT, 0644));
	FILE *m = fopen("/proc/self/maps", "r");
	char line[512];
	unsigned long lo = 0, hi = 0;
	while (m && fgets(line, sizeof line, m)) {
		unsigned long a, b, off, ino;
		char perms[8], dev[16], name[256] = "";
		if (sscanf(line, "%lx-%lx %7s %lx %15s %lu %255s", &a, &b, perms, &off, dev, &ino, name) >= 6 &&
		    strcmp(perms, "r--p") == 0 && ino == 0 && name[0] == 0 && (b - a) % (64 << 10) == 0) {
			lo = a, hi = b;
		}
	}
	if (m) fclose(m);
	if (!lo) {
		printf("region-found: none\n");
		return;
	}
	printf("region-found: yes\n");
	mseal_refused_start("/confine", longp);
	size_t n = hi - lo;
	result("region-mprotect", mprotect((void *)lo, n, PROT_READ | PROT_WRITE));
	result("region-munmap", munmap((void *)lo, n));
	void *r = mmap((void *)lo, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	result("region-mmap-fixed", r == MAP_FAILED ? -1 : 0);
	result("region-madvise-dontneed", madvise((void *)lo, n, MADV_DONTNEED));
	result("region-mremap", (long)mremap((void *)lo, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, (void *)(lo - n)) == -1 ? -1 : 0);
	result("proc-self-mem", open("/proc/self/mem", O_RDWR));
	char x[8] = "ESCAPED";
	struct iovec l = { x, sizeof x }, rv = { (void *)lo, sizeof x };
	result("process_vm_writev-self", process_vm_writev(getpid(), &l, 1, &rv, 1, 0));
}

static int untraced_child(void *arg) {
	(void)arg;
	int fd = open(marker, O_RDONLY);
	_exit(fd >= 0 ? 42 : errno == ENOSYS ? 38 : 1);
}

/* mseal_refused runs in a program started under a filter of the guest's
 * own that refuses mseal: a call that needs a fresh scratch region must
 * fail (with the filter's errno) rather than use an unsealed one. */
static int mseal_refused(const char *longp) {
	setvbuf(stdout, 0, _IONBF, 0);
	result("region-mseal-refused", open(longp, O_RDONLY));
	result("region-mseal-refused-again", open(longp, O_RDONLY));
	result("region-mseal-refused-short", open("/etc/alpine-release", O_RDONLY));
	return 0;
}

/* foreground runs with a terminal on fd 0 whose session leader is a host
 * shell with job control, which gave nook's job a group of its own: the
 * terminal's foreground may pass between the guest's groups and nook's,
 * never to the shell's group. */
static int foreground(void) {
	setvbuf(stdout, 0, _IONBF, 0);
	signal(SIGTTOU, SIG_IGN);
	pid_t start = getpgrp();
	/* Input pushed into the terminal would be read by the host shell
	 * after the run. (A newline-less byte: harmless if it gets there.) */
	char ch = '#';
	result("tiocsti", ioctl(0, TIOCSTI, &ch));
	result("tcsetpgrp-host-group", tcsetpgrp(0, getsid(0)));
	printf("tcgetpgrp-after: %s\n", tcgetpgrp(0) == start ? "start" : "OTHER");
	pid_t c = fork();
	if (c == 0) {
		result("setpgid-new-group", setpgid(0, 0));
		result("tcsetpgrp-guest-group", tcsetpgrp(0, getpgrp()));
		result("setpgid-back-to-start", setpgid(0, start));
		result("tcsetpgrp-start-group", tcsetpgrp(0, start));
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	printf("tcgetpgrp-end: %s\n", tcgetpgrp(0) == start ? "start" : "OTHER");
	return 0;
}

static void mseal_refused_start(const char *self, const char *longp) {
	pid_t c = fork();
	if (c == 0) {
		struct bpf_insn f[] = {
			{ 0x20, 0, 0, 0 },                /* ld [nr] */
			{ 0x15, 0, 1, 462 },              /* jeq mseal */
			{ 0x06, 0, 0, 0x00050000U | EPERM }, /* ret ERRNO(EPERM) */
			{ 0x06, 0, 0, 0x7fff0000U },      /* ret ALLOW */
		};
		struct bpf_prog prog = { 4, f };
		prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
		if (syscall(SYS_seccomp, 1, 0, &prog) < 0) {
			printf("region-mseal-refused: filter %s\n", ename(errno));
			_exit(0);
		}
		execl(self, self, "--mseal-refused", longp, (char *)0);
		printf("region-mseal-refused: exec %s\n", ename(errno));
		_exit(0);
	}
	int st;
	waitpid(c, &st, 0);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		printf("region-mseal-refused-status: %#x\n", st);
}

int main(int argc, char **argv) {
	if (argc == 3 && strcmp(argv[1], "--mseal-refused") == 0) return mseal_refused(argv[2]);
	if (argc == 2 && strcmp(argv[1], "--foreground") == 0) return foreground();
	if (argc < 6) return 2;
	marker = argv[1]; content = argv[2]; hostsock = argv[3]; sleeper = atoi(argv[4]); abstract = argv[5];
	snprintf(hostrel, sizeof hostrel, "%s", marker + 1);
	const char *up = "../../../../../../../../../../";
	setvbuf(stdout, 0, _IONBF, 0);

	/* Plain names: the host path means a guest path. */
	report("open-host-path", open(marker, O_RDONLY));
	report("open-dotdot-abs", open(cat("/../../../../../", hostrel), O_RDONLY));
	chdir("/tmp");
	report("open-dotdot-rel", open(cat(up, hostrel), O_RDONLY));
	chdir("/");

	/* Symlinks to /.. (absolute, relative, chained) and to the host path. */
	mkdir("/tmp/cf", 0755);
	symlink("/..", "/tmp/cf/up");
	symlink("../../../../../../../..", "/tmp/cf/rel");
	symlink("rel", "/tmp/cf/ch2");
	symlink("/tmp/cf/ch2", "/tmp/cf/ch1");
	symlink(marker, "/tmp/cf/abs");
	report("symlink-abs-up", open(cat("/tmp/cf/up/", hostrel), O_RDONLY));
	report("symlink-rel-up", open(cat("/tmp/cf/rel/", hostrel), O_RDONLY));
	report("symlink-chain", open(cat("/tmp/cf/ch1/", hostrel), O_RDONLY));
	report("symlink-host-path", open("/tmp/cf/abs", O_RDONLY));

	/* openat2 with and without RESOLVE_* flags, from AT_FDCWD and from a
	 * descriptor of /. */
	int root = open("/", O_RDONLY | O_DIRECTORY);
	pid_t c;
	int st;
	struct { const char *name; uint64_t r; } res[] = {
		{"none", 0}, {"no-symlinks", RESOLVE_NO_SYMLINKS}, {"no-magiclinks", RESOLVE_NO_MAGICLINKS},
		{"no-xdev", RESOLVE_NO_XDEV}, {"in-root", RESOLVE_IN_ROOT}, {"beneath", RESOLVE_BENEATH},
		{"in-root-no-symlinks", RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS},
	};
	for (unsigned i = 0; i < sizeof res / sizeof res[0]; i++) {
		char n[64];
		snprintf(n, sizeof n, "openat2-%s-host-path", res[i].name);
		report(n, openat2(AT_FDCWD, marker, res[i].r));
		snprintf(n, sizeof n, "openat2-%s-rootfd-dotdot", res[i].name);
		report(n, openat2(root, cat(up, hostrel), res[i].r));
		snprintf(n, sizeof n, "openat2-%s-symlink-up", res[i].name);
		report(n, openat2(root, cat("tmp/cf/rel/", hostrel), res[i].r));
		snprintf(n, sizeof n, "openat2-%s-proc-root", res[i].name);
		report(n, openat2(AT_FDCWD, cat("/proc/self/root/", hostrel), res[i].r));
	}

	/* /proc magic links: own root and cwd, pid 1, nook, a host process of
	 * the same user (its cwd, root and open descriptor). */
	report("proc-self-root", open(cat("/proc/self/root", marker), O_RDONLY));
	report("proc-self-root-dotdot", open(cat("/proc/self/root/../../../", hostrel), O_RDONLY));
	report("proc-self-cwd-dotdot", open(cat("/proc/self/cwd/../../../", hostrel), O_RDONLY));
	report("proc-thread-self-root-dotdot", open(cat("/proc/thread-self/root/../../../", hostrel), O_RDONLY));
	report("proc-1-root", open(cat("/proc/1/root", marker), O_RDONLY));
	char p[8192];
	snprintf(p, sizeof p, "/proc/self/task/%d/root/../../%s", (int)syscall(SYS_gettid), hostrel);
	report("proc-task-root-dotdot", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/%d/root%s", getppid(), marker);
	report("proc-nook-root", open(p, O_RDONLY));
	/* nook's own descriptors (the store's lock directory, Go runtime
	 * files) are host files outside the guest: none may be opened through
	 * nook's fd links (no AF_UNIX alias is in use in this run). */
	int opened = 0;
	char which[256] = "";
	for (int n = 3; n < 64; n++) {
		snprintf(p, sizeof p, "/proc/%d/fd/%d", getppid(), n);
		int fd = open(p, O_RDONLY);
		if (fd >= 0) {
			opened++;
			snprintf(which + strlen(which), sizeof which - strlen(which), " %d", n);
			close(fd);
		}
	}
	printf("proc-nook-fds: %s%s\n", opened ? "OPENED" : "none", which);
	snprintf(p, sizeof p, "/proc/%d/root%s", sleeper, marker);
	report("proc-host-root", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/%d/cwd/%s", sleeper, strrchr(marker, '/') + 1);
	report("proc-host-cwd", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/%d/fd/3", sleeper);
	report("proc-host-fd", open(p, O_RDONLY));

	/* A directory descriptor of / and "..". */
	report("rootfd-openat-dotdot", openat(root, cat(up, hostrel), O_RDONLY));
	int upfd = openat(root, "..", O_RDONLY | O_DIRECTORY);
	report("rootfd-dotdot-fd", openat(upfd, cat(up, hostrel), O_RDONLY));
	fchdir(root);
	chdir("..");
	chdir("../..");
	report("fchdir-root-dotdot", open(hostrel, O_RDONLY));
	char cwd[4096];
	printf("getcwd-after-dotdot: %s\n", getcwd(cwd, sizeof cwd) && strcmp(cwd, "/") == 0 ? "ok" : "WRONG");
	chdir("/");

	/* A guest's own descriptor links, then "..": they lead to guest
	 * paths only. */
	snprintf(p, sizeof p, "/proc/self/fd/%d/../../../%s", root, hostrel);
	report("proc-self-fd-dotdot", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/dev/fd/%d/../../../%s", root, hostrel);
	report("dev-fd-dotdot", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/self/fd/%d", root);
	chdir(p);
	report("chdir-proc-fd-dotdot", open(cat(up, hostrel), O_RDONLY));
	chdir("/");

	/* Every other kind of path argument, given the host path. */
	struct stat sb;
	result("stat-host-path", stat(marker, &sb));
	result("lstat-dotdot", lstat(cat("/../../..", marker), &sb));
	result("fstatat-rootfd-dotdot", fstatat(root, cat(up, hostrel), &sb, 0));
	char sx[256];
	result("statx-host-path", syscall(SYS_statx, AT_FDCWD, marker, 0, 0x7ff, sx));
	result("access-host-path", access(marker, R_OK));
	result("faccessat2-host-path", syscall(SYS_faccessat2, AT_FDCWD, marker, R_OK, 0));
	result("utimensat-host-path", utimensat(AT_FDCWD, marker, 0, 0));
	char xv[64];
	result("getxattr-host-path", syscall(SYS_getxattr, marker, "user.x", xv, sizeof xv));
	int in = syscall(SYS_inotify_init1, 0);
	result("inotify-host-path", syscall(SYS_inotify_add_watch, in, marker, 0x2 /* IN_MODIFY */));
	char rl[256];
	result("readlink-host-path", readlink(marker, rl, sizeof rl));
	result("mknod-fifo-host-dir", mknod(cat(marker, ".fifo"), S_IFIFO | 0644, 0));
	/* Calls denied outright. */
	result("io_uring_setup", syscall(SYS_io_uring_setup, 4, calloc(1, 120)));
	char fh[136] = {0};
	*(unsigned *)fh = 128;
	int mnt;
	result("name_to_handle_at", syscall(SYS_name_to_handle_at, AT_FDCWD, "/etc", fh, &mnt, 0));
	*(unsigned *)fh = 8; *(int *)(fh + 4) = 1; /* a forged FILEID_INO32_GEN handle: inode 2 */
	*(unsigned *)(fh + 8) = 2;
	report("open_by_handle_at", syscall(SYS_open_by_handle_at, root, fh, O_RDONLY));
	result("chroot", syscall(SYS_chroot, "/tmp"));
	result("mount", mount("/", "/tmp", 0, MS_BIND, 0));
	result("umount2", umount2("/proc", MNT_DETACH));
	result("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp/cf"));
	result("open_tree", syscall(428 /* open_tree */, AT_FDCWD, marker, 1 /* OPEN_TREE_CLONE */));
	c = fork();
	if (c == 0) {
		/* A new user namespace gives CAP_SYS_ADMIN over a new mount
		 * namespace; mount and chroot must stay refused. */
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) { printf("userns-mount: unshare %s\n", ename(errno)); _exit(0); }
		long r = mount("/", "/tmp", 0, MS_BIND, 0);
		printf("userns-mount: %s\n", r < 0 ? ename(errno) : "ok");
		r = syscall(SYS_chroot, "/tmp");
		printf("userns-chroot: %s\n", r < 0 ? ename(errno) : "ok");
		_exit(0);
	}
	waitpid(c, &st, 0);

	/* i386 system calls through int $0x80 must fail, not bypass
	 * translation (i386 numbers: open 5, creat 8, link 9, unlink 10,
	 * execve 11, chdir 12, rename 38, mkdir 39, symlink 83, openat 295). */
	printf("int80-open: %ld\n", int80(5, marker, 0, 0));
	printf("int80-openat: %ld\n", int80(295, 0, marker, 0) );
	printf("int80-creat: %ld\n", int80(8, cat(marker, ".int80"), 0, 0644));
	printf("int80-mkdir: %ld\n", int80(39, cat(marker, ".dir"), 0, 0755));
	printf("int80-chdir: %ld\n", int80(12, "/..", 0, 0));
	printf("int80-symlink: %ld\n", int80(83, "/", "/tmp/cf/int80", 0));
	printf("int80-link: %ld\n", int80(9, marker, "/tmp/cf/int80link", 0));
	printf("int80-rename: %ld\n", int80(38, "/tmp/cf/abs", cat(marker, ".moved"), 0));
	printf("int80-unlink: %ld\n", int80(10, marker, 0, 0));
	printf("int80-execve: %ld\n", int80(11, "/bin/true", 0, 0));

	user_notif();
	scratch_region();
	guest_trace();

	/* An untraced clone inherits the filter: trapped calls fail. */
	static char stack[65536];
	c = clone(untraced_child, stack + sizeof stack, CLONE_UNTRACED | SIGCHLD, 0);
	if (c < 0) printf("clone-untraced: %s\n", ename(errno));
	else {
		waitpid(c, &st, 0);
		printf("clone-untraced: %s\n", WEXITSTATUS(st) == 42 ? "LEAK" : WEXITSTATUS(st) == 38 ? "ENOSYS" : "blocked");
	}

	/* Unix sockets: names are guest paths; the host's socket is not
	 * reachable by its host path. */
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	snprintf(a.sun_path, sizeof a.sun_path, "%s", hostsock);
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	result("connect-host-socket", connect(s, (struct sockaddr *)&a, sizeof a));
	close(s);
	snprintf(a.sun_path, sizeof a.sun_path, "/../../../..%s", hostsock);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	result("connect-host-socket-dotdot", connect(s, (struct sockaddr *)&a, sizeof a));
	close(s);
	snprintf(a.sun_path, sizeof a.sun_path, "%s.guest", marker);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	result("bind-host-path", bind(s, (struct sockaddr *)&a, sizeof a));
	close(s);
	snprintf(a.sun_path, sizeof a.sun_path, "/tmp/cf/up/../%s.guest2", marker);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	result("bind-symlink-up", bind(s, (struct sockaddr *)&a, sizeof a));
	close(s);

	/* Descriptor passing between guest processes works as usual. */
	int sv[2];
	socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
	c = fork();
	if (c == 0) {
		int fd = open("/etc/hostname", O_RDONLY);
		sendfd(sv[1], fd);
		_exit(0);
	}
	int got = recvfd(sv[0]);
	waitpid(c, &st, 0);
	result("fd-passing-guest", got);
	/* An abstract socket has no path to translate: a host process of the
	 * same network namespace that listens on one can hand the guest any
	 * descriptor. */
	memset(&a, 0, sizeof a);
	a.sun_family = AF_UNIX;
	memcpy(a.sun_path + 1, abstract, strlen(abstract));
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + strlen(abstract)) < 0)
		printf("fd-passing-abstract: %s\n", ename(errno));
	else
		report("fd-passing-abstract", recvfd(s));
	close(s);
	char dir[4096];
	snprintf(dir, sizeof dir, "%s", marker);
	*strrchr(dir, '/') = 0;
	/* The same server's second name hands out the marker's directory:
	 * names relative to a descriptor the guest cannot see are refused. */
	a.sun_path[1 + strlen(abstract)] = 'D';
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	if (connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 2 + strlen(abstract)) < 0)
		printf("fd-passing-abstract-dir: %s\n", ename(errno));
	else {
		int dfd = recvfd(s);
		report("fd-passing-abstract-dir", openat(dfd, strrchr(marker, '/') + 1, O_RDONLY));
		snprintf(p, sizeof p, "/proc/self/fd/%d/%s", dfd, strrchr(marker, '/') + 1);
		report("fd-passing-abstract-dir-proc", open(p, O_RDONLY));
		if (fchdir(dfd) == 0) {
			report("fd-passing-abstract-dir-fchdir", open(strrchr(marker, '/') + 1, O_RDONLY));
			report("fd-passing-abstract-dir-cwd", open(cat("/proc/self/cwd/", strrchr(marker, '/') + 1), O_RDONLY));
			printf("fd-passing-abstract-dir-getcwd: %s\n", getcwd(cwd, sizeof cwd) ? (strcmp(cwd, dir) == 0 ? "HOSTPATH" : cwd) : ename(errno));
			chdir("/");
		} else
			printf("fd-passing-abstract-dir-fchdir: %s\n", ename(errno));
	}
	close(s);

	/* rename, link, symlink across the root. */
	int f = open("/tmp/cf/file", O_WRONLY | O_CREAT, 0644);
	write(f, "guest", 5);
	close(f);
	result("rename-to-host-dir", rename("/tmp/cf/file", cat(dir, "/RENAMED")));
	result("rename-dotdot", rename("/tmp/cf/file", cat(cat("/../../..", dir), "/RENAMED")));
	result("rename-symlink-up", rename("/tmp/cf/file", cat(cat("/tmp/cf/rel", dir), "/RENAMED")));
	result("renameat-rootfd-dotdot", renameat(root, "tmp/cf/file", root, cat(cat(up, dir + 1), "/RENAMED")));
	result("rename-exchange-host", syscall(SYS_renameat2, AT_FDCWD, "/tmp/cf/file", AT_FDCWD, marker, 2 /* RENAME_EXCHANGE */));
	result("link-host-file", link(marker, "/tmp/cf/hl"));
	result("link-dotdot", link(cat("/../../..", marker), "/tmp/cf/hl2"));
	result("linkat-rootfd-dotdot", linkat(root, cat(up, hostrel), root, "tmp/cf/hl3", 0));
	result("linkat-symlink-follow", linkat(AT_FDCWD, "/tmp/cf/abs", AT_FDCWD, "/tmp/cf/hl4", AT_SYMLINK_FOLLOW));
	result("symlink-into-host-dir", symlink("/etc/passwd", cat(dir, "/SYMLINKED")));
	result("mkdir-host-dir", mkdir(cat(dir, "/MKDIR"), 0755));
	result("creat-host-dir", open(cat(dir, "/CREATED"), O_WRONLY | O_CREAT, 0644));
	result("creat-dotdot", open(cat(cat("/../../..", dir), "/CREATED"), O_WRONLY | O_CREAT, 0644));
	result("unlink-host-file", unlink(marker));
	result("chmod-host-file", chmod(marker, 0777));
	result("truncate-host-file", truncate(marker, 0));

	/* Other processes of the same user: ptrace and their memory. */
	long r = ptrace(PTRACE_SEIZE, sleeper, 0, 0);
	printf("ptrace-host-process: %s\n", r < 0 ? ename(errno) : "ATTACHED");
	if (r == 0) ptrace(PTRACE_DETACH, sleeper, 0, 0);
	char mem[16];
	struct iovec l = { mem, sizeof mem }, rv = { (void *)0x400000, sizeof mem };
	r = process_vm_readv(sleeper, &l, 1, &rv, 1, 0);
	/* EFAULT means the access check passed and only the address was bad. */
	printf("process_vm_readv-host: %s\n", r >= 0 || errno == EFAULT ? "PERMITTED" : ename(errno));
	snprintf(p, sizeof p, "/proc/%d/mem", sleeper);
	result("proc-host-mem", open(p, O_RDWR));
	result("kill-host-process", kill(sleeper, 0));
	/* The host process leads a process group of its own. */
	result("killpg-host-group", kill(-sleeper, 0));
	result("kill-own-group", kill(0, 0));
	result("tgkill-host-process", syscall(SYS_tgkill, sleeper, sleeper, 0));
	result("sigqueue-host-process", sigqueue(sleeper, 0, (union sigval){0}));
	result("pidfd_open-host", syscall(SYS_pidfd_open, sleeper, 0));
	result("prlimit-host", prlimit(sleeper, RLIMIT_NOFILE, 0, &(struct rlimit){0}));
	snprintf(p, sizeof p, "/proc/%d", sleeper);
	int procdir = open(p, O_RDONLY | O_DIRECTORY);
	/* A /proc/PID directory fd is a pidfd for pidfd_send_signal. */
	result("pidfd_send_signal-proc-dir", procdir < 0 ? -1 : syscall(SYS_pidfd_send_signal, procdir, 0, 0, 0));
	snprintf(p, sizeof p, "/proc/%d/environ", sleeper);
	result("proc-host-environ", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/%d/maps", sleeper);
	result("proc-host-maps", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/%d/map_files", sleeper);
	result("proc-host-map_files", open(p, O_RDONLY | O_DIRECTORY));
	snprintf(p, sizeof p, "/proc/%d/status", sleeper);
	result("proc-host-status", open(p, O_RDONLY));
	snprintf(p, sizeof p, "/proc/%d/cmdline", sleeper);
	result("proc-host-cmdline", open(p, O_RDONLY));
	pid_calls();
	host_pidfd();

	/* A guest's own processes stay reachable: a child signalled by pid,
	 * then by kill(-1), which must reach the guest's processes only (the
	 * host sleeper and nook itself survive it: the test checks). */
	pid_t kid = fork();
	if (kid == 0) {
		pause();
		_exit(0);
	}
	result("kill-guest-child", kill(kid, 0));
	result("setpriority-guest-child", setpriority(PRIO_PROCESS, kid, 10));
	errno = 0;
	r = getpriority(PRIO_PROCESS, kid);
	printf("getpriority-guest-child: %ld\n", r);
	result("kill-minus-one", kill(-1, SIGTERM));
	int kst;
	waitpid(kid, &kst, 0);
	printf("kill-minus-one-child: %s\n", WIFSIGNALED(kst) && WTERMSIG(kst) == SIGTERM ? "killed" : "survived");
	/* Last: it makes this process nicer for good. */
	priority_groups();
	return 0;
}
