package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"
)

// Store is the directory holding imported rootfs trees ($NOOK_HOME).
//
// Layout:
//
//	$NOOK_HOME/rootfs/NAME/rootfs        the tree the guest sees as /
//	$NOOK_HOME/rootfs/NAME/meta.json     Meta: source, format, size, date
//	$NOOK_HOME/rootfs/NAME/ownership.db  the ownership store (rootless mode)
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
	return nil, errors.New("store: not implemented yet")
}

// Dir is the directory of the stored rootfs NAME (tree, meta, ownership).
func (s *Store) Dir(name string) string { return filepath.Join(s.Home, "rootfs", name) }

// RootfsDir is the tree of the stored rootfs NAME.
func (s *Store) RootfsDir(name string) string { return filepath.Join(s.Dir(name), "rootfs") }

// OwnershipDB is where rootless mode keeps NAME's ownership records.
func (s *Store) OwnershipDB(name string) string { return filepath.Join(s.Dir(name), "ownership.db") }

// Resolve maps nook run's ROOTFS argument to a host directory. An argument
// containing '/' or naming an existing directory is a directory path: it
// must be a directory holding at least one of bin, usr or etc (an entry of
// any type, as bin is often a symlink), and is returned absolute with
// symlinks resolved and name "". Anything else is a store name, returned
// with its tree; an unknown name wraps ErrUnknownRootfs.
func (s *Store) Resolve(arg string) (hostDir string, name string, err error) {
	return "", "", errors.New("resolve: not implemented yet")
}

// Acquire takes a shared lock on the stored rootfs NAME for the duration of
// a run, so that Remove refuses to delete it underneath. release drops the
// lock; it is safe to call more than once. Acquire fails with
// ErrUnknownRootfs if NAME is not (or no longer) in the store.
func (s *Store) Acquire(name string) (release func(), err error) {
	return nil, errors.New("acquire: not implemented yet")
}

// List returns the stored rootfs trees sorted by name. An entry whose
// meta.json is unreadable is listed with only its Name set.
func (s *Store) List() ([]Meta, error) { return nil, errors.New("list: not implemented yet") }

// Remove deletes the stored rootfs NAME. It fails with ErrInUse if a run
// holds it (see Acquire) and ErrUnknownRootfs if there is none. The tree is
// first renamed out of the store (so it vanishes atomically), then removed
// with RemoveTree.
func (s *Store) Remove(name string) error { return errors.New("rm: not implemented yet") }

// TempDir creates a fresh directory under $NOOK_HOME/tmp (same filesystem
// as the trees, so renames and reflinks work) and holds a lock on it until
// release, which also removes it with RemoveTree. If the process dies first,
// the next store operation removes the directory. Use it for ephemeral
// copies.
func (s *Store) TempDir(prefix string) (dir string, release func() error, err error) {
	return "", nil, errors.New("tempdir: not implemented yet")
}

// IsHostRoot reports whether dir is, or resolves through symlinks to, the
// host's / (same device and inode).
func IsHostRoot(dir string) (bool, error) {
	return false, errors.New("IsHostRoot: not implemented yet")
}

// RemoveTree removes path and everything below it without ever following a
// symlink, making directories writable and searchable on the way down
// (guests leave 0000 and 0555 directories). A missing path is not an error.
func RemoveTree(path string) error { return errors.New("RemoveTree: not implemented yet") }
