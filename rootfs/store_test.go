package rootfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func newTestStore(t *testing.T) *Store {
	t.Helper()
	s, err := NewStore(filepath.Join(t.TempDir(), "home"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// importTiny imports a three-entry tarball under name.
func importTiny(t *testing.T, s *Store, name string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tiny.tar")
	os.WriteFile(src, mkTar(t, []ent{{name: "etc/", typ: '5'}, {name: "etc/hostname", typ: '0', body: "tiny"}}), 0o644)
	got, err := s.Import(context.Background(), src, ImportOptions{Name: name})
	if err != nil || got != name {
		t.Fatalf("import: %q %v", got, err)
	}
}

func TestValidateName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alpine": true, "alpine_3.20": true, "a-b.c_d": true, "0": true,
		"": false, ".hidden": false, "-x": false, "a/b": false, "..": false, "a b": false, "a:b": false,
		string(make([]byte, 200)): false,
	} {
		if err := ValidateName(name); (err == nil) != ok {
			t.Errorf("%q: %v", name, err)
		}
	}
}

func TestDefaultNames(t *testing.T) {
	for in, want := range map[string]string{
		"alpine-minirootfs-3.12.12-x86_64.tar.gz": "alpine-minirootfs-3.12.12-x86_64",
		"debian.tgz": "debian",
		"x.tar.zst":  "x",
		"plain.tar":  "plain",
	} {
		if got := sanitizeName(trimArchiveExt(in)); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
	for in, want := range map[string]string{
		"alpine:3.20":                   "alpine_3.20",
		"docker.io/library/alpine:3.20": "alpine_3.20",
		"ghcr.io/a/b@sha256:0123":       "b_sha256_0123",
		"weird name!":                   "weird_name_",
		"...":                           "",
	} {
		if got := sanitizeName(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	s := newTestStore(t)
	importTiny(t, s, "tiny")
	if dir, name, err := s.Resolve("tiny"); err != nil || name != "tiny" || dir != s.RootfsDir("tiny") {
		t.Errorf("store name: %q %q %v", dir, name, err)
	}
	if _, _, err := s.Resolve("nosuch"); !errors.Is(err, ErrUnknownRootfs) {
		t.Errorf("unknown name: %v", err)
	}
	tree := t.TempDir()
	os.Mkdir(filepath.Join(tree, "usr"), 0o755)
	link := filepath.Join(t.TempDir(), "link")
	os.Symlink(tree, link)
	if dir, name, err := s.Resolve(link + "/"); err != nil || name != "" || dir != tree {
		t.Errorf("directory via symlink: %q %q %v", dir, name, err)
	}
	if _, _, err := s.Resolve(t.TempDir()); err == nil {
		t.Errorf("empty directory accepted as a rootfs")
	}
	if _, _, err := s.Resolve("./nonexistent"); err == nil {
		t.Errorf("missing directory accepted")
	}
}

func TestIsHostRoot(t *testing.T) {
	link := filepath.Join(t.TempDir(), "root")
	os.Symlink("/", link)
	for dir, want := range map[string]bool{"/": true, "/.": true, "/usr/..": true, link: true, t.TempDir(): false} {
		if got, err := IsHostRoot(dir); err != nil || got != want {
			t.Errorf("%s: %v %v", dir, got, err)
		}
	}
}

func TestAcquireBlocksRemove(t *testing.T) {
	s := newTestStore(t)
	importTiny(t, s, "tiny")
	release, err := s.Acquire("tiny")
	if err != nil {
		t.Fatal(err)
	}
	// A second reader shares the lock.
	release2, err := s.Acquire("tiny")
	if err != nil {
		t.Fatal(err)
	}
	release2()
	if err := s.Remove("tiny"); !errors.Is(err, ErrInUse) {
		t.Fatalf("remove while held: %v", err)
	}
	release()
	release() // idempotent
	if err := s.Remove("tiny"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Acquire("tiny"); !errors.Is(err, ErrUnknownRootfs) {
		t.Fatalf("acquire after remove: %v", err)
	}
	if err := s.Remove("tiny"); !errors.Is(err, ErrUnknownRootfs) {
		t.Fatalf("remove twice: %v", err)
	}
}

func TestImportExistingName(t *testing.T) {
	s := newTestStore(t)
	importTiny(t, s, "tiny")
	src := filepath.Join(t.TempDir(), "other.tar")
	os.WriteFile(src, mkTar(t, []ent{{name: "bin/", typ: '5'}}), 0o644)
	if _, err := s.Import(context.Background(), src, ImportOptions{Name: "tiny"}); !errors.Is(err, ErrExists) {
		t.Fatalf("got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(s.RootfsDir("tiny"), "etc/hostname")); string(b) != "tiny" {
		t.Fatal("existing tree changed")
	}
	metas, err := s.List()
	if err != nil || len(metas) != 1 || metas[0].Name != "tiny" || metas[0].Format != "tar" || metas[0].Size != 4 {
		t.Fatalf("list: %+v %v", metas, err)
	}
}

func TestTempDirCleanup(t *testing.T) {
	s := newTestStore(t)
	live, release, err := s.TempDir("eph-")
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(live, "a/b"), 0o755)
	os.Chmod(filepath.Join(live, "a"), 0o500)
	// A dead process's directory: not locked.
	dead := filepath.Join(s.Home, "tmp", "import-dead")
	os.MkdirAll(filepath.Join(dead, "rootfs/x"), 0o755)
	os.Chmod(filepath.Join(dead, "rootfs"), 0)
	if _, err := NewStore(s.Home); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dead); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale staging survived: %v", err)
	}
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("live temp dir removed: %v", err)
	}
	if err := release(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(live); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("released temp dir survived: %v", err)
	}
}

// A bind mount inside a tree (left by a run in this namespace) stops the
// removal instead of being emptied through.
func TestRemoveTreeStopsAtMounts(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount")
	}
	host := t.TempDir()
	os.WriteFile(filepath.Join(host, "precious"), []byte("p"), 0o644)
	tree := filepath.Join(t.TempDir(), "tree")
	mnt := filepath.Join(tree, "a", "mnt")
	os.MkdirAll(mnt, 0o755)
	if err := unix.Mount(host, mnt, "", unix.MS_BIND, ""); err != nil {
		t.Skipf("bind mount: %v", err)
	}
	defer unix.Unmount(mnt, unix.MNT_DETACH)
	if err := RemoveTree(tree); !errors.Is(err, unix.EBUSY) {
		t.Fatalf("RemoveTree: %v", err)
	}
	if _, err := os.Stat(filepath.Join(host, "precious")); err != nil {
		t.Fatalf("removed through the mount: %v", err)
	}
	unix.Unmount(mnt, unix.MNT_DETACH)
	if err := RemoveTree(tree); err != nil {
		t.Fatal(err)
	}
}

// The recorder sees the entries of archives and OCI layouts, not of
// directory copies.
func TestImportRecorder(t *testing.T) {
	s := newTestStore(t)
	src := t.TempDir()
	tarball := filepath.Join(src, "r.tar")
	os.WriteFile(tarball, mkTar(t, []ent{{name: "etc/", typ: '5'}, {name: "etc/x", typ: '0', body: "x"}}), 0o644)
	tree := filepath.Join(src, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	for _, tc := range []struct {
		src, name, want string
	}{
		{tarball, "t", "etc,etc/x"},
		{tree, "d", ""},
	} {
		var rec testRecorder
		var closed bool
		_, err := s.Import(context.Background(), tc.src, ImportOptions{Name: tc.name, Recorder: func(rootfsDir, dbPath string) (MetadataRecorder, error) {
			if filepath.Dir(rootfsDir) != filepath.Dir(dbPath) || !strings.HasPrefix(dbPath, filepath.Join(s.Home, "tmp")) {
				t.Errorf("recorder paths %s %s", rootfsDir, dbPath)
			}
			return &closeRecorder{&rec, &closed}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(rec.rels, ","); got != tc.want {
			t.Errorf("%s: recorded %q, want %q", tc.name, got, tc.want)
		}
		if tc.want != "" && !closed {
			t.Errorf("%s: recorder not closed", tc.name)
		}
	}
}

type closeRecorder struct {
	*testRecorder
	closed *bool
}

func (c *closeRecorder) Close() error { *c.closed = true; return nil }
