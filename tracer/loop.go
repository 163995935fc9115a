package tracer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// ptraceOptions: every new task is traced, the seccomp filter's
// SECCOMP_RET_TRACE stops us, syscall stops are told apart from signal
// stops (TRACESYSGOOD) and the guest dies with nook (EXITKILL).
const ptraceOptions = unix.PTRACE_O_EXITKILL | unix.PTRACE_O_TRACESECCOMP |
	unix.PTRACE_O_TRACECLONE | unix.PTRACE_O_TRACEFORK | unix.PTRACE_O_TRACEVFORK |
	unix.PTRACE_O_TRACEEXEC | unix.PTRACE_O_TRACESYSGOOD

func ptrace4(req, pid int, addr, data uintptr) error {
	for {
		_, _, e := unix.RawSyscall6(unix.SYS_PTRACE, uintptr(req), uintptr(pid), addr, data, 0, 0)
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		}
		return e
	}
}

func seize(pid int) error {
	return ptrace4(unix.PTRACE_SEIZE, pid, 0, ptraceOptions)
}

func cont(tid, sig int) error   { return ptrace4(unix.PTRACE_CONT, tid, 0, uintptr(sig)) }
func syscallStop(tid int) error { return ptrace4(unix.PTRACE_SYSCALL, tid, 0, 0) }
func listen(tid int) error      { return ptrace4(unix.PTRACE_LISTEN, tid, 0, 0) }

func getRegs(tid int, r *unix.PtraceRegs) error {
	for {
		err := unix.PtraceGetRegs(tid, r)
		if err != unix.EINTR {
			return err
		}
	}
}

func setRegs(tid int, r *unix.PtraceRegs) error {
	for {
		err := unix.PtraceSetRegs(tid, r)
		if err != unix.EINTR {
			return err
		}
	}
}

func eventMsg(tid int) (uint, error) {
	for {
		m, err := unix.PtraceGetEventMsg(tid)
		if err != unix.EINTR {
			return m, err
		}
	}
}

// loop runs the ptrace event loop until no tracee is left. It blocks only in
// wait4. It returns the wait status of the initial process.
func (tr *tracer) loop() (unix.WaitStatus, error) {
	var (
		initialStatus unix.WaitStatus
		initialDone   bool
	)
	defer tr.dirs.closeAll()
	for {
		var ws unix.WaitStatus
		tid, err := unix.Wait4(-1, &ws, unix.WALL, nil)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ECHILD {
			if !initialDone {
				return 0, fmt.Errorf("tracer: guest vanished without an exit status")
			}
			return initialStatus, nil
		}
		if err != nil {
			return 0, fmt.Errorf("wait4: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			if t := tr.threads[tid]; t != nil {
				t.forgetCalls()
				if tid == t.P.Tgid {
					tr.dirs.dropProcess(t.P)
				}
			}
			delete(tr.threads, tid)
			delete(tr.unannounced, tid)
			if tid == tr.initial && !initialDone {
				initialStatus, initialDone = ws, true
				// Guest processes still running when the first one
				// exits are killed: nothing may run on untraced, and
				// nook must not wait for daemons forever.
				tr.killAll()
			}
			continue
		}
		if !ws.Stopped() {
			continue
		}
		t := tr.threads[tid]
		if t == nil {
			// A new task whose parent's fork/clone event has not been
			// seen yet: keep it stopped until it is announced.
			tr.unannounced[tid] = ws
			continue
		}
		tr.stopped(t, ws)
	}
}

// stopped handles one ptrace stop of a known thread and resumes it.
func (tr *tracer) stopped(t *Thread, ws unix.WaitStatus) {
	sig := ws.StopSignal()
	// The ptrace event is in bits 16-23 (WaitStatus.TrapCause reports it
	// only for SIGTRAP stops, but PTRACE_EVENT_STOP comes with others).
	event := int(uint32(ws)>>16) & 0xff
	// The placement t had when it ran, which a task it created inherited.
	ran := t.place
	placeStop(t, event == 0 && sig == unix.SIGCHLD)
	var err error
	switch {
	case sig == unix.SIGTRAP|0x80:
		if tr.stats.on && t.exitNr >= 0 {
			tr.stats.exit[t.exitNr]++
		}
		// Syscall-exit stop (entry stops never happen: syscalls are
		// resumed with PTRACE_SYSCALL only from their seccomp stop).
		tr.syscallExit(t)
		if resumeSyscall(t) {
			err = syscallStop(t.Tid) // an injected mseal (confine_region.go)
		} else {
			err = cont(t.Tid, 0)
		}
	case sig == unix.SIGTRAP && event == unix.PTRACE_EVENT_SECCOMP:
		if tr.syscallEntry(t) {
			err = syscallStop(t.Tid)
		} else {
			err = cont(t.Tid, 0)
		}
	case sig == unix.SIGTRAP && (event == unix.PTRACE_EVENT_FORK || event == unix.PTRACE_EVENT_VFORK || event == unix.PTRACE_EVENT_CLONE):
		tr.newTask(t, event, ran)
		err = cont(t.Tid, 0)
	case sig == unix.SIGTRAP && event == unix.PTRACE_EVENT_EXEC:
		t = tr.execEvent(t)
		err = cont(t.Tid, 0)
	case event == unix.PTRACE_EVENT_STOP:
		tr.stats.other++
		err = tr.eventStop(t, sig)
	case event != 0:
		err = cont(t.Tid, 0)
	default:
		// Signal-delivery stop: deliver the signal.
		tr.stats.other++
		err = cont(t.Tid, int(sig))
	}
	if err != nil && err != unix.ESRCH {
		// ESRCH: the thread was killed meanwhile; its exit comes next.
		fmt.Fprintf(os.Stderr, "nook: tracer: resuming %d: %v\n", t.Tid, err)
	}
}

// eventStop handles PTRACE_EVENT_STOP: a group-stop (job control) or the
// first stop of a new task or an interrupt.
func (tr *tracer) eventStop(t *Thread, sig unix.Signal) error {
	switch sig {
	case unix.SIGSTOP, unix.SIGTSTP, unix.SIGTTIN, unix.SIGTTOU:
		// Group-stop: PTRACE_LISTEN keeps the thread stopped (the job
		// stays stopped, as its shell expects) while letting the kernel
		// wake it on SIGCONT. EIO: not a group-stop after all (a
		// SIGCONT came first); the thread must not stay stuck.
		if err := listen(t.Tid); err != unix.EIO {
			return err
		}
	}
	return cont(t.Tid, 0)
}

// newTask registers the task a fork, vfork or clone of t created; place is
// t's placement when it made the call.
func (tr *tracer) newTask(t *Thread, event int, place placeThread) {
	msg, err := eventMsg(t.Tid)
	if err != nil {
		return
	}
	tid := int(msg)
	var flags uint64
	if event != unix.PTRACE_EVENT_FORK {
		flags = tr.cloneFlags(t)
	}
	var p *Process
	if flags&unix.CLONE_THREAD != 0 {
		p = t.P
		for _, h := range processHooks {
			h(p, p, true)
		}
	} else {
		p = forkProcess(t.P, tid)
		if flags&unix.CLONE_VM != 0 {
			p.as = t.P.as
		}
	}
	nt := &Thread{Tid: tid, P: p, exitNr: -1, place: inherited(place)}
	tr.threads[tid] = nt
	if ws, ok := tr.unannounced[tid]; ok {
		delete(tr.unannounced, tid)
		tr.stopped(nt, ws)
	}
}

// cloneFlags returns the flags of the clone, clone3 or vfork t is stopped
// in: whether it created a thread (CLONE_THREAD) or a process, and whether
// that shares t's address space (CLONE_VM).
func (tr *tracer) cloneFlags(t *Thread) uint64 {
	var r unix.PtraceRegs
	if err := getRegs(t.Tid, &r); err != nil {
		return 0
	}
	switch r.Orig_rax {
	case unix.SYS_CLONE:
		return r.Rdi
	case unix.SYS_CLONE3:
		// struct clone_args begins with the 64-bit flags.
		f, err := readU64(t.Tid, r.Rdi)
		if err != nil {
			return 0
		}
		return f
	case unix.SYS_VFORK:
		return unix.CLONE_VM | unix.CLONE_VFORK
	}
	return 0
}

// execEvent handles PTRACE_EVENT_EXEC: a non-leader thread that called
// execve takes over the leader's tid, and the other threads are gone.
func (tr *tracer) execEvent(t *Thread) *Thread {
	if msg, err := eventMsg(t.Tid); err == nil && int(msg) != t.Tid {
		if old := tr.threads[int(msg)]; old != nil {
			delete(tr.threads, int(msg))
			old.Tid = t.Tid
			t = old
			tr.threads[t.Tid] = t
		}
	}
	// Every other thread of the process died in the exec.
	for tid, o := range tr.threads {
		if o.P == t.P && o != t {
			delete(tr.threads, tid)
		}
	}
	tr.dirs.dropProcess(t.P)
	t.P.Exe = t.pendingExe
	t.pendingExe = ""
	t.pendingStatOK = false
	t.P.view, t.pendingView = t.pendingView, procView{}
	t.exitNr = -1
	// The old address space lives on only if it was shared (a vfork
	// parent's): the regions the thread held go back to it.
	t.forgetCalls()
	t.P.as = &addrSpace{}
	t.noRegion = false
	t.P.notDumpable = false
	return t
}

// killAll kills every guest process still traced.
func (tr *tracer) killAll() {
	for tid := range tr.threads {
		unix.Kill(tid, unix.SIGKILL)
	}
	for tid := range tr.unannounced {
		unix.Kill(tid, unix.SIGKILL)
	}
}

// syscallEntry handles a seccomp stop; it reports whether the call needs
// its exit stop.
func (tr *tracer) syscallEntry(t *Thread) bool {
	c := &tr.call
	c.reset(tr, t, false)
	if err := getRegs(t.Tid, &c.Regs); err != nil {
		return false
	}
	nr := c.Regs.Orig_rax
	if nr >= maxSyscall {
		return false
	}
	c.Nr = int(nr)
	c.orig = c.Regs
	tr.proc.cur = t
	if tr.stats.on {
		tr.stats.entry[nr]++
	}
	if tr.restarted(c) {
		if hasExit(c.Nr) || t.exitOnce != nil {
			t.exitNr = c.Nr
			return true
		}
		return false
	}
	t.invalidate = t.invalidate[:0]
	for _, h := range table[nr] {
		if h.Entry != nil {
			h.Entry(c)
			if c.done {
				break
			}
		}
	}
	if c.inject != nil {
		// Nothing of this stop is kept: the call enters again once
		// the region is mapped.
		if c.region.size > 0 {
			t.P.as.free = append(t.P.as.free, c.region)
		}
		return tr.startInjection(t, c.inject)
	}
	if err := c.flush(); err != nil {
		c.writes = c.writes[:0]
		c.Fail(errnoOf(err))
	}
	if c.dirty {
		if err := writeRegs(t.Tid, &c.Regs, &c.orig); err != nil {
			return false
		}
	}
	if !c.done && len(c.writes) > 0 {
		tr.remember(c)
	} else if c.region.size > 0 {
		t.P.as.free = append(t.P.as.free, c.region)
	}
	if c.done {
		t.exitOnce = nil
	}
	if !c.done && (hasExit(c.Nr) || t.exitOnce != nil) {
		t.exitNr = c.Nr
		return true
	}
	return false
}

// syscallExit handles the exit stop of a call whose entry asked for it.
func (tr *tracer) syscallExit(t *Thread) {
	nr := t.exitNr
	t.exitNr = -1
	if t.injecting != nil && tr.injectionExit(t, nr) {
		tr.finishInjection(t)
		return
	}
	if nr < 0 {
		return
	}
	c := &tr.call
	c.reset(tr, t, true)
	c.Nr = nr
	if err := getRegs(t.Tid, &c.Regs); err != nil {
		return
	}
	was := c.Regs
	tr.proc.cur = t
	if r := c.Result(); r <= -512 && r >= -516 {
		// -ERESTARTSYS and friends: the call will be re-executed (and
		// stop at entry again); it has no result yet.
		return
	}
	for _, h := range table[nr] {
		if h.Exit != nil {
			h.Exit(c)
		}
	}
	if f := t.exitOnce; f != nil {
		t.exitOnce = nil
		f(c)
	}
	if err := c.flush(); err == nil && c.dirty {
		writeRegs(t.Tid, &c.Regs, &was)
	}
	t.Scratch, t.mine = nil, nil
}

// remember keeps what c wrote so that a restart of the call can redo it.
// A thread keeps its last few translated calls: a call interrupted by a
// signal restarts after the handler, which may make translated calls of
// its own. The oldest record's scratch region goes back to the address
// space; until then no other call can use it.
func (tr *tracer) remember(c *Call) {
	t := c.T
	l := &t.last[t.lastNext]
	t.lastNext = (t.lastNext + 1) % len(t.last)
	if l.region.size > 0 {
		t.P.as.free = append(t.P.as.free, l.region)
	}
	l.valid = true
	l.nr = c.Regs.Orig_rax
	l.sp = c.Regs.Rsp
	l.args = [6]uint64{c.Regs.Rdi, c.Regs.Rsi, c.Regs.Rdx, c.Regs.R10, c.Regs.R8, c.Regs.R9}
	l.data = append(l.data[:0], c.data...)
	l.addrs = append(l.addrs[:0], c.writes...)
	l.region = c.region
}

// forgetCalls drops the thread's restart records (at execve and exit),
// giving their regions back to the address space.
func (t *Thread) forgetCalls() {
	for i := range t.last {
		l := &t.last[i]
		if l.region.size > 0 {
			t.P.as.free = append(t.P.as.free, l.region)
		}
		l.valid, l.region = false, region{}
	}
}

// restarted detects the re-execution of one of the thread's recent
// translated calls after a signal interrupted it (-ERESTARTSYS with
// SA_RESTART, or a restart after a stop): the kernel re-enters the call
// with the registers the tracer set, so its path arguments already point at
// the scratch area, which a signal handler may have overwritten since. Same
// number, same stack pointer and the same argument registers (among them a
// scratch address no program could have passed itself, being below its
// stack pointer or in the tracer's region) mean a restart: the scratch data
// is written again and the call goes on without a second translation.
func (tr *tracer) restarted(c *Call) bool {
	args := [6]uint64{c.Regs.Rdi, c.Regs.Rsi, c.Regs.Rdx, c.Regs.R10, c.Regs.R8, c.Regs.R9}
	var l *restartState
	for i := range c.T.last {
		r := &c.T.last[i]
		if r.valid && r.nr == c.Regs.Orig_rax && r.sp == c.Regs.Rsp && r.args == args {
			l = r
			break
		}
	}
	if l == nil {
		return false
	}
	var err error
	if l.region.size > 0 {
		err = writeRegion(c.T, l.data, l.addrs) // read-only to the guest (confine_region.go)
	} else {
		err = writeMany(c.T.Tid, l.data, l.addrs)
	}
	if err != nil {
		return false
	}
	return true
}
