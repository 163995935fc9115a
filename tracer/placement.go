package tracer

import (
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// CPU placement of the tracer and the guest.
//
// Every stop of a guest thread wakes the tracer, and every resume wakes the
// guest thread again. When the two run on different CPUs each wake-up is an
// inter-processor interrupt, and on a virtual machine an IPI to an idle
// virtual CPU is a VM exit and a host-side wake-up: measured here, a stop
// costs 7-8 µs when tracer and tracee share a CPU and 30-110 µs when they do
// not (see docs/performance.md). Pinning everything to one CPU would make a
// parallel guest (make -j2) serial, so the placement is adaptive:
//
//   - the tracer thread is pinned to the CPU it starts on;
//   - a guest thread that stops again soon after it was resumed (a burst of
//     trapped syscalls) is pinned to the tracer's CPU, so that its stops
//     and resumes are wake-ups on the same CPU;
//   - a pinned thread that ran long between two stops (computing, or
//     waiting for the CPU behind others) gets its original mask back, so
//     the scheduler can spread computing threads over every CPU.
//
// On a shared machine the tracer's CPU may be busy with other work: every
// 50 ms the tracer reads how long it waited for its CPU
// (/proc/thread-self/schedstat); past a quarter of the time it moves to the
// next CPU, and the pinned guest threads follow at their next stop.
//
// Threads inherit the mask of the thread that creates them, so a shell's
// short-lived children start on the tracer's CPU. The guest does not see
// any of this: sched_getaffinity reports the mask nook started with, and a
// guest that sets a mask itself keeps it (its thread is never moved again).
//
// NOOK_PLACEMENT selects another policy, for measurements: "off" (leave it
// all to the scheduler), "tracer" (pin the tracer only), "same" (pin the
// tracer and the whole guest to one CPU).

// Thresholds of the adaptive policy. A trapped-syscall burst stops every
// few tens of microseconds; a compiler or a compression runs for
// milliseconds between stops.
const (
	pinWithin  = time.Millisecond     // a run this short counts as a burst
	pinAfter   = 2                    // consecutive short runs before pinning
	unpinAfter = 2 * time.Millisecond // a run this long unpins

	crowdCheck = 50 * time.Millisecond // how often the tracer looks at its wait
	crowdWait  = 4                     // move when waiting > 1/crowdWait of the time
)

type placementPolicy uint8

const (
	placeOff placementPolicy = iota
	placeTracer
	placeSame
	placeAdaptive
)

// placer is the placement state of the run; it is set up on the tracer
// thread when the first process is registered, and used only there.
var placer struct {
	policy placementPolicy
	cpu    int
	one    unix.CPUSet // just the tracer's CPU
	guest  unix.CPUSet // nook's mask at the start: what the guest sees
	start  time.Time
	gen    uint32 // incremented when the tracer moves to another CPU

	checked time.Duration // when the tracer last looked at its wait
	waited  uint64        // its run-queue wait then, in ns
}

// placeThread is the placement state of one guest thread.
type placeThread struct {
	known  bool // pinned reflects the thread's real mask
	pinned bool // its mask is placer.one (of generation gen), set by us
	gen    uint32
	own    bool  // the guest set this thread's mask: never moved
	quick  uint8 // consecutive short runs
	last   time.Duration
}

func parsePlacement(s string) placementPolicy {
	switch s {
	case "off":
		return placeOff
	case "tracer":
		return placeTracer
	case "same":
		return placeSame
	}
	return placeAdaptive
}

func init() {
	OnProcess(func(parent, child *Process, thread bool) {
		if parent == nil {
			startPlacement(child.Tgid)
		}
	})
	Register(unix.SYS_SCHED_GETAFFINITY, Hook{Exit: getaffinityExit})
	Register(unix.SYS_SCHED_SETAFFINITY, Hook{Exit: setaffinityExit})
}

// startPlacement pins the calling thread, the tracer, to the CPU it runs on
// (and, with placeSame, the guest's first process too).
func startPlacement(pid int) {
	placer.policy = parsePlacement(os.Getenv("NOOK_PLACEMENT"))
	placer.start = time.Now()
	if placer.policy == placeOff {
		return
	}
	if err := unix.SchedGetaffinity(0, &placer.guest); err != nil || placer.guest.Count() < 2 {
		placer.policy = placeOff // nothing to choose from
		return
	}
	cpu, err := currentCPU()
	if err != nil || !placer.guest.IsSet(cpu) {
		placer.policy = placeOff
		return
	}
	placer.cpu = cpu
	placer.one.Zero()
	placer.one.Set(cpu)
	if setAffinity(0, &placer.one) != nil {
		placer.policy = placeOff
		return
	}
	if placer.policy == placeSame {
		setAffinity(pid, &placer.one)
	}
}

// inherited is the placement of a new thread whose creator had place when
// it called fork or clone: the kernel copies the creator's mask, so the
// tracer knows it without asking (a sched_getaffinity per new task).
func inherited(place placeThread) placeThread {
	if !place.known {
		return placeThread{}
	}
	return placeThread{known: true, pinned: place.pinned, gen: place.gen, own: place.own}
}

// placeStop runs at every stop of t, before it is resumed. waited says
// that the stop delivers SIGCHLD: the time since the last stop was most
// likely spent asleep, waiting for a child (a shell running commands), not
// computing, so it does not count as a long run. Counting it kept a busy
// shell unpinned, and every child it started had to be pinned on its own
// (W2: a sched_setaffinity per command).
func placeStop(t *Thread, waited bool) {
	if placer.policy != placeAdaptive {
		return
	}
	s := &t.place
	now := time.Since(placer.start)
	ran := now - s.last
	if waited || s.last == 0 {
		// s.last == 0: the first stop of a new thread, which has not
		// run long (it inherited its creator's mask, pinned or not).
		ran = 0
	}
	s.last = now
	if now-placer.checked > crowdCheck {
		checkCrowded(now)
	}
	if !s.known {
		// A new thread has its creator's mask: one CPU if we pinned
		// its creator.
		var m unix.CPUSet
		if unix.SchedGetaffinity(t.Tid, &m) != nil {
			return
		}
		s.known = true
		switch {
		case m == placer.guest:
		case m == placer.one:
			s.pinned, s.gen = true, placer.gen
		case m.Count() == 1:
			// Pinned before the tracer moved: re-pinned below.
			s.pinned, s.gen = true, placer.gen-1
		default:
			s.own = true
		}
	}
	if s.own {
		return
	}
	if s.pinned {
		if ran <= unpinAfter && s.gen != placer.gen {
			// The tracer moved: follow it.
			if setAffinity(t.Tid, &placer.one) == nil {
				s.gen = placer.gen
			}
			return
		}
		if ran > unpinAfter {
			if setAffinity(t.Tid, &placer.guest) == nil {
				s.pinned = false
			}
			s.quick = 0
		}
		return
	}
	if ran > pinWithin {
		s.quick = 0
		return
	}
	if s.quick++; s.quick >= pinAfter {
		if setAffinity(t.Tid, &placer.one) == nil {
			s.pinned, s.gen = true, placer.gen
		}
	}
}

// checkCrowded moves the tracer to the next CPU of the guest's mask when it
// waited for its own CPU more than 1/crowdWait of the time since the last
// check: another process keeps that CPU busy.
func checkCrowded(now time.Duration) {
	waited, err := runQueueWait()
	if err != nil {
		return
	}
	elapsed := now - placer.checked
	busy := placer.checked > 0 && waited-placer.waited > uint64(elapsed)/crowdWait
	placer.checked, placer.waited = now, waited
	if !busy {
		return
	}
	next := placer.cpu
	for i := 0; i < len(placer.guest)*64; i++ {
		next = (next + 1) % (len(placer.guest) * 64)
		if placer.guest.IsSet(next) {
			break
		}
	}
	if next == placer.cpu {
		return
	}
	var one unix.CPUSet
	one.Set(next)
	if setAffinity(0, &one) != nil {
		return
	}
	placer.cpu, placer.one = next, one
	placer.gen++
}

// runQueueWait returns how long the calling thread has waited, runnable,
// for a CPU (the second field of /proc/thread-self/schedstat, in ns).
func runQueueWait() (uint64, error) {
	var buf [96]byte
	fd, err := unix.Open("/proc/thread-self/schedstat", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	n, err := unix.Read(fd, buf[:])
	for err == unix.EINTR {
		n, err = unix.Read(fd, buf[:])
	}
	if err != nil {
		return 0, err
	}
	f := strings.Fields(string(buf[:n]))
	if len(f) < 2 {
		return 0, unix.EINVAL
	}
	return strconv.ParseUint(f[1], 10, 64)
}

// getaffinityExit shows the guest the mask nook started with instead of
// the CPU a thread is pinned to.
func getaffinityExit(c *Call) {
	n := c.Result()
	if n <= 0 || placer.policy == placeOff || placer.policy == placeTracer {
		return
	}
	t := affinityTarget(c)
	if t == nil || t.place.own {
		return
	}
	if placer.policy == placeAdaptive && !t.place.pinned {
		return
	}
	b := cpuSetBytes(&placer.guest)
	if n < int64(len(b)) {
		b = b[:n]
	}
	if err := c.Write(c.Arg(2), b); err != nil {
		c.SetResult(-int64(unix.EFAULT))
	}
}

// setaffinityExit leaves a thread whose mask the guest set alone.
func setaffinityExit(c *Call) {
	if c.Result() != 0 {
		return
	}
	if t := affinityTarget(c); t != nil {
		t.place = placeThread{known: true, own: true}
	}
}

// affinityTarget is the guest thread a sched_[gs]etaffinity call names.
func affinityTarget(c *Call) *Thread {
	pid := int(int32(c.Arg(0)))
	if pid == 0 {
		return c.T
	}
	return c.tr.threads[pid]
}

func setAffinity(tid int, set *unix.CPUSet) error {
	for {
		err := unix.SchedSetaffinity(tid, set)
		if err != unix.EINTR {
			return err
		}
	}
}
