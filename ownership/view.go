package ownership

import (
	"golang.org/x/sys/unix"
)

// Host says how the real user's files appear in the raw stat results the
// tracer sees: the real uid and gid, or 0 and 0 when the guest runs in a
// user namespace that maps the real user to root.
type Host struct {
	UID, GID uint32
}

// Stat is the part of a stat result that ownership reads and rewrites.
type Stat struct {
	Dev, Ino uint64
	Nlink    uint64
	Mode     uint32 // S_IFMT and permission bits
	UID, GID uint32
	Rdev     uint64
}

// Key is the store key of the file.
func (st Stat) Key() Key { return Key{st.Dev, st.Ino} }

// Type is the S_IFMT bits.
func (st Stat) Type() uint32 { return st.Mode & unix.S_IFMT }

// StatFrom extracts a Stat from a unix.Stat_t.
func StatFrom(st *unix.Stat_t) Stat {
	return Stat{Dev: st.Dev, Ino: st.Ino, Nlink: uint64(st.Nlink), Mode: st.Mode, UID: st.Uid, GID: st.Gid, Rdev: st.Rdev}
}

// DefaultOwner is the owner the guest sees for a file with no record.
//
//   - Files of the real user look like root's (0:0), as if root had
//     unpacked the tree: that is what the archive said for nearly every
//     file, and what a guest root expects of the files it creates.
//   - A group that is the real user's primary group reads as 0, any other
//     group of a file is shown as it is.
//   - Files of other real users (bind mounts, a shared tree) keep their
//     real ids: root-owned host files read as root's, which they are.
//
// In a user namespace the kernel already shows unmapped ids as the
// overflow id (65534), and that is what the guest sees then.
func DefaultOwner(uid, gid uint32, h Host) (uint32, uint32) {
	if uid == h.UID {
		uid = 0
	}
	if gid == h.GID {
		gid = 0
	}
	return uid, gid
}

// View turns the real stat result st into the one the guest sees: the
// file's record, if it has one of the right type, else DefaultOwner.
// A nil store applies the default rule only.
func (s *Store) View(st Stat, h Host) Stat {
	v := st
	r, ok := s.Get(st.Key(), st.Type())
	if !ok {
		v.UID, v.GID = DefaultOwner(st.UID, st.GID, h)
		return v
	}
	return r.apply(st, h)
}

func (r *Record) apply(st Stat, h Host) Stat {
	v := st
	if r.Flags&HasOwner != 0 {
		v.UID, v.GID = r.UID, r.GID
	} else {
		v.UID, v.GID = DefaultOwner(st.UID, st.GID, h)
	}
	if r.Flags&HasMode != 0 {
		v.Mode = v.Mode&unix.S_IFMT | r.Mode&0o7777
	}
	if r.Flags&HasDev != 0 {
		v.Mode = r.FakeType&unix.S_IFMT | v.Mode&0o7777
		v.Rdev = r.Rdev
	}
	return v
}

// FakeStat rewrites a stat(2)/lstat/fstat/newfstatat result in place.
func (s *Store) FakeStat(st *unix.Stat_t, h Host) {
	v := s.View(StatFrom(st), h)
	st.Mode, st.Uid, st.Gid, st.Rdev = v.Mode, v.UID, v.GID, v.Rdev
}

// FakeStatx rewrites a statx(2) result in place. Only the fields the
// kernel filled (stx_mask) are changed; the key needs STATX_INO, and
// without it only the default owner rule applies.
func (s *Store) FakeStatx(stx *unix.Statx_t, h Host) {
	st := Stat{
		Dev:  unix.Mkdev(stx.Dev_major, stx.Dev_minor),
		Ino:  stx.Ino,
		Mode: uint32(stx.Mode),
		UID:  stx.Uid,
		GID:  stx.Gid,
		Rdev: unix.Mkdev(stx.Rdev_major, stx.Rdev_minor),
	}
	var v Stat
	if stx.Mask&unix.STATX_INO != 0 && stx.Mask&unix.STATX_TYPE != 0 {
		v = s.View(st, h)
	} else {
		v = st
		v.UID, v.GID = DefaultOwner(st.UID, st.GID, h)
	}
	if stx.Mask&unix.STATX_UID != 0 {
		stx.Uid = v.UID
	}
	if stx.Mask&unix.STATX_GID != 0 {
		stx.Gid = v.GID
	}
	if stx.Mask&unix.STATX_MODE != 0 {
		stx.Mode = stx.Mode&unix.S_IFMT | uint16(v.Mode&0o7777)
	}
	if stx.Mask&unix.STATX_TYPE != 0 {
		stx.Mode = uint16(v.Mode&unix.S_IFMT) | stx.Mode&0o7777
	}
	if v.Rdev != st.Rdev {
		stx.Rdev_major, stx.Rdev_minor = unix.Major(v.Rdev), unix.Minor(v.Rdev)
	}
}
