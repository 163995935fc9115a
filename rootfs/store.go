package rootfs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// Store is the directory holding imported rootfs trees ($NOOK_HOME).
//
// Layout:
//
//	$NOOK_HOME/rootfs/NAME/rootfs        the tree the guest sees as /
//	$NOOK_HOME/rootfs/NAME/meta.json     Meta: source, format, size, date
//	$NOOK_HOME/rootfs/NAME/ownership.db  the ownership store (rootless mode)
//	$NOOK_HOME/dirs/HASH/ownership.db    the same for a directory rootfs
//	$NOOK_HOME/tmp/                      staging dirs of live imports and
//	                                     ephemeral copies, each flocked by
//	                                     its owner; stale ones are removed
//	                                     by the next store operation
type Store struct {
	Home string // absolute path of $NOOK_HOME
}

// Meta describes one stored rootfs; it is meta.json beside the tree.
type Meta struct {
	Name     string    `json:"name"`
	Source   string    `json:"source"`   // absolute path of what was imported
	Format   string    `json:"format"`   // "tar", "tar+gzip", "docker-save", "oci-layout", "directory", ...
	Size     int64     `json:"size"`     // bytes of file data written at import
	Imported time.Time `json:"imported"` // when the import finished
}

// ErrUnknownRootfs is wrapped by Resolve, Remove and Acquire when no rootfs
// of that name is in the store (callers add a hint to run `nook list`).
var ErrUnknownRootfs = errors.New("no such rootfs in the store")

// ErrInUse is wrapped by Remove when a run holds the rootfs.
var ErrInUse = errors.New("rootfs is in use by a running nook")

// ErrExists is wrapped by Import when NAME is already in the store.
var ErrExists = errors.New("a rootfs of that name already exists")

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// maxNameLen keeps NAME well inside NAME_MAX with room for staging suffixes.
const maxNameLen = 128

// ValidateName reports whether name may be used as a store name:
// [A-Za-z0-9][A-Za-z0-9._-]*, at most 128 bytes.
func ValidateName(name string) error {
	if len(name) > maxNameLen || !nameRE.MatchString(name) {
		return fmt.Errorf("invalid rootfs name %q: use letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// DefaultHome is $NOOK_HOME, else $XDG_DATA_HOME/nook, else
// ~/.local/share/nook.
func DefaultHome() (string, error) {
	if h := os.Getenv("NOOK_HOME"); h != "" {
		return filepath.Abs(h)
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" && filepath.IsAbs(x) {
		return filepath.Join(x, "nook"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locating the store: %w (set NOOK_HOME)", err)
	}
	return filepath.Join(home, ".local", "share", "nook"), nil
}

// OpenStore returns the store at DefaultHome, creating its directories.
func OpenStore() (*Store, error) {
	home, err := DefaultHome()
	if err != nil {
		return nil, err
	}
	return NewStore(home)
}

// NewStore returns the store at home, creating its directories (mode 0700:
// trees may hold other users' secrets, e.g. /etc/shadow) and removing
// leftovers of killed imports.
func NewStore(home string) (*Store, error) {
	home, err := filepath.Abs(home)
	if err != nil {
		return nil, err
	}
	s := &Store{Home: home}
	for _, d := range []string{home, filepath.Join(home, "rootfs"), s.tmp()} {
		if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			if errors.Is(err, fs.ErrNotExist) && d == home {
				err = os.MkdirAll(d, 0o700)
			}
			if err != nil {
				return nil, fmt.Errorf("store %s: %w", home, err)
			}
		}
	}
	s.cleanTmp()
	return s, nil
}

func (s *Store) tmp() string { return filepath.Join(s.Home, "tmp") }

// Dir is the directory of the stored rootfs NAME (tree, meta, ownership).
func (s *Store) Dir(name string) string { return filepath.Join(s.Home, "rootfs", name) }

// RootfsDir is the tree of the stored rootfs NAME.
func (s *Store) RootfsDir(name string) string { return filepath.Join(s.Dir(name), "rootfs") }

// OwnershipDB is where rootless mode keeps NAME's ownership records.
func (s *Store) OwnershipDB(name string) string { return filepath.Join(s.Dir(name), "ownership.db") }

// DirOwnershipDB is where rootless mode keeps the ownership records of a
// rootfs given as a directory rather than a store name. The database cannot
// live inside the tree (the guest would see it) nor beside it (the parent
// may be shared or read-only), so it lives in the store, under a name
// derived from the directory's resolved path; a file "path" beside it says
// which directory it belongs to. Moving the directory loses the records
// (a later run starts afresh: every file then shows as root's).
func (s *Store) DirOwnershipDB(dir string) (string, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", fmt.Errorf("ownership store of %s: %w", dir, err)
	}
	if real, err = filepath.Abs(real); err != nil {
		return "", fmt.Errorf("ownership store of %s: %w", dir, err)
	}
	sum := sha256.Sum256([]byte(real))
	d := filepath.Join(s.Home, "dirs", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(d, 0o700); err != nil {
		return "", fmt.Errorf("ownership store of %s: %w", dir, err)
	}
	note := filepath.Join(d, "path")
	if b, err := os.ReadFile(note); err != nil || string(b) != real+"\n" {
		if err := os.WriteFile(note, []byte(real+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("ownership store of %s: %w", dir, err)
		}
	}
	return filepath.Join(d, "ownership.db"), nil
}

func (s *Store) metaPath(name string) string { return filepath.Join(s.Dir(name), "meta.json") }

// Exists reports whether NAME is in the store.
func (s *Store) Exists(name string) bool {
	if ValidateName(name) != nil {
		return false
	}
	st, err := os.Lstat(s.Dir(name))
	return err == nil && st.IsDir()
}

// Resolve maps nook run's ROOTFS argument to a host directory. An argument
// containing '/' or naming an existing directory is a directory path: it
// must be a directory holding at least one of bin, usr or etc (an entry of
// any type, as bin is often a symlink), and is returned absolute with
// symlinks resolved and name "". Anything else is a store name, returned
// with its tree; an unknown name wraps ErrUnknownRootfs.
func (s *Store) Resolve(arg string) (hostDir string, name string, err error) {
	if arg == "" {
		return "", "", errors.New("empty rootfs argument")
	}
	st, statErr := os.Stat(arg)
	if strings.Contains(arg, "/") || (statErr == nil && st.IsDir()) {
		dir, err := filepath.Abs(arg)
		if err == nil {
			dir, err = filepath.EvalSymlinks(dir)
		}
		if err != nil {
			return "", "", fmt.Errorf("rootfs directory %s: %w", arg, err)
		}
		if st, err := os.Stat(dir); err != nil {
			return "", "", fmt.Errorf("rootfs directory %s: %w", arg, err)
		} else if !st.IsDir() {
			return "", "", fmt.Errorf("rootfs %s is not a directory", arg)
		}
		if !looksLikeRootfs(dir) {
			return "", "", fmt.Errorf("%s does not look like a root filesystem (it has no bin, usr or etc)", arg)
		}
		return dir, "", nil
	}
	if err := ValidateName(arg); err != nil {
		return "", "", err
	}
	if !s.Exists(arg) {
		return "", "", fmt.Errorf("rootfs %q: %w", arg, ErrUnknownRootfs)
	}
	return s.RootfsDir(arg), arg, nil
}

// rootfsMarkers are the entries at least one of which every usable root
// filesystem has; a directory without any is almost certainly a typo.
var rootfsMarkers = []string{"bin", "usr", "etc"}

func looksLikeRootfs(dir string) bool {
	for _, m := range rootfsMarkers {
		if _, err := os.Lstat(filepath.Join(dir, m)); err == nil {
			return true
		}
	}
	return false
}

// IsHostRoot reports whether dir is, or resolves through symlinks to, the
// host's / (same device and inode).
func IsHostRoot(dir string) (bool, error) {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false, err
	}
	var a, b unix.Stat_t
	if err := unix.Stat(real, &a); err != nil {
		return false, &os.PathError{Op: "stat", Path: real, Err: err}
	}
	if err := unix.Stat("/", &b); err != nil {
		return false, &os.PathError{Op: "stat", Path: "/", Err: err}
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// lockDir opens dir and flocks it with how (LOCK_SH or LOCK_EX, maybe
// |LOCK_NB), then checks that dir still names the locked inode: a remover
// renames the directory away while holding LOCK_EX, so a locker that waited
// for it must not go on with a tree that has left the store.
func lockDir(dir string, how int) (*os.File, error) {
	f, err := os.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	if err := retry(func() error { return unix.Flock(int(f.Fd()), how) }); err != nil {
		f.Close()
		return nil, err
	}
	var a, b unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &a); err != nil {
		f.Close()
		return nil, err
	}
	if err := unix.Lstat(dir, &b); err != nil || a.Dev != b.Dev || a.Ino != b.Ino {
		f.Close()
		return nil, fs.ErrNotExist
	}
	return f, nil
}

// Acquire takes a shared lock on the stored rootfs NAME for the duration of
// a run, so that Remove refuses to delete it underneath. release drops the
// lock; it is safe to call more than once. Acquire fails with
// ErrUnknownRootfs if NAME is not (or no longer) in the store. The lock is
// an flock on the rootfs's store directory, held by an O_CLOEXEC fd, so
// it dies with the process.
func (s *Store) Acquire(name string) (release func(), err error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	f, err := lockDir(s.Dir(name), unix.LOCK_SH)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("rootfs %q: %w", name, ErrUnknownRootfs)
	}
	if err != nil {
		return nil, fmt.Errorf("locking rootfs %q: %w", name, err)
	}
	var once sync.Once
	return func() { once.Do(func() { f.Close() }) }, nil
}

// ReadMeta returns the metadata of the stored rootfs NAME.
func (s *Store) ReadMeta(name string) (Meta, error) {
	m := Meta{Name: name}
	b, err := os.ReadFile(s.metaPath(name))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", s.metaPath(name), err)
	}
	m.Name = name
	return m, nil
}

// List returns the stored rootfs trees sorted by name. An entry whose
// meta.json is unreadable is listed with only its Name set.
func (s *Store) List() ([]Meta, error) {
	ents, err := os.ReadDir(filepath.Join(s.Home, "rootfs"))
	if err != nil {
		return nil, fmt.Errorf("list store: %w", err)
	}
	var out []Meta
	for _, e := range ents {
		if !e.IsDir() || ValidateName(e.Name()) != nil {
			continue
		}
		m, _ := s.ReadMeta(e.Name())
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Remove deletes the stored rootfs NAME. It fails with ErrInUse if a run
// holds it (see Acquire) and ErrUnknownRootfs if there is none. The tree is
// first renamed out of the store (so it vanishes atomically), then removed
// with RemoveTree; if that is interrupted, the next store operation
// finishes it.
func (s *Store) Remove(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	f, err := lockDir(s.Dir(name), unix.LOCK_EX|unix.LOCK_NB)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("rootfs %q: %w", name, ErrUnknownRootfs)
	case errors.Is(err, unix.EWOULDBLOCK):
		return fmt.Errorf("rootfs %q: %w", name, ErrInUse)
	case err != nil:
		return fmt.Errorf("rm %q: %w", name, err)
	}
	defer f.Close()
	graveyard, gf, err := s.lockedTemp("rm-" + name + "-")
	if err != nil {
		return fmt.Errorf("rm %q: %w", name, err)
	}
	defer gf.Close()
	dead := filepath.Join(graveyard, name)
	if err := os.Rename(s.Dir(name), dead); err != nil {
		os.Remove(graveyard)
		return fmt.Errorf("rm %q: %w", name, err)
	}
	// If this process dies now, the next store operation finds the
	// graveyard unlocked and finishes the removal.
	if err := RemoveTree(graveyard); err != nil {
		return fmt.Errorf("rm %q: the rootfs is out of the store but removing it failed: %w", name, err)
	}
	return nil
}

// lockedTemp creates and locks a fresh directory under $NOOK_HOME/tmp. The
// lock is what tells cleanTmp the directory is live; a cleaner can remove
// the directory between its creation and the lock, so that is checked and
// retried.
func (s *Store) lockedTemp(prefix string) (string, *os.File, error) {
	for range 10 {
		dir, err := os.MkdirTemp(s.tmp(), prefix)
		if err != nil {
			return "", nil, err
		}
		f, err := lockDir(dir, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return dir, f, nil
		}
		if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.EWOULDBLOCK) {
			os.Remove(dir)
			return "", nil, err
		}
	}
	return "", nil, fmt.Errorf("creating a staging directory in %s: raced with cleanup too often", s.tmp())
}

// TempDir creates a fresh directory under $NOOK_HOME/tmp (same filesystem
// as the trees, so renames and reflinks work) and holds a lock on it until
// release, which also removes it with RemoveTree. If the process dies first,
// the next store operation removes the directory. Use it for ephemeral
// copies.
func (s *Store) TempDir(prefix string) (dir string, release func() error, err error) {
	dir, f, err := s.lockedTemp(prefix)
	if err != nil {
		return "", nil, fmt.Errorf("temporary directory: %w", err)
	}
	var once sync.Once
	var rerr error
	return dir, func() error {
		once.Do(func() {
			rerr = RemoveTree(dir)
			f.Close()
		})
		return rerr
	}, nil
}

// cleanTmp removes what killed imports, removals and runs left in tmp:
// every entry nobody holds a lock on. Best effort: a failure here must not
// stop the operation that triggered it.
func (s *Store) cleanTmp() {
	ents, err := os.ReadDir(s.tmp())
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(s.tmp(), e.Name())
		if !e.IsDir() {
			os.Remove(p)
			continue
		}
		f, err := lockDir(p, unix.LOCK_EX|unix.LOCK_NB)
		if err != nil {
			continue // live, or already gone
		}
		RemoveTree(p)
		f.Close()
	}
}

// RemoveTree removes path and everything below it without ever following a
// symlink, making directories writable and searchable on the way down
// (guests leave 0000 and 0555 directories). A missing path is not an error.
func RemoveTree(p string) error {
	p = filepath.Clean(p)
	dir, base := filepath.Split(p)
	if base == "" || base == "." || base == ".." || base == "/" {
		return fmt.Errorf("refusing to remove %q", p)
	}
	if dir == "" {
		dir = "."
	}
	fd, err := openRetry(unix.AT_FDCWD, dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := removeAt(fd, base); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}
