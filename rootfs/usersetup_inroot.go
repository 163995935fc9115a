package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// GuestRoot gives access to files of a guest tree by guest path, resolving
// every component the way the kernel would if the tree were "/": absolute
// symlinks restart at the tree's top, ".." stops there. A guest file that is
// a symlink to /etc/passwd therefore reaches the guest's /etc/passwd, never
// the host's.
//
// The walk is done in user space one component at a time with
// O_PATH|O_NOFOLLOW, keeping a stack of directory descriptors, so ".." is
// never asked of the kernel and a directory renamed while we hold it cannot
// lead outside. This is the semantics of openat2(RESOLVE_IN_ROOT), but it
// also works on the old kernels (< 5.6) of the shared machines rootless users
// run on, and under seccomp profiles that refuse openat2.
type GuestRoot struct {
	fd   int
	path string
}

// maxSymlinks is the kernel's limit on symlinks followed in one lookup
// (MAXSYMLINKS), so a guest loop gives ELOOP as it would inside the guest.
const maxSymlinks = 40

// OpenGuestRoot opens the guest tree at host path dir.
func OpenGuestRoot(dir string) (*GuestRoot, error) {
	fd, err := retryEINTR(func() (int, error) {
		return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dir, Err: err}
	}
	return &GuestRoot{fd: fd, path: dir}, nil
}

// Close releases the tree's descriptor.
func (r *GuestRoot) Close() error { return unix.Close(r.fd) }

// Path is the host path the tree was opened at.
func (r *GuestRoot) Path() string { return r.path }

func retryEINTR(f func() (int, error)) (int, error) {
	for {
		n, err := f()
		if err != unix.EINTR {
			return n, err
		}
	}
}

func retryEINTR0(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

func splitGuest(p string) []string {
	var out []string
	for _, c := range strings.Split(p, "/") {
		if c != "" && c != "." {
			out = append(out, c)
		}
	}
	return out
}

// resolve walks guest path p and returns an O_PATH descriptor of the
// directory holding its final component, and that component's name. When
// follow is true a final symlink is resolved too, so name is never a symlink
// (unless it changes under us; callers open it with O_NOFOLLOW). A missing
// final component is not an error: callers may create it. For "/" and paths
// ending in "..", name is ".".
func (r *GuestRoot) resolve(p string, follow bool) (dirfd int, name string, err error) {
	root, err := retryEINTR(func() (int, error) { return unix.Dup(r.fd) })
	if err != nil {
		return -1, "", err
	}
	stack := []int{root}
	defer func() {
		// Everything but the returned descriptor is closed.
		for _, fd := range stack {
			if fd != dirfd {
				unix.Close(fd)
			}
		}
	}()
	rest := splitGuest(p)
	links := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		top := stack[len(stack)-1]
		if c == ".." {
			if len(stack) > 1 {
				unix.Close(top)
				stack = stack[:len(stack)-1]
			}
			continue
		}
		last := len(rest) == 0
		if last && !follow {
			return top, c, nil
		}
		fd, err := retryEINTR(func() (int, error) {
			return unix.Openat(top, c, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		})
		if err == unix.ENOENT && last {
			return top, c, nil
		}
		if err != nil {
			return -1, "", err
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return -1, "", err
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			links++
			if links > maxSymlinks {
				unix.Close(fd)
				return -1, "", unix.ELOOP
			}
			target, err := readlinkFd(fd)
			unix.Close(fd)
			if err != nil {
				return -1, "", err
			}
			if strings.HasPrefix(target, "/") {
				for _, d := range stack[1:] {
					unix.Close(d)
				}
				stack = stack[:1]
			}
			rest = append(splitGuest(target), rest...)
			if len(rest) == 0 {
				// A link to "/" (or "."): the directory we are in.
				return stack[len(stack)-1], ".", nil
			}
		case unix.S_IFDIR:
			if last {
				unix.Close(fd)
				return top, c, nil
			}
			stack = append(stack, fd)
		default:
			unix.Close(fd)
			if last {
				return top, c, nil
			}
			return -1, "", unix.ENOTDIR
		}
	}
	return stack[len(stack)-1], ".", nil
}

// readlinkFd reads the target of the symlink an O_PATH descriptor refers to
// (readlinkat with an empty path, Linux >= 2.6.39).
func readlinkFd(fd int) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(fd, "", buf)
		if err == unix.EINTR {
			size /= 2
			continue
		}
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

// Open opens guest path p with open(2) flags (O_CLOEXEC is always added). A
// final symlink is followed inside the tree unless flags has O_NOFOLLOW.
func (r *GuestRoot) Open(p string, flags int, mode uint32) (*os.File, error) {
	dirfd, name, err := r.resolve(p, flags&unix.O_NOFOLLOW == 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	defer unix.Close(dirfd)
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, mode)
	})
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: p, Err: err}
	}
	return os.NewFile(uintptr(fd), path.Join(r.path, p)), nil
}

// Lstat returns the status of guest path p without following a final
// symlink.
func (r *GuestRoot) Lstat(p string) (*unix.Stat_t, error) {
	return r.stat(p, false)
}

// Stat returns the status of guest path p, following symlinks inside the
// tree.
func (r *GuestRoot) Stat(p string) (*unix.Stat_t, error) {
	return r.stat(p, true)
}

func (r *GuestRoot) stat(p string, follow bool) (*unix.Stat_t, error) {
	dirfd, name, err := r.resolve(p, follow)
	if err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	defer unix.Close(dirfd)
	var st unix.Stat_t
	if err := retryEINTR0(func() error {
		return unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	return &st, nil
}

// ReadFile returns the contents of guest file p.
func (r *GuestRoot) ReadFile(p string) ([]byte, error) {
	f, err := r.Open(p, unix.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, &os.PathError{Op: "stat", Path: p, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "read", Path: p, Err: errors.New("not a regular file")}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return data, nil
}

// Mkdir creates directory p (its parent must exist) with mode perm and, when
// chown is true, owner uid:gid. It reports whether it created the directory;
// an existing directory is not an error.
func (r *GuestRoot) Mkdir(p string, perm uint32, uid, gid int, chown bool) (bool, error) {
	dirfd, name, err := r.resolve(p, true)
	if err != nil {
		return false, &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	defer unix.Close(dirfd)
	err = retryEINTR0(func() error { return unix.Mkdirat(dirfd, name, perm) })
	if err == unix.EEXIST {
		var st unix.Stat_t
		if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return false, &os.PathError{Op: "stat", Path: p, Err: err}
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return false, &os.PathError{Op: "mkdir", Path: p, Err: unix.ENOTDIR}
		}
		return false, nil
	}
	if err != nil {
		return false, &os.PathError{Op: "mkdir", Path: p, Err: err}
	}
	// mkdir(2) applies the umask; the mode asked for is the mode wanted.
	if err := unix.Fchmodat(dirfd, name, perm, 0); err != nil {
		return true, &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	if chown {
		if err := unix.Fchownat(dirfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return true, &os.PathError{Op: "chown", Path: p, Err: err}
		}
	}
	return true, nil
}

// MkdirAll creates p and any missing parents (mode perm, owned by root when
// chown is set, otherwise by the caller) and returns the guest paths it
// created, parents first.
func (r *GuestRoot) MkdirAll(p string, perm uint32, chown bool) ([]string, error) {
	p = path.Clean("/" + p)
	if p == "/" {
		return nil, nil
	}
	created, err := r.MkdirAll(path.Dir(p), perm, chown)
	if err != nil {
		return created, err
	}
	made, err := r.Mkdir(p, perm, 0, 0, chown)
	if made {
		created = append(created, p)
	}
	return created, err
}

// WriteFileAtomic replaces guest file p with data: it writes a temporary
// file in the same directory, gives it the old file's mode and owner (mode
// perm and the caller's ids for a new file), fsyncs it, renames it over p
// and fsyncs the directory, so a crash leaves either the old or the new
// file, never a torn one. A final symlink is followed inside the tree and
// the file it points to is replaced, as an editor would.
func (r *GuestRoot) WriteFileAtomic(p string, data []byte, perm uint32) error {
	dirfd, name, err := r.resolve(p, true)
	if err != nil {
		return &os.PathError{Op: "write", Path: p, Err: err}
	}
	defer unix.Close(dirfd)
	if name == "." {
		return &os.PathError{Op: "write", Path: p, Err: unix.EISDIR}
	}
	mode, uid, gid := perm, -1, -1
	var st unix.Stat_t
	switch err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); {
	case err == nil:
		if st.Mode&unix.S_IFMT != unix.S_IFREG {
			return &os.PathError{Op: "write", Path: p, Err: errors.New("not a regular file")}
		}
		mode, uid, gid = st.Mode&07777, int(st.Uid), int(st.Gid)
	case err != unix.ENOENT:
		return &os.PathError{Op: "stat", Path: p, Err: err}
	}
	// The directory itself, readable, for fsync (an O_PATH fd cannot be
	// synced).
	dfd, err := retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return &os.PathError{Op: "open", Path: path.Dir(p), Err: err}
	}
	defer unix.Close(dfd)

	var tmp string
	var fd int
	for i := 0; ; i++ {
		tmp = "." + name + ".nook-" + strconv.FormatInt(time.Now().UnixNano()+int64(i), 36)
		fd, err = retryEINTR(func() (int, error) {
			return unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0600)
		})
		if err != unix.EEXIST || i > 100 {
			break
		}
	}
	if err != nil {
		return &os.PathError{Op: "create", Path: path.Join(path.Dir(p), tmp), Err: err}
	}
	f := os.NewFile(uintptr(fd), tmp)
	ok := false
	defer func() {
		if !ok {
			f.Close()
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	if uid >= 0 && (uid != os.Geteuid() || gid != os.Getegid()) {
		// Keep the owner. Without privilege (rootless mode) this fails; the
		// file is then the caller's, as every file of such a tree is, and
		// the tracer fakes its owner.
		if err := f.Chown(uid, gid); err != nil && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("chown %s: %w", p, err)
		}
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: p, Err: err}
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	if err := retryEINTR0(func() error { return unix.Fsync(fd) }); err != nil {
		return &os.PathError{Op: "fsync", Path: p, Err: err}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", p, err)
	}
	if err := unix.Renameat(dfd, tmp, dfd, name); err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		ok = true
		return &os.PathError{Op: "rename", Path: p, Err: err}
	}
	ok = true
	if err := retryEINTR0(func() error { return unix.Fsync(dfd) }); err != nil {
		return &os.PathError{Op: "fsync", Path: path.Dir(p), Err: err}
	}
	return nil
}

// Readlink returns the target of the symlink at guest path p.
func (r *GuestRoot) Readlink(p string) (string, error) {
	dirfd, name, err := r.resolve(p, false)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: p, Err: err}
	}
	defer unix.Close(dirfd)
	fd, err := retryEINTR(func() (int, error) {
		return unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	})
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: p, Err: err}
	}
	defer unix.Close(fd)
	target, err := readlinkFd(fd)
	if err != nil {
		return "", &os.PathError{Op: "readlink", Path: p, Err: err}
	}
	return target, nil
}

// CreateFile makes sure guest path p exists, creating it as an empty file
// (mode perm, parents 0755) when missing. A dangling symlink is followed
// inside the tree and its target created, with the target's missing
// parents: /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf
// gives a file where the guest's resolver will look. It returns the guest
// paths it created, parents first.
func (r *GuestRoot) CreateFile(p string, perm uint32, chown bool) ([]string, error) {
	p = path.Clean("/" + p)
	for i := 0; ; i++ {
		st, err := r.Lstat(p)
		if errors.Is(err, unix.ENOENT) {
			break // p or a directory on the way: created below
		}
		if err != nil {
			return nil, err
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			return nil, nil // exists
		}
		if i >= maxSymlinks {
			return nil, &os.PathError{Op: "create", Path: p, Err: unix.ELOOP}
		}
		target, err := r.Readlink(p)
		if err != nil {
			return nil, err
		}
		if !path.IsAbs(target) {
			target = path.Join(path.Dir(p), target)
		}
		p = path.Clean(target)
	}
	created, err := r.MkdirAll(path.Dir(p), 0755, chown)
	if err != nil {
		return created, err
	}
	f, err := r.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, perm)
	if err != nil {
		if errors.Is(err, unix.EEXIST) {
			return created, nil
		}
		return created, err
	}
	f.Close()
	return append(created, p), nil
}
