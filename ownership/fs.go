package ownership

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// retry repeats fn while it fails with EINTR (open(2) and friends can be
// interrupted on FUSE and network file systems).
func retry(fn func() error) error {
	for {
		if err := fn(); err != unix.EINTR {
			return err
		}
	}
}

// openDirBeneath opens root/rel, a directory, as an O_PATH fd without
// following any symlink and without leaving root. rel is relative ("" or
// "." for root itself).
func openDirBeneath(root, rel string) (int, error) {
	var fd int
	err := retry(func() (err error) {
		fd, err = unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: root, Err: err}
	}
	rel = filepath.Clean(rel)
	if rel == "." {
		return fd, nil
	}
	if filepath.IsAbs(rel) || rel == ".." || strings.HasPrefix(rel, "../") {
		unix.Close(fd)
		return -1, &os.PathError{Op: "open", Path: rel, Err: unix.EXDEV}
	}
	how := unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NOFOLLOW,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	}
	var dfd int
	err = retry(func() (err error) {
		dfd, err = unix.Openat2(fd, rel, &how)
		return err
	})
	if err == unix.ENOSYS {
		// Before Linux 5.6: one component at a time, none a symlink.
		dfd = fd
		fd = -1
		for _, c := range strings.Split(rel, "/") {
			var next int
			err = retry(func() (err error) {
				next, err = unix.Openat(dfd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
				return err
			})
			unix.Close(dfd)
			if err != nil {
				return -1, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
			}
			dfd = next
		}
		return dfd, nil
	}
	unix.Close(fd)
	if err != nil {
		return -1, &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
	}
	return dfd, nil
}

// lstatBeneath lstats root/rel without following symlinks on the way.
func lstatBeneath(root, rel string) (*unix.Stat_t, error) {
	rel = filepath.Clean(rel)
	var st unix.Stat_t
	if rel == "." {
		if err := unix.Lstat(root, &st); err != nil {
			return nil, &os.PathError{Op: "lstat", Path: root, Err: err}
		}
		return &st, nil
	}
	dfd, err := openDirBeneath(root, filepath.Dir(rel))
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	err = retry(func() error {
		return unix.Fstatat(dfd, filepath.Base(rel), &st, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		return nil, &os.PathError{Op: "lstat", Path: filepath.Join(root, rel), Err: err}
	}
	return &st, nil
}

// chmodBeneath sets the permission bits of root/rel, which must still be
// the file key of type typ (not a symlink); it never follows a symlink.
func chmodBeneath(root, rel string, key Key, typ, mode uint32) error {
	rel = filepath.Clean(rel)
	dir, base := filepath.Dir(rel), filepath.Base(rel)
	if rel == "." {
		dir, base = ".", "."
	}
	dfd, err := openDirBeneath(root, dir)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	var fd int
	err = retry(func() (err error) {
		fd, err = unix.Openat(dfd, base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		return err
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: filepath.Join(root, rel), Err: err}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: filepath.Join(root, rel), Err: err}
	}
	if (Key{st.Dev, st.Ino}) != key || st.Mode&unix.S_IFMT != typ&unix.S_IFMT || typ&unix.S_IFMT == unix.S_IFLNK {
		return &os.PathError{Op: "chmod", Path: filepath.Join(root, rel), Err: unix.ESTALE}
	}
	// fchmod does not take O_PATH descriptors; the magic link does, and
	// it names exactly the inode checked above.
	err = retry(func() error {
		return unix.Fchmodat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), mode&0o7777, 0)
	})
	if err != nil {
		return &os.PathError{Op: "chmod", Path: filepath.Join(root, rel), Err: err}
	}
	return nil
}
