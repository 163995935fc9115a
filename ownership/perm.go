package ownership

import (
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// Access masks for Permission (MAY_EXEC, MAY_WRITE, MAY_READ).
const (
	MayExec  = 1
	MayWrite = 2
	MayRead  = 4
)

// Permission is the kernel's generic_permission for the guest's view of a
// file v and the guest's credentials c: the mode class for the fsuid or
// group, then CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH. It returns nil or
// EACCES.
func Permission(c *Creds, v Stat, mask int) error {
	mode := v.Mode
	switch {
	case c.FSUID == v.UID:
		mode >>= 6
	case c.InGroup(v.GID):
		mode >>= 3
	}
	if mask&^int(mode&7)&7 == 0 {
		return nil
	}
	if v.Type() == unix.S_IFDIR {
		if mask&MayWrite == 0 && c.Capable(unix.CAP_DAC_READ_SEARCH) {
			return nil
		}
		if c.Capable(unix.CAP_DAC_OVERRIDE) {
			return nil
		}
		return unix.EACCES
	}
	// Execute is granted to a capable caller only if someone may execute.
	if mask&MayExec == 0 || v.Mode&0o111 != 0 {
		if c.Capable(unix.CAP_DAC_OVERRIDE) {
			return nil
		}
	}
	if mask == MayRead && c.Capable(unix.CAP_DAC_READ_SEARCH) {
		return nil
	}
	return unix.EACCES
}

// ChownAllowed is the kernel's chown_ok/chgrp_ok for the guest: the owner
// may change the group to one of its groups; anything else needs
// CAP_CHOWN. It returns nil or EPERM.
func ChownAllowed(c *Creds, v Stat, uid, gid uint32) error {
	if c.Capable(unix.CAP_CHOWN) {
		return nil
	}
	owner := c.FSUID == v.UID
	if uid != NoChange && !(owner && uid == v.UID) {
		return unix.EPERM
	}
	if gid != NoChange && !(owner && (gid == v.GID || c.InGroup(gid))) {
		return unix.EPERM
	}
	return nil
}

// OwnerOrCapable is inode_owner_or_capable: the right to chmod, utimes
// with explicit times, set xattrs of the trusted kinds. nil or EPERM.
func OwnerOrCapable(c *Creds, v Stat) error {
	if c.FSUID == v.UID || c.Capable(unix.CAP_FOWNER) {
		return nil
	}
	return unix.EPERM
}

// NeedsGrant decides whether the real kernel would refuse an access the
// guest is entitled to, and what to do about it. real is the real stat of
// the file, h the real user. A guest allowed by Permission on its view v
// may still meet a real EACCES when the real user owns the file but its
// real mode denies the owner (a guest root reading a 0000 file, writing a
// 0555 directory). Then add is the owner bits to add for the duration of
// the call; ok is false when no temporary change is needed or possible
// (files of other real users are never touched).
func NeedsGrant(c *Creds, v, real Stat, h Host, mask int) (add uint32, ok bool) {
	if Permission(c, v, mask) != nil || real.UID != h.UID {
		return 0, false
	}
	have := (real.Mode >> 6) & 7
	if mask&^int(have)&7 == 0 {
		return 0, false
	}
	return uint32(mask&^int(have)&7) << 6, true
}

// journalEntry remembers the original mode of a file whose permissions a
// run changed temporarily, so that the next Open can restore it if the run
// was killed in between.
type journalEntry struct {
	Type uint32
	Mode uint32
	Path string
}

func (j *journalEntry) marshal() []byte {
	b := make([]byte, 8, 8+len(j.Path))
	binary.BigEndian.PutUint32(b, j.Type)
	binary.BigEndian.PutUint32(b[4:], j.Mode)
	return append(b, j.Path...)
}

func unmarshalJournal(b []byte) (*journalEntry, error) {
	if len(b) < 8 {
		return nil, errBadRecord
	}
	return &journalEntry{binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:]), string(b[8:])}, nil
}

// recoverJournal restores every journalled mode of a file that is still
// the same inode with the same type, and empties the journal.
func recoverJournal(b *bolt.Bucket, root string) error {
	var keys [][]byte
	err := b.ForEach(func(k, v []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		key, err := keyFrom(k)
		if err != nil {
			return nil
		}
		j, err := unmarshalJournal(v)
		if err != nil {
			return nil
		}
		// A file deleted or replaced since is not ours to change.
		_ = chmodBeneath(root, j.Path, key, j.Type, j.Mode)
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Grant is a temporary change of a file's real permission bits, undone by
// Restore. Between the two the original mode is in the store's journal,
// committed before the change, so a run killed in between leaves it to the
// next Open to restore.
type Grant struct {
	s    *Store
	key  Key
	typ  uint32
	rel  string
	orig uint32
}

// GrantTemp adds the permission bits add to the real file at rel (stat
// real) for the duration of one syscall. Nested grants of one file are
// the caller's to avoid.
func (s *Store) GrantTemp(real Stat, rel string, add uint32) (*Grant, error) {
	g := &Grant{s: s, key: real.Key(), typ: real.Type(), rel: rel, orig: real.Mode & 0o7777}
	j := journalEntry{Type: g.typ, Mode: g.orig, Path: rel}
	err := s.update(func(tx *bolt.Tx) error {
		_, _, journal, err := ensureBuckets(tx)
		if err != nil {
			return err
		}
		return journal.Put(g.key.bytes(), j.marshal())
	})
	if err != nil {
		return nil, fmt.Errorf("journal permission change of %s: %w", rel, err)
	}
	if err := chmodBeneath(s.root, rel, g.key, g.typ, g.orig|add); err != nil {
		g.forget()
		return nil, err
	}
	return g, nil
}

// Restore puts the original permission bits back and clears the journal
// entry.
func (g *Grant) Restore() error {
	err := chmodBeneath(g.s.root, g.rel, g.key, g.typ, g.orig)
	if ferr := g.forget(); err == nil {
		err = ferr
	}
	return err
}

func (g *Grant) forget() error {
	return g.s.update(func(tx *bolt.Tx) error {
		_, _, journal, err := ensureBuckets(tx)
		if err != nil {
			return err
		}
		return journal.Delete(g.key.bytes())
	})
}
