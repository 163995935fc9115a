package rootfs

import (
	"context"
	"errors"
)

// ImportOptions tune Store.Import.
type ImportOptions struct {
	// Name is the store name; "" derives it from the source (DefaultName).
	Name string
	// Progress draws a progress bar on stderr (the caller checks that it is
	// a terminal).
	Progress bool
	// Recorder makes the metadata recorder for the new tree; nil uses
	// NewRecorder when not running as root.
	Recorder func(rootfsDir, dbPath string) (MetadataRecorder, error)
	// MaxBytes bounds the file data written (0: MaxImportBytes()).
	MaxBytes int64
}

// Import imports source (a rootfs tarball, a docker-save archive, an OCI
// layout directory or tar, or a plain directory) as a new store entry and
// returns its name. It is atomic: the tree is built under $NOOK_HOME/tmp and
// renamed into place; on any error, or when ctx is cancelled, nothing is
// left under the name and the staging directory is removed. An existing
// name wraps ErrExists.
func (s *Store) Import(ctx context.Context, source string, opt ImportOptions) (name string, err error) {
	return "", errors.New("import: not implemented yet")
}
