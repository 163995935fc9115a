package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ent is one archive entry of a test tarball.
type ent struct {
	name string
	typ  byte
	link string
	body string
	mode int64
}

// noPerm asks mkTar for mode 0000 (0 means a default mode).
const noPerm = -1

func mkTar(t testing.TB, ents []ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		mode := e.mode
		if mode == noPerm {
			mode = 0
		} else if mode == 0 {
			mode = 0o644
			if e.typ == tar.TypeDir {
				mode = 0o755
			}
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, ModTime: time.Unix(1600000000, 0), Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}

// sandbox is a target directory beside an "outside" directory holding a
// secret; snapshot captures everything outside the target so a test can
// prove an extraction never touched it.
type sandbox struct {
	base, root, outside string
}

func newSandbox(t testing.TB) *sandbox {
	t.Helper()
	base := t.TempDir()
	s := &sandbox{base: base, root: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{s.root, s.outside, filepath.Join(s.outside, "dir")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(s.outside, "secret"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// snapshot describes every path under base except the target tree:
// type, mode, size, link count, mtime and content.
func (s *sandbox) snapshot(t testing.TB) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(s.base, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == s.root {
			return fs.SkipDir
		}
		if p == s.base {
			return nil // its mtime changes when the target is removed
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := p + " " + fi.Mode().String() + " " + fi.ModTime().String()
		if !fi.IsDir() {
			line += " nlink=" + string(rune('0'+st.Nlink))
		}
		if fi.Mode().IsRegular() {
			b, _ := os.ReadFile(p)
			line += " " + string(b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func extractBytes(root string, data []byte, opt ExtractOptions) error {
	_, err := Extract(context.Background(), root, bytes.NewReader(data), opt)
	return err
}

func TestExtractRefusesEscapes(t *testing.T) {
	out := func(s *sandbox) string { return s.outside }
	tests := []struct {
		name string
		ents func(s *sandbox) []ent
	}{
		{"dotdot", func(s *sandbox) []ent { return []ent{{name: "../outside/x", typ: tar.TypeReg, body: "x"}} }},
		{"inner dotdot", func(s *sandbox) []ent { return []ent{{name: "a/../../outside/x", typ: tar.TypeReg, body: "x"}} }},
		{"absolute", func(s *sandbox) []ent { return []ent{{name: out(s) + "/x", typ: tar.TypeReg, body: "x"}} }},
		{"write through absolute symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "link/secret", typ: tar.TypeReg, body: "pwned"}}
		}},
		{"write through relative symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: "../outside"}, {name: "link/secret", typ: tar.TypeReg, body: "pwned"}}
		}},
		{"symlink chain", func(s *sandbox) []ent {
			return []ent{
				{name: "a", typ: tar.TypeSymlink, link: "b"},
				{name: "b", typ: tar.TypeSymlink, link: "../outside"},
				{name: "a/new", typ: tar.TypeReg, body: "pwned"},
			}
		}},
		{"mkdir through symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "link/newdir/", typ: tar.TypeDir}}
		}},
		{"symlink through symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "link/evil", typ: tar.TypeSymlink, link: "/"}}
		}},
		{"hard link dotdot", func(s *sandbox) []ent {
			return []ent{{name: "h", typ: tar.TypeLink, link: "../outside/secret"}}
		}},
		{"hard link absolute", func(s *sandbox) []ent {
			return []ent{{name: "h", typ: tar.TypeLink, link: out(s) + "/secret"}}
		}},
		{"hard link through symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "h", typ: tar.TypeLink, link: "link/secret"}}
		}},
		{"hard link created through symlink", func(s *sandbox) []ent {
			return []ent{
				{name: "f", typ: tar.TypeReg, body: "x"},
				{name: "link", typ: tar.TypeSymlink, link: out(s)},
				{name: "link/h", typ: tar.TypeLink, link: "f"},
			}
		}},
		{"fifo through symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "link/p", typ: tar.TypeFifo}}
		}},
		{"whiteout through symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "link/.wh.secret", typ: tar.TypeReg}}
		}},
		{"opaque through symlink", func(s *sandbox) []ent {
			return []ent{{name: "link", typ: tar.TypeSymlink, link: out(s)}, {name: "link/.wh..wh..opq", typ: tar.TypeReg}}
		}},
	}
	for _, tc := range tests {
		for _, layer := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{false: "", true: " (layer)"}[layer], func(t *testing.T) {
				s := newSandbox(t)
				before := s.snapshot(t)
				ents := tc.ents(s)
				for i := range ents {
					if ents[i].typ == 0 {
						ents[i].typ = tar.TypeReg
					}
				}
				err := extractBytes(s.root, mkTar(t, ents), ExtractOptions{Layer: layer})
				if err == nil {
					t.Fatalf("extraction succeeded")
				}
				if after := s.snapshot(t); after != before {
					t.Fatalf("outside changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
			})
		}
	}
}

// Entries that replace a symlink must replace the link itself, and
// deferred directory metadata must not land on what a later entry put in
// the directory's place.
func TestExtractReplacesSymlinksInPlace(t *testing.T) {
	s := newSandbox(t)
	before := s.snapshot(t)
	data := mkTar(t, []ent{
		{name: "f", typ: tar.TypeSymlink, link: s.outside + "/secret"},
		{name: "f", typ: tar.TypeReg, body: "mine", mode: 0o600},
		{name: "d", typ: tar.TypeSymlink, link: s.outside},
		{name: "d/", typ: tar.TypeDir, mode: 0o700},
		{name: "d/inner", typ: tar.TypeReg, body: "in"},
		{name: "e/", typ: tar.TypeDir, mode: 0o777},
		{name: "e", typ: tar.TypeSymlink, link: s.outside},
		{name: "h", typ: tar.TypeSymlink, link: s.outside + "/secret"},
		{name: "hl", typ: tar.TypeLink, link: "h"},
	})
	if err := extractBytes(s.root, data, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if after := s.snapshot(t); after != before {
		t.Fatalf("outside changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if b, err := os.ReadFile(filepath.Join(s.root, "f")); err != nil || string(b) != "mine" {
		t.Fatalf("f = %q, %v", b, err)
	}
	if fi, err := os.Lstat(filepath.Join(s.root, "d")); err != nil || !fi.IsDir() {
		t.Fatalf("d is not a directory: %v", err)
	}
	if fi, err := os.Lstat(filepath.Join(s.root, "hl")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("hl should be a hard link to the symlink h: %v", err)
	}
}

func TestExtractTree(t *testing.T) {
	s := newSandbox(t)
	data := mkTar(t, []ent{
		{name: "./", typ: tar.TypeDir, mode: 0o711},
		{name: "ro/", typ: tar.TypeDir, mode: 0o555},
		{name: "ro/file", typ: tar.TypeReg, body: "hello", mode: 0o4755},
		{name: "ro/hard", typ: tar.TypeLink, link: "ro/file"},
		{name: "ro/sym", typ: tar.TypeSymlink, link: "/ro/file"},
		{name: "implicit/parent/file", typ: tar.TypeReg, body: "x"},
		{name: "closed/", typ: tar.TypeDir, mode: noPerm},
		{name: "closed/inside", typ: tar.TypeReg, body: "y", mode: noPerm},
		{name: "pipe", typ: tar.TypeFifo, mode: 0o620},
	})
	var rec testRecorder
	// Directories the archive implies get 0755 whatever the umask.
	old := syscall.Umask(0o077)
	err := extractBytes(s.root, data, ExtractOptions{Recorder: &rec})
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	check := func(rel string, want fs.FileMode) {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(s.root, rel))
		if err != nil {
			t.Fatal(err)
		}
		if os.Geteuid() != 0 {
			want &^= fs.ModeSetuid | fs.ModeSetgid
		}
		if fi.Mode() != want {
			t.Errorf("%s: mode %v, want %v", rel, fi.Mode(), want)
		}
		if fi.Mode()&fs.ModeSymlink == 0 && !fi.ModTime().Equal(time.Unix(1600000000, 0)) && !strings.HasPrefix(rel, "implicit") {
			t.Errorf("%s: mtime %v", rel, fi.ModTime())
		}
	}
	check(".", fs.ModeDir|0o711)
	check("ro", fs.ModeDir|0o555)
	check("ro/file", fs.ModeSetuid|0o755)
	check("ro/sym", fs.ModeSymlink|0o777)
	check("closed", fs.ModeDir)
	check("pipe", fs.ModeNamedPipe|0o620)
	check("implicit", fs.ModeDir|0o755)
	check("implicit/parent", fs.ModeDir|0o755)
	a, _ := os.Stat(filepath.Join(s.root, "ro/file"))
	b, _ := os.Stat(filepath.Join(s.root, "ro/hard"))
	if !os.SameFile(a, b) {
		t.Errorf("ro/hard is not a hard link of ro/file")
	}
	want := []string{".", "ro", "ro/file", "ro/hard", "ro/sym", "implicit/parent/file", "closed", "closed/inside", "pipe"}
	if strings.Join(rec.rels, ",") != strings.Join(want, ",") {
		t.Errorf("recorded %v, want %v", rec.rels, want)
	}
	// The store's removal copes with what the archive left.
	if err := RemoveTree(s.root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(s.root); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("root still there: %v", err)
	}
}

type testRecorder struct{ rels []string }

func (r *testRecorder) Record(rel string, hdr *tar.Header) error {
	r.rels = append(r.rels, rel)
	return nil
}
func (r *testRecorder) Close() error { return nil }

func TestExtractLayerWhiteouts(t *testing.T) {
	s := newSandbox(t)
	lower := mkTar(t, []ent{
		{name: "keep", typ: tar.TypeReg, body: "k"},
		{name: "gone", typ: tar.TypeReg, body: "g"},
		{name: "gonedir/", typ: tar.TypeDir},
		{name: "gonedir/f", typ: tar.TypeReg},
		{name: "opq/", typ: tar.TypeDir},
		{name: "opq/old", typ: tar.TypeReg},
		{name: "opq/olddir/", typ: tar.TypeDir},
		{name: "opq/olddir/f", typ: tar.TypeReg},
	})
	upper := mkTar(t, []ent{
		{name: ".wh.gone", typ: tar.TypeReg},
		{name: ".wh.gonedir", typ: tar.TypeReg},
		{name: ".wh.never-existed", typ: tar.TypeReg},
		{name: "opq/", typ: tar.TypeDir},
		{name: "opq/new", typ: tar.TypeReg, body: "n"},
		{name: "opq/.wh..wh..opq", typ: tar.TypeReg},
		{name: "opq/newer", typ: tar.TypeReg},
	})
	for _, l := range [][]byte{lower, upper} {
		if err := extractBytes(s.root, l, ExtractOptions{Layer: true}); err != nil {
			t.Fatal(err)
		}
	}
	got := listTree(t, s.root)
	want := "keep opq opq/new opq/newer"
	if got != want {
		t.Fatalf("tree %q, want %q", got, want)
	}
}

func listTree(t testing.TB, root string) string {
	t.Helper()
	var names []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if p != root {
			rel, _ := filepath.Rel(root, p)
			names = append(names, rel)
		}
		return nil
	})
	sort.Strings(names)
	return strings.Join(names, " ")
}

func TestExtractBadWhiteouts(t *testing.T) {
	for _, name := range []string{"a/.wh..", "a/.wh...", "a/.wh."} {
		s := newSandbox(t)
		data := mkTar(t, []ent{{name: "a/", typ: tar.TypeDir}, {name: name, typ: tar.TypeReg}})
		if err := extractBytes(s.root, data, ExtractOptions{Layer: true}); !errors.Is(err, ErrUnsafeEntry) {
			t.Errorf("%s: got %v", name, err)
		}
		if _, err := os.Stat(s.root); err != nil {
			t.Errorf("%s: removed the target: %v", name, err)
		}
	}
}

func TestExtractLimitsAndCorruption(t *testing.T) {
	s := newSandbox(t)
	big := mkTar(t, []ent{{name: "a", typ: tar.TypeReg, body: strings.Repeat("x", 1000)}, {name: "b", typ: tar.TypeReg, body: strings.Repeat("x", 1000)}})
	if err := extractBytes(s.root, big, ExtractOptions{MaxBytes: 1500}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("limit: got %v", err)
	}
	truncated := big[:700]
	if err := extractBytes(s.root, truncated, ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("truncated: got %v", err)
	}
	garbage := bytes.Repeat([]byte("garbage!"), 200)
	if err := extractBytes(s.root, garbage, ExtractOptions{}); err == nil {
		t.Fatalf("garbage accepted")
	}
}

func TestMaxImportBytes(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want int64
		ok   bool
	}{
		{"", DefaultMaxImportBytes, true},
		{"1000", 1000, true},
		{"2K", 2048, true},
		{"1g", 1 << 30, true},
		{"0", 0, false},
		{"-5", 0, false},
		{"lots", 0, false},
	} {
		t.Setenv("NOOK_IMPORT_MAX_BYTES", tc.env)
		got, err := MaxImportBytes()
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("%q: got %d, %v; want %d ok=%v", tc.env, got, err, tc.want, tc.ok)
		}
	}
}
