package ownership

import (
	"fmt"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// The methods below record the effect of a guest's metadata syscall once
// the tracer has decided it succeeds. st is the real lstat of the file
// (after the call for new files), rel its path relative to the tree's top.
// A nil *Store ignores every change.

// recordFor returns the file's record, or a new one describing what the
// guest sees now.
func (s *Store) recordFor(st Stat, rel string, h Host) *Record {
	if r, ok := s.Get(st.Key(), st.Type()); ok {
		r.Path = rel
		return r
	}
	uid, gid := DefaultOwner(st.UID, st.GID, h)
	return &Record{Type: st.Type(), UID: uid, GID: gid, Mode: st.Mode & 0o7777, Path: rel}
}

// save stores r, or drops the record when it no longer changes anything
// the default rule would show.
func (s *Store) save(st Stat, r *Record, h Host) error {
	uid, gid := DefaultOwner(st.UID, st.GID, h)
	if r.Flags&HasOwner != 0 && r.UID == uid && r.GID == gid {
		r.Flags &^= HasOwner
	}
	if r.Flags&HasMode != 0 && r.Mode&0o7777 == st.Mode&0o7777 {
		r.Flags &^= HasMode
	}
	if r.Flags == 0 {
		return s.Delete(st.Key())
	}
	return s.Put(st.Key(), r)
}

// Chown records chown(2) to uid and gid (NoChange leaves one alone).
// Like the kernel, a chown of anything but a directory clears the
// set-user-ID bit, clears set-group-ID when group execute is set (or when
// the caller is neither in the group nor has CAP_FSETID), and removes
// file capabilities.
func (s *Store) Chown(st Stat, rel string, uid, gid uint32, c *Creds, h Host) error {
	if s == nil {
		return nil
	}
	r := s.recordFor(st, rel, h)
	cur := r.apply(st, h)
	if uid != NoChange {
		r.UID = uid
	} else {
		r.UID = cur.UID
	}
	if gid != NoChange {
		r.GID = gid
	} else {
		r.GID = cur.GID
	}
	r.Flags |= HasOwner
	if cur.Type() != unix.S_IFDIR && cur.Type() != unix.S_IFLNK {
		mode := cur.Mode & 0o7777
		kill := mode&unix.S_ISUID != 0
		if mode&unix.S_ISGID != 0 && (mode&unix.S_IXGRP != 0 || !(c.InGroup(cur.GID) || c.Capable(unix.CAP_FSETID))) {
			kill = true
			mode &^= unix.S_ISGID
		}
		if kill {
			r.Mode = mode &^ unix.S_ISUID
			r.Flags |= HasMode
		}
		r.Cap = nil
		r.Flags &^= HasCap
	}
	return s.save(st, r, h)
}

// DiskMode is the permission bits to put on disk when the guest chmods a
// file of the real user to mode: the requested bits for group and others,
// which keeps other real users exactly as restricted as asked, but never
// less than read and write (and search, for a directory) for the owner, so
// that the guest root keeps passing the real kernel's checks on its own
// files as real root would (reading a 0000 file, creating in a 0555
// directory). The set-user-ID, set-group-ID and sticky bits are never put
// on disk. The guest sees the requested mode through the record.
func DiskMode(typ, mode uint32) uint32 {
	switch typ & unix.S_IFMT {
	case unix.S_IFDIR:
		return mode&0o777 | 0o700
	case unix.S_IFREG:
		return mode&0o777 | 0o600
	}
	return mode & 0o777
}

// ApplyFloor gives the real user owner access on disk (DiskMode) to every
// recorded directory and regular file whose faked mode shuts the owner
// out, such as a 0555 directory from an archive: the guest root must pass
// where real root does, and the guest keeps seeing the recorded mode. The
// tracer calls it when a run starts; files that changed since are left
// alone.
func (s *Store) ApplyFloor(h Host) error {
	if s == nil {
		return nil
	}
	for k, r := range s.Records() {
		if r.Flags&HasMode == 0 || (r.Type != unix.S_IFDIR && r.Type != unix.S_IFREG) || r.Path == "" || filepath.IsAbs(r.Path) {
			continue
		}
		st, err := lstatBeneath(s.root, r.Path)
		if err != nil || (Key{st.Dev, st.Ino}) != k || st.Uid != h.UID {
			continue
		}
		need := DiskMode(r.Type, 0) &^ st.Mode
		if need == 0 {
			continue
		}
		if err := chmodBeneath(s.root, r.Path, k, r.Type, st.Mode&0o777|need); err != nil {
			return fmt.Errorf("ownership: %w", err)
		}
	}
	return nil
}

// Chmod records chmod(2) to mode. st is the file's real stat after the
// tracer applied DiskMode to it (when the real user owns it; otherwise the
// unchanged stat). As in the kernel (setattr_copy), set-group-ID is
// dropped when the caller is neither in the file's group nor has
// CAP_FSETID.
func (s *Store) Chmod(st Stat, rel string, mode uint32, c *Creds, h Host) error {
	if s == nil {
		return nil
	}
	r := s.recordFor(st, rel, h)
	cur := r.apply(st, h)
	mode &= 0o7777
	if mode&unix.S_ISGID != 0 && !c.InGroup(cur.GID) && !c.Capable(unix.CAP_FSETID) {
		mode &^= unix.S_ISGID
	}
	r.Mode = mode
	r.Flags |= HasMode
	return s.save(st, r, h)
}

// Created records the owner of a file the guest just created (open with
// O_CREAT, mkdir, mknod, symlink): the creator's fsuid, and the fsgid or,
// under a set-group-ID directory, the directory's group; a directory made
// there inherits set-group-ID. parent is the guest's view of the parent
// directory. Files created by root in an ordinary directory need no
// record.
func (s *Store) Created(st Stat, rel string, c *Creds, parent Stat, h Host) error {
	if s == nil {
		return nil
	}
	uid, gid := c.FSUID, c.FSGID
	mode := st.Mode & 0o7777
	if parent.Mode&unix.S_ISGID != 0 {
		gid = parent.GID
		if st.Type() == unix.S_IFDIR {
			mode |= unix.S_ISGID
		}
	}
	r := &Record{Type: st.Type(), UID: uid, GID: gid, Mode: mode, Flags: HasOwner | HasMode, Path: rel}
	return s.save(st, r, h)
}

// Mknod records a device node or fifo the guest created with mknod(2):
// on disk st is an empty regular file (a real fifo may be used for
// S_IFIFO, and then needs no faked type); mode holds the guest's S_IFMT
// and permission bits.
func (s *Store) Mknod(st Stat, rel string, mode uint32, rdev uint64, c *Creds, parent Stat, h Host) error {
	if s == nil {
		return nil
	}
	if err := s.Created(st, rel, c, parent, h); err != nil {
		return err
	}
	if mode&unix.S_IFMT == st.Type() {
		return nil
	}
	r := s.recordFor(st, rel, h)
	r.Flags |= HasDev
	r.FakeType = mode & unix.S_IFMT
	r.Rdev = rdev
	return s.Put(st.Key(), r)
}

// CapXattr is the name of the file capability attribute.
const CapXattr = "security.capability"

// SetCap records setxattr(security.capability); value nil removes it.
func (s *Store) SetCap(st Stat, rel string, value []byte, h Host) error {
	if s == nil {
		return nil
	}
	r := s.recordFor(st, rel, h)
	if value == nil {
		r.Cap = nil
		r.Flags &^= HasCap
	} else {
		r.Cap = append([]byte(nil), value...)
		r.Flags |= HasCap
	}
	return s.save(st, r, h)
}

// Cap returns the faked security.capability value of the file, if any.
func (s *Store) Cap(st Stat) ([]byte, bool) {
	r, ok := s.Get(st.Key(), st.Type())
	if !ok || r.Flags&HasCap == 0 {
		return nil, false
	}
	return r.Cap, true
}

// ExecFileOf describes a file for Creds.Exec from the guest's view of it
// and its faked capability xattr (VFS_CAP_REVISION_2 or _3 layout).
func (s *Store) ExecFileOf(st Stat, h Host) ExecFile {
	v := s.View(st, h)
	f := ExecFile{Mode: v.Mode, UID: v.UID, GID: v.GID}
	if b, ok := s.Cap(st); ok {
		f.CapsPermitted, f.CapsInheritable, f.CapsEffectiveFlag, f.HasCaps = parseVfsCap(b)
	}
	return f
}

// parseVfsCap decodes struct vfs_cap_data (revision 1, 2 or 3; the
// rootid of revision 3 is ignored: the guest is one namespace).
func parseVfsCap(b []byte) (perm, inh uint64, eff, ok bool) {
	if len(b) < 4 {
		return 0, 0, false, false
	}
	le32 := func(i int) uint32 { return uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16 | uint32(b[i+3])<<24 }
	magic := le32(0)
	eff = magic&0x000001 != 0
	switch magic &^ 0x000001 {
	case 0x01000000: // VFS_CAP_REVISION_1
		if len(b) < 12 {
			return 0, 0, false, false
		}
		return uint64(le32(4)), uint64(le32(8)), eff, true
	case 0x02000000, 0x03000000:
		if len(b) < 20 {
			return 0, 0, false, false
		}
		perm = uint64(le32(4)) | uint64(le32(12))<<32
		inh = uint64(le32(8)) | uint64(le32(16))<<32
		return perm, inh, eff, true
	}
	return 0, 0, false, false
}
