package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/sys/unix"
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
	name, err = s.importSource(ctx, source, opt)
	if err != nil {
		return "", fmt.Errorf("import %s: %w", source, err)
	}
	return name, nil
}

func (s *Store) importSource(ctx context.Context, source string, opt ImportOptions) (string, error) {
	src, err := filepath.Abs(source)
	if err != nil {
		return "", err
	}
	st, err := os.Stat(src)
	if err != nil {
		return "", unwrapPathErr(err)
	}
	if opt.Name != "" {
		if err := s.checkFree(opt.Name); err != nil {
			return "", err
		}
	}
	if opt.MaxBytes <= 0 {
		if opt.MaxBytes, err = MaxImportBytes(); err != nil {
			return "", err
		}
	}

	staging, lock, err := s.lockedTemp("import-")
	if err != nil {
		return "", fmt.Errorf("staging directory: %w", err)
	}
	defer func() {
		// On success staging has been renamed away and this finds nothing.
		RemoveTree(staging)
		lock.Close()
	}()
	tree := filepath.Join(staging, "rootfs")
	if err := os.Mkdir(tree, 0o755); err != nil {
		return "", err
	}
	// Images say nothing about / (layers never set it): 0755 whatever the
	// umask, so guest users can reach the tree. A tarball's "./" entry
	// overrides it.
	if err := os.Chmod(tree, 0o755); err != nil {
		return "", err
	}

	im := &importer{ctx: ctx, src: src, staging: staging, tree: tree, max: opt.MaxBytes, progress: opt.Progress}
	newRec := opt.Recorder
	if newRec == nil && os.Geteuid() != 0 {
		newRec = NewRecorder
	}
	if newRec != nil && (!st.IsDir() || isOCILayout(src)) {
		// Directory copies carry the host's owners, not an archive's, so
		// they are not recorded.
		im.rec, err = newRec(tree, filepath.Join(staging, "ownership.db"))
		if err != nil {
			return "", fmt.Errorf("ownership recorder: %w", err)
		}
		defer func() {
			if im.rec != nil {
				im.rec.Close()
			}
		}()
	}

	if st.IsDir() {
		err = im.directory()
	} else if !st.Mode().IsRegular() {
		err = fmt.Errorf("not a regular file or directory")
	} else {
		err = im.file()
	}
	im.finishProgress()
	if err != nil {
		return "", err
	}
	if ents, err := os.ReadDir(tree); err != nil {
		return "", err
	} else if len(ents) == 0 {
		return "", errors.New("the source holds no files")
	}

	name := opt.Name
	if name == "" {
		name = sanitizeName(im.defaultName)
		if name == "" {
			return "", errors.New("cannot derive a store name from the source: use --name")
		}
	}
	if err := s.checkFree(name); err != nil {
		return "", err
	}
	if im.rec != nil {
		err := im.rec.Close()
		im.rec = nil
		if err != nil {
			return "", fmt.Errorf("ownership recorder: %w", err)
		}
	}
	meta := Meta{Name: name, Source: src, Format: im.format, Size: im.written, Imported: time.Now().UTC().Truncate(time.Second)}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(staging, "meta.json"), append(b, '\n'), 0o600); err != nil {
		return "", err
	}
	if err := ctx.Err(); err != nil {
		return "", err
	}
	err = retry(func() error {
		return unix.Renameat2(unix.AT_FDCWD, staging, unix.AT_FDCWD, s.Dir(name), unix.RENAME_NOREPLACE)
	})
	if err == unix.EINVAL || err == unix.ENOSYS {
		// A filesystem without RENAME_NOREPLACE: a plain rename replaces
		// only an empty directory, which no import leaves.
		if s.Exists(name) {
			err = unix.EEXIST
		} else {
			err = os.Rename(staging, s.Dir(name))
		}
	}
	if err == unix.EEXIST || err == unix.ENOTEMPTY {
		return "", fmt.Errorf("%q: %w", name, ErrExists)
	}
	if err != nil {
		return "", fmt.Errorf("moving into the store: %w", err)
	}
	return name, nil
}

func (s *Store) checkFree(name string) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if _, err := os.Lstat(s.Dir(name)); err == nil {
		return fmt.Errorf("%q: %w", name, ErrExists)
	}
	return nil
}

// unwrapPathErr drops the path of an *os.PathError, which the caller's
// message already names.
func unwrapPathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// importer is one import in progress.
type importer struct {
	ctx         context.Context
	src         string // absolute source path
	staging     string
	tree        string
	max         int64
	written     int64
	rec         MetadataRecorder
	format      string
	defaultName string
	progress    bool
	bar         *progressbar.ProgressBar
}

func (im *importer) startProgress(total int64) {
	if !im.progress || im.bar != nil {
		return
	}
	im.bar = progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stderr),
		progressbar.OptionSetDescription("importing"),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (im *importer) finishProgress() {
	if im.bar != nil {
		im.bar.Finish()
		im.bar = nil
	}
}

// counted reports the bytes read from r to the progress bar.
func (im *importer) counted(r io.Reader) io.Reader {
	if im.bar == nil {
		return r
	}
	return &countingReader{r: r, bar: im.bar}
}

type countingReader struct {
	r   io.Reader
	bar *progressbar.ProgressBar
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.bar.Add(n)
	return n, err
}

func (im *importer) extract(r io.Reader, layer bool) error {
	n, err := Extract(im.ctx, im.tree, r, ExtractOptions{Layer: layer, Recorder: im.rec, MaxBytes: im.max - im.written})
	im.written += n
	return err
}

// directory imports a directory: an OCI layout, or a tree to copy.
func (im *importer) directory() error {
	im.defaultName = filepath.Base(im.src)
	if isOCILayout(im.src) {
		im.format = "oci-layout"
		return im.ociLayout(im.src)
	}
	im.format = "directory"
	if err := im.notAncestorOfStore(); err != nil {
		return err
	}
	if err := os.Remove(im.tree); err != nil {
		return err
	}
	n, err := copyTreeCounted(im.ctx, im.tree, im.src, im.max)
	im.written = n
	return err
}

// notAncestorOfStore refuses to copy a directory that holds the store: the
// copy would find its own staging directory and grow until the size limit.
func (im *importer) notAncestorOfStore() error {
	src, err := filepath.EvalSymlinks(im.src)
	if err != nil {
		return err
	}
	staging, err := filepath.EvalSymlinks(im.staging)
	if err != nil {
		return err
	}
	if src == "/" || strings.HasPrefix(staging, src+"/") {
		return fmt.Errorf("the directory contains the nook store (%s)", im.staging)
	}
	return nil
}

// isOCILayout reports whether dir is an OCI image layout.
func isOCILayout(dir string) bool {
	return isFile(filepath.Join(dir, "oci-layout")) && isFile(filepath.Join(dir, "index.json"))
}

func isFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// file imports a (possibly compressed) tar: a rootfs tarball, or an image
// archive (docker save, OCI layout) recognised by its first entry.
func (im *importer) file() error {
	im.defaultName = trimArchiveExt(filepath.Base(im.src))
	f, err := os.Open(im.src)
	if err != nil {
		return unwrapPathErr(err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil {
		im.startProgress(st.Size())
	}
	d, err := decompress(im.counted(f))
	if err != nil {
		return err
	}
	defer d.Close()
	br := bufio.NewReaderSize(d, 1<<16)
	if !looksLikeImage(br) {
		im.format = "tar"
		if d.kind != None {
			im.format += "+" + string(d.kind)
		}
		if err := im.extract(br, false); err != nil {
			return err
		}
		return d.drain(im.ctx, im.max-im.written, im.max)
	}

	// An image archive is read out of order, so it must be a plain file.
	archive := im.src
	if d.kind != None {
		archive = filepath.Join(im.staging, "source.tar")
		if err := im.spool(archive, br); err != nil {
			return err
		}
		if err := d.drain(im.ctx, im.max-im.written, im.max); err != nil {
			return err
		}
	}
	im.finishProgress()
	if hasMember(archive, "manifest.json") {
		im.format = "docker-save"
		return im.dockerSave(archive)
	}
	im.format = "oci-layout"
	dir := filepath.Join(im.staging, "layout")
	if err := os.Mkdir(dir, 0o700); err != nil {
		return err
	}
	if err := extractPlain(im.ctx, dir, archive, im.max); err != nil {
		return fmt.Errorf("unpacking the OCI layout: %w", err)
	}
	return im.ociLayout(dir)
}

// spool writes the decompressed image archive to p, within the byte limit.
func (im *importer) spool(p string, r io.Reader) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	if im.ctx.Done() != nil {
		r = ctxReader{im.ctx, r}
	}
	n, err := io.Copy(f, io.LimitReader(r, im.max+1))
	if err != nil {
		return fmt.Errorf("decompressing: %w", err)
	}
	if n > im.max {
		return fmt.Errorf("%w of %d bytes (set NOOK_IMPORT_MAX_BYTES to raise it)", ErrTooLarge, im.max)
	}
	return f.Close()
}

// looksLikeImage tells an image archive from a rootfs tarball by its first
// entry: docker save and OCI layouts start with blobs/, a 64-hex layer
// directory or config, manifest.json, index.json, oci-layout or
// repositories; no rootfs has any of those at its top.
func looksLikeImage(br *bufio.Reader) bool {
	head, _ := br.Peek(1 << 16)
	hdr, err := tar.NewReader(bytes.NewReader(head)).Next()
	if err != nil {
		return false
	}
	first := strings.TrimPrefix(hdr.Name, "./")
	top, _, _ := strings.Cut(first, "/")
	switch top {
	case "blobs", "manifest.json", "index.json", "oci-layout", "repositories":
		return true
	}
	return hex64.MatchString(strings.TrimSuffix(top, ".json"))
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// trimArchiveExt drops tar and compression extensions from a file name.
func trimArchiveExt(base string) string {
	for _, ext := range []string{".tar.gz", ".tar.xz", ".tar.zst", ".tar.zstd", ".tar.bz2", ".tgz", ".txz", ".tzst", ".tbz2", ".tbz", ".tar", ".gz", ".xz", ".zst", ".bz2"} {
		if b, ok := strings.CutSuffix(base, ext); ok && b != "" {
			return b
		}
	}
	return base
}

var badNameChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// sanitizeName turns a file name or image reference into a store name:
// "docker.io/library/alpine:3.20" becomes "alpine_3.20".
func sanitizeName(s string) string {
	if i := strings.LastIndex(s, "/"); i >= 0 && i < len(s)-1 {
		s = s[i+1:]
	}
	s = badNameChars.ReplaceAllString(s, "_")
	s = strings.TrimLeft(s, "._-")
	if len(s) > maxNameLen {
		s = s[:maxNameLen]
	}
	return s
}

// hasMember reports whether the tar at p has a top-level regular file name.
func hasMember(p, name string) bool {
	_, closer, err := openMember(p, name)
	if err != nil {
		return false
	}
	closer()
	return true
}

// openMember finds the regular file name in the tar at p, following
// symlink members (docker save links repeated layers), and returns a
// reader of its contents.
func openMember(p, name string) (io.Reader, func(), error) {
	for hops := 0; hops < 8; hops++ {
		f, err := os.Open(p)
		if err != nil {
			return nil, nil, err
		}
		tr := tar.NewReader(f)
		var link string
		for {
			hdr, err := tr.Next()
			if err == io.EOF {
				f.Close()
				return nil, nil, fmt.Errorf("%s not found in the archive", name)
			}
			if err != nil {
				f.Close()
				return nil, nil, archiveErr(err)
			}
			if path.Clean(strings.TrimPrefix(hdr.Name, "./")) != name {
				continue
			}
			switch hdr.Typeflag {
			case tar.TypeReg, tar.TypeRegA:
				return tr, func() { f.Close() }, nil
			case tar.TypeSymlink:
				link = path.Join(path.Dir(name), hdr.Linkname)
			case tar.TypeLink:
				link = path.Clean(hdr.Linkname)
			default:
				f.Close()
				return nil, nil, fmt.Errorf("%s in the archive is not a file", name)
			}
			break
		}
		f.Close()
		if strings.HasPrefix(link, "../") || strings.HasPrefix(link, "/") || link == ".." {
			return nil, nil, fmt.Errorf("%s in the archive links outside it", name)
		}
		name = link
	}
	return nil, nil, fmt.Errorf("%s: too many links", name)
}

// extractPlain unpacks only the directories and regular files of the tar
// at p into dir (an OCI layout needs nothing else, and a symlinked blob
// could make nook read a host file into the store).
func extractPlain(ctx context.Context, dir, p string, max int64) error {
	f, err := os.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	x, err := newExtractor(ctx, dir, ExtractOptions{MaxBytes: max})
	if err != nil {
		return err
	}
	defer x.close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return archiveErr(err)
		}
		if hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeRegA {
			continue
		}
		// Modes from the archive could make blobs unreadable to us.
		hdr.Mode |= 0o600
		if hdr.Typeflag == tar.TypeDir {
			hdr.Mode |= 0o700
		}
		if err := x.entry(hdr, tr); err != nil {
			return err
		}
	}
	return x.finish()
}

// copyTreeCounted is copyTree returning the bytes copied.
func copyTreeCounted(ctx context.Context, dst, src string, max int64) (int64, error) {
	var n int64
	err := copyTreeWith(ctx, dst, src, max, &n)
	return n, err
}
