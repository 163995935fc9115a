package rootfs

import (
	"archive/tar"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestApplyLayer(t *testing.T) {
	for _, kind := range []string{"dir", "tar", "tar.gz"} {
		t.Run(kind, func(t *testing.T) {
			s := newSandbox(t)
			lower := mkTar(t, []ent{
				{name: "./", typ: tar.TypeDir, mode: 0o755},
				{name: "etc/", typ: tar.TypeDir},
				{name: "etc/passwd", typ: tar.TypeReg, body: "old"},
				{name: "etc/gone", typ: tar.TypeReg},
				{name: "opq/", typ: tar.TypeDir},
				{name: "opq/old", typ: tar.TypeReg},
			})
			if err := extractBytes(s.root, lower, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			var src string
			layer := []ent{
				{name: "./", typ: tar.TypeDir, mode: 0o700},
				{name: "etc/", typ: tar.TypeDir},
				{name: "etc/passwd", typ: tar.TypeReg, body: "new"},
				{name: "etc/.wh.gone", typ: tar.TypeReg},
				{name: "opq/", typ: tar.TypeDir},
				{name: "opq/.wh..wh..opq", typ: tar.TypeReg},
				{name: "opq/fresh", typ: tar.TypeReg},
			}
			dir := t.TempDir()
			switch kind {
			case "dir":
				src = filepath.Join(dir, "layer")
				os.Mkdir(src, 0o700)
				if err := extractBytes(src, mkTar(t, layer), ExtractOptions{}); err != nil {
					t.Fatal(err)
				}
			case "tar":
				src = filepath.Join(dir, "layer.tar")
				os.WriteFile(src, mkTar(t, layer), 0o644)
			case "tar.gz":
				src = filepath.Join(dir, "layer.tgz")
				f, _ := os.Create(src)
				f.Close()
				tarFile := filepath.Join(dir, "x.tar")
				os.WriteFile(tarFile, mkTar(t, layer), 0o644)
				out, err := exec.Command("sh", "-c", "gzip -c "+tarFile+" > "+src).CombinedOutput()
				if err != nil {
					t.Fatalf("gzip: %v %s", err, out)
				}
			}
			before := s.snapshot(t)
			if err := ApplyLayer(s.root, src); err != nil {
				t.Fatal(err)
			}
			if got, want := listTree(t, s.root), "etc etc/passwd opq opq/fresh"; got != want {
				t.Fatalf("tree %q, want %q", got, want)
			}
			if b, _ := os.ReadFile(filepath.Join(s.root, "etc/passwd")); string(b) != "new" {
				t.Errorf("etc/passwd = %q", b)
			}
			if fi, _ := os.Stat(s.root); fi.Mode().Perm() != 0o755 {
				t.Errorf("a layer changed the mode of /: %v", fi.Mode())
			}
			if after := s.snapshot(t); after != before {
				t.Fatalf("outside changed")
			}
		})
	}
}

func TestApplyLayerRefusesEscape(t *testing.T) {
	s := newSandbox(t)
	os.Symlink(s.outside, filepath.Join(s.root, "link"))
	src := filepath.Join(t.TempDir(), "l.tar")
	os.WriteFile(src, mkTar(t, []ent{{name: "link/secret", typ: tar.TypeReg, body: "pwned"}}), 0o644)
	before := s.snapshot(t)
	if err := ApplyLayer(s.root, src); err == nil {
		t.Fatal("wrote through a symlink")
	}
	if s.snapshot(t) != before {
		t.Fatal("outside changed")
	}
}

func TestCopyTree(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	data := mkTar(t, []ent{
		{name: "./", typ: tar.TypeDir, mode: 0o751},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/busybox", typ: tar.TypeReg, body: "elf", mode: 0o755},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "/bin/busybox"},
		{name: "bin/hard", typ: tar.TypeLink, link: "bin/busybox"},
		{name: "var/empty/", typ: tar.TypeDir, mode: 0o555},
		{name: "root/", typ: tar.TypeDir, mode: 0o700},
		{name: "root/.profile", typ: tar.TypeReg, body: "x", mode: 0o600},
		{name: "fifo", typ: tar.TypeFifo},
	})
	os.Mkdir(src, 0o755)
	if err := extractBytes(src, data, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	os.Lchown(filepath.Join(src, "root/.profile"), 7, 8)
	exec.Command("setfattr", "-n", "user.k", "-v", "v", filepath.Join(src, "bin/busybox")).Run()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := CopyTree(dst, src); err != nil {
		t.Fatal(err)
	}
	if a, b := listTree(t, src), listTree(t, dst); a != b {
		t.Fatalf("copy %q, source %q", b, a)
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		a, _ := os.Lstat(p)
		b, err := os.Lstat(filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		sa, sb := a.Sys().(*syscall.Stat_t), b.Sys().(*syscall.Stat_t)
		if a.Mode() != b.Mode() || a.Size() != b.Size() || (os.Geteuid() == 0 && (sa.Uid != sb.Uid || sa.Gid != sb.Gid)) {
			t.Errorf("%s: %v %d %d:%d, copy %v %d %d:%d", rel, a.Mode(), a.Size(), sa.Uid, sa.Gid, b.Mode(), b.Size(), sb.Uid, sb.Gid)
		}
		if a.Mode()&fs.ModeSymlink == 0 && !a.ModTime().Equal(b.ModTime()) {
			t.Errorf("%s: mtime %v, copy %v", rel, a.ModTime(), b.ModTime())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	x, _ := os.Stat(filepath.Join(dst, "bin/busybox"))
	y, _ := os.Stat(filepath.Join(dst, "bin/hard"))
	if !os.SameFile(x, y) {
		t.Error("hard link not preserved")
	}
	if out, err := exec.Command("getfattr", "--only-values", "-n", "user.k", filepath.Join(src, "bin/busybox")).Output(); err == nil && string(out) == "v" {
		out, _ := exec.Command("getfattr", "--only-values", "-n", "user.k", filepath.Join(dst, "bin/busybox")).Output()
		if string(out) != "v" {
			t.Errorf("xattr not copied: %q", out)
		}
	}
	if err := CopyTree(dst, src); err == nil {
		t.Error("copy onto an existing directory succeeded")
	}
	_ = time.Now
}

// Without root: a tree's own unreadable files and directories are copied
// with their modes, and the source gets its modes back.
func TestCopyTreeUnreadableUnprivileged(t *testing.T) {
	if !asNobody(t, "TestCopyTreeUnreadableUnprivileged") {
		return
	}
	src := filepath.Join(t.TempDir(), "src")
	data := mkTar(t, []ent{
		{name: "./", typ: tar.TypeDir},
		{name: "secret", typ: tar.TypeReg, body: "s", mode: noPerm},
		{name: "closed/", typ: tar.TypeDir, mode: noPerm},
		{name: "closed/inner", typ: tar.TypeReg, body: "i"},
		{name: "wo/", typ: tar.TypeDir, mode: 0o300},
		{name: "wo/f", typ: tar.TypeReg, body: "f"},
	})
	os.Mkdir(src, 0o755)
	if err := extractBytes(src, data, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	before := listModes(t, src)
	dst := filepath.Join(t.TempDir(), "dst")
	if err := CopyTree(dst, src); err != nil {
		t.Fatal(err)
	}
	if after := listModes(t, src); after != before {
		t.Errorf("source modes changed: %s -> %s", before, after)
	}
	if got := listModes(t, dst); got != before {
		t.Errorf("copy modes %s, want %s", got, before)
	}
	os.Chmod(filepath.Join(dst, "closed"), 0o700)
	if b, err := os.ReadFile(filepath.Join(dst, "closed/inner")); err != nil || string(b) != "i" {
		t.Errorf("closed/inner: %q %v", b, err)
	}
	if err := RemoveTree(src); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(dst); err != nil {
		t.Fatal(err)
	}
}

func listModes(t *testing.T, root string) string {
	var out []string
	for _, rel := range []string{"secret", "closed", "wo"} {
		fi, err := os.Lstat(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rel+"="+fi.Mode().String())
	}
	return strings.Join(out, ",")
}

// Without root: setuid bits are dropped, devices are skipped but recorded,
// fifos are made.
func TestExtractUnprivileged(t *testing.T) {
	if !asNobody(t, "TestExtractUnprivileged") {
		return
	}
	root := t.TempDir()
	data := mkTar(t, []ent{
		{name: "su", typ: tar.TypeReg, body: "x", mode: 0o4755},
		{name: "null", typ: tar.TypeReg, body: "placeholder to be replaced"},
		{name: "null", typ: tar.TypeChar, mode: 0o666},
		{name: "fifo", typ: tar.TypeFifo, mode: 0o644},
		{name: "null2", typ: tar.TypeLink, link: "null"},
	})
	var rec testRecorder
	if err := extractBytes(root, data, ExtractOptions{Recorder: &rec}); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(filepath.Join(root, "su")); fi.Mode() != 0o755 {
		t.Errorf("su: %v", fi.Mode())
	}
	if _, err := os.Lstat(filepath.Join(root, "null")); !os.IsNotExist(err) {
		t.Errorf("null: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(root, "fifo")); err != nil || fi.Mode()&fs.ModeNamedPipe == 0 {
		t.Errorf("fifo: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(root, "null2")); !os.IsNotExist(err) {
		t.Errorf("null2: %v", err)
	}
	if got := strings.Join(rec.rels, ","); got != "su,null,null,fifo,null2" {
		t.Errorf("recorded %s", got)
	}
}

// Without root, a layer can still write into the tree's read-only
// directories, which keep their modes.
func TestApplyLayerReadOnlyDirsUnprivileged(t *testing.T) {
	if !asNobody(t, "TestApplyLayerReadOnlyDirsUnprivileged") {
		return
	}
	root := t.TempDir()
	base := mkTar(t, []ent{
		{name: "var/", typ: tar.TypeDir},
		{name: "var/empty/", typ: tar.TypeDir, mode: 0o555},
		{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "ro/old", typ: tar.TypeReg},
	})
	if err := extractBytes(root, base, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	layer := filepath.Join(t.TempDir(), "l.tar")
	os.WriteFile(layer, mkTar(t, []ent{
		{name: "var/empty/new", typ: tar.TypeReg, body: "n"},
		{name: "ro/.wh.old", typ: tar.TypeReg},
	}), 0o644)
	if err := ApplyLayer(root, layer); err != nil {
		t.Fatal(err)
	}
	if got := listTree(t, root); got != "ro var var/empty var/empty/new" {
		t.Fatalf("tree %q", got)
	}
	for _, d := range []string{"var/empty", "ro"} {
		if fi, _ := os.Stat(filepath.Join(root, d)); fi.Mode().Perm() != 0o555 {
			t.Errorf("%s: %v", d, fi.Mode())
		}
	}
	RemoveTree(root)
}
