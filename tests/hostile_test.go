package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Hostile archives, imported through the real binary: each one is either
// imported safely (and then looks exactly as the archive says) or refused
// with one clear error line, and nothing outside the store is ever
// created, written, chmod-ed or removed. The path traversal basics
// (../, absolute names, one symlink then a write through it, hard links
// out) are in TestImportBadInputs; these are the rest.

// hostileEnv is a store beside an outside directory that hostile entries
// aim at.
type hostileEnv struct {
	home, src, outside string
	u                  *unprivUser // nil: nook runs as root
}

func newHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	requireRoot(t)
	outside, err := os.MkdirTemp("/tmp", "nook-outside-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	writeFile(t, filepath.Join(outside, "secret"), []byte("secret"))
	if err := os.Mkdir(filepath.Join(outside, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	return &hostileEnv{home: t.TempDir(), src: t.TempDir(), outside: outside}
}

// newUnprivHostileEnv is newHostileEnv for imports by the unprivileged
// user, who owns the outside directory too: only the extractor, not
// permissions, keeps entries out of it.
func newUnprivHostileEnv(t *testing.T) *hostileEnv {
	t.Helper()
	u := unprivileged(t)
	e := newHostileEnv(t)
	base := u.TempDir(t)
	e.u, e.home, e.src = u, filepath.Join(base, "home"), filepath.Join(base, "src")
	os.Mkdir(e.src, 0o755)
	for _, p := range []string{e.src, e.outside, filepath.Join(e.outside, "secret"), filepath.Join(e.outside, "dir")} {
		if err := os.Chown(p, u.UID, u.GID); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// importFile imports the archive p as name with extra environment and
// checks that the outside directory and the host's /etc/passwd are
// untouched; it returns nook's result.
func (e *hostileEnv) importFile(t *testing.T, p, name string, env ...string) result {
	t.Helper()
	before := treeState(t, e.outside)
	var passwd syscall.Stat_t
	syscall.Stat("/etc/passwd", &passwd)
	cmd := nookCmd(e.home, "import", p, "--name", name)
	if e.u != nil {
		os.Chown(p, e.u.UID, e.u.GID)
		cmd = e.u.Command(nookBin, "import", p, "--name", name)
		cmd.Env = append(cmd.Env, "NOOK_HOME="+e.home)
	}
	cmd.Env = append(cmd.Env, env...)
	r := runCmd(t, cmd)
	if after := treeState(t, e.outside); after != before {
		t.Fatalf("outside changed:\nbefore:\n%s\nafter:\n%s\n%s", before, after, r)
	}
	var now syscall.Stat_t
	syscall.Stat("/etc/passwd", &now)
	if now.Nlink != passwd.Nlink || now.Mtim != passwd.Mtim {
		t.Fatalf("/etc/passwd touched")
	}
	return r
}

// refused checks a refused import of name: one clear error containing
// want, and nothing left in the store (no tree, no staging).
func (e *hostileEnv) refused(t *testing.T, r result, name string, want ...string) {
	t.Helper()
	mustFailCleanly(t, r)
	mustContain(t, r.Stderr, want...)
	if _, err := os.Lstat(filepath.Join(e.home, "rootfs", name)); err == nil {
		t.Fatalf("refused import left rootfs/%s", name)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.home, "tmp")); len(ents) != 0 {
		t.Fatalf("refused import left tmp/%v", ents)
	}
}

// tree is the imported tree of name.
func (e *hostileEnv) tree(name string) string {
	return filepath.Join(e.home, "rootfs", name, "rootfs")
}

func TestHostileSymlinkChains(t *testing.T) {
	t.Run("root", func(t *testing.T) { testHostileSymlinkChains(t, newHostileEnv(t)) })
	t.Run("unprivileged", func(t *testing.T) { testHostileSymlinkChains(t, newUnprivHostileEnv(t)) })
}

func testHostileSymlinkChains(t *testing.T, e *hostileEnv) {
	up := strings.Repeat("../", 30)
	for _, tc := range []struct {
		name string
		ents []tentry
	}{
		{"dotdot name", []tentry{
			{Name: "etc/", Type: tar.TypeDir},
			{Name: up + e.outside[1:] + "/new", Body: "pwned"}}},
		{"absolute name", []tentry{{Name: e.outside + "/secret", Body: "pwned"}}},
		{"hard link to an outside file", []tentry{{Name: "h", Type: tar.TypeLink, Link: e.outside + "/secret"}}},
		{"hard link up", []tentry{{Name: "h", Type: tar.TypeLink, Link: up + e.outside[1:] + "/secret"}}},
		{"absolute chain", []tentry{
			{Name: "c", Type: tar.TypeSymlink, Link: e.outside},
			{Name: "b", Type: tar.TypeSymlink, Link: "/c"},
			{Name: "a", Type: tar.TypeSymlink, Link: "b"},
			{Name: "a/secret", Body: "pwned"}}},
		{"relative chain through directories", []tentry{
			{Name: "x/", Type: tar.TypeDir},
			{Name: "x/y/", Type: tar.TypeDir},
			{Name: "x/y/up", Type: tar.TypeSymlink, Link: "../.."},
			{Name: "x/y/out", Type: tar.TypeSymlink, Link: "up/" + up + e.outside[1:]},
			{Name: "x/y/out/new", Body: "pwned"}}},
		{"chain ending in the outside directory, file below it", []tentry{
			{Name: "l1", Type: tar.TypeSymlink, Link: "l2/dir"},
			{Name: "l2", Type: tar.TypeSymlink, Link: e.outside},
			{Name: "l1/new", Body: "pwned"}}},
		{"directory replaced by a symlink, then written through", []tentry{
			{Name: "d/", Type: tar.TypeDir},
			{Name: "d/f", Body: "inside"},
			{Name: "d", Type: tar.TypeSymlink, Link: e.outside},
			{Name: "d/secret", Body: "pwned"}}},
		{"hard link through a symlink chain", []tentry{
			{Name: "s1", Type: tar.TypeSymlink, Link: "s2"},
			{Name: "s2", Type: tar.TypeSymlink, Link: e.outside},
			{Name: "h", Type: tar.TypeLink, Link: "s1/secret"}}},
		{"dot components around the escape", []tentry{
			{Name: "./s", Type: tar.TypeSymlink, Link: e.outside},
			{Name: "././s/./secret", Body: "pwned"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(e.src, "chain.tar"), buildTar(t, tc.ents))
			e.refused(t, e.importFile(t, p, "chain"), "chain", "unsafe archive entry")
		})
	}

	// Symlinks that point out are ordinary entries (a guest resolves
	// them inside its root): imported as symlinks, never followed.
	p := writeFile(t, filepath.Join(e.src, "links.tar"), buildTar(t, []tentry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/out", Type: tar.TypeSymlink, Link: e.outside + "/secret"},
		{Name: "etc/up", Type: tar.TypeSymlink, Link: up + "etc/shadow"},
		{Name: "etc/hl", Type: tar.TypeLink, Link: "etc/out"},
		// A regular file over a symlink replaces the symlink.
		{Name: "etc/over", Type: tar.TypeSymlink, Link: e.outside + "/secret"},
		{Name: "etc/over", Body: "replaced"},
	}))
	if r := e.importFile(t, p, "links"); r.Code != 0 {
		t.Fatal(r)
	}
	tree := e.tree("links")
	if l, err := os.Readlink(filepath.Join(tree, "etc/hl")); err != nil || l != e.outside+"/secret" {
		t.Errorf("hard link to a symlink: %q %v", l, err)
	}
	if b, err := os.ReadFile(filepath.Join(tree, "etc/over")); err != nil || string(b) != "replaced" {
		t.Errorf("file over symlink: %q %v", b, err)
	}
}

// TestHostileDevicesSetuidUnprivileged: an Alpine archive with device
// nodes (the host's disk and memory, and a hard link to one) and
// setuid-root programs added, imported by a user without root: no device
// node and no setuid bit reaches the disk, every file is the user's, and a
// rootless guest sees the archive's types and modes (from the ownership
// store) while reading a "device" reads an empty placeholder, nothing of
// the host's.
func TestHostileDevicesSetuidUnprivileged(t *testing.T) {
	u := unprivileged(t)
	base := u.TempDir(t)
	home := filepath.Join(base, "store")
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	copyTarball(t, tw, sharedRootfs(t, alpine320))
	hdrs := []*tar.Header{
		{Name: "devices/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "devices/sda", Typeflag: tar.TypeBlock, Mode: 0o666, Devmajor: 8, Devminor: 0},
		{Name: "devices/mem", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 1},
		{Name: "devices/mem-link", Typeflag: tar.TypeLink, Linkname: "devices/mem"},
		{Name: "bin/suid", Typeflag: tar.TypeReg, Mode: 0o4755, Size: 4},
		{Name: "bin/sgid", Typeflag: tar.TypeReg, Mode: 0o2755, Size: 4, Gid: 42},
		{Name: "suiddir/", Typeflag: tar.TypeDir, Mode: 0o6777},
	}
	for _, h := range hdrs {
		h.ModTime = time.Unix(1700000000, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("ELF!"))
		}
	}
	tw.Close()
	src := filepath.Join(base, "devs.tar")
	writeFile(t, src, buf.Bytes())
	os.Chown(src, u.UID, u.GID)
	if r := u.Nook(t, home, "import", src, "--name", "devs"); r.Code != 0 {
		t.Fatal(r)
	}
	tree := filepath.Join(home, "rootfs", "devs", "rootfs")
	err := filepath.Walk(tree, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&(os.ModeDevice|os.ModeCharDevice) != 0 {
			t.Errorf("%s is a device node on disk", p)
		}
		if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 {
			t.Errorf("%s has %v on disk", p, fi.Mode())
		}
		if int(st.Uid) != u.UID {
			t.Errorf("%s owned by uid %d", p, st.Uid)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := u.Nook(t, home, "run", "--mode", "rootless", "devs", "--", "sh", "-c",
		"stat -c '%n %F %t:%T %a' /devices/sda /devices/mem /bin/suid /bin/sgid /suiddir; "+
			"wc -c < /devices/sda; wc -c < /devices/mem-link")
	want := "/devices/sda block special file 8:0 666\n/devices/mem character special file 1:1 666\n" +
		"/bin/suid regular file 0:0 4755\n/bin/sgid regular file 0:0 2755\n/suiddir directory 0:0 6777\n0\n0\n"
	if r.Code != 0 || r.Stdout != want {
		t.Errorf("guest view:\n%s\nwant stdout\n%s", r, want)
	}
}

// copyTarball copies every entry of the (gzip) tarball p into tw.
func copyTarball(t *testing.T, tw *tar.Writer, p string) {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
}

// sparseTar writes a tarball (GNU tar, format) holding one sparse file of
// 8 GiB apparent size with a few bytes of data at its start and its end.
func sparseTar(t *testing.T, dir, format string) string {
	t.Helper()
	tree := filepath.Join(dir, "tree-"+format)
	if err := os.MkdirAll(filepath.Join(tree, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(tree, "etc", "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("head")
	f.WriteAt([]byte("tail"), 8<<30-4)
	f.Close()
	out := filepath.Join(dir, "sparse-"+format+".tar.gz")
	r := runCmd(t, exec.Command("tar", "--sparse", "--format="+format, "-czf", out, "-C", tree, "."))
	if r.Code != 0 {
		t.Fatalf("tar: %s", r)
	}
	return out
}

// TestHostileSparseFile: an 8 GiB sparse file (GNU and PAX sparse
// formats) is imported with its holes, so it takes a few blocks on disk
// and reads back as the archive says; its apparent size counts against
// NOOK_IMPORT_MAX_BYTES (a guest copying it, or an ephemeral copy, may
// write it densely), so a lower limit refuses it clearly.
func TestHostileSparseFile(t *testing.T) {
	e := newHostileEnv(t)
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			p := sparseTar(t, e.src, format)
			if fi, _ := os.Stat(p); fi.Size() > 1<<20 {
				t.Fatalf("sparse tarball is %d bytes", fi.Size())
			}
			e.refused(t, e.importFile(t, p, "sparse", "NOOK_IMPORT_MAX_BYTES=1G"), "sparse", "size limit", "NOOK_IMPORT_MAX_BYTES")
			if r := e.importFile(t, p, "sparse"); r.Code != 0 {
				t.Fatal(r)
			}
			f, err := os.Open(filepath.Join(e.tree("sparse"), "etc", "sparse"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var st syscall.Stat_t
			syscall.Fstat(int(f.Fd()), &st)
			if st.Size != 8<<30 {
				t.Errorf("size %d, want 8 GiB", st.Size)
			}
			if st.Blocks*512 > 16<<20 {
				t.Errorf("sparse file takes %d bytes on disk", st.Blocks*512)
			}
			head, tail := make([]byte, 4), make([]byte, 4)
			f.ReadAt(head, 0)
			f.ReadAt(tail, 8<<30-4)
			mid := make([]byte, 4096)
			f.ReadAt(mid, 4<<30)
			if string(head) != "head" || string(tail) != "tail" || !bytes.Equal(mid, make([]byte, 4096)) {
				t.Errorf("sparse file content: %q %q", head, tail)
			}
			if r := nook(t, e.home, "rm", "sparse"); r.Code != 0 {
				t.Fatal(r)
			}
		})
	}
}

// bigEntryTar writes a gzip tarball of n entries named by name(i), each
// with body(i); it streams, so large archives never sit in memory.
func bigEntryTar(t *testing.T, p string, n int, hdr func(i int) *tar.Header) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	for i := range n {
		h := hdr(i)
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			io.CopyN(tw, zeroReader{}, h.Size)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestHostileManyEntries: 100,000 entries (files, hard links, symlinks in
// 100 directories) import completely, and rm removes them all.
func TestHostileManyEntries(t *testing.T) {
	e := newHostileEnv(t)
	const n = 100000
	p := filepath.Join(e.src, "many.tar.gz")
	bigEntryTar(t, p, n, func(i int) *tar.Header {
		dir := fmt.Sprintf("d%02d", i%100)
		switch {
		case i < 100:
			return &tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}
		case i%10 == 1:
			return &tar.Header{Name: fmt.Sprintf("%s/h%d", dir, i), Typeflag: tar.TypeLink, Linkname: fmt.Sprintf("d%02d/f%d", (i-1)%100, i-1)}
		case i%10 == 2:
			return &tar.Header{Name: fmt.Sprintf("%s/s%d", dir, i), Typeflag: tar.TypeSymlink, Linkname: "../etc/passwd"}
		default:
			return &tar.Header{Name: fmt.Sprintf("%s/f%d", dir, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(i % 3)}
		}
	})
	start := time.Now()
	if r := e.importFile(t, p, "many"); r.Code != 0 {
		t.Fatal(r)
	}
	t.Logf("imported %d entries in %v", n, time.Since(start))
	count := 0
	filepath.Walk(e.tree("many"), func(string, os.FileInfo, error) error { count++; return nil })
	if count != n+1 {
		t.Errorf("tree has %d entries, want %d", count, n+1)
	}
	if r := nook(t, e.home, "rm", "many"); r.Code != 0 {
		t.Fatal(r)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.home, "rootfs")); len(ents) != 0 {
		t.Fatalf("rm left %v", ents)
	}
}

// TestHostileDeepNesting: 2000 nested directories (paths of 18,000
// bytes, far beyond PATH_MAX) import, since every entry is reached one
// component at a time, and are removed again by rm. (A symlink target
// over PATH_MAX would be refused by symlinkat with ENAMETOOLONG.)
func TestHostileDeepNesting(t *testing.T) {
	e := newHostileEnv(t)
	const depth = 2000
	comp := "level0000"
	p := filepath.Join(e.src, "deep.tar.gz")
	bigEntryTar(t, p, depth+2, func(i int) *tar.Header {
		name := strings.Repeat(comp+"/", min(i, depth))
		switch {
		case i < depth:
			return &tar.Header{Name: name + comp + "/", Typeflag: tar.TypeDir, Mode: 0o755}
		case i == depth:
			return &tar.Header{Name: name + "leaf", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10}
		default:
			return &tar.Header{Name: name + "up", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("../", 1000) + "etc/passwd"}
		}
	})
	if r := e.importFile(t, p, "deep"); r.Code != 0 {
		t.Fatal(r)
	}
	// Walk down with fd-relative opens: the path is too long for one.
	fd, err := syscall.Open(e.tree("deep"), syscall.O_RDONLY|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < depth; i++ {
		nfd, err := syscall.Openat(fd, comp, syscall.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW, 0)
		syscall.Close(fd)
		if err != nil {
			t.Fatalf("level %d: %v", i, err)
		}
		fd = nfd
	}
	var st unix.Stat_t
	err = unix.Fstatat(fd, "leaf", &st, 0)
	syscall.Close(fd)
	if err != nil || st.Size != 10 {
		t.Fatalf("leaf: %v size %d", err, st.Size)
	}
	if r := nook(t, e.home, "rm", "deep"); r.Code != 0 {
		t.Fatal(r)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.home, "rootfs")); len(ents) != 0 {
		t.Fatalf("rm left %v", ents)
	}

	// A failing entry deep down is named briefly: the error stays one
	// readable line, not a 3,000-byte path.
	p = filepath.Join(e.src, "deep-bad.tar.gz")
	bigEntryTar(t, p, 2, func(i int) *tar.Header {
		name := strings.Repeat(comp+"/", 300) + "up"
		if i == 0 {
			return &tar.Header{Name: name[:len(name)-2] + "f", Typeflag: tar.TypeReg, Mode: 0o644}
		}
		return &tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("../", 1500)}
	})
	r := e.importFile(t, p, "deepbad")
	e.refused(t, r, "deepbad", "file name too long")
	if len(r.Stderr) > 400 {
		t.Errorf("error of %d bytes:\n%s", len(r.Stderr), r.Stderr)
	}
}

// TestHostileNames: names with newlines, control characters, invalid
// UTF-8 and maximal components are files like any other: imported with
// exactly those bytes.
func TestHostileNames(t *testing.T) {
	t.Run("root", func(t *testing.T) { testHostileNames(t, newHostileEnv(t)) })
	t.Run("unprivileged", func(t *testing.T) { testHostileNames(t, newUnprivHostileEnv(t)) })
}

func testHostileNames(t *testing.T, e *hostileEnv) {
	names := []string{
		"etc/new\nline",
		"etc/\xff\xfe\x80invalid",
		"etc/tab\there\x1b[31m",
		"etc/" + strings.Repeat("n", 255),
		"etc/ spaces and \\ backslash ",
		"etc/-dash",
	}
	ents := []tentry{{Name: "etc/", Type: tar.TypeDir}}
	for _, n := range names {
		ents = append(ents, tentry{Name: n, Body: n})
	}
	ents = append(ents, tentry{Name: "etc/link\n", Type: tar.TypeSymlink, Link: "new\nline"})
	p := writeFile(t, filepath.Join(e.src, "names.tar"), buildTar(t, ents))
	if r := e.importFile(t, p, "names"); r.Code != 0 {
		t.Fatal(r)
	}
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(e.tree("names"), n))
		if err != nil || string(b) != n {
			t.Errorf("%q: %q %v", n, b, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(e.tree("names"), "etc/link\n")); err != nil || string(b) != "etc/new\nline" {
		t.Errorf("symlink with newlines: %q %v", b, err)
	}
	// A component over NAME_MAX is refused by the kernel: a clear error.
	p = writeFile(t, filepath.Join(e.src, "long.tar"), buildTar(t, []tentry{{Name: "etc/" + strings.Repeat("n", 256), Body: "x"}}))
	e.refused(t, e.importFile(t, p, "long"), "long", "file name too long")
	// A refused name with a newline and a terminal escape is quoted: the
	// error stays one line and sends no escape sequence to the terminal.
	p = writeFile(t, filepath.Join(e.src, "evil.tar"), buildTar(t, []tentry{{Name: "etc/x\n\x1b[2J/../y", Body: "x"}}))
	r := e.importFile(t, p, "evil")
	e.refused(t, r, "evil", "unsafe archive entry", `\n\x1b[2J`)
	if strings.Contains(r.Stderr, "\x1b") {
		t.Errorf("raw escape sequence in the error: %q", r.Stderr)
	}
}

// TestHostileBombs: decompression bombs stop at NOOK_IMPORT_MAX_BYTES
// with a clear error, whether the data is in one file, spread over many,
// or hidden after the end of the tar archive (where only the decompressor
// sees it).
func TestHostileBombs(t *testing.T) {
	e := newHostileEnv(t)
	limit := "NOOK_IMPORT_MAX_BYTES=64M"
	oneBig := filepath.Join(e.src, "one.tar.gz")
	bigEntryTar(t, oneBig, 2, func(i int) *tar.Header {
		if i == 0 {
			return &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}
		}
		return &tar.Header{Name: "etc/zeros", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 30}
	})
	many := filepath.Join(e.src, "many.tar.gz")
	bigEntryTar(t, many, 101, func(i int) *tar.Header {
		if i == 0 {
			return &tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}
		}
		return &tar.Header{Name: fmt.Sprintf("etc/z%d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 20}
	})
	// A valid small archive followed, inside the same gzip stream, by a
	// gigabyte of zeros.
	trailing := filepath.Join(e.src, "trailing.tar.gz")
	{
		f, err := os.Create(trailing)
		if err != nil {
			t.Fatal(err)
		}
		zw, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
		zw.Write(buildTar(t, []tentry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/hostname", Body: "bomb\n"}}))
		io.CopyN(zw, zeroReader{}, 1<<30)
		zw.Close()
		f.Close()
	}
	for _, p := range []string{oneBig, many, trailing} {
		t.Run(filepath.Base(p), func(t *testing.T) {
			if fi, _ := os.Stat(p); fi.Size() > 2<<20 {
				t.Fatalf("bomb is %d bytes compressed", fi.Size())
			}
			start := time.Now()
			e.refused(t, e.importFile(t, p, "bomb", limit), "bomb", "size limit", "NOOK_IMPORT_MAX_BYTES")
			if d := time.Since(start); d > 30*time.Second {
				t.Errorf("refusing took %v", d)
			}
		})
	}
}

// TestHostileTruncated: archives cut anywhere (in a header, in file data,
// in the compressed stream, for every compressor) are refused clearly and
// leave nothing.
func TestHostileTruncated(t *testing.T) {
	e := newHostileEnv(t)
	body := strings.Repeat("0123456789abcdef", 4096)
	plain := buildTar(t, []tentry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/a", Body: body}, {Name: "etc/b", Body: body}})
	cases := map[string][]byte{
		"in-header.tar": plain[:512+100],
		"in-data.tar":   plain[:512*2+40000],
		"no-end.tar":    plain[:len(plain)-1024],
	}
	for _, c := range []string{"gzip", "xz", "zstd", "bzip2"} {
		cmd := exec.Command(c, "-c")
		cmd.Stdin = bytes.NewReader(plain)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		cases["cut."+c] = out[:len(out)*2/3]
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(e.src, name), data)
			r := e.importFile(t, p, "cut")
			if name == "no-end.tar" && r.Code == 0 {
				// GNU tar accepts an archive without its end blocks too.
				nook(t, e.home, "rm", "cut")
				return
			}
			e.refused(t, r, "cut", "truncated")
		})
	}
}

// TestHostileSparseFileEphemeral: a rootless ephemeral run copies a tree
// holding an 8 GiB sparse file with its holes, so the copy fits a store of
// 256 MiB; the guest reads the file as the archive says.
func TestHostileSparseFileEphemeral(t *testing.T) {
	u := unprivileged(t)
	base := u.TempDir(t)
	tree := filepath.Join(base, "tree")
	os.Mkdir(tree, 0o755)
	if r := runCmd(t, exec.Command("tar", "-xzf", sharedRootfs(t, alpine320), "-C", tree)); r.Code != 0 {
		t.Fatal(r)
	}
	f, err := os.Create(filepath.Join(tree, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("head")
	f.WriteAt([]byte("tail"), 8<<30-4)
	f.Close()
	src := filepath.Join(base, "sparse.tar.gz")
	if r := runCmd(t, exec.Command("tar", "--sparse", "-czf", src, "-C", tree, ".")); r.Code != 0 {
		t.Fatal(r)
	}
	os.Chown(src, u.UID, u.GID)
	mnt := smallFS(t, base, 256<<20, u.UID, u.GID)
	home := filepath.Join(mnt, "home")
	if r := u.Nook(t, home, "import", "--name", "sp", src); r.Code != 0 {
		t.Fatal(r)
	}
	r := u.Nook(t, home, "run", "--ephemeral", "sp", "--", "sh", "-c", "head -c 4 /sparse; tail -c 4 /sparse; stat -c ' %s' /sparse")
	if r.Code != 0 || r.Stdout != "headtail 8589934592\n" {
		t.Fatal(r)
	}
	if left := tmpEntries(t, home); len(left) != 0 {
		t.Fatalf("ephemeral run left %v", left)
	}
}
