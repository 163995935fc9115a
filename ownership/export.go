package ownership

import (
	"archive/tar"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// WriteTar writes the tree at root to w as a tar stream with the metadata
// the guest sees: every file's owner and mode through s (nil: the default
// rule only), faked device nodes as devices, file capabilities as
// SCHILY.xattr.security.capability, hard links as links. Names are
// "./PATH" with numeric ids only, as in distribution rootfs tarballs.
// Sockets are skipped (tar cannot hold them). Files and directories the
// real user cannot read are made readable for the moment of reading, with
// the change journalled when s is not nil.
func WriteTar(w io.Writer, root string, s *Store, h Host) error {
	root, err := filepath.Abs(root)
	if err != nil {
		return err
	}
	e := &exporter{tw: tar.NewWriter(w), root: root, s: s, h: h, links: map[Key]string{}}
	if err := e.walk("."); err != nil {
		return err
	}
	return e.tw.Close()
}

type exporter struct {
	tw    *tar.Writer
	root  string
	s     *Store
	h     Host
	links map[Key]string
}

func (e *exporter) walk(rel string) error {
	st, err := lstatBeneath(e.root, rel)
	if err != nil {
		return err
	}
	real := StatFrom(st)
	isDir, err := e.entry(rel, real, st)
	if err != nil || !isDir {
		return err
	}
	names, err := e.readDir(rel, real)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := e.walk(filepath.Join(rel, n)); err != nil {
			return err
		}
	}
	return nil
}

// entry writes the header (and data) of one file; it reports whether the
// file is a directory to descend into.
func (e *exporter) entry(rel string, real Stat, st *unix.Stat_t) (bool, error) {
	v := e.s.View(real, e.h)
	name := "./" + rel
	if rel == "." {
		name = "./"
	}
	hdr := &tar.Header{
		Name:    name,
		Mode:    int64(v.Mode & 0o7777),
		Uid:     int(v.UID),
		Gid:     int(v.GID),
		ModTime: time.Unix(st.Mtim.Sec, 0),
	}
	if c, ok := e.s.Cap(real); ok {
		hdr.PAXRecords = map[string]string{paxCap: string(c)}
	}
	if real.Type() != unix.S_IFDIR && real.Nlink > 1 {
		if first, ok := e.links[real.Key()]; ok {
			hdr.Typeflag = tar.TypeLink
			hdr.Linkname = first
			return false, e.tw.WriteHeader(hdr)
		}
		e.links[real.Key()] = "./" + rel
	}
	switch v.Type() {
	case unix.S_IFDIR:
		hdr.Typeflag = tar.TypeDir
		if rel != "." {
			hdr.Name += "/"
		}
		return true, e.tw.WriteHeader(hdr)
	case unix.S_IFLNK:
		hdr.Typeflag = tar.TypeSymlink
		target, err := readlinkBeneath(e.root, rel)
		if err != nil {
			return false, err
		}
		hdr.Linkname = target
		return false, e.tw.WriteHeader(hdr)
	case unix.S_IFCHR, unix.S_IFBLK, unix.S_IFIFO:
		hdr.Typeflag = map[uint32]byte{unix.S_IFCHR: tar.TypeChar, unix.S_IFBLK: tar.TypeBlock, unix.S_IFIFO: tar.TypeFifo}[v.Type()]
		hdr.Devmajor, hdr.Devminor = int64(unix.Major(v.Rdev)), int64(unix.Minor(v.Rdev))
		return false, e.tw.WriteHeader(hdr)
	case unix.S_IFREG:
		hdr.Typeflag = tar.TypeReg
		hdr.Size = st.Size
		if err := e.tw.WriteHeader(hdr); err != nil {
			return false, err
		}
		return false, e.copyFile(rel, real, st.Size)
	}
	return false, nil // socket
}

// withAccess runs fn, and if it fails with EACCES on a file of the real
// user, runs it again with the owner bits add granted temporarily.
func (e *exporter) withAccess(rel string, real Stat, add uint32, fn func() error) error {
	err := fn()
	if !os.IsPermission(err) || real.UID != e.h.UID || real.Mode&add == add {
		return err
	}
	if e.s != nil {
		g, gerr := e.s.GrantTemp(real, rel, add)
		if gerr != nil {
			return err
		}
		err = fn()
		if rerr := g.Restore(); err == nil {
			err = rerr
		}
		return err
	}
	if cerr := chmodBeneath(e.root, rel, real.Key(), real.Type(), real.Mode|add); cerr != nil {
		return err
	}
	err = fn()
	if rerr := chmodBeneath(e.root, rel, real.Key(), real.Type(), real.Mode); err == nil {
		err = rerr
	}
	return err
}

func (e *exporter) readDir(rel string, real Stat) ([]string, error) {
	var names []string
	err := e.withAccess(rel, real, 0o500, func() error {
		dfd, err := openDirBeneath(e.root, rel)
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		// O_PATH descriptors cannot be read: reopen for reading.
		f, err := os.Open("/proc/self/fd/" + strconv.Itoa(dfd))
		if err != nil {
			return err
		}
		defer f.Close()
		names, err = f.Readdirnames(-1)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("export: read directory %s: %w", rel, err)
	}
	sort.Strings(names)
	return names, nil
}

func (e *exporter) copyFile(rel string, real Stat, size int64) error {
	var f *os.File
	err := e.withAccess(rel, real, 0o400, func() error {
		dfd, err := openDirBeneath(e.root, filepath.Dir(rel))
		if err != nil {
			return err
		}
		defer unix.Close(dfd)
		var fd int
		err = retry(func() (err error) {
			fd, err = unix.Openat(dfd, filepath.Base(rel), unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
			return err
		})
		if err != nil {
			return &os.PathError{Op: "open", Path: rel, Err: err}
		}
		f = os.NewFile(uintptr(fd), rel)
		return nil
	})
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil || (Key{st.Dev, st.Ino}) != real.Key() {
		return fmt.Errorf("export: %s changed during export", rel)
	}
	n, err := io.CopyN(e.tw, f, size)
	if err != nil {
		return fmt.Errorf("export: %s: read %d of %d bytes: %w", rel, n, size, err)
	}
	return nil
}

func readlinkBeneath(root, rel string) (string, error) {
	dfd, err := openDirBeneath(root, filepath.Dir(rel))
	if err != nil {
		return "", err
	}
	defer unix.Close(dfd)
	buf := make([]byte, unix.PathMax)
	var n int
	err = retry(func() (err error) {
		n, err = unix.Readlinkat(dfd, filepath.Base(rel), buf)
		return err
	})
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: rel, Err: err}
	}
	return string(buf[:n]), nil
}
