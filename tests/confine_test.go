package tests

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Confinement of a rootless guest: tests/testdata/confine/confine.c tries
// every route out of the guest root that the field notes list, as the
// unprivileged user in an Alpine tree that user unpacked, against a
// host-only marker file with unique content. TestRootlessEscape* cover the
// shell-level routes; this covers the syscall-level ones.

// testSource returns the C source of a test program in tests/testdata.
func testSource(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "tests", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// hostMarker writes a file with unique content into the guest's base
// directory (outside the guest root) and returns its path and content.
func hostMarker(t *testing.T, g *guest) (string, string) {
	t.Helper()
	b := make([]byte, 12)
	rand.Read(b)
	content := "host-marker-" + hex.EncodeToString(b)
	p := filepath.Join(g.base, "MARKER")
	if err := os.WriteFile(p, []byte(content+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p, content
}

// hostSleeper starts a host process as the guest's user, outside any
// guest: its cwd is dir and it holds f open as fd 3. It returns the pid and
// a pidfd of it.
func hostSleeper(t *testing.T, g *guest, dir, f string) (int, int) {
	t.Helper()
	fd, err := os.Open(f)
	if err != nil {
		t.Fatal(err)
	}
	defer fd.Close()
	cmd := g.u.Command("sleep", "1000")
	// A process group of its own, outside the guest's.
	cmd.SysProcAttr.Setpgid = true
	cmd.Dir = dir
	cmd.ExtraFiles = []*os.File{fd}
	pidfd := -1
	cmd.SysProcAttr.PidFD = &pidfd
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); syscall.Close(pidfd) })
	return cmd.Process.Pid, pidfd
}

// fdServer listens on an abstract unix socket and gives every client a
// descriptor of f.
func fdServer(t *testing.T, name, f string) {
	t.Helper()
	serveFds(t, name, func() (int, func()) {
		fd, err := os.Open(f)
		if err != nil {
			return -1, nil
		}
		return int(fd.Fd()), func() { fd.Close() }
	})
}

// serveFds listens on an abstract unix socket and gives every client the
// descriptor get returns (then calls its release function).
func serveFds(t *testing.T, name string, get func() (int, func())) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: "@" + name, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			if fd, release := get(); fd >= 0 {
				c.WriteMsgUnix([]byte("x"), syscall.UnixRights(fd), nil)
				if release != nil {
					release()
				}
			}
			c.Close()
		}
	}()
}

// parseResults turns "NAME: RESULT" lines into a map.
func parseResults(t *testing.T, out string) map[string]string {
	t.Helper()
	got := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		k, v, ok := strings.Cut(l, ": ")
		if !ok {
			t.Fatalf("bad line %q in\n%s", l, out)
		}
		got[k] = v
	}
	return got
}

func TestConfineRootless(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "confine", musl(t, testSource(t, "confine/confine.c"), true, "-lpthread"), 0o755)
	marker, content := hostMarker(t, g)
	// A listening socket outside the guest, open to everyone.
	sockPath := filepath.Join(g.base, "host.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: sockPath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(sockPath, 0o777)
	sleeper, sleeperFd := hostSleeper(t, g, g.base, marker)
	abstract := "nook-confine-" + strconv.Itoa(os.Getpid())
	fdServer(t, abstract, marker)
	fdServer(t, abstract+"D", g.base)
	serveFds(t, abstract+"P", func() (int, func()) { return sleeperFd, nil })
	sleeperIoprio := ioprio(t, sleeper)

	// Everything beside the guest root and the store must stay as it is.
	outside := func() string {
		var b strings.Builder
		ents, _ := os.ReadDir(g.base)
		for _, e := range ents {
			if e.Name() == "root" || e.Name() == "home" {
				continue
			}
			fi, _ := os.Lstat(filepath.Join(g.base, e.Name()))
			b.WriteString(e.Name() + " " + fi.Mode().String() + " " + strconv.FormatInt(fi.Size(), 10) + " " + fi.ModTime().String() + "\n")
		}
		return b.String()
	}
	before := outside()

	r := g.run(t, "/confine", marker, content, sockPath, strconv.Itoa(sleeper), abstract)
	if r.Code != 0 {
		t.Fatal(r)
	}
	got := parseResults(t, r.Stdout)
	t.Logf("results:\n%s", r.Stdout)
	if after := outside(); after != before {
		t.Errorf("the guest changed the host directory beside its root:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if b, _ := os.ReadFile(marker); string(b) != content+"\n" {
		t.Errorf("marker changed: %q", b)
	}

	// Routes that must fail with a given errno, or succeed inside.
	want := map[string]string{
		"io_uring_setup":      "ENOSYS",
		"name_to_handle_at":   "EOPNOTSUPP",
		"open_by_handle_at":   "EOPNOTSUPP",
		"chroot":              "EPERM",
		"mount":               "EPERM",
		"umount2":             "EPERM",
		"pivot_root":          "EPERM",
		"open_tree":           "ENOSYS",
		"userns-mount":        "EPERM",
		"userns-chroot":       "EPERM",
		"clone-untraced":      "ENOSYS",
		"getcwd-after-dotdot": "ok",
		"fd-passing-guest":    "ok",
		"proc-nook-root":      "EACCES",
		"proc-host-root":      "EACCES",
		"proc-host-cwd":       "EACCES",
		"proc-host-fd":        "EACCES",
		// Names are guest names: the host path does not exist there.
		"connect-host-socket":        "ENOENT",
		"connect-host-socket-dotdot": "ENOENT",
		"rename-to-host-dir":         "ENOENT",
		"link-host-file":             "ENOENT",
		"link-dotdot":                "ENOENT",
		"linkat-rootfd-dotdot":       "ENOENT",
		"linkat-symlink-follow":      "ENOENT",
		"rename-exchange-host":       "ENOENT",
		"unlink-host-file":           "ENOENT",
		"chmod-host-file":            "ENOENT",
		"truncate-host-file":         "ENOENT",
		"mkdir-host-dir":             "ENOENT",
		"creat-host-dir":             "ENOENT",
		"symlink-into-host-dir":      "ENOENT",
		"bind-host-path":             "ENOENT",
		"stat-host-path":             "ENOENT",
		"lstat-dotdot":               "ENOENT",
		"fstatat-rootfd-dotdot":      "ENOENT",
		"statx-host-path":            "ENOENT",
		"access-host-path":           "ENOENT",
		"faccessat2-host-path":       "ENOENT",
		"utimensat-host-path":        "ENOENT",
		"getxattr-host-path":         "ENOENT",
		"inotify-host-path":          "ENOENT",
		"readlink-host-path":         "ENOENT",
		"mknod-fifo-host-dir":        "ENOENT",
		// Processes outside the guest are invisible to pid-directed
		// calls (ESRCH), ptrace is refused, and their /proc entries
		// are refused but for the public files (tracer/confine*.go).
		"ptrace-host-process":        "EPERM",
		"process_vm_readv-host":      "ESRCH",
		"kill-host-process":          "ESRCH",
		"tgkill-host-process":        "ESRCH",
		"sigqueue-host-process":      "ESRCH",
		"pidfd_open-host":            "ESRCH",
		"prlimit-host":               "ESRCH",
		"pidfd_send_signal-proc-dir": "ESRCH",
		"proc-host-mem":              "EACCES",
		"proc-host-environ":          "EACCES",
		"proc-host-maps":             "EACCES",
		"proc-host-map_files":        "EACCES",
		"proc-host-status":           "ok",
		"proc-host-cmdline":          "ok",
		"proc-nook-fds":              "none",
		"kill-guest-child":           "ok",
		"killpg-host-group":          "ESRCH",
		"kill-own-group":             "ok",
		"kill-minus-one":             "ok",
		"kill-minus-one-child":       "killed",
		// Calls naming a process, a group or a user (confine.c's
		// pid_calls, host_pidfd, priority_groups).
		"setpriority-host-process":    "ESRCH",
		"getpriority-host-process":    "ESRCH",
		"setpriority-host-group":      "ESRCH",
		"getpriority-host-group":      "ESRCH",
		"getpriority-self":            "ok",
		"ioprio_set-host-process":     "ESRCH",
		"ioprio_get-host-process":     "ESRCH",
		"ioprio_set-host-group":       "ESRCH",
		"ioprio_get-host-group":       "ESRCH",
		"ioprio_set-user":             "EPERM",
		"ioprio_get-user":             "EPERM",
		"ioprio_set-self":             "ok",
		"ioprio_get-self":             "ok",
		"getpgid-host-process":        "ESRCH",
		"getsid-host-process":         "ESRCH",
		"getpgid-guest":               "ok",
		"getsid-guest":                "ok",
		"sched_getaffinity-host":      "ESRCH",
		"sched_setaffinity-host":      "ESRCH",
		"sched_getparam-host":         "ESRCH",
		"sched_setparam-host":         "ESRCH",
		"sched_getscheduler-host":     "ESRCH",
		"sched_setscheduler-host":     "ESRCH",
		"sched_rr_get_interval-host":  "ESRCH",
		"sched_getattr-host":          "ESRCH",
		"sched_getparam-guest":        "ok",
		"kcmp-host":                   "ESRCH",
		"get_robust_list-host":        "ESRCH",
		"migrate_pages-host":          "ESRCH",
		"move_pages-host":             "ESRCH",
		"tgsigqueue-host-process":     "ESRCH",
		"capget-host":                 "ESRCH",
		"perf_event_open-host":        "ESRCH",
		"waitid-host-group":           "ECHILD",
		"setpgid-host-group":          "EPERM",
		"setpgid-new-group":           "ok",
		"pidfd-signal-guest":          "ok",
		"pidfd-group-not-leader":      "ESRCH",
		"pidfd-group-leader":          "ok",
		"fcntl-setown-guest":          "ok",
		"fcntl-setown-host":           "ESRCH",
		"fcntl-setown-host-group":     "ESRCH",
		"fcntl-setown-own-group":      "EPERM",
		"fcntl-setown_ex-host":        "ESRCH",
		"fcntl-setown_ex-host-group":  "ESRCH",
		"ioctl-fiosetown-host":        "ESRCH",
		"ioctl-siocspgrp-host-group":  "ESRCH",
		"fcntl-getown":                "self",
		"fcntl-setown_ex-guest":       "ok",
		"fcntl-getown_ex":             "self",
		"ioctl-fiosetown-guest":       "ok",
		"pidfd_send_signal-host":      "ESRCH",
		"pidfd_getfd-host":            "ESRCH",
		"process_mrelease-host":       "ESRCH",
		"process_madvise-host":        "ESRCH",
		"setns-host-pidfd":            "ESRCH",
		"waitid-host-pidfd":           "ECHILD",
		"setpriority-guest-child":     "ok",
		"getpriority-guest-child":     "10",
		"setpriority-own-group":       "ok",
		"getpriority-own-group":       "3",
		"setpriority-user":            "ok",
		"getpriority-user":            "7",
		"getpriority-self-after-user": "7",
		// A host directory descriptor is not followed through /proc.
		"fd-passing-abstract-dir-proc": "EACCES",
		"fd-passing-abstract-dir-cwd":  "EACCES",
		// The guest cannot create a seccomp listener (its answer
		// SECCOMP_USER_NOTIF_FLAG_CONTINUE would run calls untranslated).
		"seccomp-user-notif":          "blocked (EINVAL)",
		"seccomp-user-notif-highbits": "EINVAL",
		// A guest filter's own SECCOMP_RET_TRACE data does not steer
		// the tracer, which dispatches on the registers.
		"guest-ret-trace-marker": "ENOENT",
		"guest-ret-trace-inside": "ok",
		// The scratch region holding long translated paths is
		// read-only and sealed; no guest process writes guest memory
		// behind the kernel's page protections.
		"region-long-path":        "ok",
		"region-found":            "yes",
		"region-mprotect":         "EPERM",
		"region-munmap":           "EPERM",
		"region-mmap-fixed":       "EPERM",
		"region-madvise-dontneed": "EPERM",
		"region-mremap":           "EPERM",
		"proc-self-mem":           "EACCES",
		"process_vm_writev-self":  "EPERM",
		// A guest filter that refuses mseal gets no unsealed region:
		// the calls that need one fail with its errno.
		"region-mseal-refused":       "EPERM",
		"region-mseal-refused-again": "EPERM",
		"region-mseal-refused-short": "ok",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		switch {
		case strings.HasPrefix(k, "int80-"):
			if v != "-38" {
				t.Errorf("%s: i386 syscall returned %s, want -38 (ENOSYS)", k, v)
			}
		case k == "fd-passing-abstract":
			// Abstract sockets have no name to translate: a host
			// process that hands out descriptors hands them to guests
			// too (documented in docs/security.md).
			if v != "LEAK" {
				t.Logf("%s: %s", k, v)
			}
		case v == "LEAK":
			t.Errorf("%s: the guest read the host-only marker", k)
		}
	}

	// kill(-1) and SIGIO in the guest reached neither the host sleeper
	// nor nook. (A killed sleeper is a zombie until the cleanup reaps it.)
	b, err := os.ReadFile("/proc/" + strconv.Itoa(sleeper) + "/stat")
	if err != nil || strings.Contains(string(b), ") Z ") {
		t.Errorf("the host process did not survive the guest's kill(-1, SIGTERM) and SIGIO: %s %v", b, err)
	}
	// Nor did its scheduling change: nice (field 19 of stat) and I/O
	// priority are what they were.
	if f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:])); len(f) < 17 || f[16] != "0" {
		t.Errorf("the guest changed the nice value of a host process: stat %s", b)
	}
	if got := ioprio(t, sleeper); got != sleeperIoprio {
		t.Errorf("the guest changed the I/O priority of a host process: %#x, was %#x", got, sleeperIoprio)
	}
}

// ioprio returns the I/O priority of process pid (ioprio_get(2),
// IOPRIO_WHO_PROCESS).
func ioprio(t *testing.T, pid int) int {
	t.Helper()
	r, _, e := syscall.Syscall(syscall.SYS_IOPRIO_GET, 1, uintptr(pid), 0)
	if e != 0 {
		t.Fatalf("ioprio_get %d: %v", pid, e)
	}
	return int(r)
}

// TestConfineRootlessForeground: the guest runs on a terminal, in a job
// of a host shell with job control (dash -m, the session leader): it must
// not hand the terminal's foreground to the shell's group (a host job in
// the foreground reads what the user types next), while its own groups
// and the job's group, which it starts in, stay allowed.
func TestConfineRootlessForeground(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "confine", musl(t, testSource(t, "confine/confine.c"), true, "-lpthread"), 0o755)
	master, slave := openPty(t)
	defer master.Close()
	// The trailing "true" keeps dash from running nook in its own
	// process.
	cmd := g.u.Command("/bin/sh", "-c", "set -m; "+nookBin+" run --mode rootless "+g.dir+" -- /confine --foreground; true")
	cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr.Setsid = true
	cmd.SysProcAttr.Setctty = true
	cmd.SysProcAttr.Ctty = 0
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	done := make(chan []byte)
	go func() {
		var out bytes.Buffer
		out.ReadFrom(master) // EIO once the last slave descriptor closes
		done <- out.Bytes()
	}()
	var out []byte
	select {
	case out = <-done:
	case <-time.After(60 * time.Second):
		cmd.Process.Kill()
		t.Fatal("timed out")
	}
	cmd.Wait()
	got := parseResults(t, strings.ReplaceAll(string(out), "\r", ""))
	for k, v := range map[string]string{
		"tiocsti":               "EIO",
		"tcsetpgrp-host-group":  "ESRCH",
		"tcgetpgrp-after":       "start",
		"setpgid-new-group":     "ok",
		"tcsetpgrp-guest-group": "ok",
		"setpgid-back-to-start": "ok",
		"tcsetpgrp-start-group": "ok",
		"tcgetpgrp-end":         "start",
	} {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	if t.Failed() {
		t.Logf("output:\n%s", out)
	}
}

// openPty returns the master and the slave of a new pseudo-terminal.
func openPty(t *testing.T) (*os.File, *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0)
	}
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatal(err)
	}
	return m, s
}

// TestConfineRootlessRace races the tracer the two ways a guest can once
// the tracer has checked a path: another guest thread swaps a path
// component for a symlink out of the root between the tracer's work and the
// kernel's lookup (open, openat2, stat, creat, access, chmod, mkdir,
// readlink, connect, exec; with a symlink to "/" and one made of ".."), or
// overwrites the translated path in the guest's memory before the kernel
// reads it. Each combination runs for a
// bounded time; any attempt that read the host-only marker, stat-ed,
// accessed or chmod-ed it, or created a file or directory beside the guest
// root fails the test (closed by tracer/rootfd.go and the sealed scratch
// region; docs/security.md).
func TestConfineRootlessRace(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "race", musl(t, testSource(t, "confine/race.c"), true, "-lpthread"), 0o755)
	marker, content := hostMarker(t, g)
	// A symlink of the host's beside the marker, whose text a readlink
	// that escapes reads.
	if err := os.Symlink(content, marker+".link"); err != nil {
		t.Fatal(err)
	}
	// A program of the host's beside the marker (a copy of the racer,
	// which exits with 42 when run as "exit42"), which an exec that
	// escapes runs.
	if b, err := os.ReadFile(filepath.Join(g.dir, "race")); err != nil {
		t.Fatal(err)
	} else if err := os.WriteFile(marker+".exe", b, 0o755); err != nil {
		t.Fatal(err)
	}
	// A socket of the host's beside the marker, which a connect that
	// escapes reaches.
	l, err := net.Listen("unix", marker+".sock")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	os.Chmod(marker+".sock", 0o777)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// In the guest's own tree, and in /dev/shm: a bind of the host's
	// /dev where any user can make symlinks.
	shm := fmt.Sprintf("/dev/shm/nook-race-%d", os.Getpid())
	t.Cleanup(func() { os.RemoveAll(shm) })
	for _, run := range []struct {
		args   []string
		phases int
	}{
		{[]string{"/race", marker, content, "1200", g.dir}, 21},
		{[]string{"/race", marker, content, "1000", g.dir, shm}, 20},
	} {
		r := g.run(t, run.args...)
		if r.Code != 0 {
			t.Fatal(r)
		}
		res := parseResults(t, r.Stdout)
		keys := make([]string, 0, len(res))
		for k := range res {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if len(keys) != run.phases {
			t.Errorf("%d phases reported, want %d: %v", len(keys), run.phases, keys)
		}
		where := "guest tree"
		if len(run.args) > 5 {
			where = run.args[5]
		}
		for _, k := range keys {
			v := res[k]
			var attempts, escapes int
			if _, err := fmt.Sscanf(v, "attempts %d escapes %d", &attempts, &escapes); err != nil {
				t.Fatalf("%s: %q", k, v)
			}
			if attempts == 0 {
				t.Errorf("%s (%s): no attempt ran", k, where)
			}
			if escapes > 0 {
				t.Errorf("%s (%s): %d of %d attempts led out of the guest", k, where, escapes, attempts)
			}
			t.Logf("%s (%s): %d attempts, %d escapes", k, where, attempts, escapes)
		}
	}
	if created, _ := filepath.Glob(filepath.Join(g.base, "RACE-*")); len(created) > 0 {
		t.Errorf("%d files created beside the guest root, e.g. %s", len(created), created[0])
	}
}

// TestConfineRootModeSameUID: in root mode the guest user's uid is a host
// uid (no user namespace), so a guest user whose uid matches a host account
// with running processes could follow /proc/PID/root of those processes into
// the host's tree if the guest saw the host's PID namespace. Root mode's own
// PID namespace and /proc close that route (docs/security.md).
func TestConfineRootModeSameUID(t *testing.T) {
	u := unprivileged(t)
	home := t.TempDir()
	if r := nook(t, home, "import", "--name", "a320", sharedRootfs(t, alpine320)); r.Code != 0 {
		t.Fatal(r)
	}
	dir := u.TempDir(t)
	marker := filepath.Join(dir, "MARKER")
	if err := os.WriteFile(marker, []byte("host-marker-same-uid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(marker, u.UID, u.GID)
	sleeper := u.Command("sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
	p := fmt.Sprintf("/proc/%d/root%s", sleeper.Process.Pid, marker)
	r := nook(t, home, "run", "--mode", "root", "-u", fmt.Sprintf("same:%d", u.UID), "a320", "--", "cat", p)
	if strings.Contains(r.Stdout, "host-marker-same-uid") {
		knownGap(t, "root mode: a guest user with the uid of a host account reads host files through /proc/PID/root of that account's processes")
		return
	}
	if r.Code == 0 {
		t.Errorf("cat %s: %s", p, r)
	}
}
