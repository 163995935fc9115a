// Package tracer runs a guest command under a ptrace + seccomp tracer that
// translates file names through pathmap and fakes ownership (rootless mode).
//
// The guest starts as a plain fork running no Go code (spawnTracee) that the
// tracer seizes before it loads the seccomp filter and executes the guest
// command. From then on every guest
// syscall listed in the table (see Register) stops in the tracer; all other
// syscalls run untouched.
package tracer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"nook/pathmap"
	"nook/rootfs"
)

// Options tune the tracer. The zero value is the default.
type Options struct {
	// OwnershipDB is the path of the persistent ownership store; empty
	// disables persistence (ids are still faked in memory).
	OwnershipDB string
}

// ErrUnavailable is wrapped by Run's error when ptrace or seccomp cannot be
// used on this system (the message names the cause).
var ErrUnavailable = errors.New("ptrace/seccomp unavailable")

// ExecError is Run's error when the guest command could not be started
// (not found, not executable): Run's status is then 127 or 126, as a shell
// would exit.
type ExecError struct {
	Path string
	Err  error
	msg  string // replaces Err's text in the message
}

func (e *ExecError) Error() string {
	if e.msg != "" {
		return e.Path + ": " + e.msg
	}
	return e.Path + ": " + e.Err.Error()
}
func (e *ExecError) Unwrap() error { return e.Err }

// StartHook runs in the tracer before the guest starts; the returned
// function, if not nil, runs after the guest is gone. Other files of the
// package use it to open and close their state (the ownership store).
type StartHook func(spec *rootfs.RunSpec, opts Options) (stop func() error, err error)

var startHooks []StartHook

// OnStart registers h; call it from an init function.
func OnStart(h StartHook) { startHooks = append(startHooks, h) }

// traceeSpec is what the tracer sends the tracee over its start pipe.
type traceeSpec struct {
	Argv    []string
	Env     []string
	Workdir string
	Login   bool
}

// Run starts spec under the tracer and waits until the guest's first process
// exits. It returns the exit status the run command must exit with
// (following rootfs.Exit* conventions), or an error when nook itself failed.
// When the command cannot be executed the error is an *ExecError and the
// status is 127 (not found) or 126 (not executable).
func Run(spec *rootfs.RunSpec, opts Options) (int, error) {
	if len(spec.Argv) == 0 {
		return rootfs.ExitToolFailure, errors.New("rootless: no command")
	}
	root, err := filepath.EvalSymlinks(spec.Root)
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: guest root: %w", err)
	}
	root, err = filepath.Abs(root)
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: guest root: %w", err)
	}
	binds := make([]pathmap.Bind, 0, len(spec.Binds))
	for _, b := range spec.Binds {
		binds = append(binds, pathmap.Bind{Host: b.Host, Guest: b.Guest})
	}
	m, err := pathmap.New(pathmap.Config{Root: root, Binds: binds, Cache: true})
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: %w", err)
	}
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
	}()
	for _, h := range startHooks {
		stop, err := h(spec, opts)
		if err != nil {
			return rootfs.ExitToolFailure, err
		}
		if stop != nil {
			stops = append(stops, stop)
		}
	}

	type outcome struct {
		code int
		err  error
	}
	done := make(chan outcome, 1)
	go func() {
		// All ptrace requests must come from the thread that seized the
		// guest. The thread is never unlocked: it exits with the
		// goroutine instead of returning to the scheduler as a tracer.
		runtime.LockOSThread()
		code, err := trace(spec, m, root)
		done <- outcome{code, err}
	}()
	o := <-done
	if o.err == nil {
		for i := len(stops) - 1; i >= 0; i-- {
			if err := stops[i](); err != nil && o.err == nil {
				o.err = err
			}
		}
		stops = nil
	}
	return o.code, o.err
}

// trace runs on the locked tracer thread: it starts the tracee, seizes it,
// releases it and runs the event loop.
func trace(spec *rootfs.RunSpec, m *pathmap.Mapper, root string) (int, error) {
	startR, startW, err := os.Pipe()
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: %w", err)
	}
	defer startR.Close()
	defer startW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: %w", err)
	}
	defer errR.Close()
	defer errW.Close()

	if err := openRoot(root); err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: guest root: %w", err)
	}
	defer closeRoot()

	pid, err := spawnTracee(traceeSpec{Argv: spec.Argv, Env: spec.Env, Workdir: spec.Workdir, Login: spec.Login}, startR, startW, errR, errW)
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("rootless: starting the tracee: %w", err)
	}
	startR.Close()
	errW.Close()

	if err := seize(pid); err != nil {
		unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		unix.Wait4(pid, &ws, 0, nil)
		return rootfs.ExitToolFailure, fmt.Errorf("%w: ptrace(PTRACE_SEIZE): %v%s", ErrUnavailable, err, ptraceHint(err))
	}
	blockChildSignal()

	tr := &tracer{
		m:           m,
		root:        root,
		threads:     map[int]*Thread{},
		unannounced: map[int]unix.WaitStatus{},
		initial:     pid,
		readBuf:     make([]byte, 0, unix.PathMax),
		loaders:     map[loaderKey]bool{},
		exes:        map[fileKey]exeResult{},
		hostLoaders: map[hostLoaderKey]bool{},
		sockDirs:    map[string]int{},
		stats:       newStats(),
	}
	tr.proc.tr = tr
	p := newProcess(pid)
	p.Creds = Creds{
		Ruid: spec.User.UID, Euid: spec.User.UID, Suid: spec.User.UID, Fsuid: spec.User.UID,
		Rgid: spec.User.GID, Egid: spec.User.GID, Sgid: spec.User.GID, Fsgid: spec.User.GID,
		Groups: append([]int(nil), spec.User.Groups...),
	}
	for _, h := range processHooks {
		h(nil, p, false)
	}
	tr.threads[pid] = &Thread{Tid: pid, P: p, exitNr: -1}
	defer tr.closeSockDirs()

	// The tracee learns what to run only now, and starts when it reads
	// EOF: it is traced before it can load its filter.
	ts := traceeSpec{Argv: spec.Argv, Env: spec.Env, Workdir: spec.Workdir, Login: spec.Login}
	if ts.Workdir == "" {
		ts.Workdir = "/"
	}
	msg, _ := json.Marshal(ts)
	go func() {
		startW.Write(msg)
		startW.Close()
	}()

	errc := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(errR)
		errc <- b
	}()

	stopSignals := forwardSignals(pid)
	ws, err := tr.loop()
	stopSignals()
	tr.stats.print(os.Stderr)
	if err != nil {
		return rootfs.ExitToolFailure, err
	}
	if report := <-errc; len(report) > 0 {
		return traceeFailure(report)
	}
	switch {
	case ws.Exited():
		return ws.ExitStatus(), nil
	case ws.Signaled():
		return rootfs.ExitSignalBase + int(ws.Signal()), nil
	}
	return rootfs.ExitToolFailure, fmt.Errorf("rootless: unexpected wait status %#x", uint32(ws))
}

func ptraceHint(err error) string {
	if err != unix.EPERM {
		return ""
	}
	if b, e := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope"); e == nil {
		if s := strings.TrimSpace(string(b)); s == "3" {
			return " (kernel.yama.ptrace_scope is 3: ptrace is disabled on this system)"
		}
	}
	return " (ptrace is forbidden here: by a container's seccomp profile, a security module or kernel.yama.ptrace_scope)"
}

// forwardSignals sends the guest's first process the termination signals
// nook receives. SIGINT and SIGQUIT typed at a terminal already reach the
// guest when it shares nook's foreground process group, so they are
// forwarded only when that is not the case (otherwise a program would get
// each Ctrl-C twice).
func forwardSignals(pid int) (stop func()) {
	ch := make(chan os.Signal, 4)
	signal.Notify(ch, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	quit := make(chan struct{})
	go func() {
		for {
			select {
			case <-quit:
				return
			case s := <-ch:
				sig := s.(syscall.Signal)
				if (sig == unix.SIGINT || sig == unix.SIGQUIT) && inForeground() {
					continue
				}
				unix.Kill(pid, sig)
			}
		}
	}()
	return func() {
		signal.Stop(ch)
		close(quit)
	}
}

// inForeground reports whether nook's process group is the foreground one
// of its controlling terminal.
func inForeground() bool {
	for _, fd := range []int{0, 1, 2} {
		if !term.IsTerminal(fd) {
			continue
		}
		pg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
		if err != nil {
			continue
		}
		return pg == unix.Getpgrp()
	}
	return false
}

// traceeFailure turns the tracee's report ("KIND ERRNO PATH: message") into
// Run's result.
func traceeFailure(report []byte) (int, error) {
	kind, rest, _ := strings.Cut(string(report), " ")
	num, rest, _ := strings.Cut(rest, " ")
	errno, _ := strconv.Atoi(num)
	switch kind {
	case "exec":
		e := unix.Errno(errno)
		code := rootfs.ExitNotExecutable
		if e == unix.ENOENT || e == unix.ENOTDIR {
			code = rootfs.ExitNotFound
		}
		path, msg, _ := strings.Cut(rest, "\x00")
		return code, &ExecError{Path: path, Err: e, msg: msg}
	case "seccomp":
		return rootfs.ExitToolFailure, fmt.Errorf("%w: loading the seccomp filter: %s", ErrUnavailable, rest)
	}
	return rootfs.ExitToolFailure, fmt.Errorf("rootless: starting the guest: %s", rest)
}
