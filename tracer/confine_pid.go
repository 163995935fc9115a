package tracer

import (
	"encoding/binary"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// The calls beyond confine.go's that name a process, a process group or a
// user (docs/security.md). The guest runs as the host user, so the kernel
// lets it reach every process of that user; the tracer answers as a PID
// namespace holding only the guest would:
//
//   - a process outside the guest does not exist (ESRCH);
//   - a process group whose members are all outside it does not exist
//     (ESRCH), one with members on both sides may not be touched (EPERM,
//     the kernel's answer for a process of another user);
//   - "every process of the user" means the guest's.
//
// A pid 0 (the caller, its group or its user) does not stop where the call
// is common; calls the kernel restricts to the caller's children (wait4,
// waitid) need nothing.

// Values of linux/ioprio.h, linux/fcntl.h and linux/sockios.h missing in
// x/sys.
const (
	ioprioWhoProcess = 1
	ioprioWhoPgrp    = 2
	ioprioWhoUser    = 3

	fOwnerTid  = 0
	fOwnerPid  = 1
	fOwnerPgrp = 2

	fioSetown = 0x8901
)

func init() {
	// Reading another process's scheduling, and its group and session.
	for _, nr := range []int{
		unix.SYS_SCHED_GETAFFINITY, unix.SYS_SCHED_GETPARAM, unix.SYS_SCHED_GETSCHEDULER,
		unix.SYS_SCHED_GETATTR, unix.SYS_SCHED_RR_GET_INTERVAL,
		unix.SYS_GETPGID, unix.SYS_GETSID,
	} {
		Register(nr, Hook{Entry: func(c *Call) { pidArgs(c, 0) }, When: argNonZero(0)})
	}
	// A pidfd handed over by a host process (setns into the namespaces
	// of a host process the user owns, a rootless container's).
	for _, nr := range []int{unix.SYS_PROCESS_MRELEASE, unix.SYS_SETNS} {
		Register(nr, Hook{Entry: pidfdArg})
	}

	// (PRIO_PROCESS, 0) and (IOPRIO_WHO_PROCESS, 0), the caller, are what
	// nice(1), ionice(1) and libc's nice() use: only other forms stop.
	for _, nr := range []int{unix.SYS_SETPRIORITY, unix.SYS_GETPRIORITY} {
		set := nr == unix.SYS_SETPRIORITY
		Register(nr, Hook{
			Entry: func(c *Call) { priorityEntry(c, set) },
			When:  []seccomp.ScmpCondition{{Argument: 0, Op: seccomp.CompareNotEqual, Operand1: unix.PRIO_PROCESS}},
		})
		Register(nr, Hook{When: argNonZero(1)})
	}
	for _, nr := range []int{unix.SYS_IOPRIO_SET, unix.SYS_IOPRIO_GET} {
		Register(nr, Hook{
			Entry: ioprioEntry,
			When:  []seccomp.ScmpCondition{{Argument: 0, Op: seccomp.CompareNotEqual, Operand1: ioprioWhoProcess}},
		})
		Register(nr, Hook{When: argNonZero(1)})
	}

	// Joining a host process group puts the caller in it: kill(0) would
	// then reach the group (killEntry lets a group of the caller's own
	// through). setpgid(x, 0) makes a new group and does not stop.
	Register(unix.SYS_SETPGID, Hook{Entry: setpgidEntry, When: argNonZero(1)})

	// SIGIO and SIGURG owners: the kernel signals them when the file
	// has data, as if the guest had called kill.
	Register(unix.SYS_FCNTL, Hook{Entry: ownerEntry, When: []seccomp.ScmpCondition{argIs(1, unix.F_SETOWN)}})
	Register(unix.SYS_FCNTL, Hook{When: []seccomp.ScmpCondition{argIs(1, unix.F_SETOWN_EX)}})
	Register(unix.SYS_IOCTL, Hook{Entry: ownerEntry, When: []seccomp.ScmpCondition{argIs(1, fioSetown)}})
	Register(unix.SYS_IOCTL, Hook{When: []seccomp.ScmpCondition{argIs(1, unix.SIOCSPGRP)}})
	// The terminal's foreground group: a host job put in the foreground
	// reads what the guest's user types.
	Register(unix.SYS_IOCTL, Hook{When: []seccomp.ScmpCondition{argIs(1, unix.TIOCSPGRP)}})
	// Typing into the terminal: what the guest pushes into its input
	// queue is read by the user's shell once the run ends, a command run
	// on the host. EIO is what kernels without legacy TIOCSTI (6.2+,
	// dev.tty.legacy_tiocsti=0) answer.
	Register(unix.SYS_IOCTL, Hook{
		Entry: func(c *Call) {
			if uint32(c.Arg(1)) == unix.TIOCSTI {
				c.Fail(unix.EIO)
			}
		},
		When: []seccomp.ScmpCondition{argIs(1, unix.TIOCSTI)},
	})

	// Counting another process's events reads its activity; pid -1
	// counts every process on a CPU.
	Register(unix.SYS_PERF_EVENT_OPEN, Hook{Entry: perfEventOpenEntry, When: argNonZero(1)})
}

// argIs matches calls whose argument i, read as the kernel reads an int or
// unsigned int argument (the low 32 bits of the register), is v. A plain
// CompareEqual compares the whole register: a guest could set high bits
// that the kernel drops and pass the filter without a stop.
func argIs(i uint, v uint32) seccomp.ScmpCondition {
	return seccomp.ScmpCondition{Argument: i, Op: seccomp.CompareMaskedEqual, Operand1: 0xffffffff, Operand2: uint64(v)}
}

// argInt returns argument i as the kernel reads an int argument.
func argInt(c *Call, i int) int { return int(int32(c.Arg(i))) }

// priorityEntry confines setpriority and getpriority. A pid must be the
// guest's; a process group or a user is emulated over the guest's threads
// that belong to it (nice values are per thread, and the kernel walks
// every thread of the group or user too).
func priorityEntry(c *Call, set bool) {
	which, who := argInt(c, 0), argInt(c, 1)
	var match func(t *Thread) bool
	switch which {
	case unix.PRIO_PROCESS:
		if who != 0 && !c.tr.isGuest(who) {
			c.Fail(unix.ESRCH)
		}
		return
	case unix.PRIO_PGRP:
		match = c.tr.inGroup(c, who)
	case unix.PRIO_USER:
		// The guest's uids are fake: who is one of them (0: the
		// caller's real uid), never a host user.
		uid := c.T.P.Creds.Ruid
		if who != 0 {
			uid = int(uint32(who))
		}
		match = func(t *Thread) bool { return t.P.Creds.Ruid == uid }
	default:
		return // EINVAL from the kernel
	}
	if set {
		c.tr.setPriority(c, match, argInt(c, 2))
	} else {
		c.tr.getPriority(c, match)
	}
}

// inGroup returns a test for the guest threads in process group pgid (0:
// the caller's).
func (tr *tracer) inGroup(c *Call, pgid int) func(t *Thread) bool {
	if pgid == 0 {
		own, err := unix.Getpgid(c.T.P.Tgid)
		if err != nil {
			return func(*Thread) bool { return false }
		}
		pgid = own
	}
	groups := map[int]int{}
	return func(t *Thread) bool {
		g, ok := groups[t.P.Tgid]
		if !ok {
			var err error
			if g, err = unix.Getpgid(t.P.Tgid); err != nil {
				g = -1 // gone meanwhile
			}
			groups[t.P.Tgid] = g
		}
		return g == pgid
	}
}

// setPriority emulates setpriority over the guest threads match selects,
// with the kernel's result: ESRCH when there was none, else the last
// failure (EPERM, EACCES), else 0. The kernel clamps niceval for each
// thread as it would have.
func (tr *tracer) setPriority(c *Call, match func(t *Thread) bool, niceval int) {
	errno := unix.ESRCH
	for tid, t := range tr.threads {
		if !match(t) {
			continue
		}
		err := unix.Setpriority(unix.PRIO_PROCESS, tid, niceval)
		if err == unix.ESRCH {
			continue // exited meanwhile
		}
		if errno == unix.ESRCH {
			errno = 0
		}
		if err != nil {
			errno = errnoOf(err)
		}
	}
	if errno != 0 {
		c.Fail(errno)
		return
	}
	c.Return(0)
}

// getPriority emulates getpriority over the guest threads match selects:
// the highest priority among them, as the kernel's 20 - nice (libc
// converts), or ESRCH.
func (tr *tracer) getPriority(c *Call, match func(t *Thread) bool) {
	best := -1
	for tid, t := range tr.threads {
		if !match(t) {
			continue
		}
		// The raw system call: 20 - nice, never negative.
		if p, err := unix.Getpriority(unix.PRIO_PROCESS, tid); err == nil && p > best {
			best = p
		}
	}
	if best < 0 {
		c.Fail(unix.ESRCH)
		return
	}
	c.Return(int64(best))
}

// ioprioEntry confines ioprio_set and ioprio_get. Unlike nice values, the
// I/O priority the kernel reports for a group or a user (the best of the
// effective priorities, computed from nice values for tasks without one of
// their own) cannot be computed from outside, so a group with members
// outside the guest is refused instead of emulated; and every user
// includes nook and the user's other processes.
func ioprioEntry(c *Call) {
	which, who := argInt(c, 0), argInt(c, 1)
	switch which {
	case ioprioWhoProcess:
		if who != 0 && !c.tr.isGuest(who) {
			c.Fail(unix.ESRCH)
		}
	case ioprioWhoPgrp:
		if who == 0 {
			own, err := unix.Getpgid(c.T.P.Tgid)
			if err != nil {
				return
			}
			who = own
		}
		if errno := c.tr.groupCheck(who); errno != 0 {
			c.Fail(errno)
		}
	case ioprioWhoUser:
		c.Fail(unix.EPERM)
	}
}

// groupCheck answers for a call on process group pgid: 0 when no member
// is outside the guest (the kernel decides), ESRCH when every member is,
// EPERM when the group is mixed.
func (tr *tracer) groupCheck(pgid int) unix.Errno {
	guest, foreign := tr.groupMembers(pgid)
	switch {
	case !foreign:
		return 0
	case !guest:
		return unix.ESRCH
	}
	return unix.EPERM
}

// setpgidEntry refuses to move a guest process into a group with members
// outside the guest (EPERM, the kernel's answer for a group of another
// session), except into the group nook runs in, which the guest starts in
// and may go back to (a shell that leaves it for job control returns on
// exit).
func setpgidEntry(c *Call) {
	pid, pgid := argInt(c, 0), argInt(c, 1)
	if pid == 0 {
		pid = c.T.P.Tgid
	}
	if pgid <= 0 || pgid == pid || pgid == unix.Getpgrp() {
		return // a new group, EINVAL, or the starting group
	}
	if _, foreign := c.tr.groupMembers(pgid); foreign {
		c.Fail(unix.EPERM)
	}
}

// ownerEntry confines the owners of SIGIO and SIGURG (fcntl F_SETOWN and
// F_SETOWN_EX, ioctl FIOSETOWN and SIOCSPGRP on sockets) and the
// terminal's foreground group (ioctl TIOCSPGRP). A value read from guest
// memory is checked on a copy the call then uses: another guest thread
// could change the original between the check and the kernel's read.
func ownerEntry(c *Call) {
	cmd := uint32(c.Arg(1))
	switch {
	case c.Nr == unix.SYS_FCNTL && cmd == unix.F_SETOWN:
		ownerCheck(c, argInt(c, 2))
	case c.Nr == unix.SYS_FCNTL && cmd == unix.F_SETOWN_EX:
		var b [8]byte // struct f_owner_ex { int type; pid_t pid; }
		if c.Read(c.Arg(2), b[:]) != nil {
			return // EFAULT from the kernel
		}
		typ, pid := int32(binary.LittleEndian.Uint32(b[:])), int(int32(binary.LittleEndian.Uint32(b[4:])))
		switch typ {
		case fOwnerTid, fOwnerPid:
			ownerCheck(c, pid)
		case fOwnerPgrp:
			ownerCheck(c, -pid)
		default:
			return // EINVAL from the kernel
		}
		if !c.Done() {
			c.SetArg(2, c.Push(b[:]))
		}
	case c.Nr == unix.SYS_IOCTL && (cmd == fioSetown || cmd == unix.SIOCSPGRP || cmd == unix.TIOCSPGRP):
		var b [4]byte
		if c.Read(c.Arg(2), b[:]) != nil {
			return
		}
		v := int(int32(binary.LittleEndian.Uint32(b[:])))
		if cmd == unix.TIOCSPGRP {
			if v > 0 && v != unix.Getpgrp() {
				if errno := c.tr.groupCheck(v); errno != 0 {
					c.Fail(errno)
				}
			}
		} else {
			ownerCheck(c, v)
		}
		if !c.Done() {
			c.SetArg(2, c.Push(b[:]))
		}
	}
}

// ownerCheck checks an F_SETOWN value: pid > 0 a process, pid < 0 the
// group -pid, 0 no owner.
func ownerCheck(c *Call, pid int) {
	switch {
	case pid > 0:
		if !c.tr.isGuest(pid) {
			c.Fail(unix.ESRCH)
		}
	case pid < 0:
		if errno := c.tr.groupCheck(-pid); errno != 0 {
			c.Fail(errno)
		}
	}
}

// perfEventOpenEntry confines perf_event_open's pid: another process must
// be the guest's; -1, every process on a CPU, is refused with EACCES, what
// the kernel answers without CAP_PERFMON. With PERF_FLAG_PID_CGROUP the
// argument is a cgroup descriptor, which the kernel checks.
func perfEventOpenEntry(c *Call) {
	if c.Arg(4)&unix.PERF_FLAG_PID_CGROUP != 0 {
		return
	}
	switch pid := argInt(c, 1); {
	case pid == -1:
		c.Fail(unix.EACCES)
	case pid > 0 && !c.tr.isGuest(pid):
		c.Fail(unix.ESRCH)
	}
}
