package tracer

import (
	"golang.org/x/sys/unix"

	"nook/ownership"
)

// execve transforms the fake credentials as the kernel would the real
// ones: the file's faked set-user-ID and set-group-ID bits and file
// capabilities apply, and root's capabilities follow the new ids. The
// change is made at the entry stop (after exec.go's hook has resolved the
// program; this file's init runs after it) because a successful execve has
// no exit stop the tracer can use; a failed one restores the old
// credentials at its exit.

func init() {
	Register(unix.SYS_EXECVE, Hook{Entry: ownExecEntry, Exit: ownExecExit})
	Register(unix.SYS_EXECVEAT, Hook{Entry: ownExecEntry, Exit: ownExecExit})
}

func ownExecEntry(c *Call) {
	ownDrain()
	p := c.T.P
	o := ownProcOf(p)
	o.execOld = nil
	guest := c.T.pendingExe
	if guest == "" {
		return
	}
	var st ownership.Stat
	if c.T.pendingStatOK {
		// exec.go stat'ed the program a moment ago.
		st = ownership.StatFrom(&c.T.pendingStat)
	} else {
		res, errno := c.tr.resolve(c, noArg, pathmapRequest(guest, true))
		if errno != 0 {
			return
		}
		if st, errno = ownStat(res.Host, true); errno != 0 {
			return
		}
	}
	if st.Type() != unix.S_IFREG {
		return
	}
	f := ownRun.store.ExecFileOf(st, ownRun.host)
	o.execOld = o.creds
	o.creds = o.creds.Clone()
	o.creds.Exec(f)
	ownSync(p)
}

func ownExecExit(c *Call) {
	o := ownProcOf(c.T.P)
	if o.execOld != nil && c.Result() < 0 {
		o.creds = o.execOld
		ownSync(c.T.P)
	}
	o.execOld = nil
}
