// Package rootmode runs a guest command the way chroot(8) does, as root, but
// in a private mount namespace: nook re-executes itself ("__init"), the
// child mounts /proc, /dev, /sys, the binds and the ephemeral overlay where
// only it can see them, pivots into the guest tree, drops to the guest user
// and executes the command. Every mount vanishes with the namespace, even
// when nook is killed.
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
	// ParentPID is nook's pid: the command gets SIGKILL if nook dies, so a
	// killed nook leaves neither a stray guest nor a busy ephemeral tree.
	ParentPID int
}

// Overlay is where an ephemeral run's overlay lives on the host. The three
// directories are on one file system (overlayfs requires it for upper and
// work) and are removed by the caller after the run.
type Overlay struct {
	Upper, Work, Merged string
}

// System is the set of host file systems mounted into the guest.
type System struct {
	Proc bool // a fresh procfs on /proc (same pid namespace: ps shows the host's processes)
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

// Child-side descriptors: the config pipe and the CLOEXEC error pipe, which
// closes by itself when the command is executed.
const (
	configFd = 3
	errorFd  = 4
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

	cfg.ParentPID = os.Getpid()
	payload, err := json.Marshal(cfg)
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("encode run config: %w", err)
	}
	cfgR, cfgW, err := os.Pipe()
	if err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("pipe: %w", err)
	}
	defer cfgW.Close()
	errR, errW, err := os.Pipe()
	if err != nil {
		cfgR.Close()
		return rootfs.ExitToolFailure, fmt.Errorf("pipe: %w", err)
	}
	defer errR.Close()

	tty := newTerminal(int(os.Stdin.Fd()))
	cmd := exec.Command("/proc/self/exe", InitArg)
	cmd.Args[0] = "nook"
	cmd.Env = []string{}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{cfgR, errW}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS,
		Pdeathsig:  syscall.SIGKILL,
		// With a terminal, the command gets its own process group in the
		// foreground: the terminal's signals (^C, ^Z, ^\) reach it alone,
		// never both it and nook, and job control works in a guest shell.
		Foreground: tty != nil,
		Ctty:       int(os.Stdin.Fd()),
	}

	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, forwarded...)
	defer signal.Stop(sigc)

	if err := cmd.Start(); err != nil {
		cfgR.Close()
		errW.Close()
		return rootfs.ExitToolFailure, fmt.Errorf("start %s: %w", InitArg, err)
	}
	cfgR.Close()
	errW.Close()
	pid := cmd.Process.Pid
	if tty != nil {
		tty.child = pid
		defer tty.restore()
	}

	done := make(chan struct{})
	defer close(done)
	go func() {
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
	ws, err := wait(pid, tty)
	cmd.Process.Release()
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
		return ws.ExitStatus(), nil
	case ws.Signaled():
		return rootfs.ExitSignalBase + int(ws.Signal()), nil
	}
	return rootfs.ExitToolFailure, fmt.Errorf("unexpected wait status %#x", ws)
}

// forwarded are the signals nook passes on to the command: those a user or
// a batch system sends to stop or poke a job.
var forwarded = []os.Signal{unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGUSR1, unix.SIGUSR2}

// wait reaps the child. With a terminal it also follows job control: when
// the command is stopped (^Z), nook takes the terminal back and stops itself
// so the shell that started it regains control; when continued (fg), it
// hands the terminal back and continues the command.
func wait(pid int, tty *terminal) (unix.WaitStatus, error) {
	flags := 0
	if tty != nil {
		flags = unix.WUNTRACED
	}
	for {
		var ws unix.WaitStatus
		_, err := unix.Wait4(pid, &ws, flags, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("wait for the command: %w", err)
		}
		if ws.Stopped() {
			tty.suspend()
			continue
		}
		return ws, nil
	}
}

// terminal is nook's controlling terminal when nook runs in its foreground.
type terminal struct {
	fd    int
	pgrp  int // nook's own process group, the foreground one at start
	child int
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

func (t *terminal) suspend() {
	if !t.jobControl() {
		// Nobody could continue a stopped nook (it leads its session, as
		// under script(1) or ssh -t, or its group is orphaned): ^Z does
		// nothing, as in a shell without job control.
		unix.Kill(-t.child, unix.SIGCONT)
		return
	}
	t.setForeground(t.pgrp)
	// SIGSTOP, not SIGTSTP: the Go runtime has a handler for the latter.
	unix.Kill(os.Getpid(), unix.SIGSTOP)
	// Continued by the shell (fg).
	t.setForeground(t.child)
	unix.Kill(-t.child, unix.SIGCONT)
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
