/* rootfd tries to take away the guest root descriptor rootless nook keeps
 * at fd 1023 in every guest process (tracer/rootfd.go), then checks that
 * opens still work, in this process and in a child it executes. Each line
 * is "NAME: RESULT"; the test compares them with what nook promises.
 * argv[1] == "child": only the open check. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

static void report(const char *name, long r) {
	if (r >= 0) printf("%s: ok\n", name);
	else if (errno == EBADF) printf("%s: EBADF\n", name);
	else printf("%s: errno %d\n", name, errno);
}

/* open_check reads /etc/alpine-release: through openat2(1023, ...) under
 * nook, which fails if fd 1023 is gone or is something else. */
static void open_check(const char *name) {
	char buf[64] = {0};
	int fd = open("/etc/alpine-release", O_RDONLY);
	if (fd < 0) { report(name, -1); return; }
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	printf("%s: %s\n", name, n > 0 && buf[0] == '3' ? "ok" : "bad-content");
}

int main(int argc, char **argv) {
	setvbuf(stdout, 0, _IONBF, 0);
	if (argc > 1 && !strcmp(argv[1], "child")) {
		open_check("child-open");
		return 0;
	}
	report("close", syscall(SYS_close, 1023));
	report("close-highbits", syscall(SYS_close, 0xffffffff00000000UL | 1023));
	report("dup2", syscall(SYS_dup2, 0, 1023));
	report("dup3", syscall(SYS_dup3, 0, 1023, O_CLOEXEC));
	report("setfd", syscall(SYS_fcntl, 1023, F_SETFD, FD_CLOEXEC));
	open_check("open-after-close");

	/* A descriptor above it: a close_range over both closes that one
	 * (the call is split around 1023). */
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_max > 2048) rl.rlim_cur = 2048;
	else rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	report("dup2-above", dup2(0, 1030));
	report("close_range", syscall(SYS_close_range, 3, ~0U, 0));
	report("above-closed", fcntl(1030, F_GETFD));
	open_check("open-after-close_range");
	report("close_range-exact", syscall(SYS_close_range, 1023, 1023, 0));
	open_check("open-after-exact");

	/* Close-on-exec for everything, then a child through execve. */
	report("close_range-cloexec", syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC));
	pid_t pid = fork();
	if (pid == 0) {
		execl("/proc/self/exe", argv[0], "child", (char *)0);
		_exit(127);
	}
	int st;
	waitpid(pid, &st, 0);
	open_check("open-at-end");
	return 0;
}
