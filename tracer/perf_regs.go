package tracer

import "golang.org/x/sys/unix"

// Writing back a stop's registers. PTRACE_SETREGS writes all of them,
// segment registers and FS/GS bases included, and costs 1.65 µs here;
// PTRACE_POKEUSER writes one word in 0.68 µs (tests/bench/micro/
// regs-routes.c). Most stops change one or two registers: a translated
// path argument, or the syscall number and the result of an emulated or
// failed call (the stat family, every stop of W1's find but its opens).
// Those are poked; anything more, or any register whose write is not a
// plain store (segments, flags, FS/GS bases), goes through SETREGS.

// pokeMax is the most registers written one by one: three pokes cost
// about what SETREGS does.
const pokeMax = 2

// regWords lists r's words in the order of struct user_regs_struct, the
// order PTRACE_POKEUSER's offsets (index * 8) count in.
func regWords(r *unix.PtraceRegs) [27]*uint64 {
	return [27]*uint64{&r.R15, &r.R14, &r.R13, &r.R12, &r.Rbp, &r.Rbx, &r.R11, &r.R10,
		&r.R9, &r.R8, &r.Rax, &r.Rcx, &r.Rdx, &r.Rsi, &r.Rdi, &r.Orig_rax,
		&r.Rip, &r.Cs, &r.Eflags, &r.Rsp, &r.Ss, &r.Fs_base, &r.Gs_base, &r.Ds,
		&r.Es, &r.Fs, &r.Gs}
}

// plainReg reports whether word i of user_regs_struct is stored as it is
// by PTRACE_POKEUSER (the general registers, orig_rax, rip, rsp): the
// kernel's putreg checks and converts the others.
func plainReg(i int) bool { return i <= 16 || i == 19 }

// writeRegs makes the registers of stopped thread tid r, given that they
// are was now.
func writeRegs(tid int, r, was *unix.PtraceRegs) error {
	now, old := regWords(r), regWords(was)
	var changed [pokeMax]int
	n := 0
	for i := range now {
		if *now[i] == *old[i] {
			continue
		}
		if n == pokeMax || !plainReg(i) {
			return setRegs(tid, r)
		}
		changed[n] = i
		n++
	}
	for _, i := range changed[:n] {
		if err := ptrace4(unix.PTRACE_POKEUSR, tid, uintptr(i*8), uintptr(*now[i])); err != nil {
			return err
		}
	}
	return nil
}
