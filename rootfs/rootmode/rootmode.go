// Package rootmode runs a guest command the way chroot(8) does, as root, but
// in private mount and PID namespaces: nook re-executes itself ("__init"),
// which becomes pid 1 of the new PID namespace, mounts /proc, /dev, /sys, the
// binds and the ephemeral overlay where only it can see them, and starts the
// command, which pivots into the guest tree, drops to the guest user and
// executes it. __init forwards signals to the command, reaps orphans and exits
// with the command's status; the kernel then kills whatever the command left
// behind. Every mount and every guest process vanishes with the namespaces,
// even when nook is killed.
package rootmode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"

	"nook/rootfs"
)

// Config is what the parent sends the child, as JSON on a pipe (never in
// argv, where every user of the machine could read it).
type Config struct {
	// Root is the host path of the guest tree: the directory run, or the
	// lower layer of Overlay.
	Root string
	// Overlay, when set, makes the run ephemeral: an overlay of Root with
	// its upper and work directories is mounted at Merged, and Layers are
	// applied onto it, so neither Root nor the layers are ever written.
	Overlay *Overlay
	Layers  []string
	// Prepare is the mode-independent request: user setup, env, argv,
	// workdir and the user's binds, applied to the tree the child sees.
	Prepare rootfs.PrepareRequest
	// System lists the host mounts every run gets (--host-binds).
	System System
	// Terminal is set when stdin is nook's controlling terminal and nook is
	// in its foreground: the command then gets its own process group in
	// the foreground, and its stops are reported to nook.
	Terminal bool
}

// Overlay is where an ephemeral run's overlay lives on the host. The three
// directories are on one file system (overlayfs requires it for upper and
// work) and are removed by the caller after the run.
type Overlay struct {
	Upper, Work, Merged string
}

// System is the set of host file systems mounted into the guest.
type System struct {
	Proc bool // a fresh procfs of the run's PID namespace on /proc (ps shows the guest's processes only)
	Dev  bool // the host's /dev, recursively bound (ttys, /dev/pts, /dev/shm as on the host)
	Sys  bool // the host's /sys, recursively bound
	// Files are host files bound read-only at the same guest path
	// (/etc/resolv.conf, /etc/hosts), so name resolution works as on the
	// host without the guest being able to change the host's files.
	Files []string
}

// Error is a failure of the child before the command started. Code is the
// exit status nook must exit with (125, 126 or 127).
type Error struct {
	Code int
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Descriptors of __init: the config pipe; the error pipe, which the command
// inherits CLOEXEC, so it closes by itself when the command is executed;
// a pidfd of nook, readable once nook is gone; and the event pipe, on which
// __init tells nook it is ready for signals and that the command stopped.
// The command's own stage gets the spec pipe as configFd and the error pipe.
const (
	configFd = 3
	errorFd  = 4
	parentFd = 5
	eventFd  = 6
)

// Events on the event pipe.
const (
	eventReady   = 'R' // __init catches the forwarded signals
	eventStopped = 'S' // the command was stopped (with a terminal only)
)

// InitArg is the hidden subcommand the child runs as.
const InitArg = "__init"

// Run starts the guest command of cfg and waits for it. It returns the
// command's exit status (128+N when it died of signal N), or an *Error when
// the child failed before the command started, or another error when nook
// could not start the child at all.
func Run(cfg *Config) (int, error) {
	// Pdeathsig fires when the creating *thread* exits (go.dev/issue/27505);
	// keep this goroutine on its thread until the child is reaped.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	tty := newTerminal(int(os.Stdin.Fd()))
	cfg.Terminal = tty != nil
	payload, err := json.Marshal(cfg)
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("encode run config: %w", err)
	}
	// __init is pid 1 of its namespace, where getppid() is 0: it watches
	// nook through a pidfd instead, which also closes the window between
	// clone and PR_SET_PDEATHSIG in which a killed nook would go unnoticed.
	pfd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("pidfd_open: %w", err)
	}
	self := os.NewFile(uintptr(pfd), "nook pidfd")
	defer self.Close()
	var pipes [3][2]*os.File // config, error, event
	for i := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			for _, p := range pipes[:i] {
				p[0].Close()
				p[1].Close()
			}
			return rootfs.ExitToolFailure, fmt.Errorf("pipe: %w", err)
		}
		pipes[i] = [2]*os.File{r, w}
	}
	cfgR, cfgW := pipes[0][0], pipes[0][1]
	errR, errW := pipes[1][0], pipes[1][1]
	evR, evW := pipes[2][0], pipes[2][1]
	defer cfgW.Close()
	defer errR.Close()
	defer evR.Close()

	cmd := exec.Command("/proc/self/exe", InitArg)
	cmd.Args[0] = "nook"
	cmd.Env = []string{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, errW, self, evW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		// __init is the PID namespace's init: when it exits, for whatever
		// reason, the kernel kills every process left in the namespace.
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID,
		// Set between fork and exec; Go's check of getppid() after it
		// cannot work in a new PID namespace (0 there), __init checks
		// the pidfd instead.
		Pdeathsig: syscall.SIGKILL,
		// With a terminal, a process group of its own, never the
		// foreground one: the terminal's signals must reach the command
		// once, not again through __init. Without one (or with nook in
		// the background) __init and the command stay in nook's group,
		// as a command run by chroot would: a shell's fg continues them
		// all, and a signal to the group reaches the whole guest.
		Setpgid: tty != nil,
	}

	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, forwarded...)
	defer signal.Stop(sigc)

	err = cmd.Start()
	cfgR.Close()
	errW.Close()
	evW.Close()
	self.Close()
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("start %s: %w", InitArg, err)
	}
	pid := cmd.Process.Pid
	if tty != nil {
		defer tty.restore()
	}

	done := make(chan struct{})
	defer close(done)
	ready := make(chan struct{})
	events := make(chan struct{})
	go func() {
		defer close(events)
		readEvents(evR, ready, tty)
	}()
	go func() {
		// Signals wait here until __init catches them: before that, as
		// pid 1 without a handler, it would drop them, or Go's default
		// handler would make it exit 2.
		select {
		case <-ready:
		case <-done:
			return
		}
		for {
			select {
			case s := <-sigc:
				// pidfd-based: never signals a recycled pid.
				cmd.Process.Signal(s)
			case <-done:
				return
			}
		}
	}()

	// The config is small (well under the pipe buffer), but a write error
	// only means the child died early; its status tells why.
	cfgW.Write(payload)
	cfgW.Close()

	msg, _ := io.ReadAll(errR)
	ws, err := wait(pid)
	cmd.Process.Release()
	// A stop reported just before the end is handled before the terminal
	// is given back.
	<-events
	if err != nil {
		return rootfs.ExitToolFailure, err
	}
	if len(msg) > 0 {
		var e Error
		if json.Unmarshal(msg, &e) == nil && e.Msg != "" {
			return e.Code, &e
		}
		return rootfs.ExitToolFailure, &Error{Code: rootfs.ExitToolFailure, Msg: string(msg)}
	}
	switch {
	case ws.Exited():
		// __init exits with the command's code, or 128+N when the
		// command died of signal N (pid 1 cannot die of its own signal).
		return ws.ExitStatus(), nil
	case ws.Signaled():
		return rootfs.ExitSignalBase + int(ws.Signal()), nil
	}
	return rootfs.ExitToolFailure, fmt.Errorf("unexpected wait status %#x", ws)
}

// readEvents reads __init's events until it exits: ready closes ready,
// stopped suspends nook with the command (job control on tty).
func readEvents(r *os.File, ready chan<- struct{}, tty *terminal) {
	isReady := false
	buf := make([]byte, 64)
	for {
		n, err := r.Read(buf)
		for _, ev := range buf[:n] {
			switch {
			case ev == eventReady && !isReady:
				isReady = true
				close(ready)
			case ev == eventStopped && tty != nil:
				tty.suspend()
			}
		}
		if err != nil {
			return
		}
	}
}

// forwarded are the signals nook passes on to the command: those a user or
// a batch system sends to stop or poke a job.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2, unix.SIGWINCH}

// wait reaps __init.
func wait(pid int) (unix.WaitStatus, error) {
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, 0, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for %s: %w", InitArg, err)
		}
		return ws, nil
	}
}

// terminal is nook's controlling terminal when nook runs in its foreground.
type terminal struct {
	fd   int
	pgrp int // nook's own process group, the foreground one at start
}

// newTerminal returns the terminal on fd if it is nook's controlling
// terminal and nook is in its foreground; nil otherwise (a pipe, a file, or
// nook started in the background, whose terminal it must not take).
func newTerminal(fd int) *terminal {
	if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
		return nil
	}
	fg, err := unix.IoctlGetInt(fd, unix.TIOCGPGRP)
	if err != nil || fg != unix.Getpgrp() {
		return nil
	}
	return &terminal{fd: fd, pgrp: fg}
}

// setForeground makes pgrp the terminal's foreground group. nook is in a
// background group when it calls this, so SIGTTOU is ignored meanwhile (as
// every job-control shell does).
func (t *terminal) setForeground(pgrp int) {
	signal.Ignore(unix.SIGTTOU)
	defer signal.Reset(unix.SIGTTOU)
	for {
		if err := unix.IoctlSetPointerInt(t.fd, unix.TIOCSPGRP, pgrp); err != unix.EINTR {
			return
		}
	}
}

func (t *terminal) restore() { t.setForeground(t.pgrp) }

// suspend follows a stop of the command (^Z): nook takes the terminal back
// and stops itself so the shell that started it regains control; when
// continued (fg), it gives the terminal back to the group that had it (the
// command's, or a job of a guest shell) and continues that group.
func (t *terminal) suspend() {
	fg, err := unix.IoctlGetInt(t.fd, unix.TIOCGPGRP)
	if err != nil || fg == t.pgrp {
		return
	}
	if !t.jobControl() {
		// Nobody could continue a stopped nook (it leads its session, as
		// under script(1) or ssh -t, or its group is orphaned): ^Z does
		// nothing, as in a shell without job control.
		unix.Kill(-fg, unix.SIGCONT)
		return
	}
	t.setForeground(t.pgrp)
	// SIGSTOP, not SIGTSTP: the Go runtime has a handler for the latter.
	unix.Kill(os.Getpid(), unix.SIGSTOP)
	// Continued by the shell (fg).
	t.setForeground(fg)
	unix.Kill(-fg, unix.SIGCONT)
}

// jobControl reports whether a job-control shell can continue nook after it
// stops: nook's process group is not orphaned (POSIX), i.e. nook's parent
// is in the same session but another process group.
func (t *terminal) jobControl() bool {
	ppid := os.Getppid()
	psid, err1 := unix.Getsid(ppid)
	sid, err2 := unix.Getsid(0)
	ppgrp, err3 := unix.Getpgid(ppid)
	return err1 == nil && err2 == nil && err3 == nil && psid == sid && ppgrp != t.pgrp
}

// ErrNotRoot is returned by Check when root mode cannot work.
var ErrNotRoot = errors.New("root mode needs root (effective uid 0); use --mode rootless")

// Check reports whether this process can use root mode.
func Check() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	return nil
}
