package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
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
	// entries; neither is created. The archive's entry for the top
	// directory itself is ignored, so a layer never changes the mode of /.
	Layer bool
	// Recorder, if not nil, is told about every entry.
	Recorder MetadataRecorder
	// MaxBytes bounds the file data written (0: DefaultMaxImportBytes).
	MaxBytes int64
}

// DefaultMaxImportBytes bounds the file data one import may write (a guard
// against decompression bombs); NOOK_IMPORT_MAX_BYTES overrides it.
const DefaultMaxImportBytes int64 = 64 << 30

// MaxImportBytes is NOOK_IMPORT_MAX_BYTES if set (a positive integer with
// an optional K, M, G or T suffix, powers of 1024), else
// DefaultMaxImportBytes.
func MaxImportBytes() (int64, error) {
	v := strings.TrimSpace(os.Getenv("NOOK_IMPORT_MAX_BYTES"))
	if v == "" {
		return DefaultMaxImportBytes, nil
	}
	n, err := parseSize(v)
	if err != nil {
		return 0, fmt.Errorf("NOOK_IMPORT_MAX_BYTES=%q: %w", v, err)
	}
	return n, nil
}

func parseSize(v string) (int64, error) {
	shift := 0
	switch strings.ToUpper(v[len(v)-1:]) {
	case "K":
		shift = 10
	case "M":
		shift = 20
	case "G":
		shift = 30
	case "T":
		shift = 40
	}
	if shift != 0 {
		v = v[:len(v)-1]
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)>>shift {
		return 0, errors.New("want a positive byte count such as 1073741824 or 1G")
	}
	return n << shift, nil
}

// ErrTooLarge is wrapped when an archive expands beyond the byte limit.
var ErrTooLarge = errors.New("archive expands beyond the size limit")

// ErrUnsafeEntry is wrapped when an archive entry would escape the target
// directory (absolute name, "..", write through a symlink, hard link out).
var ErrUnsafeEntry = errors.New("unsafe archive entry")

// Extract unpacks the tar stream r into the existing directory dst without
// ever creating, writing, chmod-ing or chown-ing anything outside dst:
// entries are created relative to directory fds opened component by
// component with O_NOFOLLOW. Entries whose names are absolute or contain
// ".." are refused, as are entries whose parent path crosses a symlink and
// hard links whose target is not an existing entry inside dst reached
// without symlinks. Owners, setuid/setgid bits and device nodes are applied
// only when running as root; otherwise devices are skipped and everything
// is reported to the recorder. Directory modes and times are set after
// their contents. It returns the number of file data bytes written.
func Extract(ctx context.Context, dst string, r io.Reader, opt ExtractOptions) (int64, error) {
	x, err := newExtractor(ctx, dst, opt)
	if err != nil {
		return 0, err
	}
	defer x.close()
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return x.written, archiveErr(err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return x.written, err
		}
	}
	if err := x.finish(); err != nil {
		return x.written, err
	}
	return x.written, nil
}

// archiveErr turns the reader's errors into messages a user can act on.
func archiveErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "truncated") {
		return fmt.Errorf("archive is truncated: %w", err)
	}
	if errors.Is(err, tar.ErrHeader) {
		return fmt.Errorf("not a tar archive or corrupt: %w", err)
	}
	return err
}

// extractor holds the state of one extraction into root.
type extractor struct {
	ctx     context.Context
	root    int // O_PATH fd of the target directory
	opt     ExtractOptions
	isRoot  bool
	max     int64
	written int64
	// dirs are the directory entries whose mode, owner and times are set at
	// the end, after their contents; dirIndex maps rel to its slot so the
	// last entry for a directory wins.
	dirs     []dirMeta
	dirIndex map[string]int
	// added holds the paths this layer created, which its own whiteouts
	// must not remove (Layer mode only).
	added map[string]bool
	// lent maps the existing directories a non-root extraction made
	// writable to the modes finish gives back; checked holds those seen.
	lent    map[string]uint32
	checked map[string]bool
	// cacheFd is an O_PATH fd of the directory cacheRel (-1: none).
	cacheFd  int
	cacheRel string
	// noClone is set once FICLONE fails for want of support.
	noClone bool
	// skipped holds the device nodes a non-root extraction did not create,
	// while nothing else has been created at their paths.
	skipped map[string]bool
}

type dirMeta struct {
	rel      string
	mode     uint32
	uid, gid int
	atime    time.Time
	mtime    time.Time
}

func newExtractor(ctx context.Context, dst string, opt ExtractOptions) (*extractor, error) {
	fd, err := openRetry(unix.AT_FDCWD, dst, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: dst, Err: err}
	}
	max := opt.MaxBytes
	if max <= 0 {
		max = DefaultMaxImportBytes
	}
	return &extractor{
		ctx:      ctx,
		root:     fd,
		opt:      opt,
		isRoot:   os.Geteuid() == 0,
		max:      max,
		dirIndex: map[string]int{},
		added:    map[string]bool{},
		lent:     map[string]uint32{},
		checked:  map[string]bool{},
		skipped:  map[string]bool{},
		cacheFd:  -1,
	}, nil
}

func (x *extractor) close() {
	x.forget()
	unix.Close(x.root)
}

// cleanName validates an archive name and returns it relative to the top:
// absolute names and ".." components are refused rather than stripped, as
// no legitimate rootfs or layer archive has them.
func cleanName(name string) (string, error) {
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return "", fmt.Errorf("%w: empty or NUL in name %q", ErrUnsafeEntry, shortName(name))
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafeEntry, shortName(name))
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", fmt.Errorf("%w: name %q contains \"..\"", ErrUnsafeEntry, shortName(name))
		}
	}
	return path.Clean(name), nil
}

// shortName shortens an entry name for an error message: names can be tens
// of kilobytes long (deep nesting), and the start and the end say which
// entry it is. Messages quote names with %q, so control characters and
// invalid UTF-8 in hostile names reach the terminal escaped.
func shortName(name string) string {
	const keep = 100
	if len(name) <= 2*keep+16 {
		return name
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", name[:keep], len(name)-2*keep, name[len(name)-keep:])
}

// entry creates one archive entry.
func (x *extractor) entry(hdr *tar.Header, body io.Reader) error {
	if err := x.ctx.Err(); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, 'V': // global PAX records, volume label
		return nil
	}
	rel, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if err := x.create(rel, hdr, body); err != nil {
		return fmt.Errorf("entry %q: %w", shortName(hdr.Name), err)
	}
	return nil
}

func (x *extractor) create(rel string, hdr *tar.Header, body io.Reader) error {
	if rel == "." {
		if hdr.Typeflag != tar.TypeDir {
			return fmt.Errorf("%w: the top directory cannot become a %s", ErrUnsafeEntry, typeName(hdr.Typeflag))
		}
		if x.opt.Layer {
			return nil
		}
		x.deferDir(rel, hdr)
		return x.record(rel, hdr)
	}
	dir, base := path.Split(rel)
	dir = path.Clean(dir)

	if x.opt.Layer && strings.HasPrefix(base, whiteoutPrefix) {
		return x.whiteout(dir, base)
	}

	pfd, err := x.openDir(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := x.ensureWritable(pfd, dir); err != nil {
		return err
	}

	if hdr.Typeflag == tar.TypeLink {
		// Checked before anything at rel is replaced: a link to itself or
		// out of the tree must leave the tree as it was.
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link target: %w", err)
		}
		if target == rel {
			return nil
		}
		if target == "." {
			return fmt.Errorf("%w: hard link to the top directory", ErrUnsafeEntry)
		}
		tdir, tbase := path.Split(target)
		tfd, err := x.openDir(path.Clean(tdir), false)
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		defer unix.Close(tfd)
		var st unix.Stat_t
		err = fstatatRetry(tfd, tbase, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err == unix.ENOENT && x.skipped[target] {
			// A link to a device a non-root import could not create (and
			// no recorder left a placeholder for) is skipped the same way.
			if err := x.replace(pfd, base, false); err != nil {
				return err
			}
			x.skipped[rel] = true
			return x.record(rel, hdr)
		}
		if err != nil {
			return fmt.Errorf("hard link target %q: %w", hdr.Linkname, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			return fmt.Errorf("hard link target %q is a directory", hdr.Linkname)
		}
		if err := x.replace(pfd, base, false); err != nil {
			return err
		}
		// flags 0: a symlink target is linked itself, never followed.
		if err := retry(func() error { return unix.Linkat(tfd, tbase, pfd, base, 0) }); err != nil {
			return fmt.Errorf("linkat %q: %w", hdr.Linkname, err)
		}
		return x.done(rel, hdr)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		err = x.mkdir(pfd, base, rel, hdr)
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont:
		err = x.writeFile(pfd, base, hdr, body)
	case tar.TypeSymlink:
		err = x.symlink(pfd, base, hdr)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		var created bool
		created, err = x.mknod(pfd, base, hdr)
		if err == nil && !created {
			// A device a non-root import cannot create: only recorded
			// (the ownership recorder leaves a placeholder file).
			x.skipped[rel] = true
			return x.record(rel, hdr)
		}
	default:
		return fmt.Errorf("unsupported entry type %s", typeName(hdr.Typeflag))
	}
	if err != nil {
		return err
	}
	return x.done(rel, hdr)
}

// done notes that rel now exists and tells the recorder.
func (x *extractor) done(rel string, hdr *tar.Header) error {
	delete(x.skipped, rel)
	if x.opt.Layer {
		x.added[rel] = true
	}
	return x.record(rel, hdr)
}

func (x *extractor) record(rel string, hdr *tar.Header) error {
	if x.opt.Recorder == nil {
		return nil
	}
	if err := x.opt.Recorder.Record(rel, hdr); err != nil {
		return fmt.Errorf("recording metadata: %w", err)
	}
	return nil
}

const (
	whiteoutPrefix = ".wh."
	whiteoutOpaque = ".wh..wh..opq"
	whiteoutMeta   = ".wh..wh." // aufs' own bookkeeping (.wh..wh.plnk etc.)
)

// whiteout applies a layer's whiteout entry dir/base.
func (x *extractor) whiteout(dir, base string) error {
	pfd, err := x.openDir(dir, false)
	if errors.Is(err, unix.ENOENT) {
		return nil // nothing below to hide
	}
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := x.ensureWritable(pfd, dir); err != nil {
		return err
	}
	if base == whiteoutOpaque {
		return x.opaque(pfd, dir)
	}
	if strings.HasPrefix(base, whiteoutMeta) {
		return nil
	}
	name := base[len(whiteoutPrefix):]
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: whiteout %q", ErrUnsafeEntry, base)
	}
	if x.added[path.Join(dir, name)] {
		return nil
	}
	return x.remove(pfd, name)
}

// opaque removes the children of dir that lower layers left.
func (x *extractor) opaque(pfd int, dir string) error {
	names, err := readDirNames(pfd)
	if err != nil {
		return err
	}
	for _, n := range names {
		if x.added[path.Join(dir, n)] {
			continue
		}
		if err := x.remove(pfd, n); err != nil {
			return err
		}
	}
	return nil
}

// openDir opens the directory rel below the root, one component at a time
// with O_NOFOLLOW, so that no symlink, whoever created it, is ever
// followed. With create, missing directories are made (0755, as tar does
// for directories an archive implies but does not list).
//
// Archives list a directory's entries together, so the last directory
// opened is kept and duplicated while nothing has been removed: a removal
// (the only way a path can come to name another directory) drops it.
func (x *extractor) openDir(rel string, create bool) (int, error) {
	if x.cacheFd >= 0 && rel == x.cacheRel {
		for {
			fd, err := unix.FcntlInt(uintptr(x.cacheFd), unix.F_DUPFD_CLOEXEC, 0)
			if err != unix.EINTR {
				return fd, err
			}
		}
	}
	fd, err := openBeneath(x.root, rel, create)
	if err != nil {
		return -1, err
	}
	x.forget()
	if c, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0); err == nil {
		x.cacheFd, x.cacheRel = c, rel
	}
	return fd, nil
}

// forget drops the cached directory fd.
func (x *extractor) forget() {
	if x.cacheFd >= 0 {
		unix.Close(x.cacheFd)
		x.cacheFd, x.cacheRel = -1, ""
	}
}

// remove is removeAt for entries of the tree being extracted.
func (x *extractor) remove(pfd int, name string) error {
	x.forget()
	return removeAt(pfd, name)
}

func openBeneath(root int, rel string, create bool) (int, error) {
	fd, err := openRetry(root, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	if rel == "." || rel == "" {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." {
			continue
		}
		if c == ".." { // cleanName refuses these; never trust a caller
			unix.Close(fd)
			return -1, fmt.Errorf("%w: %q contains \"..\"", ErrUnsafeEntry, rel)
		}
		nfd, err := openRetry(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err == unix.ENOENT && create {
			err = retry(func() error { return unix.Mkdirat(fd, c, 0o755) })
			made := err == nil
			if made || err == unix.EEXIST {
				nfd, err = openRetry(fd, c, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
			if made && err == nil {
				// 0755 whatever the umask: a guest user must be able to
				// reach what the archive puts below.
				err = chmodFd(nfd, 0o755)
				if err != nil {
					unix.Close(nfd)
				}
			}
		}
		if err == unix.ENOTDIR || err == unix.ELOOP {
			var st unix.Stat_t
			if fstatatRetry(fd, c, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				err = fmt.Errorf("%w: path %q goes through a symlink", ErrUnsafeEntry, rel)
			} else {
				err = fmt.Errorf("%q is not a directory: %w", rel, unix.ENOTDIR)
			}
		}
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

// ensureWritable lends the owner write and search permission on an
// existing directory that is read-only to a non-root extraction (a layer
// applied onto a tree's 0555 directories); finish gives the mode back.
// Root needs no permission bits, and directories this extraction created
// stay 0700 until finish anyway.
func (x *extractor) ensureWritable(pfd int, dir string) error {
	if x.isRoot || x.checked[dir] {
		return nil
	}
	x.checked[dir] = true
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstat(pfd, &st) }); err != nil {
		return err
	}
	if st.Mode&0o300 == 0o300 || int(st.Uid) != os.Geteuid() {
		return nil
	}
	mode := st.Mode & 0o7777
	if err := chmodFd(pfd, mode|0o300); err != nil {
		return fmt.Errorf("making %q writable: %w", dir, err)
	}
	x.lent[dir] = mode
	return nil
}

// chmodFd changes the mode of the inode an O_PATH fd refers to (fchmod
// refuses O_PATH fds) through its /proc magic link, which names exactly
// that inode.
func chmodFd(fd int, mode uint32) error {
	return retry(func() error { return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode) })
}

// replace makes room for a new entry at pfd/base: whatever is there is
// removed, except a directory when a directory is coming (tar semantics:
// the directory is kept and its metadata updated).
func (x *extractor) replace(pfd int, base string, dir bool) error {
	var st unix.Stat_t
	err := fstatatRetry(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return err
	}
	if dir && st.Mode&unix.S_IFMT == unix.S_IFDIR {
		return nil
	}
	return x.remove(pfd, base)
}

func (x *extractor) deferDir(rel string, hdr *tar.Header) {
	m := dirMeta{rel: rel, mode: x.perm(hdr), uid: hdr.Uid, gid: hdr.Gid, atime: hdr.AccessTime, mtime: hdr.ModTime}
	if i, ok := x.dirIndex[rel]; ok {
		x.dirs[i] = m
		return
	}
	x.dirIndex[rel] = len(x.dirs)
	x.dirs = append(x.dirs, m)
}

// perm is the mode to set: permission bits plus sticky, and setuid/setgid
// only as root (a non-root import records them instead of handing the
// user setuid files of their own).
func (x *extractor) perm(hdr *tar.Header) uint32 {
	m := uint32(hdr.Mode) & 0o7777
	if !x.isRoot {
		m &^= unix.S_ISUID | unix.S_ISGID
	}
	return m
}

func (x *extractor) mkdir(pfd int, base, rel string, hdr *tar.Header) error {
	if err := x.replace(pfd, base, true); err != nil {
		return err
	}
	// 0700 until finish: the import must be able to write into directories
	// whose final mode is 0555 or 0000.
	if err := retry(func() error { return unix.Mkdirat(pfd, base, 0o700) }); err != nil && err != unix.EEXIST {
		return fmt.Errorf("mkdir: %w", err)
	}
	if xa := xattrs(hdr); len(xa) > 0 {
		fd, err := openRetry(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open directory: %w", err)
		}
		err = x.setXattrs(fd, xa)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	x.deferDir(rel, hdr)
	return nil
}

func (x *extractor) writeFile(pfd int, base string, hdr *tar.Header, body io.Reader) error {
	if hdr.Size < 0 {
		return fmt.Errorf("negative size %d", hdr.Size)
	}
	if x.written+hdr.Size > x.max || x.written+hdr.Size < 0 {
		return fmt.Errorf("%w of %d bytes (set NOOK_IMPORT_MAX_BYTES to raise it)", ErrTooLarge, x.max)
	}
	if err := x.replace(pfd, base, false); err != nil {
		return err
	}
	fd, err := openRetry(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), base)
	defer f.Close()
	if err := x.copyData(f, body, hdr.Size, isSparse(hdr)); err != nil {
		return err
	}
	x.written += hdr.Size
	if x.isRoot {
		if err := retry(func() error { return unix.Fchown(fd, hdr.Uid, hdr.Gid) }); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	// After chown, which clears setuid/setgid.
	if err := retry(func() error { return unix.Fchmod(fd, x.perm(hdr)) }); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	// After chown and chmod, which clear security.capability.
	if err := x.setXattrs(fd, xattrs(hdr)); err != nil {
		return err
	}
	if err := retry(func() error { return futimens(fd, times(hdr.AccessTime, hdr.ModTime)) }); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return f.Close()
}

// isSparse reports whether the archive stores hdr's file as sparse (GNU
// old-style 'S' entries, or the GNU.sparse.* PAX records of GNU tar's
// --format=posix): the tar reader gives its holes back as zeros.
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// copyData writes exactly size bytes of body to f. A body that is itself a
// file (directory sources) is reflinked where the filesystem can, else
// copied in the kernel by io.Copy's copy_file_range path. A sparse entry
// is written with holes where its data is zero, so an archive of a few
// KiB holding a file of 8 GiB apparent size does not fill the disk.
func (x *extractor) copyData(f *os.File, body io.Reader, size int64, sparse bool) error {
	if src, ok := body.(*os.File); ok && size > 0 && !x.noClone {
		switch err := unix.IoctlFileClone(int(f.Fd()), int(src.Fd())); err {
		case nil:
			return nil
		case unix.EOPNOTSUPP, unix.ENOTTY, unix.EXDEV, unix.EINVAL, unix.ENOSYS:
			x.noClone = true // this filesystem pair cannot reflink
		}
	}
	if src, ok := body.(*os.File); ok && size > 0 {
		var st unix.Stat_t
		if unix.Fstat(int(src.Fd()), &st) == nil && st.Blocks*512 < size {
			// A sparse source (an image's sparse file, or one a guest
			// made): copy its data segments only, or an ephemeral copy
			// would write every hole out in full.
			err := copyDataSegments(x.ctx, f, src, size)
			if err == nil {
				return nil
			}
			if err != errNoSeekData {
				return fmt.Errorf("write: %w", err)
			}
			// The source filesystem cannot tell data from holes:
			// copy it all, below.
		}
	}
	if x.ctx.Done() != nil {
		body = ctxReader{x.ctx, body}
	}
	rec := &readErr{r: body}
	var n int64
	var err error
	if sparse {
		n, err = copySparse(f, rec, size)
	} else {
		n, err = io.CopyN(f, rec, size)
	}
	switch {
	case err == nil:
		return nil
	case err == io.EOF:
		return fmt.Errorf("archive is truncated: %d of %d bytes: %w", n, size, io.ErrUnexpectedEOF)
	case err != rec.err:
		return fmt.Errorf("write: %w", err)
	}
	return archiveErr(err)
}

// sparseChunk is the granularity of holes copySparse leaves: a multiple of
// every filesystem block size in use.
const sparseChunk = 64 << 10

// copySparse copies size bytes from r to f (a new, empty file), seeking
// over chunks that are all zeros instead of writing them, and sets the
// final size with ftruncate so a trailing hole is kept too. Its results
// are io.CopyN's.
func copySparse(f *os.File, r io.Reader, size int64) (int64, error) {
	buf := make([]byte, sparseChunk)
	var n int64
	for n < size {
		chunk := buf[:min(int64(len(buf)), size-n)]
		m, err := io.ReadFull(r, chunk)
		if m > 0 {
			if isZero(chunk[:m]) {
				if _, err := f.Seek(int64(m), io.SeekCurrent); err != nil {
					return n, err
				}
			} else if _, err := f.Write(chunk[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if err == io.ErrUnexpectedEOF {
			err = io.EOF
		}
		if err != nil {
			return n, err
		}
	}
	if err := retry(func() error { return unix.Ftruncate(int(f.Fd()), size) }); err != nil {
		return n, err
	}
	return n, nil
}

var zeroChunk = make([]byte, sparseChunk)

// errNoSeekData is copyDataSegments's answer when the source's
// filesystem refuses SEEK_DATA before anything was copied.
var errNoSeekData = errors.New("SEEK_DATA unsupported")

// copyDataSegments copies size bytes of src to the new file f, reading
// only the data segments lseek(SEEK_DATA/SEEK_HOLE) reports and leaving
// holes elsewhere. Filesystems using the kernel's generic lseek answer the
// whole file as data; one that refuses SEEK_DATA (EINVAL, as some FUSE and
// network filesystems do) gets errNoSeekData, with nothing written.
func copyDataSegments(ctx context.Context, f, src *os.File, size int64) error {
	fd := int(src.Fd())
	for off := int64(0); off < size; {
		if err := ctx.Err(); err != nil {
			return err
		}
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err == unix.ENXIO || (err == nil && data >= size) {
			break // only a hole is left
		}
		if off == 0 && (err == unix.EINVAL || err == unix.EOPNOTSUPP) {
			return errNoSeekData
		}
		if err != nil {
			return fmt.Errorf("seek data: %w", err)
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return fmt.Errorf("seek hole: %w", err)
		}
		hole = min(hole, size)
		n, err := io.Copy(io.NewOffsetWriter(f, data), io.NewSectionReader(src, data, hole-data))
		if err != nil {
			return err
		}
		if n != hole-data {
			return fmt.Errorf("%s changed while being copied", src.Name())
		}
		off = hole
	}
	return retry(func() error { return unix.Ftruncate(int(f.Fd()), size) })
}

func isZero(b []byte) bool { return bytes.Equal(b, zeroChunk[:len(b)]) }

// readErr remembers the error of its reader, to tell a bad archive from a
// full disk after io.Copy.
type readErr struct {
	r   io.Reader
	err error
}

func (r *readErr) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

// ctxReader makes a long copy stop when the import is interrupted.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (x *extractor) symlink(pfd int, base string, hdr *tar.Header) error {
	if hdr.Linkname == "" || strings.IndexByte(hdr.Linkname, 0) >= 0 {
		return fmt.Errorf("symlink with empty or NUL target")
	}
	if err := x.replace(pfd, base, false); err != nil {
		return err
	}
	if err := retry(func() error { return unix.Symlinkat(hdr.Linkname, pfd, base) }); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	return x.ownAndTime(pfd, base, hdr)
}

// mknod creates a device or fifo; it reports false for a device a
// non-root import cannot create.
func (x *extractor) mknod(pfd int, base string, hdr *tar.Header) (bool, error) {
	var typ uint32
	switch hdr.Typeflag {
	case tar.TypeChar:
		typ = unix.S_IFCHR
	case tar.TypeBlock:
		typ = unix.S_IFBLK
	default:
		typ = unix.S_IFIFO
	}
	// The node replaces whatever an earlier entry left, as tar does, even
	// when it cannot be created and only the recorder learns of it.
	if err := x.replace(pfd, base, false); err != nil {
		return false, err
	}
	if typ != unix.S_IFIFO && !x.isRoot {
		return false, nil
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	if err := retry(func() error { return unix.Mknodat(pfd, base, typ|0o600, int(dev)) }); err != nil {
		return false, fmt.Errorf("mknod: %w", err)
	}
	if err := x.ownAndTime(pfd, base, hdr); err != nil {
		return false, err
	}
	if err := chmodNoFollow(pfd, base, x.perm(hdr)); err != nil {
		return false, fmt.Errorf("chmod: %w", err)
	}
	return true, nil
}

// ownAndTime sets owner (as root) and times of a non-directory that has no
// open fd, without following it if it is a symlink.
func (x *extractor) ownAndTime(pfd int, base string, hdr *tar.Header) error {
	if x.isRoot {
		if err := retry(func() error { return unix.Fchownat(pfd, base, hdr.Uid, hdr.Gid, unix.AT_SYMLINK_NOFOLLOW) }); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := retry(func() error {
		return unix.UtimesNanoAt(pfd, base, times(hdr.AccessTime, hdr.ModTime), unix.AT_SYMLINK_NOFOLLOW)
	}); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// finish sets the deferred directory metadata, deepest first, so a
// directory's final mode never stops its children being reached.
func (x *extractor) finish() error {
	sort.SliceStable(x.dirs, func(i, j int) bool {
		return strings.Count(x.dirs[i].rel, "/") > strings.Count(x.dirs[j].rel, "/")
	})
	for _, d := range x.dirs {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		if err := x.setDir(d); err != nil {
			return fmt.Errorf("directory %q: %w", d.rel, err)
		}
	}
	return x.giveBack()
}

// giveBack restores the modes ensureWritable lent, deepest first, except
// on directories an entry of the archive set explicitly.
func (x *extractor) giveBack() error {
	var rels []string
	for rel := range x.lent {
		if _, ok := x.dirIndex[rel]; !ok {
			rels = append(rels, rel)
		}
	}
	sort.Slice(rels, func(i, j int) bool { return strings.Count(rels[i], "/") > strings.Count(rels[j], "/") })
	for _, rel := range rels {
		fd, err := x.openDir(rel, false)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		if err != nil {
			return fmt.Errorf("directory %q: %w", rel, err)
		}
		err = chmodFd(fd, x.lent[rel])
		unix.Close(fd)
		if err != nil {
			return fmt.Errorf("directory %q: %w", rel, err)
		}
	}
	return nil
}

func (x *extractor) setDir(d dirMeta) error {
	var fd int
	var err error
	if d.rel == "." {
		fd, err = openRetry(x.root, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	} else {
		dir, base := path.Split(d.rel)
		var pfd int
		pfd, err = x.openDir(path.Clean(dir), false)
		if err != nil {
			return err
		}
		fd, err = openRetry(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(pfd)
	}
	if err == unix.ENOENT || err == unix.ENOTDIR || err == unix.ELOOP {
		return nil // replaced or removed by a later entry
	}
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if x.isRoot {
		if err := retry(func() error { return unix.Fchown(fd, d.uid, d.gid) }); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	if err := retry(func() error { return unix.Fchmod(fd, d.mode) }); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	if err := retry(func() error { return futimens(fd, times(d.atime, d.mtime)) }); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

const xattrPAXPrefix = "SCHILY.xattr."

// xattrs returns the entry's extended attributes from its PAX records.
func xattrs(hdr *tar.Header) map[string]string {
	var m map[string]string
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, xattrPAXPrefix); ok && name != "" {
			if m == nil {
				m = map[string]string{}
			}
			m[name] = v
		}
	}
	return m
}

// setXattrs sets what the kernel and filesystem allow. Attributes that
// need privileges nook lacks (security.capability, trusted.*) or that the
// filesystem does not support are skipped: the recorder has them all.
func (x *extractor) setXattrs(fd int, xa map[string]string) error {
	for name, val := range xa {
		err := retry(func() error { return unix.Fsetxattr(fd, name, []byte(val), 0) })
		switch {
		case err == nil:
		case err == unix.ENOTSUP, err == unix.EOPNOTSUPP:
		case !x.isRoot && (err == unix.EPERM || err == unix.EACCES):
		default:
			return fmt.Errorf("setxattr %s: %w", name, err)
		}
	}
	return nil
}

// times converts tar times for utimensat; a missing atime takes the mtime,
// a missing mtime leaves both alone.
func times(atime, mtime time.Time) []unix.Timespec {
	if mtime.IsZero() {
		omit := unix.Timespec{Nsec: unix.UTIME_OMIT}
		return []unix.Timespec{omit, omit}
	}
	if atime.IsZero() {
		atime = mtime
	}
	a, _ := unix.TimeToTimespec(atime)
	m, _ := unix.TimeToTimespec(mtime)
	return []unix.Timespec{a, m}
}

func typeName(t byte) string {
	switch t {
	case tar.TypeReg, tar.TypeRegA:
		return "regular file"
	case tar.TypeLink:
		return "hard link"
	case tar.TypeSymlink:
		return "symlink"
	case tar.TypeChar:
		return "character device"
	case tar.TypeBlock:
		return "block device"
	case tar.TypeDir:
		return "directory"
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("type %q", t)
}

// retry calls f until it does not fail with EINTR (which slow filesystems,
// FUSE and NFS among them, can return for any of these calls).
func retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

func openRetry(dirfd int, name string, flags int, mode uint32) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func fstatatRetry(dirfd int, name string, st *unix.Stat_t, flags int) error {
	return retry(func() error { return unix.Fstatat(dirfd, name, st, flags) })
}

// chmodNoFollow changes the mode of dirfd/name, failing rather than
// following it if it is a symlink: fchmodat2(AT_SYMLINK_NOFOLLOW) on 6.6+,
// else through the /proc magic link of an O_PATH|O_NOFOLLOW fd, which names
// exactly the inode that was checked.
func chmodNoFollow(dirfd int, name string, mode uint32) error {
	err := retry(func() error { return unix.Fchmodat(dirfd, name, mode, unix.AT_SYMLINK_NOFOLLOW) })
	if err != unix.EOPNOTSUPP && err != unix.ENOSYS {
		return err
	}
	fd, err := openRetry(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return unix.EOPNOTSUPP // symlinks have no mode of their own
	}
	return retry(func() error { return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode) })
}

// isMountRoot reports whether the directory fd is the root of a mount,
// from statx's STATX_ATTR_MOUNT_ROOT (5.8+), else by comparing its device
// with its parent's (which misses bind mounts of the same filesystem).
func isMountRoot(parent, fd int) (bool, error) {
	var stx unix.Statx_t
	err := retry(func() error {
		return unix.Statx(fd, "", unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW, unix.STATX_INO, &stx)
	})
	if err == nil && stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT != 0 {
		return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
	}
	var a, b unix.Stat_t
	if err := retry(func() error { return unix.Fstat(fd, &a) }); err != nil {
		return false, err
	}
	if err := retry(func() error { return unix.Fstat(parent, &b) }); err != nil {
		return false, err
	}
	return a.Dev != b.Dev, nil
}

// readDirNames lists the directory at the O_PATH fd dfd.
func readDirNames(dfd int) ([]string, error) {
	fd, err := openRetry(dfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), ".")
	defer f.Close()
	return f.Readdirnames(-1)
}

// removeAt removes dirfd/name and, if it is a directory, everything below
// it, without following any symlink. Directories the caller cannot read or
// write (guests leave 0000 and 0555 ones) are made accessible first.
func removeAt(dirfd int, name string) error {
	err := retry(func() error { return unix.Unlinkat(dirfd, name, 0) })
	if err == nil || err == unix.ENOENT {
		return nil
	}
	if err != unix.EISDIR {
		return fmt.Errorf("unlink %q: %w", name, err)
	}
	fd, err := openRetry(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == unix.EACCES {
		if cerr := chmodNoFollow(dirfd, name, 0o700); cerr == nil {
			fd, err = openRetry(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		}
	}
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open %q: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	// A mount inside the tree (a bind of a host directory left by a run
	// in this namespace) is not part of it: never delete through it.
	if mnt, err := isMountRoot(dirfd, fd); err != nil {
		return fmt.Errorf("stat %q: %w", name, err)
	} else if mnt {
		return fmt.Errorf("%q is a mount point, not removing what is mounted there: %w", name, unix.EBUSY)
	}
	var st unix.Stat_t
	if err := retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		return err
	}
	if st.Mode&0o300 != 0o300 && int(st.Uid) == os.Geteuid() {
		// Fails only if we do not own it; the unlinks below then report it.
		retry(func() error { return unix.Fchmod(fd, (st.Mode&0o7777)|0o700) })
	}
	for {
		names, err := f.Readdirnames(1024)
		for _, n := range names {
			if rerr := removeAt(fd, n); rerr != nil {
				return fmt.Errorf("in %q: %w", name, rerr)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read directory %q: %w", name, err)
		}
		// Unlinking while reading can make getdents skip entries; rewind.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
	}
	if err := retry(func() error { return unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR) }); err != nil && err != unix.ENOENT {
		return fmt.Errorf("rmdir %q: %w", name, err)
	}
	return nil
}
