package tracer

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"golang.org/x/sys/unix"
)

// TraceeMain is the guest's first process before it becomes the guest
// command: nook re-executed as "nook __tracee" by Run, its main goroutine
// locked to the main thread (so that the filter is loaded into, and the
// execve made by, the thread whose tid is the pid the tracer seized). It
// returns only on failure, after telling the tracer why; the caller exits.
func TraceeMain() error {
	start := os.NewFile(traceeStartFD, "start")
	report := os.NewFile(traceeErrFD, "report")
	unix.CloseOnExec(traceeErrFD)
	// Reading until EOF: the tracer closes its end once it has seized us.
	b, err := io.ReadAll(start)
	start.Close()
	if err != nil {
		return fail(report, "start", 0, err.Error())
	}
	var ts traceeSpec
	if err := json.Unmarshal(b, &ts); err != nil || len(ts.Argv) == 0 {
		return fail(report, "start", 0, "no command received from the tracer")
	}

	if err := probeSeccomp(); err != nil {
		return fail(report, "seccomp", int(errnoOf(err)), "seccomp(SECCOMP_GET_ACTION_AVAIL, SECCOMP_RET_TRACE): "+err.Error())
	}
	f, err := buildFilter()
	if err != nil {
		return fail(report, "seccomp", 0, err.Error())
	}
	// Loaded into this thread only (no TSYNC): the execve below ends the
	// Go runtime's other threads anyway.
	if err := f.Load(); err != nil {
		return fail(report, "seccomp", 0, err.Error())
	}
	f.Release()

	// From here on, path syscalls are translated by the tracer.
	if err := unix.Chdir(ts.Workdir); err != nil {
		return fail(report, "chdir", int(errnoOf(err)), fmt.Sprintf("working directory %s: %v", ts.Workdir, err))
	}
	argv := append([]string(nil), ts.Argv...)
	if ts.Login {
		argv[0] = "-" + path.Base(argv[0])
	}
	name := ts.Argv[0]
	if strings.Contains(name, "/") {
		err := unix.Exec(name, argv, ts.Env)
		return fail(report, "exec", int(errnoOf(err)), name)
	}
	// execvp's search of the guest PATH: every attempt is an execve the
	// tracer translates.
	pathEnv := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range ts.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	firstErr := unix.ENOENT
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		err := unix.Exec(dir+"/"+name, argv, ts.Env)
		switch err {
		case unix.ENOENT, unix.ENOTDIR, unix.ESTALE, unix.ELOOP, unix.ENAMETOOLONG:
			continue
		case unix.EACCES:
			firstErr = unix.EACCES
			continue
		}
		return fail(report, "exec", int(errnoOf(err)), name)
	}
	if firstErr == unix.ENOENT {
		return fail(report, "exec", int(firstErr), name+"\x00command not found in the guest (PATH="+pathEnv+")")
	}
	return fail(report, "exec", int(firstErr), name)
}

func fail(report *os.File, kind string, errno int, msg string) error {
	fmt.Fprintf(report, "%s %d %s", kind, errno, msg)
	report.Close()
	return fmt.Errorf("%s: %s", kind, msg)
}
