package tracer

import (
	"cmp"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// Translated paths live in the guest's memory from the tracer's write until
// the kernel copies them; a guest that rewrites them in between opens what
// it likes (TestConfineRootlessRace, race-open-memory). So:
//
//   - scratch regions are mapped PROT_READ and then sealed with mseal(2)
//     (Linux 6.10+), which makes the kernel refuse mprotect, munmap,
//     mremap, mmap(MAP_FIXED) over them and madvise(MADV_DONTNEED), with
//     no stop and whatever the address; the tracer writes them through
//     /proc/PID/mem, which may write read-only pages;
//   - a process whose address space other threads (or CLONE_VM children)
//     share puts every scratch string in a region, never below the stack
//     pointer, where the other threads can write;
//   - no guest process writes another's memory: process_vm_writev is
//     refused (deny.go) and /proc/PID/mem does not open (confine_proc.go).

// sealUnsupported is set when the kernel has no mseal (before 6.10):
// regions are then read-only but not sealed. It is asked of the kernel
// here, not of the injected calls, whose errors a filter of the guest's
// own may forge.
var sealUnsupported = func() bool {
	// A zero length seals nothing and succeeds where mseal exists.
	_, _, e := unix.RawSyscall(unix.SYS_MSEAL, 0, 0, 0)
	return e == unix.ENOSYS
}()

func init() {
	// The injected mseal must come back to the tracer (its exit stop
	// restores the call the region was mapped for): it stops like any
	// hooked call. A guest's own mseal calls cost the same two stops.
	Register(unix.SYS_MSEAL, Hook{Exit: func(*Call) {}})
}

// startSeal turns the exit stop of the injected mmap (registers r) into an
// mseal of the new region. The thread is resumed with PTRACE_SYSCALL (see
// loop.go), so the mseal's entry and exit stops come whatever a filter of
// the guest's own answers for it (ERRNO or TRAP outrank the tracer's
// TRACE and would otherwise return to the guest with the mseal's
// registers). It reports false when sealing is not attempted.
func (tr *tracer) startSeal(t *Thread, inj *injection, reg region, r *unix.PtraceRegs) bool {
	if sealUnsupported {
		return false
	}
	s := *r
	s.Rip -= 2 // back on the syscall instruction
	s.Rax = unix.SYS_MSEAL
	s.Rdi, s.Rsi, s.Rdx = reg.addr, reg.size, 0
	if err := setRegs(t.Tid, &s); err != nil {
		return false
	}
	inj.seal = reg
	t.injecting = inj
	t.exitNr = unix.SYS_MSEAL
	return true
}

// sealStop handles a syscall stop of the injected mseal (registers r). At
// the entry stop it keeps the injection and reports false. At the exit
// stop of a sealed region it adds the region and reports true: the call it
// was mapped for enters again. If the mseal failed (a filter of the
// guest's own refused it), the region is never used and that call fails
// with the same error, with its own registers back.
func (tr *tracer) sealStop(t *Thread, inj *injection, r *unix.PtraceRegs) bool {
	if !inj.sealEntered && syscallStopOp(t.Tid) == ptraceSyscallInfoEntry {
		inj.sealEntered = true
		t.injecting = inj
		t.exitNr = unix.SYS_MSEAL
		return false
	}
	if res := int64(r.Rax); res != 0 {
		if res >= 0 || res < -4095 {
			res = -int64(unix.EPERM)
		}
		f := inj.orig
		f.Rax = uint64(res)
		setRegs(t.Tid, &f)
		return false
	}
	t.P.as.free = append(t.P.as.free, inj.seal)
	return true
}

// resumeSyscall reports whether t must be resumed with PTRACE_SYSCALL: it
// is on its way into or out of an injected mseal.
func resumeSyscall(t *Thread) bool {
	return t.injecting != nil && t.injecting.seal.size > 0
}

// injectionExit reports whether the syscall stop of syscall nr is one the
// injection in progress waits for. The mmap's exit comes straight after its
// entry; the mseal's entry and exit stops come from PTRACE_SYSCALL, unless
// a signal arrives first: its delivery resumes the thread with PTRACE_CONT,
// the handler's calls stop as usual (its own mseal is told apart by the
// arguments), and the mseal stops at its seccomp stop like any hooked call.
// Only a guest that both takes a signal there and refuses mseal in a filter
// of its own returns from the mseal unseen, with the mseal's registers: its
// region is never used (it is added only at the exit stop of a successful
// mseal), and the next call that needs one maps another.
func (tr *tracer) injectionExit(t *Thread, nr int) bool {
	inj := t.injecting
	if inj.seal.size == 0 {
		return true
	}
	if nr != unix.SYS_MSEAL {
		return false
	}
	var r unix.PtraceRegs
	if err := getRegs(t.Tid, &r); err != nil {
		return false
	}
	// rdi and rsi survive the call (only rax, rcx and r11 change).
	return r.Rdi == inj.seal.addr && r.Rsi == inj.seal.size
}

// sharedMemory reports whether another traced thread uses t's address
// space (a thread of its process, or a vfork or CLONE_VM child).
func (tr *tracer) sharedMemory(t *Thread) bool {
	as := t.P.as
	for _, o := range tr.threads {
		if o != t && o.P.as == as {
			return true
		}
	}
	return false
}

// writeRegion performs the writes of a call that uses a read-only region:
// through /proc/PID/mem, which the tracer (the tracee's ptracer) may write
// even where the tracee may not.
func writeRegion(t *Thread, data []byte, ws []write) error {
	f, err := memFile(t)
	if err != nil {
		return err
	}
	if b, addr, ok := contiguous(data, ws); ok {
		ws = []write{{addr: addr, n: len(b)}}
		data = b
	}
	for _, w := range ws {
		if w.n == 0 {
			continue
		}
		// os.File.WriteAt retries EINTR and short writes.
		if _, err := f.WriteAt(data[w.off:w.off+w.n], int64(w.addr)); err != nil {
			dropMemFile(t.P.as)
			return err
		}
	}
	return nil
}

// regionBuf is contiguous's buffer (the tracer thread only).
var regionBuf []byte

// contiguous lays the writes out as one block when, sorted by address,
// each begins at most 15 bytes after the one before ends, so that a call's
// pushes (an exec pushes up to six strings and arrays, each just below the
// one before, 16-byte aligned) cost one pwrite instead of one each. The
// gaps are the alignment padding of Call.push, inside the region the call
// reserved: they are written as zeros. It reports false for fewer than
// two writes, a wider gap, an overlap, or more than a page.
func contiguous(data []byte, ws []write) ([]byte, uint64, bool) {
	if len(ws) < 2 || len(ws) > 16 {
		return nil, 0, false
	}
	var idxA [16]int
	idx := idxA[:0]
	for i, w := range ws {
		if w.n > 0 {
			idx = append(idx, i)
		}
	}
	if len(idx) < 2 {
		return nil, 0, false
	}
	slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(ws[a].addr, ws[b].addr) })
	lo := ws[idx[0]].addr
	end := lo
	for _, i := range idx {
		a := ws[i].addr
		if a < end || a-end > 15 {
			return nil, 0, false
		}
		end = a + uint64(ws[i].n)
	}
	total := int(end - lo)
	if total > pageSize {
		return nil, 0, false
	}
	regionBuf = slices.Grow(regionBuf[:0], total)[:total]
	clear(regionBuf)
	for _, i := range idx {
		w := ws[i]
		copy(regionBuf[w.addr-lo:], data[w.off:w.off+w.n])
	}
	return regionBuf, lo, true
}

// memFiles caches the /proc/PID/mem descriptors of the address spaces that
// used a region last: a multi-threaded guest (any Go or Java program) puts
// every translated path there, and opening the file costs as much as the
// write. A descriptor pins only the mm_struct of its address space, not
// its memory, and execve gives the process a new addrSpace (a new key), so
// a stale entry is never used; the least recently used one is closed.
var memFiles struct {
	e    [16]memEntry
	tick uint64
}

type memEntry struct {
	as   *addrSpace
	f    *os.File
	used uint64
}

func memFile(t *Thread) (*os.File, error) {
	memFiles.tick++
	as := t.P.as
	lru := 0
	for i := range memFiles.e {
		e := &memFiles.e[i]
		if e.as == as {
			e.used = memFiles.tick
			return e.f, nil
		}
		if e.used < memFiles.e[lru].used {
			lru = i
		}
	}
	f, err := os.OpenFile("/proc/"+strconv.Itoa(t.Tid)+"/mem", os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	e := &memFiles.e[lru]
	if e.f != nil {
		e.f.Close()
	}
	*e = memEntry{as: as, f: f, used: memFiles.tick}
	return f, nil
}

func dropMemFile(as *addrSpace) {
	for i := range memFiles.e {
		if e := &memFiles.e[i]; e.as == as {
			e.f.Close()
			*e = memEntry{}
		}
	}
}
