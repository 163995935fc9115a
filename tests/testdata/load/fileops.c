/* fileops does file operations in the directory argv[1] and checks every
 * result: argv[2] rounds (or, with argv[3] seconds, rounds repeated until
 * that time has passed) of create+write, rename, stat, read back, and
 * unlink of every other file; every 100 rounds a child runs /bin/true and
 * a thread is created and joined, so process and thread state churns too.
 * It prints "ok OPS" or the first mismatch and exits 1. */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long ops;

#define CHECK(cond, ...) do { ops++; if (!(cond)) { printf(__VA_ARGS__); printf("\n"); exit(1); } } while (0)

static void *thread(void *arg) {
	struct stat st;
	return stat("/etc/passwd", &st) == 0 ? arg : 0;
}

static void rounds(const char *dir, int n) {
	char a[512], b[512], want[64], got[64];
	for (int i = 0; i < n; i++) {
		snprintf(a, sizeof a, "%s/f%d", dir, i);
		snprintf(b, sizeof b, "%s/g%d", dir, i);
		int len = snprintf(want, sizeof want, "content of %d\n", i);
		int fd = open(a, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		CHECK(fd >= 0, "create %s failed", a);
		CHECK(write(fd, want, len) == len, "write %s", a);
		close(fd);
		CHECK(rename(a, b) == 0, "rename %s", a);
		struct stat st;
		CHECK(stat(b, &st) == 0 && st.st_size == len && S_ISREG(st.st_mode), "stat %s", b);
		CHECK(stat(a, &st) < 0, "%s still there after rename", a);
		fd = open(b, O_RDONLY);
		CHECK(fd >= 0, "open %s", b);
		ssize_t r = read(fd, got, sizeof got);
		close(fd);
		CHECK(r == len && memcmp(got, want, len) == 0, "content of %s", b);
		if (i % 2)
			CHECK(unlink(b) == 0, "unlink %s", b);
		if (i % 100 == 99) {
			pid_t p = fork();
			if (p == 0) { execl("/bin/true", "true", (char *)0); _exit(127); }
			int ws;
			CHECK(waitpid(p, &ws, 0) == p && WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "child /bin/true");
			pthread_t t;
			void *res;
			pthread_create(&t, 0, thread, &ops);
			pthread_join(t, &res);
			CHECK(res == &ops, "thread stat");
		}
	}
	/* What is left: the even files. */
	DIR *d = opendir(dir);
	CHECK(d != 0, "opendir %s", dir);
	int count = 0;
	struct dirent *e;
	while ((e = readdir(d)))
		if (e->d_name[0] == 'g') count++;
	closedir(d);
	CHECK(count == (n + 1) / 2, "%d files left in %s, want %d", count, dir, (n + 1) / 2);
	for (int i = 0; i < n; i += 2) {
		snprintf(b, sizeof b, "%s/g%d", dir, i);
		CHECK(unlink(b) == 0, "cleanup %s", b);
	}
}

int main(int argc, char **argv) {
	const char *dir = argv[1];
	int n = atoi(argv[2]);
	mkdir(dir, 0755);
	if (argc > 3) {
		time_t end = time(0) + atol(argv[3]);
		long loops = 0;
		while (time(0) < end) { rounds(dir, n); loops++; }
		printf("ok %ld ops in %ld loops\n", ops, loops);
		return 0;
	}
	rounds(dir, n);
	printf("ok %ld\n", ops);
	return 0;
}
