package tracer

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
	"strings"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Confinement of the guest beyond path translation (docs/security.md):
//
//   - A guest's own seccomp filter must not create a user-notification
//     listener: SECCOMP_RET_USER_NOTIF outranks the tracer's
//     SECCOMP_RET_TRACE, and a listener answering
//     SECCOMP_USER_NOTIF_FLAG_CONTINUE runs the call untranslated.
//   - Processes outside the guest are invisible to pid-directed calls:
//     the kernel lets any process of a user signal, read the memory of and
//     (without Yama) ptrace every other process of that user, nook and the
//     user's shells among them.
//
// Other guest filter results cannot mislead the tracer: it dispatches on
// the syscall number in the registers, never on SECCOMP_RET_DATA, so a guest
// filter's own SECCOMP_RET_TRACE (with any data) only adds stops that find no
// hook or run the hooks of the call really made; SECCOMP_RET_ERRNO, _TRAP and
// _KILL outrank TRACE but only stop the call from running at all.

// Flags of seccomp(2) (linux/seccomp.h), not all in x/sys.
const (
	seccompSetModeFilter         = 1
	seccompFilterFlagNewListener = 1 << 3
)

func init() {
	// A guest listener is refused the way a kernel without the feature
	// (before 5.0) refuses the flag: EINVAL, on which libraries that use
	// it (crun, systemd-nspawn, libseccomp's seccomp_notify_fd users)
	// report it unsupported. Only calls with the flag stop.
	Register(unix.SYS_SECCOMP, Hook{
		// op and flags are unsigned int: the kernel ignores the
		// registers' high halves, and so must the checks.
		Entry: func(c *Call) {
			if uint32(c.Arg(0)) == seccompSetModeFilter && uint32(c.Arg(1))&seccompFilterFlagNewListener != 0 {
				c.Fail(unix.EINVAL)
			}
		},
		When: []seccomp.ScmpCondition{
			argIs(0, seccompSetModeFilter),
			{Argument: 1, Op: seccomp.CompareMaskedEqual, Operand1: seccompFilterFlagNewListener, Operand2: seccompFilterFlagNewListener},
		},
	})

	// Calls naming another process by pid: fail with ESRCH for a pid
	// outside the guest, as if it did not exist. Argument 0 is the pid;
	// pid 0 means the caller (or its group, for kill) and needs no stop.
	for _, nr := range []int{
		unix.SYS_PROCESS_VM_READV,
		unix.SYS_PIDFD_OPEN, unix.SYS_RT_SIGQUEUEINFO, unix.SYS_TKILL,
	} {
		Register(nr, Hook{Entry: func(c *Call) { pidArgs(c, 0) }})
	}
	for _, nr := range []int{
		// 0 is the caller for all of these, and very common for
		// prlimit64 (glibc's getrlimit and setrlimit).
		unix.SYS_PRLIMIT64, unix.SYS_GET_ROBUST_LIST, unix.SYS_MOVE_PAGES, unix.SYS_MIGRATE_PAGES,
		unix.SYS_SCHED_SETAFFINITY, unix.SYS_SCHED_SETPARAM, unix.SYS_SCHED_SETSCHEDULER, unix.SYS_SCHED_SETATTR,
	} {
		Register(nr, Hook{Entry: func(c *Call) { pidArgs(c, 0) }, When: argNonZero(0)})
	}
	for _, nr := range []int{unix.SYS_TGKILL, unix.SYS_RT_TGSIGQUEUEINFO, unix.SYS_KCMP} {
		Register(nr, Hook{Entry: func(c *Call) { pidArgs(c, 0, 1) }})
	}
	for _, nr := range []int{unix.SYS_PIDFD_GETFD, unix.SYS_PROCESS_MADVISE} {
		Register(nr, Hook{Entry: pidfdArg})
	}
	Register(unix.SYS_PIDFD_SEND_SIGNAL, Hook{Entry: pidfdSendSignalEntry})
	Register(unix.SYS_KILL, Hook{Entry: killEntry, When: argNonZero(0)})
}

func argNonZero(i uint) []seccomp.ScmpCondition {
	return []seccomp.ScmpCondition{{Argument: i, Op: seccomp.CompareNotEqual, Operand1: 0}}
}

// isGuest reports whether pid is a process or thread of the guest.
func (tr *tracer) isGuest(pid int) bool {
	if pid <= 0 {
		return false
	}
	if _, ok := tr.threads[pid]; ok {
		return true
	}
	if _, ok := tr.unannounced[pid]; ok {
		return true
	}
	// A process whose leader thread exited lives on in its other
	// threads: its tgid still names it.
	for _, t := range tr.threads {
		if t.P.Tgid == pid {
			return true
		}
	}
	return false
}

// pidArgs fails the call with ESRCH when one of the pid arguments (int, 0
// meaning the caller) names a process outside the guest.
func pidArgs(c *Call, args ...int) {
	for _, i := range args {
		pid := int(int32(c.Arg(i)))
		if pid == 0 {
			continue
		}
		if !c.tr.isGuest(pid) {
			c.Fail(unix.ESRCH)
			return
		}
	}
}

// pidfdArg checks the process behind the pidfd in argument 0: a pidfd a
// host process handed the guest, or an fd of a host /proc/PID directory
// (which pidfd_send_signal accepts too).
func pidfdArg(c *Call) {
	fd := int(int32(c.Arg(0)))
	if fd < 0 {
		return // EBADF from the kernel
	}
	pid, ok := pidOfFd(c.T.Tid, fd)
	if ok && pid > 0 && !c.tr.isGuest(pid) {
		c.Fail(unix.ESRCH)
	}
}

// pidfdSignalProcessGroup is PIDFD_SIGNAL_PROCESS_GROUP (linux/pidfd.h,
// Linux 6.9): the signal goes to the process group the pidfd's process
// leads (ESRCH if it leads none).
const pidfdSignalProcessGroup = 1 << 2

// pidfdSendSignalEntry confines pidfd_send_signal: the process must be the
// guest's, and with PIDFD_SIGNAL_PROCESS_GROUP the group it leads is
// checked as kill(-PGID) checks it (killEntry): a host process may have
// joined it.
func pidfdSendSignalEntry(c *Call) {
	pidfdArg(c)
	if c.Done() || c.Arg(3)&pidfdSignalProcessGroup == 0 {
		return
	}
	pgid, ok := pidOfFd(c.T.Tid, int(int32(c.Arg(0))))
	if !ok || pgid <= 0 {
		return // EBADF or ESRCH from the kernel
	}
	if own, err := unix.Getpgid(c.T.P.Tgid); err == nil && own == pgid {
		return
	}
	if errno := c.tr.groupCheck(pgid); errno != 0 {
		c.Fail(errno)
	}
}

// pidOfFd returns the process a pidfd or /proc/PID directory fd of thread
// tid refers to; ok is false when fd is neither (the kernel then fails the
// call with EBADF) and pid is -1 for a pidfd of a process that is gone.
func pidOfFd(tid, fd int) (pid int, ok bool) {
	name := strconv.Itoa(fd)
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(tid) + "/fdinfo/" + name); err == nil {
		s := bufio.NewScanner(bytes.NewReader(b))
		for s.Scan() {
			if v, found := strings.CutPrefix(s.Text(), "Pid:"); found {
				n, err := strconv.Atoi(strings.TrimSpace(v))
				return n, err == nil
			}
		}
	}
	target, err := readlinkProc(tid, "fd/"+name)
	if err != nil {
		return 0, false
	}
	rest, found := strings.CutPrefix(target, "/proc/")
	if !found {
		return 0, false
	}
	if p, tail, _ := strings.Cut(rest, "/"); tail == "" {
		if n, err := strconv.Atoi(p); err == nil {
			return n, true
		}
	}
	return 0, false
}

// killEntry confines kill(2): a positive pid must be a guest process; -1
// ("every process the caller may signal") is emulated over the guest's
// processes; -PGID is refused when the group has members outside the guest
// (groupCheck), unless it is the caller's own group, which kill(0, sig)
// reaches anyway.
func killEntry(c *Call) {
	pid := int(int32(c.Arg(0)))
	sig := unix.Signal(int32(c.Arg(1)))
	switch {
	case pid > 0:
		if !c.tr.isGuest(pid) {
			c.Fail(unix.ESRCH)
		}
	case pid == -1:
		c.tr.killGuests(c, sig)
	case pid < -1:
		pgid := -pid
		if own, err := unix.Getpgid(c.T.P.Tgid); err == nil && own == pgid {
			return
		}
		if errno := c.tr.groupCheck(pgid); errno != 0 {
			c.Fail(errno)
		}
	}
}

// killGuests emulates kill(-1, sig) for the guest: every guest process but
// the caller's gets the signal. Like the kernel, it succeeds when at least
// one process was signalled and fails with ESRCH when there was none.
func (tr *tracer) killGuests(c *Call, sig unix.Signal) {
	if sig < 0 || sig > 64 { // _NSIG
		c.Fail(unix.EINVAL)
		return
	}
	done := map[int]bool{c.T.P.Tgid: true}
	var (
		sent    bool
		lastErr = unix.ESRCH
	)
	for _, t := range tr.threads {
		tgid := t.P.Tgid
		if done[tgid] {
			continue
		}
		done[tgid] = true
		if err := unix.Kill(tgid, sig); err != nil {
			lastErr = errnoOf(err)
			continue
		}
		sent = true
	}
	if sent {
		c.Return(0)
		return
	}
	c.Fail(lastErr)
}

// groupMembers reports whether process group pgid has members in the
// guest and outside it. It reads every process's stat: the calls naming a
// group are rare (job control in a guest shell). When /proc cannot be
// read, the group counts as having members outside.
func (tr *tracer) groupMembers(pgid int) (guest, foreign bool) {
	d, err := os.Open("/proc")
	if err != nil {
		return false, true
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return false, true
	}
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + n + "/stat")
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid pgrp ...: comm may hold spaces and
		// parentheses, the last ')' ends it.
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 3 {
			continue
		}
		if g, err := strconv.Atoi(f[2]); err == nil && g == pgid {
			if tr.isGuest(pid) {
				guest = true
			} else {
				foreign = true
			}
		}
	}
	return guest, foreign
}
