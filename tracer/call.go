package tracer

import (
	"golang.org/x/sys/unix"
)

// redZone is the part of the x86_64 stack below the stack pointer that
// leaf functions may use without moving it: scratch data goes below it.
const redZone = 128

// write is one pending write into the tracee's memory.
type write struct {
	addr uint64
	off  int // offset in Call.data
	n    int
}

// Call is one syscall stop of one thread, as the hooks see it.
type Call struct {
	T    *Thread
	Regs unix.PtraceRegs
	Nr   int

	tr      *tracer
	dirty   bool // Regs must be written back
	done    bool // the call was emulated or failed at entry
	exit    bool // this is the exit stop
	sp      uint64
	data    []byte
	writes  []write
	failure unix.Errno

	orig     unix.PtraceRegs // the registers at the stop, unmodified
	reserved int             // scratch bytes reserved (see reserve)
	fixed    bool            // reserved once for the whole call
	region   region          // the scratch region this call uses, if any
	inject   *injection      // map a region first, then restart the call
}

// Arg returns argument i (0..5) of the call.
func (c *Call) Arg(i int) uint64 {
	switch i {
	case 0:
		return c.Regs.Rdi
	case 1:
		return c.Regs.Rsi
	case 2:
		return c.Regs.Rdx
	case 3:
		return c.Regs.R10
	case 4:
		return c.Regs.R8
	case 5:
		return c.Regs.R9
	}
	panic("tracer: bad argument index")
}

// SetArg replaces argument i of the call.
func (c *Call) SetArg(i int, v uint64) {
	switch i {
	case 0:
		c.Regs.Rdi = v
	case 1:
		c.Regs.Rsi = v
	case 2:
		c.Regs.Rdx = v
	case 3:
		c.Regs.R10 = v
	case 4:
		c.Regs.R8 = v
	case 5:
		c.Regs.R9 = v
	default:
		panic("tracer: bad argument index")
	}
	c.dirty = true
}

// Result is the call's return value at its exit stop (negative errno on
// failure).
func (c *Call) Result() int64 { return int64(c.Regs.Rax) }

// SetResult replaces the return value at the exit stop.
func (c *Call) SetResult(v int64) {
	c.Regs.Rax = uint64(v)
	c.dirty = true
}

// Return emulates the call at entry: the kernel skips it and the guest sees
// v. Only valid at entry.
func (c *Call) Return(v int64) {
	// orig_rax -1 makes the kernel skip the call; rax is what the guest
	// gets back. Both go in the one SETREGS.
	c.Regs.Orig_rax = ^uint64(0)
	c.Regs.Rax = uint64(v)
	c.dirty = true
	c.done = true
}

// Fail makes the call fail with errno (at entry: without running it).
func (c *Call) Fail(errno unix.Errno) {
	if c.exit {
		c.SetResult(-int64(errno))
		return
	}
	c.failure = errno
	c.Return(-int64(errno))
}

// Done reports whether an entry hook already emulated or failed the call.
func (c *Call) Done() bool { return c.done }

// Tid is the calling thread.
func (c *Call) Tid() int { return c.T.Tid }

// ReadString reads a NUL-terminated string of at most unix.PathMax bytes
// (with its NUL) from the tracee.
func (c *Call) ReadString(addr uint64) (string, error) {
	return c.tr.readString(c.T.Tid, addr)
}

// Read fills buf from the tracee's memory at addr.
func (c *Call) Read(addr uint64, buf []byte) error {
	return readMem(c.T.Tid, addr, buf)
}

// Write writes buf into the tracee's memory at addr now.
func (c *Call) Write(addr uint64, buf []byte) error {
	return writeMem(c.T.Tid, addr, buf)
}

// Push reserves room for b below the stack pointer (and the red zone) and
// returns its address in the tracee; the bytes are written when the stop
// ends, all in one process_vm_writev.
func (c *Call) Push(b []byte) uint64 {
	return c.push(b, false)
}

// PushString is Push of s with a terminating NUL.
func (c *Call) PushString(s string) uint64 {
	return c.push([]byte(s), true)
}

func (c *Call) push(b []byte, nul bool) uint64 {
	n := len(b)
	if nul {
		n++
	}
	if !c.exit && !c.fixed {
		c.reserve(n + 15)
	}
	if c.sp == 0 {
		c.sp = c.Regs.Rsp - redZone
	}
	c.sp = (c.sp - uint64(n)) &^ 15
	off := len(c.data)
	c.data = append(c.data, b...)
	if nul {
		c.data = append(c.data, 0)
	}
	c.writes = append(c.writes, write{addr: c.sp, off: off, n: n})
	return c.sp
}

func (c *Call) reset(tr *tracer, t *Thread, exit bool) {
	c.T = t
	c.tr = tr
	c.dirty = false
	c.done = false
	c.exit = exit
	c.sp = 0
	c.data = c.data[:0]
	c.writes = c.writes[:0]
	c.failure = 0
	c.reserved = 0
	c.fixed = false
	c.region = region{}
	c.inject = nil
}

// flush writes the pushed data into the tracee.
func (c *Call) flush() error {
	if len(c.writes) == 0 {
		return nil
	}
	if c.region.size > 0 {
		return writeRegion(c.T, c.data, c.writes)
	}
	return writeMany(c.T.Tid, c.data, c.writes)
}
