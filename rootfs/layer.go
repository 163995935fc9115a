package rootfs

import "errors"

// ApplyLayer applies src over the existing tree dst, as nook run --layer
// does. src is a directory or a tarball (compressed or not); ".wh.NAME" and
// ".wh..wh..opq" entries are whiteouts exactly as in image layers, and every
// write goes through Extract's safe, fd-relative path.
func ApplyLayer(dst, src string) error { return errors.New("ApplyLayer: not implemented yet") }

// CopyTree copies the tree src to dst, which must not exist (its parent
// must). Regular files are reflinked (FICLONE) where the filesystem can,
// else copied with copy_file_range; modes, owners (as root), symlinks, hard
// links, xattrs and times are preserved. Nothing is written outside dst.
func CopyTree(dst, src string) error { return errors.New("CopyTree: not implemented yet") }
