package rootmode

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"nook/rootfs"
)

// Init is the child side of Run: args are the arguments after InitArg. It
// never returns. Without arguments it is pid 1 of the run's namespaces (see
// initProcess); with "exec" it is the command's own process before execve
// (see execProcess).
func Init(args []string) {
	if len(args) == 1 && args[0] == execArg {
		execProcess()
	}
	if len(args) == 0 {
		initProcess()
	}
	fmt.Fprintf(os.Stderr, "nook: error: %s is internal to nook run\n", InitArg)
	os.Exit(rootfs.ExitToolFailure)
}

// execArg names the command's stage.
const execArg = "exec"

// reporter returns the function that writes a failure on the error pipe
// and exits with its code.
func reporter() func(code int, err error) {
	unix.CloseOnExec(errorFd)
	errPipe := os.NewFile(errorFd, "error pipe")
	return func(code int, err error) {
		b, _ := json.Marshal(&Error{Code: code, Msg: err.Error()})
		errPipe.Write(b)
		os.Exit(code)
	}
}

func internal(fds ...int) {
	for _, fd := range fds {
		if !isPipe(fd) {
			fmt.Fprintf(os.Stderr, "nook: error: %s is internal to nook run\n", InitArg)
			os.Exit(rootfs.ExitToolFailure)
		}
	}
}

// initProcess is pid 1 of the run's PID namespace, in its own mount
// namespace. It builds the guest's mounts, starts the command's stage,
// forwards nook's signals to it, reaps every process reparented to it, and
// exits with the command's status, upon which the kernel kills whatever is
// left in the namespace.
func initProcess() {
	internal(configFd, errorFd, eventFd)
	// Catch the forwarded signals first: pid 1 drops signals it has no
	// handler for, and Go's default handler would exit 2.
	sigc := make(chan os.Signal, 16)
	signal.Notify(sigc, forwarded...)
	for _, fd := range []int{configFd, parentFd, eventFd} {
		unix.CloseOnExec(fd)
	}
	fail := reporter()
	events := os.NewFile(eventFd, "event pipe")
	events.Write([]byte{eventReady})
	watchParent()

	cfgFile := os.NewFile(configFd, "config pipe")
	data, err := io.ReadAll(cfgFile)
	cfgFile.Close()
	if err != nil {
		fail(rootfs.ExitToolFailure, fmt.Errorf("read run config: %w", err))
	}
	var cfg Config
	if err := json.Unmarshal(data, &cfg); err != nil {
		fail(rootfs.ExitToolFailure, fmt.Errorf("decode run config: %w", err))
	}

	spec, err := setup(&cfg)
	if err != nil {
		fail(rootfs.ExitToolFailure, err)
	}
	pid, pidfd, err := startCommand(spec, cfg.Terminal)
	if err != nil {
		fail(rootfs.ExitToolFailure, err)
	}
	// The command holds the error pipe now; nook reads EOF once it
	// executes.
	unix.Close(errorFd)

	go func() {
		for s := range sigc {
			// pidfd-based: after the command is reaped this fails
			// instead of reaching a process that reused its pid.
			unix.PidfdSendSignal(pidfd, s.(syscall.Signal), nil, 0)
		}
	}()
	os.Exit(reap(pid, cfg.Terminal, events))
}

// watchParent exits when nook is gone. PR_SET_PDEATHSIG, set between clone
// and exec, normally kills init first; this covers a nook that died before
// it was set, which getppid() cannot tell in a new PID namespace (the
// parent is outside it: 0).
func watchParent() {
	go func() {
		fds := []unix.PollFd{{Fd: parentFd, Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == unix.EINTR {
				continue
			}
			if err != nil || n > 0 {
				// Readable: nook exited. An error means no pidfd to
				// watch; pdeathsig alone then covers nook's death.
				if err == nil {
					os.Exit(rootfs.ExitToolFailure)
				}
				return
			}
		}
	}()
}

// startCommand starts the command's stage: nook again, which reads the spec
// from a pipe, pivots into the guest, drops privileges and executes the
// command. It is exec'd here, before the pivot, while /proc/self/exe still
// resolves (the guest may have no /proc); its pivot_root moves init's root
// and working directory (chdir'd to "/" for that) along. It returns the
// command's pid and a pidfd of it.
func startCommand(spec *rootfs.RunSpec, tty bool) (int, int, error) {
	payload, err := json.Marshal(spec)
	if err != nil {
		return 0, 0, fmt.Errorf("encode run spec: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return 0, 0, fmt.Errorf("chdir /: %w", err)
	}
	specR, specW, err := os.Pipe()
	if err != nil {
		return 0, 0, fmt.Errorf("pipe: %w", err)
	}
	defer specW.Close()
	pidfd := -1
	attr := &syscall.ProcAttr{
		Env:   []string{},
		Files: []uintptr{0, 1, 2, specR.Fd(), errorFd},
		Sys: &syscall.SysProcAttr{
			// The command is not pid 1, so signals without a handler
			// have their default effect on it (^C kills it: 130).
			// With a terminal it leads a process group of its own,
			// the terminal's foreground one (set between fork and
			// exec with signals blocked); otherwise it stays in
			// init's, which is nook's.
			Setpgid:    tty,
			Foreground: tty,
			Ctty:       0,
			PidFD:      &pidfd,
		},
	}
	pid, err := syscall.ForkExec("/proc/self/exe", []string{"nook", InitArg, execArg}, attr)
	specR.Close()
	if err != nil {
		return 0, 0, fmt.Errorf("start the command: %w", err)
	}
	// Small (well under the pipe buffer); a failed write means the
	// command's stage died, and its status says why.
	specW.Write(payload)
	return pid, pidfd, nil
}

// reap waits for every child of init (the command and the orphans the
// kernel reparents to pid 1) until the command exits, and returns the status
// nook must report: the command's exit code, or 128+N if it died of signal
// N. With a terminal, a stop of the command (^Z) is reported to nook.
func reap(cmd int, tty bool, events *os.File) int {
	flags := 0
	if tty {
		flags = unix.WUNTRACED
	}
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, flags, nil)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			// ECHILD: the command is gone without a status reaching
			// us, which cannot happen while init runs.
			return rootfs.ExitToolFailure
		}
		if pid != cmd {
			continue
		}
		switch {
		case ws.Stopped():
			events.Write([]byte{eventStopped})
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return rootfs.ExitSignalBase + int(ws.Signal())
		}
	}
}

// execProcess is the command's process before execve: it pivots into the
// guest tree prepared by init, drops privileges and executes the command.
func execProcess() {
	internal(configFd, errorFd)
	fail := reporter()
	f := os.NewFile(configFd, "spec pipe")
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		fail(rootfs.ExitToolFailure, fmt.Errorf("read run spec: %w", err))
	}
	var spec rootfs.RunSpec
	if err := json.Unmarshal(data, &spec); err != nil {
		fail(rootfs.ExitToolFailure, fmt.Errorf("decode run spec: %w", err))
	}
	if err := enter(&spec); err != nil {
		fail(rootfs.ExitToolFailure, err)
	}
	code, err := execute(&spec)
	fail(code, err)
}

func isPipe(fd int) bool {
	var st unix.Stat_t
	return unix.Fstat(fd, &st) == nil && st.Mode&unix.S_IFMT == unix.S_IFIFO
}

// setup builds the guest's view: the overlay and layers of an ephemeral
// run, user setup, then the mounts. It returns the spec to start.
func setup(cfg *Config) (*rootfs.RunSpec, error) {
	// Nothing mounted from here on may propagate to the host. Slave rather
	// than private: the host's later unmounts (a USB disk, an NFS share)
	// still reach a long-running guest instead of keeping them busy.
	if err := unix.Mount("", "/", "", unix.MS_SLAVE|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("make / a slave mount: %w", err)
	}
	root := cfg.Root
	if o := cfg.Overlay; o != nil {
		opts := "lowerdir=" + escapeOverlay(cfg.Root) + ",upperdir=" + escapeOverlay(o.Upper) + ",workdir=" + escapeOverlay(o.Work)
		root = o.Merged
		if err := unix.Mount("overlay", o.Merged, "overlay", 0, opts); err != nil {
			// The store's file system cannot hold an overlay's upper
			// directory (overlayfs or NFS under it, no xattrs): fall back
			// to a real copy, as rootless mode makes.
			root = filepath.Join(o.Upper, "copy")
			if cerr := rootfs.CopyTree(root, cfg.Root); cerr != nil {
				return nil, fmt.Errorf("mount overlay of %s on %s: %v; copy instead: %w", cfg.Root, o.Merged, err, cerr)
			}
		}
		// Layers go onto the overlay: deletions become whiteouts in the
		// upper directory, so neither the rootfs nor the layers change and
		// only the layers' contents are copied.
		for _, l := range cfg.Layers {
			if err := rootfs.ApplyLayer(root, l); err != nil {
				return nil, fmt.Errorf("layer %s: %w", l, err)
			}
		}
	}
	spec, _, err := rootfs.Prepare(root, withChown(cfg.Prepare))
	if err != nil {
		return nil, err
	}
	// pivot_root needs the new root to be a mount point; the descriptors
	// used for the mounts below are opened after this, so they land on the
	// new mount and move with it.
	if err := unix.Mount(root, root, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return nil, fmt.Errorf("bind %s onto itself: %w", root, err)
	}
	g, err := rootfs.OpenGuestRoot(root)
	if err != nil {
		return nil, err
	}
	defer g.Close()
	if err := mountSystem(g, cfg.System); err != nil {
		return nil, err
	}
	for _, b := range spec.Binds {
		if err := bind(g, b.Host, b.Guest, false); err != nil {
			return nil, err
		}
	}
	return spec, nil
}

func withChown(r rootfs.PrepareRequest) rootfs.PrepareRequest {
	r.User.Chown = true
	return r
}

// escapeOverlay quotes the characters overlayfs's option parser splits on.
func escapeOverlay(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)
	return r.Replace(p)
}

func mountSystem(g *rootfs.GuestRoot, s System) error {
	if s.Proc {
		if err := mountAt(g, "/proc", true, func(target string) error {
			return unix.Mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
		}); err != nil {
			return fmt.Errorf("mount /proc: %w", err)
		}
	}
	if s.Dev {
		if err := bind(g, "/dev", "/dev", false); err != nil {
			return err
		}
	}
	if s.Sys {
		if err := bind(g, "/sys", "/sys", false); err != nil {
			return err
		}
	}
	for _, f := range s.Files {
		if err := bind(g, f, f, true); err != nil {
			return err
		}
	}
	return nil
}

// bind mounts host path host (recursively) on guest path guest, creating
// the mount point to match (a directory for a directory, an empty file for
// anything else) when it is missing.
func bind(g *rootfs.GuestRoot, host, guest string, readOnly bool) error {
	var st unix.Stat_t
	if err := unix.Stat(host, &st); err != nil {
		return fmt.Errorf("bind %s: %w", host, err)
	}
	dir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	err := mountAt(g, guest, dir, func(target string) error {
		return unix.Mount(host, target, "", unix.MS_BIND|unix.MS_REC, "")
	})
	if err != nil {
		return fmt.Errorf("bind %s on %s: %w", host, guest, err)
	}
	if readOnly {
		// The new mount is reached by a fresh lookup; the descriptor
		// used to mount still names the covered mount point.
		err := mountAt(g, guest, dir, func(target string) error {
			return unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		})
		if err != nil {
			return fmt.Errorf("make %s read-only: %w", guest, err)
		}
	}
	return nil
}

// mountAt calls do with a path naming guest path p of g, resolved inside the
// guest tree (a guest symlink cannot move a mount point onto the host), and
// creates p first when it is missing.
func mountAt(g *rootfs.GuestRoot, p string, dir bool, do func(target string) error) error {
	st, err := g.Stat(p)
	switch {
	case errors.Is(err, unix.ENOENT):
		if dir {
			_, err = g.MkdirAll(p, 0755, true)
		} else {
			_, err = g.CreateFile(p, 0644, true)
		}
		if err != nil {
			return fmt.Errorf("create mount point: %w", err)
		}
	case err != nil:
		return err
	default:
		isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
		if isDir != dir {
			if dir {
				return fmt.Errorf("guest %s is not a directory", p)
			}
			return fmt.Errorf("guest %s is a directory", p)
		}
	}
	f, err := g.Open(p, unix.O_PATH, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	return do(fmt.Sprintf("/proc/self/fd/%d", f.Fd()))
}

// enter makes the guest tree the root and the working directory current,
// as root, before privileges are dropped.
func enter(spec *rootfs.RunSpec) error {
	if err := unix.Chdir(spec.Root); err != nil {
		return fmt.Errorf("chdir %s: %w", spec.Root, err)
	}
	// pivot_root rather than chroot: the host's tree is unmounted from the
	// namespace, so not even the guest's root can chroot its way out.
	if err := unix.PivotRoot(".", "."); err == nil {
		if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detach the host's root: %w", err)
		}
	} else if err == unix.EINVAL || err == unix.EBUSY {
		// The host's / is the initramfs rootfs, which cannot be pivoted
		// away (EINVAL), or the rootfs is the host's / itself, whose
		// self-bind lookups of "/" never reach (EBUSY): chroot is what is
		// left, and for the host's / it changes nothing.
		if err := unix.Chroot("."); err != nil {
			return fmt.Errorf("chroot %s: %w", spec.Root, err)
		}
	} else {
		return fmt.Errorf("pivot_root %s: %w", spec.Root, err)
	}
	if err := unix.Chdir("/"); err != nil {
		return fmt.Errorf("chdir /: %w", err)
	}
	if err := unix.Chdir(spec.Workdir); err != nil {
		return fmt.Errorf("working directory %s: %w", spec.Workdir, err)
	}
	return nil
}

// execute drops to the guest user and executes the command; it returns only
// on failure, with the exit status to report.
func execute(spec *rootfs.RunSpec) (int, error) {
	u := spec.User
	groups := u.Groups
	if groups == nil {
		groups = []int{}
	}
	// setgroups and setgid while still privileged, setuid last. The
	// syscall package applies them to every thread of the process.
	if err := syscall.Setgroups(groups); err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("setgroups %v: %w", groups, err)
	}
	if err := syscall.Setgid(u.GID); err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("setgid %d: %w", u.GID, err)
	}
	if err := syscall.Setuid(u.UID); err != nil {
		return rootfs.ExitToolFailure, fmt.Errorf("setuid %d: %w", u.UID, err)
	}
	// No parent-death signal: the command dies with init's namespace,
	// and its children with it, which a per-process signal could not do.

	pathEnv, _ := rootfs.GetEnv(spec.Env, "PATH")
	prog, code, err := lookPath(spec.Argv[0], pathEnv)
	if err != nil {
		return code, err
	}
	argv := append([]string(nil), spec.Argv...)
	if spec.Login {
		argv[0] = "-" + path.Base(argv[0])
	}
	for {
		err = unix.Exec(prog, argv, spec.Env)
		if err != unix.EINTR {
			break
		}
	}
	code = rootfs.ExitNotExecutable
	if err == unix.ENOENT {
		// The file exists (lookPath saw it), so its interpreter or ELF
		// loader is what is missing.
		code = rootfs.ExitNotFound
		return code, fmt.Errorf("%s: %w (its interpreter or dynamic loader is missing in the guest)", spec.Argv[0], err)
	}
	return code, fmt.Errorf("%s: %w", spec.Argv[0], err)
}

// lookPath finds the command in the guest's PATH as execvp(3) does, from
// inside the guest root and with the guest user's permissions: a name
// with a slash is used as is; otherwise the first executable regular file
// in PATH wins, and a file found but not executable gives 126 rather than
// 127.
func lookPath(file, pathEnv string) (string, int, error) {
	if file == "" {
		return "", rootfs.ExitNotFound, errors.New("empty command name")
	}
	if strings.Contains(file, "/") {
		if err := checkExec(file); err != nil {
			if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
				return "", rootfs.ExitNotFound, fmt.Errorf("%s: command not found in the guest", file)
			}
			return "", rootfs.ExitNotExecutable, fmt.Errorf("%s: %w", file, err)
		}
		return file, 0, nil
	}
	var denied error
	for _, dir := range strings.Split(pathEnv, ":") {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, file)
		err := checkExec(p)
		if err == nil {
			return p, 0, nil
		}
		if denied == nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENOTDIR) {
			denied = fmt.Errorf("%s: %w", p, err)
		}
	}
	if denied != nil {
		return "", rootfs.ExitNotExecutable, denied
	}
	return "", rootfs.ExitNotFound, fmt.Errorf("%s: command not found in the guest (PATH=%s)", file, pathEnv)
}

func checkExec(p string) error {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return unix.EISDIR
	}
	if err := unix.Access(p, unix.X_OK); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return unix.EACCES
	}
	return nil
}
