package tracer

import (
	"fmt"

	seccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// maxSyscall bounds the x86_64 syscall numbers the table holds (the highest
// in Linux 6.18 is 469).
const maxSyscall = 512

// Hook is one file's handling of one syscall. Several hooks may be
// registered for the same syscall (path translation at entry, stat rewriting
// at exit, ...); they run in registration order.
type Hook struct {
	// Entry runs at the seccomp stop, before the kernel executes the call.
	// It may rewrite arguments, fail the call (Call.Fail) or emulate it
	// entirely (Call.Return); after either, later hooks' Entry is skipped.
	Entry func(c *Call)
	// Exit runs at the syscall-exit stop. A syscall has an exit stop only
	// when one of its hooks has an Exit, and only when it was not emulated
	// at entry: exit stops double the cost of a call, so keep them rare.
	Exit func(c *Call)
	// When, if not nil, restricts the seccomp rule to calls whose arguments
	// match (libseccomp semantics: all conditions must hold). Rules of
	// several hooks for one syscall are OR'ed.
	When []seccomp.ScmpCondition
}

// denial is a syscall the filter refuses itself, with no stop at all.
type denial struct {
	errno unix.Errno
	set   bool
}

// condDenial is a syscall the filter refuses itself only when its
// arguments match.
type condDenial struct {
	nr    int
	errno unix.Errno
	when  []seccomp.ScmpCondition
}

var (
	table       [maxSyscall][]Hook
	denials     [maxSyscall]denial
	condDenials []condDenial
)

// Register adds h to the hooks of syscall nr. It must be called from an
// init function: the filter is built from the table when a guest starts.
func Register(nr int, h Hook) {
	checkNr(nr)
	table[nr] = append(table[nr], h)
}

// Replace drops every hook registered for nr so far and registers h: a file
// that takes over a syscall entirely (for example kernel-accurate set*id
// emulation) replaces the simple version. Files' init functions run in file
// name order.
func Replace(nr int, h Hook) {
	checkNr(nr)
	table[nr] = []Hook{h}
}

// Deny makes the filter fail nr with errno without stopping the guest: for
// calls that would bypass path translation and that no program needs.
func Deny(nr int, errno unix.Errno) {
	checkNr(nr)
	denials[nr] = denial{errno: errno, set: true}
}

// DenyWhen makes the filter fail nr with errno, without a stop, when its
// arguments match when (all conditions must hold); other calls of nr go on
// as before (untouched, or to their hooks).
func DenyWhen(nr int, errno unix.Errno, when ...seccomp.ScmpCondition) {
	checkNr(nr)
	condDenials = append(condDenials, condDenial{nr: nr, errno: errno, when: when})
}

func checkNr(nr int) {
	if nr < 0 || nr >= maxSyscall {
		panic(fmt.Sprintf("tracer: syscall number %d out of range", nr))
	}
}

// hasExit reports whether syscall nr needs an exit stop.
func hasExit(nr int) bool {
	for _, h := range table[nr] {
		if h.Exit != nil {
			return true
		}
	}
	return false
}

// retData values: the SECCOMP_RET_DATA of a trapped syscall says whether the
// call may need an exit stop. The tracer itself decides from the table
// (it has the number from the registers it reads anyway, so it saves the
// PTRACE_GETEVENTMSG a stop would otherwise cost); the value documents the
// filter and helps debugging with strace or a BPF dump.
const (
	retDataEntry = 1
	retDataExit  = 2
)

// buildFilter returns the seccomp filter for the guest: every syscall with
// hooks traps to the tracer, denied syscalls fail in the kernel, every other
// syscall runs untouched. Foreign architectures (i386 int 0x80, and x32
// numbers, which libseccomp treats as a foreign ABI on an x86_64-only
// filter) fail with ENOSYS: they would bypass translation.
func buildFilter() (*seccomp.ScmpFilter, error) {
	f, err := seccomp.NewFilter(seccomp.ActAllow)
	if err != nil {
		return nil, fmt.Errorf("seccomp filter: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Release()
		}
	}()
	if err := f.SetBadArchAction(seccomp.ActErrno.SetReturnCode(int16(unix.ENOSYS))); err != nil {
		return nil, fmt.Errorf("seccomp bad-arch action: %w", err)
	}
	if err := f.SetNoNewPrivsBit(true); err != nil {
		return nil, fmt.Errorf("seccomp no_new_privs: %w", err)
	}
	// Every syscall of the guest runs the filter: a binary tree of
	// comparisons instead of libseccomp's default linear chain. Older
	// libseccomp versions lack the attribute; the filter is the same.
	_ = f.SetOptimize(2)
	for _, d := range condDenials {
		if err := f.AddRuleConditional(seccomp.ScmpSyscall(d.nr), seccomp.ActErrno.SetReturnCode(int16(d.errno)), d.when); err != nil {
			return nil, fmt.Errorf("seccomp rule for syscall %d: %w", d.nr, err)
		}
	}
	for nr := 0; nr < maxSyscall; nr++ {
		call := seccomp.ScmpSyscall(nr)
		if d := denials[nr]; d.set {
			if err := f.AddRule(call, seccomp.ActErrno.SetReturnCode(int16(d.errno))); err != nil {
				return nil, fmt.Errorf("seccomp rule for syscall %d: %w", nr, err)
			}
			continue
		}
		hooks := table[nr]
		if len(hooks) == 0 {
			continue
		}
		data := int16(retDataEntry)
		if hasExit(nr) {
			data |= retDataExit
		}
		act := seccomp.ActTrace.SetReturnCode(data)
		unconditional := false
		for _, h := range hooks {
			if len(h.When) == 0 {
				unconditional = true
			}
		}
		if unconditional {
			err = f.AddRule(call, act)
		} else {
			for _, h := range hooks {
				if err = f.AddRuleConditional(call, act, h.When); err != nil {
					break
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("seccomp rule for syscall %d: %w", nr, err)
		}
	}
	ok = true
	return f, nil
}
