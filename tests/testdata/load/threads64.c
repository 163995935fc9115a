/* threads64 runs 64 threads that each open, read, fstat and stat their
 * own file and a shared one, 300 times, checking every result, while the
 * tracer serves them all at once. Prints "bad=N". */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define N 64
static int bad;

static void *work(void *arg) {
	long id = (long)arg;
	char p[64], want[64], got[64];
	snprintf(p, sizeof p, "/tmp/t64/%ld", id);
	int len = snprintf(want, sizeof want, "thread %ld\n", id);
	for (int i = 0; i < 300; i++) {
		int fd = open(p, O_RDONLY);
		if (fd < 0) { __sync_fetch_and_add(&bad, 1); continue; }
		ssize_t n = read(fd, got, sizeof got);
		struct stat a, b;
		if (n != len || memcmp(got, want, len) || fstat(fd, &a) || a.st_size != len)
			__sync_fetch_and_add(&bad, 1);
		close(fd);
		if (stat(p, &b) || b.st_ino != a.st_ino)
			__sync_fetch_and_add(&bad, 1);
		if (stat("/etc/alpine-release", &b) || !S_ISREG(b.st_mode))
			__sync_fetch_and_add(&bad, 1);
	}
	return 0;
}

int main(void) {
	mkdir("/tmp/t64", 0755);
	for (long i = 0; i < N; i++) {
		char p[64], c[64];
		snprintf(p, sizeof p, "/tmp/t64/%ld", i);
		int len = snprintf(c, sizeof c, "thread %ld\n", i);
		int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		write(fd, c, len);
		close(fd);
	}
	pthread_t t[N];
	for (long i = 0; i < N; i++)
		if (pthread_create(&t[i], 0, work, (void *)i)) { perror("pthread_create"); return 1; }
	for (int i = 0; i < N; i++) pthread_join(t[i], 0);
	printf("bad=%d\n", bad);
	return bad != 0;
}
