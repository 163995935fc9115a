package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// ApplyLayer applies src over the existing tree dst, as nook run --layer
// does. src is a directory or a tarball (compressed or not); ".wh.NAME" and
// ".wh..wh..opq" entries are whiteouts exactly as in image layers, and every
// write goes through Extract's safe, fd-relative path. The mode, owner and
// times of dst itself are left alone.
func ApplyLayer(dst, src string) error {
	st, err := os.Stat(src)
	if err != nil {
		return fmt.Errorf("layer %s: %w", src, err)
	}
	max, err := MaxImportBytes()
	if err != nil {
		return err
	}
	opt := ExtractOptions{Layer: true, MaxBytes: max}
	if st.IsDir() {
		x, err := newExtractor(context.Background(), dst, opt)
		if err != nil {
			return fmt.Errorf("layer %s: %w", src, err)
		}
		defer x.close()
		if err := walkTree(src, x.entry); err != nil {
			return fmt.Errorf("layer %s: %w", src, err)
		}
		if err := x.finish(); err != nil {
			return fmt.Errorf("layer %s: %w", src, err)
		}
		return nil
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("layer %s: %w", src, err)
	}
	defer f.Close()
	d, err := decompress(f)
	if err != nil {
		return fmt.Errorf("layer %s: %w", src, err)
	}
	defer d.Close()
	if _, err := Extract(context.Background(), dst, d, opt); err != nil {
		return fmt.Errorf("layer %s: %w", src, err)
	}
	return nil
}

// CopyTree copies the tree src to dst, which must not exist (its parent
// must). Regular files are reflinked (FICLONE) where the filesystem can,
// else copied with copy_file_range; modes, owners (as root), symlinks, hard
// links, xattrs and times are preserved. Nothing is written outside dst.
// On failure dst is removed.
func CopyTree(dst, src string) error {
	if err := copyTree(context.Background(), dst, src, 0); err != nil {
		return fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return nil
}

func copyTree(ctx context.Context, dst, src string, max int64) error {
	return copyTreeWith(ctx, dst, src, max, nil)
}

func copyTreeWith(ctx context.Context, dst, src string, max int64, written *int64) (err error) {
	st, err := os.Stat(src)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", src)
	}
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			RemoveTree(dst)
		}
	}()
	if max <= 0 {
		max = 1<<63 - 1 // the copy's size is the source's, already on disk
	}
	x, err := newExtractor(ctx, dst, ExtractOptions{MaxBytes: max})
	if err != nil {
		return err
	}
	defer x.close()
	defer func() {
		if written != nil {
			*written = x.written
		}
	}()
	if err := walkTree(src, x.entry); err != nil {
		return err
	}
	return x.finish()
}

// walkTree calls fn for every entry of the directory tree root, parents
// before children, with a tar header describing it as an archive would
// (names relative to root, "." first) and, for regular files, the open
// file as body. Hard links become TypeLink entries to the first path seen.
// Sockets are skipped. Symlinks are never followed.
func walkTree(root string, fn func(*tar.Header, io.Reader) error) (err error) {
	links := map[[2]uint64]string{}
	// Without root, a tree's own 0000 files and 0000/0300 directories (a
	// rootless guest makes them freely) are opened by lending the owner
	// read access for the copy; the modes recorded in the headers are the
	// original ones, and directories get theirs back at the end.
	euid := os.Geteuid()
	var restore []func()
	defer func() {
		for i := len(restore) - 1; i >= 0; i-- {
			restore[i]()
		}
	}()
	lend := func(p string, st *unix.Stat_t, need uint32) (func(), bool) {
		if euid == 0 || int(st.Uid) != euid || st.Mode&need == need {
			return nil, false
		}
		mode := st.Mode & 0o7777
		if chmodNoFollow(unix.AT_FDCWD, p, mode|need) != nil {
			return nil, false
		}
		return func() { chmodNoFollow(unix.AT_FDCWD, p, mode) }, true
	}
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		var st unix.Stat_t
		if err := retry(func() error { return unix.Lstat(p, &st) }); err != nil {
			return &os.PathError{Op: "lstat", Path: p, Err: err}
		}
		hdr := &tar.Header{
			Name:       rel,
			Mode:       int64(st.Mode & 0o7777),
			Uid:        int(st.Uid),
			Gid:        int(st.Gid),
			ModTime:    time.Unix(st.Mtim.Unix()),
			AccessTime: time.Unix(st.Atim.Unix()),
			Format:     tar.FormatPAX,
		}
		var body io.Reader // nil but for regular files
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			hdr.Typeflag = tar.TypeDir
			// WalkDir reads the directory after this callback returns.
			if undo, ok := lend(p, &st, 0o500); ok {
				restore = append(restore, undo)
			}
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		case unix.S_IFSOCK:
			return nil
		default:
			key := [2]uint64{st.Dev, st.Ino}
			if first, ok := links[key]; ok && st.Nlink > 1 {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				break
			}
			if st.Nlink > 1 {
				links[key] = rel
			}
			switch st.Mode & unix.S_IFMT {
			case unix.S_IFREG:
				hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size
				undo, _ := lend(p, &st, 0o400)
				f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
				if undo != nil {
					undo()
				}
				if err != nil {
					return err
				}
				defer f.Close()
				body = f
			case unix.S_IFCHR:
				hdr.Typeflag = tar.TypeChar
			case unix.S_IFBLK:
				hdr.Typeflag = tar.TypeBlock
			case unix.S_IFIFO:
				hdr.Typeflag = tar.TypeFifo
			}
			hdr.Devmajor, hdr.Devminor = int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev))
		}
		if hdr.Typeflag == tar.TypeDir || hdr.Typeflag == tar.TypeReg {
			if err := readXattrs(p, hdr); err != nil {
				return err
			}
		}
		return fn(hdr, body)
	})
}

// readXattrs adds p's extended attributes to hdr as PAX records.
func readXattrs(p string, hdr *tar.Header) error {
	names, err := listXattrs(p)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP) {
			return nil
		}
		return fmt.Errorf("listxattr %s: %w", p, err)
	}
	for _, name := range names {
		val, err := getXattr(p, name)
		if errors.Is(err, unix.ENODATA) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
			continue
		}
		if err != nil {
			return fmt.Errorf("getxattr %s %s: %w", p, name, err)
		}
		if hdr.PAXRecords == nil {
			hdr.PAXRecords = map[string]string{}
		}
		hdr.PAXRecords[xattrPAXPrefix+name] = string(val)
	}
	return nil
}

func listXattrs(p string) ([]string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Llistxattr(p, buf)
		if err == unix.ERANGE && size < 1<<20 {
			continue
		}
		if err == unix.EINTR {
			size /= 4
			continue
		}
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range strings.Split(string(buf[:n]), "\x00") {
			if s != "" {
				names = append(names, s)
			}
		}
		return names, nil
	}
}

func getXattr(p, name string) ([]byte, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if err == unix.ERANGE && size < 1<<20 {
			continue
		}
		if err == unix.EINTR {
			size /= 4
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
