/* forker forks argv[1] children that sleep until killed, then exits 0:
 * whatever the guest leaves behind must not outlive the run. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++) {
		pid_t p = fork();
		if (p < 0) { perror("fork"); return 1; }
		if (p == 0) { for (;;) pause(); }
	}
	printf("forked %d\n", n);
	return 0;
}
