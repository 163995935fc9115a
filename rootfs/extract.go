package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"io"
)

// MetadataRecorder receives the archive's metadata for every entry of an
// import, after the entry is created (or, for a device node that cannot be
// created without root, instead of creating it). rel is the clean path
// relative to the rootfs top ("." for the top itself, never with a leading
// "/"); hdr carries the archive's uid/gid/mode/type/devmajor/devminor and
// xattrs (PAXRecords "SCHILY.xattr.*"). Whiteouts are applied, not recorded.
// Close is called once after the last entry, before the tree is renamed into
// the store, also when the import fails.
type MetadataRecorder interface {
	Record(rel string, hdr *tar.Header) error
	Close() error
}

// NewRecorder is the hook through which imports record ownership when nook
// does not run as root (it cannot chown, mknod devices or set
// security.capability). cmd/nook sets it to the ownership package's
// recorder; nil means no recording. rootfsDir is the tree being populated
// and dbPath the ownership database to create: both are inside a staging
// directory that is renamed into the store afterwards, so the recorder must
// not keep absolute paths.
var NewRecorder func(rootfsDir, dbPath string) (MetadataRecorder, error)

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// Layer applies OCI whiteouts: ".wh.NAME" deletes NAME left by lower
	// layers and ".wh..wh..opq" empties its directory of lower-layer
	// entries; neither is created.
	Layer bool
	// Recorder, if not nil, is told about every entry.
	Recorder MetadataRecorder
	// MaxBytes bounds the file data written (0: MaxImportBytes()).
	MaxBytes int64
}

// Extract unpacks the tar stream r into the existing directory dst without
// ever creating, writing, chmod-ing or chown-ing anything outside dst:
// entries are created relative to directory fds opened component by
// component with O_NOFOLLOW. Entries whose names are absolute or contain
// ".." are refused, as are entries whose parent path crosses a symlink and
// hard links whose target is not an existing non-directory inside dst.
// Owners, setuid/setgid bits and device nodes are applied only when running
// as root; otherwise devices are skipped and everything is reported to the
// recorder. Directory modes and times are set after their contents.
func Extract(ctx context.Context, dst string, r io.Reader, opt ExtractOptions) error {
	return errors.New("extract: not implemented yet")
}

// DefaultMaxImportBytes bounds the file data one import may write (a guard
// against decompression bombs); NOOK_IMPORT_MAX_BYTES overrides it.
const DefaultMaxImportBytes int64 = 64 << 30

// MaxImportBytes is NOOK_IMPORT_MAX_BYTES if set to a positive integer
// (suffixes K, M, G, T accepted, powers of 1024), else
// DefaultMaxImportBytes.
func MaxImportBytes() (int64, error) {
	return DefaultMaxImportBytes, nil
}
