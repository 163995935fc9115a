package ownership

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// paxCap is the PAX record GNU tar and the importer use for the file
// capability xattr.
const paxCap = "SCHILY.xattr." + CapXattr

// Recorder receives the archive metadata of a non-root import (the shape
// of rootfs.MetadataRecorder) and writes the records that make the guest
// see what the archive said: owners, set-user-ID/set-group-ID/sticky and
// other mode bits the extraction could not apply, device nodes (created as
// empty regular files) and file capabilities.
//
// Entries are collected by path, the last one winning as in tar, and
// compared with the tree at Close: by then directory modes are final, and
// entries removed again by later whiteouts are gone.
type Recorder struct {
	root    string
	db      string
	host    Host
	entries map[string]*tar.Header
	order   []string
}

// NewRecorder returns a Recorder for the tree being extracted at root,
// whose ownership database is dbPath. The real user's ids are this
// process's.
func NewRecorder(root, dbPath string) (*Recorder, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	return &Recorder{root: abs, db: dbPath, host: Host{uint32(os.Getuid()), uint32(os.Getgid())}, entries: map[string]*tar.Header{}}, nil
}

// Record notes the archive's metadata for rel (clean, relative, "." for
// the top). A character or block device, which a non-root import cannot
// create, becomes an empty regular file here.
func (r *Recorder) Record(rel string, hdr *tar.Header) error {
	rel = filepath.Clean(rel)
	if hdr.Typeflag == tar.TypeLink {
		// Same inode as its target, whose entry carries the metadata.
		return nil
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock || hdr.Typeflag == tar.TypeFifo {
		if err := r.placeholder(rel, hdr); err != nil {
			return fmt.Errorf("device node %s: %w", rel, err)
		}
	}
	if _, seen := r.entries[rel]; !seen {
		r.order = append(r.order, rel)
	}
	h := *hdr
	r.entries[rel] = &h
	return nil
}

// placeholder creates rel as an empty regular file (a fifo for a fifo
// entry) unless the extraction made the node.
func (r *Recorder) placeholder(rel string, hdr *tar.Header) error {
	if rel == "." {
		return errors.New("device node as the top directory")
	}
	dfd, err := openDirBeneath(r.root, filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	base := filepath.Base(rel)
	var st unix.Stat_t
	err = retry(func() error { return unix.Fstatat(dfd, base, &st, unix.AT_SYMLINK_NOFOLLOW) })
	switch {
	case err == nil && st.Mode&unix.S_IFMT == unix.S_IFDIR:
		return unix.EISDIR
	case err == nil && hdr.Typeflag == tar.TypeFifo && st.Mode&unix.S_IFMT == unix.S_IFIFO:
		return nil
	case err == nil:
		// A node the extraction made, or an earlier entry the device
		// replaces, as tar does.
		if err := retry(func() error { return unix.Unlinkat(dfd, base, 0) }); err != nil {
			return err
		}
	case err != unix.ENOENT:
		return err
	}
	perm := uint32(hdr.Mode) & 0o777
	if hdr.Typeflag == tar.TypeFifo {
		if err := retry(func() error { return unix.Mknodat(dfd, base, unix.S_IFIFO|0o600, 0) }); err != nil {
			return err
		}
	} else {
		var fd int
		err := retry(func() (err error) {
			fd, err = unix.Openat(dfd, base, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
			return err
		})
		if err != nil {
			return err
		}
		unix.Close(fd)
	}
	return retry(func() error { return unix.Fchmodat(dfd, base, perm, 0) })
}

// Close writes the records in one transaction.
func (r *Recorder) Close() error {
	s, err := Open(r.db, r.root, Options{})
	if err != nil {
		return err
	}
	for _, rel := range r.order {
		hdr := r.entries[rel]
		st, err := lstatBeneath(r.root, rel)
		if err != nil {
			// Removed by a later whiteout, or never created because the
			// import failed.
			continue
		}
		real := StatFrom(st)
		rec, ok := recordFromHeader(real, rel, hdr, r.host)
		if !ok {
			continue
		}
		if err := s.Put(real.Key(), rec); err != nil {
			s.Close()
			return err
		}
	}
	return s.Close()
}

// headerType is the S_IFMT bits a tar entry type stands for.
func headerType(t byte) uint32 {
	switch t {
	case tar.TypeDir:
		return unix.S_IFDIR
	case tar.TypeSymlink:
		return unix.S_IFLNK
	case tar.TypeChar:
		return unix.S_IFCHR
	case tar.TypeBlock:
		return unix.S_IFBLK
	case tar.TypeFifo:
		return unix.S_IFIFO
	}
	return unix.S_IFREG
}

// recordFromHeader returns the record that makes the file st look as hdr
// describes it, and false when the default rule already does (or the file
// on disk is not what the entry made).
func recordFromHeader(st Stat, rel string, hdr *tar.Header, h Host) (*Record, bool) {
	want := headerType(hdr.Typeflag)
	rec := &Record{Type: st.Type(), Path: rel}
	if want != st.Type() {
		if (want != unix.S_IFCHR && want != unix.S_IFBLK && want != unix.S_IFIFO) || st.Type() != unix.S_IFREG {
			return nil, false
		}
		rec.Flags |= HasDev
		rec.FakeType = want
		rec.Rdev = unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	}
	uid, gid := DefaultOwner(st.UID, st.GID, h)
	rec.UID, rec.GID = uint32(hdr.Uid), uint32(hdr.Gid)
	if rec.UID != uid || rec.GID != gid {
		rec.Flags |= HasOwner
	}
	rec.Mode = uint32(hdr.Mode) & 0o7777
	// A mode that shuts the owner out (a 0555 /var/empty) is recorded
	// even when the extraction applied it: ApplyFloor gives the owner
	// access on disk when the tree is run, and the guest still sees it.
	if st.Type() != unix.S_IFLNK && (rec.Mode != st.Mode&0o7777 || DiskMode(st.Type(), rec.Mode) != rec.Mode&0o777) {
		rec.Flags |= HasMode
	}
	if v, ok := hdr.PAXRecords[paxCap]; ok {
		rec.Cap = []byte(v)
		rec.Flags |= HasCap
	} else if v, ok := hdr.Xattrs[CapXattr]; ok { //nolint:staticcheck // older writers
		rec.Cap = []byte(v)
		rec.Flags |= HasCap
	}
	return rec, rec.Flags != 0
}
