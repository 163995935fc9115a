package tracer

import (
	"golang.org/x/sys/unix"
)

// Scratch data normally goes below the stack pointer, but a goroutine
// stack of a Go program has only some 600 bytes there at a syscall (Go's
// stack guard), and the memory below it is another goroutine's. Data larger
// than stackBudget (a long path, the argv of an execve through the dynamic
// loader with many arguments) goes instead into a region the tracer maps
// in the tracee: the call is turned into an mmap, and once that returns,
// the original registers are restored with the instruction pointer back
// on the syscall instruction, so that the call enters again and finds the
// region. Regions belong to an address space: threads and vfork children
// share them (each region is used by one call at a time, and stays with
// its thread while the call may still be restarted), fork children
// inherit copies, execve drops them.

// stackBudget is how much scratch data may go below the red zone.
const stackBudget = 384

// regionMin is the smallest region mapped.
const regionMin = 64 << 10

// region is a scratch area mapped in a tracee.
type region struct {
	addr, size uint64
}

// addrSpace is the tracer's view of one tracee address space.
type addrSpace struct {
	free []region // regions not in use by a call
}

// injection is an mmap the tracer made a thread execute in place of its
// call.
type injection struct {
	orig unix.PtraceRegs
	size uint64
	seal region // the region being sealed (confine_region.go)
	// sealEntered: the mseal's syscall-entry stop was seen.
	sealEntered bool
}

// reserve makes room for n more bytes of scratch data in this call. It
// returns false when the call must first map a region: the entry hook must
// then return at once (whatever it changed is discarded).
func (c *Call) reserve(n int) bool {
	c.reserved += n
	need := uint64(c.reserved) + 64
	switch {
	case c.T.noRegion:
		return true
	case c.region.size >= need:
		return true
	case c.reserved <= stackBudget && !c.tr.sharedMemory(c.T):
		// Another thread could rewrite data below this one's stack
		// pointer (confine_region.go).
		return true
	case c.region.size > 0:
		// The region is too small for what follows: this call maps a
		// larger one and starts over.
	default:
		as := c.T.P.as
		for i, r := range as.free {
			if r.size >= need {
				as.free = append(as.free[:i], as.free[i+1:]...)
				// What was pushed so far stays below the stack
				// pointer; the rest goes into the region.
				c.region = r
				c.sp = r.addr + r.size
				return true
			}
		}
	}
	size := need
	if size < regionMin {
		size = regionMin
	}
	size = (size + pageSize - 1) &^ (pageSize - 1)
	c.inject = &injection{orig: c.orig, size: size}
	c.done = true
	return false
}

// reserveAll is reserve for a hook that knows the total of what it will
// push: the pushes themselves then reserve nothing more.
func (c *Call) reserveAll(n int) bool {
	c.fixed = true
	return c.reserve(n)
}

// startInjection turns the stopped call into an mmap of a region.
func (tr *tracer) startInjection(t *Thread, inj *injection) bool {
	r := inj.orig
	r.Orig_rax = unix.SYS_MMAP
	r.Rdi = 0
	r.Rsi = inj.size
	r.Rdx = unix.PROT_READ // written through /proc/PID/mem (confine_region.go)
	r.R10 = unix.MAP_PRIVATE | unix.MAP_ANONYMOUS
	r.R8 = ^uint64(0)
	r.R9 = 0
	if err := setRegs(t.Tid, &r); err != nil {
		return false
	}
	t.injecting = inj
	t.exitNr = unix.SYS_MMAP
	return true
}

// finishInjection runs at the exit stop of the injected mmap: the region
// joins the address space and the original call is set to run again.
func (tr *tracer) finishInjection(t *Thread) {
	inj := t.injecting
	t.injecting = nil
	var r unix.PtraceRegs
	if err := getRegs(t.Tid, &r); err != nil {
		return
	}
	if inj.seal.size > 0 {
		// The mseal's entry or exit stop (confine_region.go).
		if !tr.sealStop(t, inj, &r) {
			return
		}
	} else if res := int64(r.Rax); res < 0 && res > -4096 {
		// No region: this thread's calls use the stack from now on.
		t.noRegion = true
	} else {
		reg := region{addr: r.Rax, size: inj.size}
		if tr.startSeal(t, inj, reg, &r) {
			return
		}
		t.P.as.free = append(t.P.as.free, reg)
	}
	r = inj.orig
	r.Rip -= 2 // back on the syscall instruction
	r.Rax = r.Orig_rax
	setRegs(t.Tid, &r)
}
