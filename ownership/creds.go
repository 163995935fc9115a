// Package ownership fakes file ownership and process credentials for
// rootless mode: the per-process credentials the guest sees (Creds, with the
// kernel's set*id and capability rules), the persistent store of faked file
// metadata kept beside each rootfs (Store), the rule that turns a real stat
// result into the one the guest sees (View), the recorder used by a non-root
// import, and the tarball export of a tree with its faked metadata.
//
// Nothing here uses ptrace: the tracer feeds syscall arguments in and writes
// the results back.
package ownership

import (
	"golang.org/x/sys/unix"
)

// NoChange is the (uid_t)-1 / (gid_t)-1 argument of the set*id calls: leave
// this id alone.
const NoChange = ^uint32(0)

// NGroupsMax is the kernel's NGROUPS_MAX: setgroups rejects longer lists.
const NGroupsMax = 65536

// AllCaps is every capability the running kernel's headers know of
// (CAP_LAST_CAP inclusive). It is the bounding set of a new guest and the
// permitted and effective sets of a guest root.
const AllCaps uint64 = 1<<(unix.CAP_LAST_CAP+1) - 1

// fsCaps are the capabilities that follow the fsuid (CAP_FS_SET in
// include/linux/capability.h): they are dropped from the effective set when
// the fsuid leaves 0 and raised again (within the permitted set) when it
// returns.
const fsCaps uint64 = 1<<unix.CAP_CHOWN | 1<<unix.CAP_MKNOD |
	1<<unix.CAP_DAC_OVERRIDE | 1<<unix.CAP_DAC_READ_SEARCH |
	1<<unix.CAP_FOWNER | 1<<unix.CAP_FSETID | 1<<unix.CAP_MAC_OVERRIDE |
	1<<unix.CAP_LINUX_IMMUTABLE

// CapSets are a process's capability sets as 64-bit masks (bit n is
// capability n).
type CapSets struct {
	Effective   uint64
	Permitted   uint64
	Inheritable uint64
	Bounding    uint64
	Ambient     uint64
}

// Creds are the credentials one guest process believes it has. The kernel
// never sees them: the real process keeps the real user's ids. Creds is a
// value type; Clone gives an independent copy for fork/clone.
//
// The methods mirror the syscalls of the same name in kernel/sys.c and
// security/commoncap.c (with the default securebits, in the initial user
// namespace of the guest), returning the errno the kernel would.
type Creds struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Groups                 []uint32
	Caps                   CapSets
	// KeepCaps is prctl(PR_SET_KEEPCAPS): permitted capabilities survive
	// a change from uid 0 to all nonzero uids. execve clears it.
	KeepCaps bool
}

// NewCreds returns the credentials of the guest's first process: every uid
// is uid and every gid is gid; uid 0 has every capability, as a process
// started by real root has.
func NewCreds(uid, gid uint32, groups []uint32) *Creds {
	c := &Creds{
		UID: uid, EUID: uid, SUID: uid, FSUID: uid,
		GID: gid, EGID: gid, SGID: gid, FSGID: gid,
		Groups: append([]uint32(nil), groups...),
	}
	c.Caps.Bounding = AllCaps
	if uid == 0 {
		c.Caps.Permitted = AllCaps
		c.Caps.Effective = AllCaps
	}
	return c
}

// Clone returns a copy that shares nothing with c (fork, clone without
// CLONE_THREAD; threads share one Creds pointer only until one of them
// changes it, which Linux does per thread too).
func (c *Creds) Clone() *Creds {
	n := *c
	n.Groups = append([]uint32(nil), c.Groups...)
	return &n
}

// Capable reports whether cap is in the effective set (capable(2) in the
// guest's user namespace).
func (c *Creds) Capable(cap int) bool {
	return cap >= 0 && cap < 64 && c.Caps.Effective&(1<<uint(cap)) != 0
}

// InGroup reports whether gid is the fsgid or a supplementary group
// (in_group_p).
func (c *Creds) InGroup(gid uint32) bool {
	if gid == c.FSGID {
		return true
	}
	for _, g := range c.Groups {
		if g == gid {
			return true
		}
	}
	return false
}

// fixSetuid is cap_emulate_setxuid: the capability consequences of a
// change of real/effective/saved uid (LSM_SETID_ID, _RE, _RES).
func (c *Creds) fixSetuid(old *Creds) {
	oldRoot := old.UID == 0 || old.EUID == 0 || old.SUID == 0
	newRoot := c.UID == 0 || c.EUID == 0 || c.SUID == 0
	if oldRoot && !newRoot {
		if !c.KeepCaps {
			c.Caps.Permitted = 0
			c.Caps.Effective = 0
		}
		c.Caps.Ambient = 0
	}
	if old.EUID == 0 && c.EUID != 0 {
		c.Caps.Effective = 0
	}
	if old.EUID != 0 && c.EUID == 0 {
		c.Caps.Effective = c.Caps.Permitted
	}
}

// fixSetfsuid is the LSM_SETID_FS case of cap_task_fix_setuid.
func (c *Creds) fixSetfsuid(old *Creds) {
	if old.FSUID == 0 && c.FSUID != 0 {
		c.Caps.Effective &^= fsCaps
	}
	if old.FSUID != 0 && c.FSUID == 0 {
		c.Caps.Effective |= c.Caps.Permitted & fsCaps
	}
}

// Setuid is setuid(2). A process with CAP_SETUID sets all of the real,
// effective, saved and fs uids; any other may set its effective (and fs)
// uid to its real or saved uid only.
func (c *Creds) Setuid(uid uint32) error {
	if uid == NoChange {
		return unix.EINVAL
	}
	old := c.Clone()
	if old.Capable(unix.CAP_SETUID) {
		c.UID, c.SUID = uid, uid
	} else if uid != old.UID && uid != old.SUID {
		return unix.EPERM
	}
	c.EUID, c.FSUID = uid, uid
	c.fixSetuid(old)
	return nil
}

// Setreuid is setreuid(2).
func (c *Creds) Setreuid(ruid, euid uint32) error {
	old := c.Clone()
	priv := old.Capable(unix.CAP_SETUID)
	if ruid != NoChange && ruid != old.UID && ruid != old.EUID && !priv {
		return unix.EPERM
	}
	if euid != NoChange && euid != old.UID && euid != old.EUID && euid != old.SUID && !priv {
		return unix.EPERM
	}
	if ruid != NoChange {
		c.UID = ruid
	}
	if euid != NoChange {
		c.EUID = euid
	}
	// The saved uid follows the new euid when the real uid is set or the
	// euid becomes something other than the old real uid.
	if ruid != NoChange || (euid != NoChange && euid != old.UID) {
		c.SUID = c.EUID
	}
	c.FSUID = c.EUID
	c.fixSetuid(old)
	return nil
}

// Setresuid is setresuid(2): an unprivileged process may set each id to
// any of its current real, effective or saved uids.
func (c *Creds) Setresuid(ruid, euid, suid uint32) error {
	old := c.Clone()
	if (ruid == NoChange || ruid == old.UID) &&
		(euid == NoChange || (euid == old.EUID && euid == old.FSUID)) &&
		(suid == NoChange || suid == old.SUID) {
		return nil
	}
	isNew := func(id uint32) bool {
		return id != NoChange && id != old.UID && id != old.EUID && id != old.SUID
	}
	if (isNew(ruid) || isNew(euid) || isNew(suid)) && !old.Capable(unix.CAP_SETUID) {
		return unix.EPERM
	}
	if ruid != NoChange {
		c.UID = ruid
	}
	if euid != NoChange {
		c.EUID = euid
	}
	if suid != NoChange {
		c.SUID = suid
	}
	c.FSUID = c.EUID
	c.fixSetuid(old)
	return nil
}

// Setfsuid is setfsuid(2): it always returns the previous fsuid, and
// changes it only when allowed (there is no error return).
func (c *Creds) Setfsuid(uid uint32) (prev uint32) {
	prev = c.FSUID
	if uid == NoChange {
		return prev
	}
	if uid == c.UID || uid == c.EUID || uid == c.SUID || uid == c.FSUID || c.Capable(unix.CAP_SETUID) {
		if uid != c.FSUID {
			old := c.Clone()
			c.FSUID = uid
			c.fixSetfsuid(old)
		}
	}
	return prev
}

// Setgid is setgid(2), the CAP_SETGID twin of Setuid (no capability
// side effects).
func (c *Creds) Setgid(gid uint32) error {
	if gid == NoChange {
		return unix.EINVAL
	}
	if c.Capable(unix.CAP_SETGID) {
		c.GID, c.SGID = gid, gid
	} else if gid != c.GID && gid != c.SGID {
		return unix.EPERM
	}
	c.EGID, c.FSGID = gid, gid
	return nil
}

// Setregid is setregid(2).
func (c *Creds) Setregid(rgid, egid uint32) error {
	old := *c
	priv := old.Capable(unix.CAP_SETGID)
	if rgid != NoChange && rgid != old.GID && rgid != old.EGID && !priv {
		return unix.EPERM
	}
	if egid != NoChange && egid != old.GID && egid != old.EGID && egid != old.SGID && !priv {
		return unix.EPERM
	}
	if rgid != NoChange {
		c.GID = rgid
	}
	if egid != NoChange {
		c.EGID = egid
	}
	if rgid != NoChange || (egid != NoChange && egid != old.GID) {
		c.SGID = c.EGID
	}
	c.FSGID = c.EGID
	return nil
}

// Setresgid is setresgid(2).
func (c *Creds) Setresgid(rgid, egid, sgid uint32) error {
	old := *c
	if (rgid == NoChange || rgid == old.GID) &&
		(egid == NoChange || (egid == old.EGID && egid == old.FSGID)) &&
		(sgid == NoChange || sgid == old.SGID) {
		return nil
	}
	isNew := func(id uint32) bool {
		return id != NoChange && id != old.GID && id != old.EGID && id != old.SGID
	}
	if (isNew(rgid) || isNew(egid) || isNew(sgid)) && !old.Capable(unix.CAP_SETGID) {
		return unix.EPERM
	}
	if rgid != NoChange {
		c.GID = rgid
	}
	if egid != NoChange {
		c.EGID = egid
	}
	if sgid != NoChange {
		c.SGID = sgid
	}
	c.FSGID = c.EGID
	return nil
}

// Setfsgid is setfsgid(2); like Setfsuid it returns the previous fsgid.
func (c *Creds) Setfsgid(gid uint32) (prev uint32) {
	prev = c.FSGID
	if gid == NoChange {
		return prev
	}
	if gid == c.GID || gid == c.EGID || gid == c.SGID || gid == c.FSGID || c.Capable(unix.CAP_SETGID) {
		c.FSGID = gid
	}
	return prev
}

// Setgroups is setgroups(2). The list is stored sorted (groups_sort),
// which is the order getgroups then returns.
func (c *Creds) Setgroups(groups []uint32) error {
	if !c.Capable(unix.CAP_SETGID) {
		return unix.EPERM
	}
	if len(groups) > NGroupsMax {
		return unix.EINVAL
	}
	for _, g := range groups {
		if g == NoChange {
			return unix.EINVAL
		}
	}
	gs := append([]uint32(nil), groups...)
	sortUint32(gs)
	c.Groups = gs
	return nil
}

// Getgroups is getgroups(2) with a buffer of size entries: size 0 asks
// for the count only; a buffer too small is EINVAL.
func (c *Creds) Getgroups(size int) ([]uint32, int, error) {
	if size < 0 {
		return nil, 0, unix.EINVAL
	}
	if size == 0 {
		return nil, len(c.Groups), nil
	}
	if size < len(c.Groups) {
		return nil, 0, unix.EINVAL
	}
	return append([]uint32(nil), c.Groups...), len(c.Groups), nil
}

// Capget is capget(2) for the calling process: its effective, permitted
// and inheritable sets.
func (c *Creds) Capget() (effective, permitted, inheritable uint64) {
	return c.Caps.Effective, c.Caps.Permitted, c.Caps.Inheritable
}

// Capset is capset(2) for the calling process (cap_capset): the new
// permitted set may only shrink, effective must lie within it, and new
// inheritable bits need CAP_SETPCAP and the bounding set. Ambient
// capabilities no longer both permitted and inheritable are dropped.
func (c *Creds) Capset(effective, permitted, inheritable uint64) error {
	old := c.Caps
	if !c.Capable(unix.CAP_SETPCAP) && inheritable&^(old.Inheritable|old.Permitted) != 0 {
		return unix.EPERM
	}
	if inheritable&^(old.Inheritable|old.Bounding) != 0 {
		return unix.EPERM
	}
	if permitted&^old.Permitted != 0 {
		return unix.EPERM
	}
	if effective&^permitted != 0 {
		return unix.EPERM
	}
	c.Caps.Effective = effective
	c.Caps.Permitted = permitted
	c.Caps.Inheritable = inheritable
	c.Caps.Ambient &= permitted & inheritable
	return nil
}

// ExecFile is what execve needs to know about the executed file as the
// guest sees it.
type ExecFile struct {
	Mode uint32 // faked mode: S_ISUID/S_ISGID count
	UID  uint32 // faked owner
	GID  uint32
	// Caps are the file's permitted and inheritable capabilities and its
	// effective bit, from its faked security.capability xattr.
	HasCaps           bool
	CapsPermitted     uint64
	CapsInheritable   uint64
	CapsEffectiveFlag bool
}

// Exec applies execve(2)'s credential transformation
// (cap_bprm_creds_from_file, with the default securebits and no
// no_new_privs): faked set-user-ID and set-group-ID bits, file
// capabilities, root's traditional "all capabilities" rule; the saved and
// fs ids follow the effective ones, and KeepCaps is cleared.
func (c *Creds) Exec(f ExecFile) {
	old := c.Clone()
	if f.Mode&unix.S_ISUID != 0 {
		c.EUID = f.UID
	}
	// A set-group-ID file without group execute is a mandatory locking
	// candidate, not a setgid program.
	if f.Mode&unix.S_ISGID != 0 && f.Mode&unix.S_IXGRP != 0 {
		c.EGID = f.GID
	}
	isSetid := c.EUID != old.UID || c.EGID != old.GID

	effective := false
	c.Caps.Permitted = 0
	if f.HasCaps {
		c.Caps.Permitted = (old.Caps.Inheritable & f.CapsInheritable) | (old.Caps.Bounding & f.CapsPermitted)
		effective = f.CapsEffectiveFlag
	}
	// handle_privileged_root: a setuid-root file with file capabilities
	// gives a non-root caller only the file's capabilities.
	if !(f.HasCaps && c.EUID == 0 && old.UID != 0) {
		if c.EUID == 0 || c.UID == 0 {
			c.Caps.Permitted = old.Caps.Bounding | old.Caps.Inheritable
		}
		if c.EUID == 0 {
			effective = true
		}
	}
	if f.HasCaps || isSetid {
		c.Caps.Ambient = 0
	}
	c.Caps.Permitted |= c.Caps.Ambient
	if effective {
		c.Caps.Effective = c.Caps.Permitted
	} else {
		c.Caps.Effective = c.Caps.Ambient
	}
	c.SUID, c.FSUID = c.EUID, c.EUID
	c.SGID, c.FSGID = c.EGID, c.EGID
	c.KeepCaps = false
}

func sortUint32(s []uint32) {
	// Insertion sort: group lists are short and this keeps the package
	// free of a sort dependency for one call.
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
