package tests

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tentry is one entry of a tarball a test builds.
type tentry struct {
	Name string
	Type byte
	Link string
	Body string
	Mode int64
}

func buildTar(t testing.TB, ents []tentry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		typ := e.Type
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
			if typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.Name, Typeflag: typ, Linkname: e.Link, Mode: mode, ModTime: time.Unix(1700000000, 0)}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.Body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.Body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func writeFile(t testing.TB, p string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// treeState describes every path under dir: type, mode, owner, size,
// content digest and link target, so two calls prove the tree unchanged
// byte for byte.
func treeState(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d %d", p, fi.Mode(), st.Uid, st.Gid, fi.Size())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			line += " " + hex.EncodeToString(sum[:8])
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		}
		if !fi.IsDir() {
			line += " " + fi.ModTime().String()
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

// relTree lists the paths below dir, sorted, space separated.
func relTree(t testing.TB, dir string) string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// mustFailCleanly checks a failed nook invocation: exit 125 and exactly one
// "nook: error:" line.
func mustFailCleanly(t testing.TB, r result) {
	t.Helper()
	if r.Code != 125 {
		t.Fatalf("want exit 125:\n%s", r)
	}
	if n := strings.Count(r.Stderr, "nook: error:"); n != 1 || !strings.HasPrefix(r.Stderr, "nook: error: ") {
		t.Fatalf("want one error line:\n%s", r)
	}
	for _, l := range strings.Split(strings.TrimSpace(r.Stderr), "\n") {
		if !strings.HasPrefix(l, "nook: error: ") && !strings.HasPrefix(l, "nook: hint: ") {
			t.Fatalf("stray stderr line %q:\n%s", l, r)
		}
	}
}

func TestImportAlpineTarballs(t *testing.T) {
	requireRoot(t)
	home := t.TempDir()
	for _, tb := range []string{alpine312, alpine320} {
		if r := nook(t, home, "import", sharedRootfs(t, tb)); r.Code != 0 {
			t.Fatalf("import %s: %s", tb, r)
		}
	}
	r := nook(t, home, "list")
	if r.Code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "NAME") {
		t.Fatalf("list:\n%s", r.Stdout)
	}
	mustContain(t, lines[0], "SIZE", "SOURCE", "IMPORTED")
	mustContain(t, lines[1], "alpine-minirootfs-3.12.12-x86_64", "MiB", sharedRootfs(t, alpine312))
	mustContain(t, lines[2], "alpine-minirootfs-3.20.3-x86_64", "MiB", time.Now().Format("2006-01-02"))

	tree := filepath.Join(home, "rootfs", "alpine-minirootfs-3.20.3-x86_64", "rootfs")
	for path, want := range map[string]fs.FileMode{
		"etc/shadow": 0o640,
		"root":       fs.ModeDir | 0o700,
		"var/empty":  fs.ModeDir | 0o555,
		"tmp":        fs.ModeDir | fs.ModeSticky | 0o777,
		"bin/sh":     fs.ModeSymlink | 0o777,
	} {
		fi, err := os.Lstat(filepath.Join(tree, path))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode(), want)
		}
	}
	if l, _ := os.Readlink(filepath.Join(tree, "bin/sh")); l != "/bin/busybox" {
		t.Errorf("bin/sh -> %q", l)
	}
	// The tree is what tar itself extracts.
	ref := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", sharedRootfs(t, alpine320), "-C", ref).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if got, want := relTree(t, tree), relTree(t, ref); got != want {
		t.Fatalf("tree differs from tar's")
	}
	if e, _ := os.ReadDir(filepath.Join(home, "tmp")); len(e) != 0 {
		t.Errorf("staging left behind: %v", e)
	}

	if r := nook(t, home, "rm", "alpine-minirootfs-3.12.12-x86_64"); r.Code != 0 {
		t.Fatal(r)
	}
	r = nook(t, home, "list")
	if strings.Contains(r.Stdout, "3.12.12") || !strings.Contains(r.Stdout, "3.20.3") {
		t.Fatalf("after rm:\n%s", r.Stdout)
	}
}

// Two image layers: the second deletes a file with a whiteout and makes a
// directory opaque.
var (
	imgLayer1 = []tentry{
		{Name: "bin/", Type: tar.TypeDir},
		{Name: "bin/sh", Body: "sh", Mode: 0o755},
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/os-release", Body: "ID=test\n"},
		{Name: "etc/gone", Body: "gone"},
		{Name: "opq/", Type: tar.TypeDir},
		{Name: "opq/old", Body: "old"},
		{Name: "opq/sub/", Type: tar.TypeDir},
		{Name: "opq/sub/old2", Body: "old2"},
		{Name: "keep/", Type: tar.TypeDir},
		{Name: "keep/k", Body: "k"},
	}
	imgLayer2 = []tentry{
		{Name: "etc/", Type: tar.TypeDir},
		{Name: "etc/.wh.gone"},
		{Name: "etc/added", Body: "added"},
		{Name: "opq/", Type: tar.TypeDir},
		{Name: "opq/.wh..wh..opq"},
		{Name: "opq/new", Body: "new"},
	}
	imgWant = "bin bin/sh etc etc/added etc/os-release keep keep/k opq opq/new"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerSave builds a docker save archive of the two layers (the classic
// layout: <id>/layer.tar, <config>.json, manifest.json).
func dockerSave(t testing.TB, tag string) []byte {
	l1, l2 := buildTar(t, imgLayer1), buildTar(t, imgLayer2)
	config := mustJSON(t, map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + sha(l1), "sha256:" + sha(l2)}},
	})
	cfgName := sha(config) + ".json"
	manifest := mustJSON(t, []map[string]any{{
		"Config": cfgName, "RepoTags": []string{tag},
		"Layers": []string{sha(l1) + "/layer.tar", sha(l2) + "/layer.tar"},
	}})
	return buildTar(t, []tentry{
		{Name: sha(l1) + "/", Type: tar.TypeDir},
		{Name: sha(l1) + "/layer.tar", Body: string(l1)},
		{Name: sha(l2) + "/", Type: tar.TypeDir},
		{Name: sha(l2) + "/layer.tar", Body: string(l2)},
		{Name: cfgName, Body: string(config)},
		{Name: "manifest.json", Body: string(manifest)},
	})
}

// ociLayout writes an OCI layout of the two layers (gzip-compressed) into
// dir: index.json points to a nested index holding an arm64 image (a
// single layer that must not be used) and the amd64 one.
func ociLayout(t testing.TB, dir, ref string) {
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	blob := func(mt string, b []byte) map[string]any {
		writeFile(t, filepath.Join(blobs, sha(b)), b)
		return map[string]any{"mediaType": mt, "digest": "sha256:" + sha(b), "size": len(b)}
	}
	l1, l2 := buildTar(t, imgLayer1), buildTar(t, imgLayer2)
	image := func(arch string, layers ...[]byte) map[string]any {
		var diffs []string
		var descs []map[string]any
		for _, l := range layers {
			diffs = append(diffs, "sha256:"+sha(l))
			descs = append(descs, blob("application/vnd.oci.image.layer.v1.tar+gzip", gz(t, l)))
		}
		cfg := blob("application/vnd.oci.image.config.v1+json", mustJSON(t, map[string]any{
			"architecture": arch, "os": "linux", "rootfs": map[string]any{"type": "layers", "diff_ids": diffs},
		}))
		m := blob("application/vnd.oci.image.manifest.v1+json", mustJSON(t, map[string]any{
			"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": cfg, "layers": descs,
		}))
		m["platform"] = map[string]string{"os": "linux", "architecture": arch}
		return m
	}
	arm := image("arm64", buildTar(t, []tentry{{Name: "wrong-arch", Body: "arm"}}))
	amd := image("amd64", l1, l2)
	nested := blob("application/vnd.oci.image.index.v1+json", mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{arm, amd},
	}))
	nested["annotations"] = map[string]string{"io.containerd.image.name": ref}
	writeFile(t, filepath.Join(dir, "index.json"), mustJSON(t, map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []any{nested},
	}))
	writeFile(t, filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`))
}

// tarDir packs dir the way docker save does (oci-layout and index.json
// first, then blobs).
func tarDir(t testing.TB, dir string) []byte {
	var ents []tentry
	for _, n := range []string{"oci-layout", "index.json"} {
		b, _ := os.ReadFile(filepath.Join(dir, n))
		ents = append(ents, tentry{Name: n, Body: string(b)})
	}
	ents = append(ents, tentry{Name: "blobs/", Type: tar.TypeDir}, tentry{Name: "blobs/sha256/", Type: tar.TypeDir})
	bl, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
	for _, e := range bl {
		b, _ := os.ReadFile(filepath.Join(dir, "blobs", "sha256", e.Name()))
		ents = append(ents, tentry{Name: "blobs/sha256/" + e.Name(), Body: string(b)})
	}
	return buildTar(t, ents)
}

// docker25Save builds what Docker 25+ writes: an OCI layout plus
// manifest.json naming the layer blobs (the second through a symlink, as
// docker links repeated layers).
func docker25Save(t testing.TB, ociDir, tag string) []byte {
	t.Helper()
	l1, l2 := gz(t, buildTar(t, imgLayer1)), gz(t, buildTar(t, imgLayer2))
	manifest := mustJSON(t, []map[string]any{{
		"Config": "blobs/sha256/none", "RepoTags": []string{tag},
		"Layers": []string{"blobs/sha256/" + sha(l1), "legacy/layer.tar"},
	}})
	// Append to the layout's archive, less the two zero blocks that end it.
	b := tarDir(t, ociDir)
	b = b[:len(b)-1024]
	extra := buildTar(t, []tentry{
		{Name: "legacy/", Type: tar.TypeDir},
		{Name: "legacy/layer.tar", Type: tar.TypeSymlink, Link: "../blobs/sha256/" + sha(l2)},
		{Name: "manifest.json", Body: string(manifest)},
	})
	return append(b, extra...)
}

func TestImportImages(t *testing.T) {
	requireRoot(t)
	src := t.TempDir()
	ociDir := filepath.Join(src, "layout")
	ociLayout(t, ociDir, "docker.io/library/busybox:1.36")
	tests := []struct {
		name, source, wantName, format string
	}{
		{"docker save", writeFile(t, filepath.Join(src, "img.tar"), dockerSave(t, "example.com/test/alpine:3.20")), "alpine_3.20", "docker-save"},
		{"docker save gzipped", writeFile(t, filepath.Join(src, "img2.tar.gz"), gz(t, dockerSave(t, "other:1"))), "other_1", "docker-save"},
		{"OCI layout dir", ociDir, "busybox_1.36", "oci-layout"},
		{"docker 25 save", writeFile(t, filepath.Join(src, "d25.tar"), docker25Save(t, ociDir, "registry:5000/team/app:v2")), "app_v2", "docker-save"},
		{"OCI layout tar", writeFile(t, filepath.Join(src, "oci.tar"), tarDir(t, ociDir)), "busybox_1.36", "oci-layout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			home := t.TempDir()
			r := nook(t, home, "import", tc.source)
			if r.Code != 0 {
				t.Fatal(r)
			}
			tree := filepath.Join(home, "rootfs", tc.wantName, "rootfs")
			if got := relTree(t, tree); got != imgWant {
				t.Fatalf("tree:\n got %s\nwant %s", got, imgWant)
			}
			if b, _ := os.ReadFile(filepath.Join(tree, "opq/new")); string(b) != "new" {
				t.Errorf("opq/new = %q", b)
			}
			meta, _ := os.ReadFile(filepath.Join(home, "rootfs", tc.wantName, "meta.json"))
			mustContain(t, string(meta), `"format": "`+tc.format+`"`)
			if e, _ := os.ReadDir(filepath.Join(home, "tmp")); len(e) != 0 {
				t.Errorf("staging left behind: %v", e)
			}
		})
	}
}

func TestImportDirectory(t *testing.T) {
	requireRoot(t)
	src := filepath.Join(t.TempDir(), "mytree")
	for _, d := range []string{"etc", "bin", "ro"} {
		os.MkdirAll(filepath.Join(src, d), 0o755)
	}
	writeFile(t, filepath.Join(src, "etc/a"), []byte("a"))
	os.Link(filepath.Join(src, "etc/a"), filepath.Join(src, "etc/hard"))
	os.Symlink("/etc/a", filepath.Join(src, "bin/abs"))
	writeFile(t, filepath.Join(src, "bin/suid"), []byte("x"))
	os.Chown(filepath.Join(src, "bin/suid"), 12, 34)
	os.Chmod(filepath.Join(src, "bin/suid"), fs.ModeSetuid|0o755)
	os.Chmod(filepath.Join(src, "ro"), 0o555)
	xattr := exec.Command("setfattr", "-n", "user.nook", "-v", "yes", filepath.Join(src, "etc/a")).Run() == nil

	home := t.TempDir()
	if r := nook(t, home, "import", src); r.Code != 0 {
		t.Fatal(r)
	}
	tree := filepath.Join(home, "rootfs", "mytree", "rootfs")
	if got, want := relTree(t, tree), relTree(t, src); got != want {
		t.Fatalf("tree %q, want %q", got, want)
	}
	a, _ := os.Stat(filepath.Join(tree, "etc/a"))
	h, _ := os.Stat(filepath.Join(tree, "etc/hard"))
	if !os.SameFile(a, h) {
		t.Errorf("hard link not preserved")
	}
	if l, _ := os.Readlink(filepath.Join(tree, "bin/abs")); l != "/etc/a" {
		t.Errorf("symlink -> %q", l)
	}
	fi, _ := os.Stat(filepath.Join(tree, "bin/suid"))
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode() != fs.ModeSetuid|0o755 || st.Uid != 12 || st.Gid != 34 {
		t.Errorf("bin/suid: %v %d:%d", fi.Mode(), st.Uid, st.Gid)
	}
	if fi, _ := os.Stat(filepath.Join(tree, "ro")); fi.Mode() != fs.ModeDir|0o555 {
		t.Errorf("ro: %v", fi.Mode())
	}
	if xattr {
		out, _ := exec.Command("getfattr", "--only-values", "-n", "user.nook", filepath.Join(tree, "etc/a")).Output()
		if string(out) != "yes" {
			t.Errorf("xattr user.nook = %q", out)
		}
	}
}

func TestImportBadInputs(t *testing.T) {
	requireRoot(t)
	home := t.TempDir()
	src := t.TempDir()
	if r := nook(t, home, "import", sharedRootfs(t, alpine312), "--name", "base"); r.Code != 0 {
		t.Fatal(r)
	}
	// A directory beside everything, which hostile entries aim at.
	outside, err := os.MkdirTemp("/tmp", "nook-outside-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(outside) })
	writeFile(t, filepath.Join(outside, "secret"), []byte("secret"))
	up := strings.Repeat("../", 30)
	good := buildTar(t, []tentry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/passwd", Body: strings.Repeat("root:x:0:0::/root:/bin/sh\n", 100)}})
	corruptGz := gz(t, good)
	corruptGz[len(corruptGz)/2] ^= 0xff
	corruptGz[len(corruptGz)/2+1] ^= 0xff
	tests := []struct {
		name string
		args []string
	}{
		{"missing source", []string{"import", filepath.Join(src, "nonexistent.tar")}},
		{"empty file", []string{"import", writeFile(t, filepath.Join(src, "empty.tar"), nil)}},
		{"not an archive", []string{"import", writeFile(t, filepath.Join(src, "text.tar"), bytes.Repeat([]byte("hello\n"), 300))}},
		{"corrupt gzip", []string{"import", writeFile(t, filepath.Join(src, "corrupt.tar.gz"), corruptGz)}},
		{"truncated gzip", []string{"import", writeFile(t, filepath.Join(src, "trunc.tar.gz"), gz(t, good)[:len(corruptGz)/2])}},
		{"truncated tar", []string{"import", writeFile(t, filepath.Join(src, "trunc.tar"), good[:1100])}},
		{"dotdot entry", []string{"import", writeFile(t, filepath.Join(src, "dotdot.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: up + outside[1:] + "/dotdot", Body: "x"}}))}},
		{"absolute entry", []string{"import", writeFile(t, filepath.Join(src, "abs.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: outside + "/abs", Body: "x"}}))}},
		{"symlink then write through", []string{"import", writeFile(t, filepath.Join(src, "symw.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: "link", Type: tar.TypeSymlink, Link: outside}, {Name: "link/secret", Body: "pwned"}}))}},
		{"relative symlink then write through", []string{"import", writeFile(t, filepath.Join(src, "symr.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: "link", Type: tar.TypeSymlink, Link: up + outside[1:]}, {Name: "link/new", Body: "pwned"}}))}},
		{"hard link to outside", []string{"import", writeFile(t, filepath.Join(src, "hard.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/h", Type: tar.TypeLink, Link: outside + "/secret"}}))}},
		{"hard link up", []string{"import", writeFile(t, filepath.Join(src, "hardup.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/h", Type: tar.TypeLink, Link: up + "etc/passwd"}}))}},
		{"hard link through symlink", []string{"import", writeFile(t, filepath.Join(src, "hardsym.tar"), buildTar(t, []tentry{
			{Name: "etc/", Type: tar.TypeDir}, {Name: "link", Type: tar.TypeSymlink, Link: outside}, {Name: "etc/h", Type: tar.TypeLink, Link: "link/secret"}}))}},
		{"image layer escaping", []string{"import", writeFile(t, filepath.Join(src, "evil-image.tar"), evilDockerSave(t, outside))}},
		{"image manifest naming a host file", []string{"import", writeFile(t, filepath.Join(src, "evil-manifest.tar"), buildTar(t, []tentry{
			{Name: "manifest.json", Body: `[{"Config":"c.json","RepoTags":["x:1"],"Layers":["../../../../etc/passwd"]}]`}}))}},
		{"existing name", []string{"import", sharedRootfs(t, alpine320), "--name", "base"}},
		{"invalid name", []string{"import", sharedRootfs(t, alpine320), "--name", "../evil"}},
		{"unknown name for rm", []string{"rm", "nosuchrootfs"}},
		{"invalid name for rm", []string{"rm", "../base"}},
	}
	var passwd syscall.Stat_t
	syscall.Stat("/etc/passwd", &passwd)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, beforeOut := treeState(t, home), treeState(t, outside)
			r := nook(t, home, tc.args...)
			mustFailCleanly(t, r)
			if after := treeState(t, home); after != before {
				t.Fatalf("store changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
			if after := treeState(t, outside); after != beforeOut {
				t.Fatalf("outside changed:\nbefore:\n%s\nafter:\n%s", beforeOut, after)
			}
			var now syscall.Stat_t
			syscall.Stat("/etc/passwd", &now)
			if now.Nlink != passwd.Nlink || now.Mtim != passwd.Mtim {
				t.Fatalf("/etc/passwd touched")
			}
			t.Log(strings.TrimSpace(r.Stderr))
		})
	}
}

// evilDockerSave is a docker save archive whose second layer plants a
// symlink to outside and then writes through it.
func evilDockerSave(t testing.TB, outside string) []byte {
	l1 := buildTar(t, []tentry{{Name: "etc/", Type: tar.TypeDir}, {Name: "etc/hostname", Body: "x"}})
	l2 := buildTar(t, []tentry{{Name: "etc/out", Type: tar.TypeSymlink, Link: outside}, {Name: "etc/out/secret", Body: "pwned"}})
	manifest := mustJSON(t, []map[string]any{{
		"Config": "c.json", "RepoTags": []string{"evil:1"}, "Layers": []string{"l1.tar", "l2.tar"},
	}})
	return buildTar(t, []tentry{
		{Name: "manifest.json", Body: string(manifest)},
		{Name: "l1.tar", Body: string(l1)},
		{Name: "l2.tar", Body: string(l2)},
	})
}

// bigTarball writes a gzip tarball that expands to n files of size bytes
// (zeros, so it is small on disk but takes a while to import).
func bigTarball(t testing.TB, p string, n int, size int64) {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	tw := tar.NewWriter(zw)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	zeros := make([]byte, 1<<20)
	for i := range n {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("etc/f%03d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
		for left := size; left > 0; left -= int64(len(zeros)) {
			tw.Write(zeros[:min(left, int64(len(zeros)))])
		}
	}
	tw.Close()
	zw.Close()
}

// startImportAndWait starts an import of src and waits until it has begun
// writing the tree.
func startImportAndWait(t testing.TB, home, src, name string) *exec.Cmd {
	cmd := nookCmd(home, "import", src, "--name", name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		m, _ := filepath.Glob(filepath.Join(home, "tmp", "*", "rootfs", "etc", "f001"))
		if len(m) > 0 {
			return cmd
		}
		time.Sleep(2 * time.Millisecond)
	}
	cmd.Process.Kill()
	cmd.Wait()
	t.Fatalf("import never started writing: %s", stderr.String())
	return nil
}

func TestImportInterrupted(t *testing.T) {
	requireRoot(t)
	src := filepath.Join(t.TempDir(), "big.tar.gz")
	bigTarball(t, src, 100, 4<<20)

	t.Run("SIGKILL", func(t *testing.T) {
		home := t.TempDir()
		cmd := startImportAndWait(t, home, src, "big")
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if _, err := os.Lstat(filepath.Join(home, "rootfs", "big")); err == nil {
			t.Fatal("a killed import left its name")
		}
		// The next store operation removes the dead import's staging.
		r := nook(t, home, "list")
		if r.Code != 0 || strings.Contains(r.Stdout, "big") {
			t.Fatal(r)
		}
		if e, _ := os.ReadDir(filepath.Join(home, "tmp")); len(e) != 0 {
			t.Fatalf("staging left behind: %v", e)
		}
	})
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			home := t.TempDir()
			cmd := startImportAndWait(t, home, src, "big")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			cmd.Process.Signal(sig)
			err := cmd.Wait()
			ee, ok := err.(*exec.ExitError)
			if !ok || ee.ExitCode() != 128+int(sig) {
				t.Fatalf("want exit %d, got %v", 128+int(sig), err)
			}
			// Cleaned up by the import itself, before any other operation.
			if e, _ := os.ReadDir(filepath.Join(home, "tmp")); len(e) != 0 {
				t.Fatalf("staging left behind: %v", e)
			}
			if e, _ := os.ReadDir(filepath.Join(home, "rootfs")); len(e) != 0 {
				t.Fatalf("store not empty: %v", e)
			}
		})
	}
}

func TestImportSizeLimit(t *testing.T) {
	requireRoot(t)
	home := t.TempDir()
	src := filepath.Join(t.TempDir(), "bomb.tar.gz")
	bigTarball(t, src, 3, 1<<20)
	cmd := nookCmd(home, "import", src)
	cmd.Env = append(cmd.Env, "NOOK_IMPORT_MAX_BYTES=2M")
	r := runCmd(t, cmd)
	mustFailCleanly(t, r)
	mustContain(t, r.Stderr, "size limit", "NOOK_IMPORT_MAX_BYTES")
	if e, _ := os.ReadDir(filepath.Join(home, "rootfs")); len(e) != 0 {
		t.Fatalf("store not empty: %v", e)
	}
}

func TestRmInUseAndHostileTree(t *testing.T) {
	requireRoot(t)
	home := t.TempDir()
	if r := nook(t, home, "import", sharedRootfs(t, alpine312), "--name", "a"); r.Code != 0 {
		t.Fatal(r)
	}
	dir := filepath.Join(home, "rootfs", "a")
	// A run holds a shared flock on the rootfs's directory.
	holder := exec.Command("flock", "--shared", "--no-fork", dir, "sleep", "30")
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	for i := 0; exec.Command("flock", "--nonblock", "--exclusive", dir, "true").Run() == nil; i++ {
		if i > 500 {
			t.Fatal("flock holder never locked")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := nook(t, home, "rm", "a")
	mustFailCleanly(t, r)
	mustContain(t, r.Stderr, "in use")
	holder.Process.Kill()
	holder.Wait()

	// What a guest may leave: unreadable and read-only directories, and
	// symlinks to host directories that must not be followed.
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "keep"), []byte("keep"))
	tree := filepath.Join(dir, "rootfs")
	os.MkdirAll(filepath.Join(tree, "locked/deeper"), 0o755)
	writeFile(t, filepath.Join(tree, "locked/deeper/f"), []byte("f"))
	os.Chmod(filepath.Join(tree, "locked/deeper"), 0)
	os.Chmod(filepath.Join(tree, "locked"), 0o555)
	os.Symlink(outside, filepath.Join(tree, "escape"))
	os.Symlink(outside+"/keep", filepath.Join(tree, "locked/escape"))
	before := treeState(t, outside)
	if r := nook(t, home, "rm", "a"); r.Code != 0 {
		t.Fatal(r)
	}
	if _, err := os.Lstat(dir); err == nil {
		t.Fatal("rootfs still there")
	}
	if after := treeState(t, outside); after != before {
		t.Fatalf("rm followed a symlink out:\n%s\n%s", before, after)
	}
	if e, _ := os.ReadDir(filepath.Join(home, "tmp")); len(e) != 0 {
		t.Fatalf("tmp not empty: %v", e)
	}
}

// As a user without root: owners cannot be set and setuid bits are not
// handed out, but the tree is complete and the store works.
func TestImportUnprivileged(t *testing.T) {
	u := unprivileged(t)
	home := filepath.Join(u.TempDir(t), "store")
	r := u.Nook(t, home, "import", sharedRootfs(t, alpine320), "--name", "alp")
	if r.Code != 0 {
		t.Fatal(r)
	}
	tree := filepath.Join(home, "rootfs", "alp", "rootfs")
	fi, err := os.Lstat(filepath.Join(tree, "etc/shadow"))
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != u.UID {
		t.Errorf("etc/shadow owned by %d", st.Uid)
	}
	if fi, _ := os.Lstat(filepath.Join(tree, "var/empty")); fi.Mode() != fs.ModeDir|0o555 {
		t.Errorf("var/empty: %v", fi.Mode())
	}
	if r := u.Nook(t, home, "list"); r.Code != 0 || !strings.Contains(r.Stdout, "alp") {
		t.Fatal(r)
	}
	if r := u.Nook(t, home, "rm", "alp"); r.Code != 0 {
		t.Fatal(r)
	}
}
