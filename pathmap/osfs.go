package pathmap

import "golang.org/x/sys/unix"

// OSFS is the real file system.
type OSFS struct{}

// Lstat implements FS.
func (OSFS) Lstat(p string) (uint32, error) {
	var st unix.Stat_t
	for {
		err := unix.Lstat(p, &st)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return st.Mode & unix.S_IFMT, nil
	}
}

// Readlink implements FS.
func (OSFS) Readlink(p string) (string, error) {
	// Symlink bodies are short; start small and grow, since readlink(2)
	// truncates silently and only n == len(buf) tells that it did.
	for size := 128; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlink(p, buf)
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
		if size > PathMax {
			return "", unix.ENAMETOOLONG
		}
	}
}
