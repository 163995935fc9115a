package rootfs

import (
	"archive/tar"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
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
