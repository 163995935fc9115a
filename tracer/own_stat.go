package tracer

import (
	"bytes"

	"golang.org/x/sys/unix"

	"nook/ownership"
)

// Stat results are rewritten at the exit stop: owner, mode and device
// numbers from the ownership store, or the default rule (the real user's
// files look like root's).

func init() {
	for nr, bufArg := range map[int]int{
		unix.SYS_STAT:       1,
		unix.SYS_LSTAT:      1,
		unix.SYS_FSTAT:      1,
		unix.SYS_NEWFSTATAT: 2,
	} {
		bufArg := bufArg
		Register(nr, Hook{Exit: func(c *Call) { ownRewrite(c, c.Arg(bufArg), ownership.SizeofStat, false) }})
	}
	Register(unix.SYS_STATX, Hook{Exit: func(c *Call) { ownRewrite(c, c.Arg(4), ownership.SizeofStatx, true) }})
}

// ownRewrite rewrites the stat or statx buffer at addr after a successful
// call. Only changed bytes cost a write.
func ownRewrite(c *Call, addr uint64, size int, statx bool) {
	if c.Result() != 0 || addr == 0 {
		return
	}
	ownDrain()
	buf := make([]byte, 2*size)
	orig, b := buf[:size], buf[size:]
	if err := c.Read(addr, orig); err != nil {
		return
	}
	copy(b, orig)
	var err error
	if statx {
		err = ownRun.store.FakeStatxBytes(b, ownRun.host)
	} else {
		err = ownRun.store.FakeStatBytes(b, ownRun.host)
	}
	if err != nil || bytes.Equal(b, orig) {
		return
	}
	// Only the first 64 bytes hold what is rewritten (mode, ids, rdev
	// in struct stat; mode, ids in statx's first 32, rdev at 128): write
	// the smallest range that covers the change.
	lo, hi := 0, size
	for lo < size && b[lo] == orig[lo] {
		lo++
	}
	for hi > lo && b[hi-1] == orig[hi-1] {
		hi--
	}
	if err := c.Write(addr+uint64(lo), b[lo:hi]); err != nil {
		c.SetResult(-int64(unix.EFAULT))
	}
}

// ownPending is a file a non-root guest process may have created with
// open(O_CREAT): the open has no exit stop (it would double the cost of
// every open), so the owner is recorded at the next stop of any guest
// thread that looks at file metadata, before the metadata is shown.
type ownPending struct {
	host   string
	creds  *ownership.Creds
	parent ownership.Stat
}

// ownDrain records the owners of the files pending opens created.
func ownDrain() {
	if len(ownRun.pending) == 0 || ownRun.store == nil {
		return
	}
	for _, p := range ownRun.pending {
		st, errno := ownStat(p.host, false)
		if errno != 0 {
			continue // the open failed, or the file is gone again
		}
		if _, ok := ownRun.store.Get(st.Key(), st.Type()); ok {
			continue // existed before, or already recorded
		}
		ownRun.store.Created(st, ownRel(p.host), p.creds, p.parent, ownRun.host)
	}
	ownRun.pending = ownRun.pending[:0]
}
