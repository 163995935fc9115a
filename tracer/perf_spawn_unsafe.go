package tracer

/*
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

// The RLIMIT_NOFILE soft limit nook started with: the Go runtime raises it
// to the hard limit when it starts (and restores it only in children it
// starts itself), so it is saved by a constructor, which runs before the
// Go runtime.
static struct rlimit nook_nofile;
static int nook_nofile_ok;

__attribute__((constructor)) static void nook_save_nofile(void) {
	nook_nofile_ok = getrlimit(RLIMIT_NOFILE, &nook_nofile) == 0;
}

struct nook_spawn {
	int start_fd;  // read until EOF: the tracer has seized the child
	int start_w;   // the tracer's end of it, closed in the child
	int report_fd; // close-on-exec: why the start failed
	int report_r;  // the tracer's end of it, closed in the child
	const char *prefail; size_t prefail_len; // a report to send at once
	struct sock_filter *filter; unsigned short filter_len;
	const char *workdir;
	const char *chdir_kind; size_t chdir_kind_len; // "chdir ", then errno and message
	const char *chdir_msg; size_t chdir_msg_len;
	char *const *errstr; int nerrstr; // strerror texts, by errno
	char *const *paths; int npaths;   // where to look for the program, in order
	int search;                       // paths come from a PATH search
	char *const *argv;
	char *const *envp;
	const char *name; size_t name_len;
	const char *notfound; size_t notfound_len; // appended to an ENOENT report
	int root_fd;      // the tracer's descriptor of the guest root, or -1
	int root_target;  // where the guest keeps it (rootfd.go)
};

// struct sigaction as rt_sigaction(2) takes it (glibc's differs, and its
// wrapper refuses the signals NPTL reserves).
struct nook_ksigaction {
	void (*handler)(int);
	unsigned long flags;
	void (*restorer)(void);
	unsigned long mask;
};

static void nook_write_all(int fd, const char *p, size_t n) {
	while (n > 0) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		p += w;
		n -= (size_t)w;
	}
}

static void nook_write_int(int fd, int v) {
	char buf[16];
	int i = sizeof buf;
	if (v < 0)
		v = 0;
	do {
		buf[--i] = '0' + v % 10;
		v /= 10;
	} while (v > 0 && i > 0);
	nook_write_all(fd, buf + i, sizeof buf - i);
}

// nook_report writes "KIND ERRNO MSG" (the format Run parses) and
// exits.
static void nook_report(struct nook_spawn *s, const char *kind, size_t kind_len, int err,
		const char *msg, size_t msg_len, const char *tail, size_t tail_len) {
	nook_write_all(s->report_fd, kind, kind_len);
	nook_write_int(s->report_fd, err);
	nook_write_all(s->report_fd, " ", 1);
	nook_write_all(s->report_fd, msg, msg_len);
	if (tail != NULL)
		nook_write_all(s->report_fd, tail, tail_len);
	_exit(125);
}

// nook_child runs in the new process, a copy of the multi-threaded Go
// program with only the calling thread: it must not run any Go code nor
// anything that takes a lock, only system calls.
static void nook_child(struct nook_spawn *s, const sigset_t *mask) {
	char buf[256];
	close(s->start_w);
	close(s->report_r);
	for (;;) {
		ssize_t n = read(s->start_fd, buf, sizeof buf);
		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			nook_report(s, "start ", 6, errno, "reading the start pipe", 22, NULL, 0);
		break;
	}
	close(s->start_fd);
	if (s->prefail_len > 0) {
		nook_write_all(s->report_fd, s->prefail, s->prefail_len);
		_exit(125);
	}
	// Before the soft limit goes back down: dup2 refuses a target at or
	// above it. dup2 clears close-on-exec on the copy, which the guest
	// keeps for its whole life (rootfd.go).
	if (s->root_fd >= 0) {
		int r = s->root_fd == s->root_target
			? fcntl(s->root_fd, F_SETFD, 0)
			: dup2(s->root_fd, s->root_target);
		if (r < 0) {
			int e = errno;
			nook_report(s, "start ", 6, e, "dup2 of the guest root descriptor: ", 35,
				e < s->nerrstr ? s->errstr[e] : "", e < s->nerrstr ? strlen(s->errstr[e]) : 0);
		}
	}
	if (nook_nofile_ok)
		setrlimit(RLIMIT_NOFILE, &nook_nofile);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
		int e = errno;
		nook_report(s, "seccomp ", 8, e, "prctl(PR_SET_NO_NEW_PRIVS): ", 28,
			e < s->nerrstr ? s->errstr[e] : "", e < s->nerrstr ? strlen(s->errstr[e]) : 0);
	}
	struct sock_fprog prog = { .len = s->filter_len, .filter = s->filter };
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
		int e = errno;
		nook_report(s, "seccomp ", 8, e, "seccomp(SECCOMP_SET_MODE_FILTER): ", 34,
			e < s->nerrstr ? s->errstr[e] : "", e < s->nerrstr ? strlen(s->errstr[e]) : 0);
	}
	// From here on, path syscalls are translated by the tracer.
	for (;;) {
		if (chdir(s->workdir) == 0)
			break;
		int e = errno;
		if (e == EINTR)
			continue;
		nook_report(s, s->chdir_kind, s->chdir_kind_len, e, s->chdir_msg, s->chdir_msg_len,
			e < s->nerrstr ? s->errstr[e] : "", e < s->nerrstr ? strlen(s->errstr[e]) : 0);
	}
	// The Go runtime's signal handlers must not run here once signals
	// are unblocked: back to the default action (execve would do the
	// same), ignored signals stay ignored, as with os/exec.
	for (int sig = 1; sig < 65; sig++) {
		struct nook_ksigaction sa;
		if (sig == SIGKILL || sig == SIGSTOP)
			continue;
		if (syscall(SYS_rt_sigaction, sig, NULL, &sa, 8) != 0)
			continue;
		if (sa.handler == SIG_DFL || sa.handler == SIG_IGN)
			continue;
		memset(&sa, 0, sizeof sa);
		sa.handler = SIG_DFL;
		syscall(SYS_rt_sigaction, sig, &sa, NULL, 8);
	}
	sigprocmask(SIG_SETMASK, mask, NULL);
	int first = ENOENT;
	for (int i = 0; i < s->npaths; i++) {
		execve(s->paths[i], s->argv, s->envp);
		int e = errno;
		if (!s->search) {
			first = e;
			break;
		}
		switch (e) {
		case ENOENT: case ENOTDIR: case ESTALE: case ELOOP: case ENAMETOOLONG:
			continue;
		case EACCES:
			first = EACCES;
			continue;
		}
		first = e;
		break;
	}
	sigset_t all;
	sigfillset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (first == ENOENT && s->search)
		nook_report(s, "exec ", 5, first, s->name, s->name_len, s->notfound, s->notfound_len);
	nook_report(s, "exec ", 5, first, s->name, s->name_len, NULL, 0);
}

// nook_spawn starts the child; it returns its pid or -errno.
static int nook_spawn(struct nook_spawn *s) {
	sigset_t all, old;
	sigfillset(&all);
	// No signal handler of the Go runtime may run in the child.
	pthread_sigmask(SIG_SETMASK, &all, &old);
	// A bare fork: glibc's fork would run atfork handlers.
	long pid = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
	if (pid == 0) {
		sigset_t none;
		sigemptyset(&none);
		nook_child(s, &none);
	}
	int e = errno;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return pid < 0 ? -e : (int)pid;
}
*/
import "C"

import (
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The guest's first process is a fork of nook that runs no Go code: it
// waits until the tracer has seized it, loads the seccomp filter (generated
// once, here, by libseccomp) and executes the guest command, searching the
// guest PATH like execvp. Re-executing nook for that (as an earlier
// version did) costs a second start of the Go runtime, whose threads the
// tracer must also follow and see die at the execve: measured, several
// milliseconds of every rootless start (docs/performance.md).

var (
	filterOnce sync.Once
	filterProg []C.struct_sock_filter
	filterErr  error
	// errStrings holds the strerror texts by errno (in C memory) for
	// the child's reports.
	errStrings **C.char
)

const nErrStrings = 134 // errnos up to EHWPOISON

// exportedFilter returns the guest's seccomp filter as a BPF program.
func exportedFilter() ([]C.struct_sock_filter, error) {
	filterOnce.Do(func() {
		filterProg, filterErr = exportFilter()
		v := C.malloc(C.size_t(nErrStrings) * C.size_t(unsafe.Sizeof(uintptr(0))))
		list := unsafe.Slice((**C.char)(v), nErrStrings)
		for e := range list {
			list[e] = C.CString(unix.Errno(e).Error())
		}
		errStrings = (**C.char)(v)
	})
	return filterProg, filterErr
}

func exportFilter() ([]C.struct_sock_filter, error) {
	f, err := buildFilter()
	if err != nil {
		return nil, err
	}
	defer f.Release()
	fd, err := unix.MemfdCreate("nook-seccomp", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: memfd_create: %w", err)
	}
	file := os.NewFile(uintptr(fd), "nook-seccomp")
	defer file.Close()
	if err := f.ExportBPF(file); err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	b, err := io.ReadAll(file)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	const insn = int(unsafe.Sizeof(C.struct_sock_filter{}))
	if len(b) == 0 || len(b)%insn != 0 || len(b)/insn > 0xffff {
		return nil, fmt.Errorf("seccomp filter: libseccomp exported %d bytes", len(b))
	}
	prog := make([]C.struct_sock_filter, len(b)/insn)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&prog[0])), len(b)), b)
	return prog, nil
}

// spawnTracee starts the guest's first process for ts (see above). It
// reads start until EOF, then loads the filter and executes the command;
// why it could not is written to report ("KIND ERRNO MSG").
// startW and reportR are the tracer's ends of the two pipes.
func spawnTracee(ts traceeSpec, start, startW, reportR, report *os.File) (int, error) {
	var pinner []*C.char
	cstr := func(s string) *C.char {
		p := C.CString(s)
		pinner = append(pinner, p)
		return p
	}
	defer func() {
		for _, p := range pinner {
			C.free(unsafe.Pointer(p))
		}
	}()
	cvec := func(list []string) **C.char {
		v := C.malloc(C.size_t(len(list)+1) * C.size_t(unsafe.Sizeof(uintptr(0))))
		pinner = append(pinner, (*C.char)(v))
		s := unsafe.Slice((**C.char)(v), len(list)+1)
		for i, x := range list {
			s[i] = cstr(x)
		}
		s[len(list)] = nil
		return (**C.char)(v)
	}

	var prefail string
	prog, err := exportedFilter()
	if err != nil {
		prefail = fmt.Sprintf("seccomp 0 %v", err)
	} else if err := probeSeccomp(); err != nil {
		prefail = fmt.Sprintf("seccomp %d seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_TRACE): %v", int(errnoOf(err)), err)
	}

	workdir := ts.Workdir
	if workdir == "" {
		workdir = "/"
	}
	argv := append([]string(nil), ts.Argv...)
	if ts.Login {
		argv[0] = "-" + path.Base(argv[0])
	}
	name := ts.Argv[0]
	paths := []string{name}
	notfound := ""
	search := !strings.Contains(name, "/")
	if search {
		pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		for _, kv := range ts.Env {
			if v, ok := strings.CutPrefix(kv, "PATH="); ok {
				pathEnv = v
			}
		}
		paths = paths[:0]
		for _, dir := range strings.Split(pathEnv, ":") {
			if dir == "" {
				dir = "."
			}
			paths = append(paths, dir+"/"+name)
		}
		notfound = "\x00command not found in the guest (PATH=" + pathEnv + ")"
	}
	chdirMsg := fmt.Sprintf("working directory %s: ", workdir)

	s := (*C.struct_nook_spawn)(C.calloc(1, C.size_t(unsafe.Sizeof(C.struct_nook_spawn{}))))
	defer C.free(unsafe.Pointer(s))
	s.start_fd = C.int(start.Fd())
	s.start_w = C.int(startW.Fd())
	s.report_fd = C.int(report.Fd())
	s.report_r = C.int(reportR.Fd())
	s.prefail, s.prefail_len = cstr(prefail), C.size_t(len(prefail))
	var progC *C.struct_sock_filter
	if len(prog) > 0 {
		progC = (*C.struct_sock_filter)(C.malloc(C.size_t(len(prog)) * C.size_t(unsafe.Sizeof(prog[0]))))
		pinner = append(pinner, (*C.char)(unsafe.Pointer(progC)))
		copy(unsafe.Slice(progC, len(prog)), prog)
	}
	s.filter, s.filter_len = progC, C.ushort(len(prog))
	s.workdir = cstr(workdir)
	s.chdir_kind, s.chdir_kind_len = cstr("chdir "), 6
	s.chdir_msg, s.chdir_msg_len = cstr(chdirMsg), C.size_t(len(chdirMsg))
	s.errstr, s.nerrstr = errStrings, nErrStrings
	s.paths, s.npaths = cvec(paths), C.int(len(paths))
	if search {
		s.search = 1
	}
	s.argv = cvec(argv)
	s.envp = cvec(ts.Env)
	s.name, s.name_len = cstr(name), C.size_t(len(name))
	s.notfound, s.notfound_len = cstr(notfound), C.size_t(len(notfound))
	s.root_fd, s.root_target = -1, guestRootFd
	if rootRun.guest {
		s.root_fd = C.int(rootRun.fd)
	}

	// Descriptors made without close-on-exec while the child holds copies
	// would leak into the guest: fork under ForkLock, as os/exec does.
	syscall.ForkLock.Lock()
	pid := C.nook_spawn(s)
	syscall.ForkLock.Unlock()
	if pid < 0 {
		return 0, unix.Errno(-pid)
	}
	return int(pid), nil
}
