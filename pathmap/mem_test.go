package pathmap_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"nook/pathmap"
	"nook/pathmap/pathmaptest"
)

// memTree is the guest used by the MemFS tests: root /r, binds of /host/data
// at /mnt, of a file over /etc/cfg, of a symlinked source at /srv, of the
// root's own /r/home at /h2.
func memTree(t testing.TB, cache bool) (*pathmap.Mapper, *pathmaptest.MemFS) {
	f := pathmaptest.New()
	f.File("/r/bin/sh")
	f.File("/r/etc/passwd")
	f.File("/r/etc/cfg")
	f.Symlink("/r/lib", "usr/lib")
	f.File("/r/usr/lib/libc.so")
	f.Symlink("/r/abs", "/etc")
	f.Symlink("/r/up", "../../../etc")
	f.Symlink("/r/loop", "loop")
	f.Symlink("/r/dang", "/missing")
	f.Symlink("/r/dangdir", "/nodir/x")
	f.Symlink("/r/slash", "/")
	f.Symlink("/r/tofile", "etc/passwd")
	f.File("/r/file")
	f.Dir("/r/home/u")
	f.Dir("/r/mnt/hidden")
	f.File("/host/data/x")
	f.Dir("/host/data/d")
	f.Symlink("/host/data/out", "/etc")
	f.File("/host/cfg")
	f.Dir("/host/other/o")
	f.Symlink("/host/link", "other")
	f.File("/host/v/y")
	for i := 1; i <= 41; i++ {
		f.Symlink(fmt.Sprintf("/r/c/l%d", i), fmt.Sprintf("l%d", i+1))
	}
	f.File("/r/c/l42")
	m, err := pathmap.New(pathmap.Config{
		Root: "/r",
		Binds: []pathmap.Bind{
			{Host: "/host/data", Guest: "/mnt"},
			{Host: "/host/cfg", Guest: "/etc/cfg"},
			{Host: "/host/link", Guest: "/srv"},
			{Host: "/r/home", Guest: "/h2"},
			{Host: "/host/v", Guest: "/deep/virtual/mnt"}, // parents missing in /r
		},
		FS:    f,
		Cache: cache,
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, f
}

func TestResolveMem(t *testing.T) {
	long := strings.Repeat("a", 256)
	cases := []struct {
		name        string
		req         pathmap.Request
		host, guest string
		err         error
		mount       bool
	}{
		{"file", pathmap.Request{Path: "/bin/sh", Follow: true}, "/r/bin/sh", "/bin/sh", nil, false},
		{"relative link dir", pathmap.Request{Path: "/lib/libc.so"}, "/r/usr/lib/libc.so", "/usr/lib/libc.so", nil, false},
		{"absolute link dir", pathmap.Request{Path: "/abs/passwd"}, "/r/etc/passwd", "/etc/passwd", nil, false},
		{"dotdot link past root", pathmap.Request{Path: "/up/passwd"}, "/r/etc/passwd", "/etc/passwd", nil, false},
		{"dotdot past root", pathmap.Request{Path: "/../../etc/../etc/passwd"}, "/r/etc/passwd", "/etc/passwd", nil, false},
		{"root", pathmap.Request{Path: "/"}, "/r", "/", nil, false},
		{"double slash root", pathmap.Request{Path: "//"}, "/r", "/", nil, false},
		{"link to root", pathmap.Request{Path: "/slash", Follow: true}, "/r", "/", nil, false},
		{"link to root then dir", pathmap.Request{Path: "/slash/etc"}, "/r/etc", "/etc", nil, false},
		{"loop follow", pathmap.Request{Path: "/loop", Follow: true}, "", "", unix.ELOOP, false},
		{"loop nofollow", pathmap.Request{Path: "/loop"}, "/r/loop", "/loop", nil, false},
		{"loop middle", pathmap.Request{Path: "/loop/x"}, "", "", unix.ELOOP, false},
		{"40 links", pathmap.Request{Path: "/c/l2", Follow: true}, "/r/c/l42", "/c/l42", nil, false},
		{"41 links", pathmap.Request{Path: "/c/l1", Follow: true}, "", "", unix.ELOOP, false},
		{"dangling follow", pathmap.Request{Path: "/dang", Follow: true}, "/r/missing", "/missing", nil, false},
		{"dangling nofollow", pathmap.Request{Path: "/dang"}, "/r/dang", "/dang", nil, false},
		{"dangling dir", pathmap.Request{Path: "/dangdir", Follow: true}, "", "", unix.ENOENT, false},
		{"final link to file", pathmap.Request{Path: "/tofile", Follow: true}, "/r/etc/passwd", "/etc/passwd", nil, false},
		{"final link nofollow", pathmap.Request{Path: "/tofile"}, "/r/tofile", "/tofile", nil, false},
		{"final link slash", pathmap.Request{Path: "/tofile/"}, "/r/etc/passwd/", "/etc/passwd", nil, false},
		{"file middle", pathmap.Request{Path: "/file/x"}, "", "", unix.ENOTDIR, false},
		{"file slash", pathmap.Request{Path: "/file/"}, "/r/file/", "/file", nil, false},
		{"file dot", pathmap.Request{Path: "/file/."}, "", "", unix.ENOTDIR, false},
		{"file dotdot", pathmap.Request{Path: "/file/.."}, "", "", unix.ENOTDIR, false},
		{"dir dotdot", pathmap.Request{Path: "/etc/.."}, "/r", "/", nil, false},
		{"abs slash", pathmap.Request{Path: "/abs/"}, "/r/etc/", "/etc", nil, false},
		{"missing middle", pathmap.Request{Path: "/missing/x"}, "", "", unix.ENOENT, false},
		{"missing slash", pathmap.Request{Path: "/missing/"}, "/r/missing/", "/missing", nil, false},
		{"bind", pathmap.Request{Path: "/mnt/x"}, "/host/data/x", "/mnt/x", nil, false},
		{"bind dotdot", pathmap.Request{Path: "/mnt/.."}, "/r", "/", nil, false},
		{"bind dotdot chain", pathmap.Request{Path: "/mnt/d/../../etc"}, "/r/etc", "/etc", nil, false},
		{"bind abs link", pathmap.Request{Path: "/mnt/out/passwd"}, "/r/etc/passwd", "/etc/passwd", nil, false},
		{"bind hides", pathmap.Request{Path: "/mnt/hidden"}, "/host/data/hidden", "/mnt/hidden", nil, false},
		{"bind over file", pathmap.Request{Path: "/etc/cfg"}, "/host/cfg", "/etc/cfg", nil, false},
		{"bind over file via link", pathmap.Request{Path: "/abs/cfg"}, "/host/cfg", "/etc/cfg", nil, false},
		{"bind source symlink", pathmap.Request{Path: "/srv/o"}, "/host/other/o", "/srv/o", nil, false},
		{"cwd bind", pathmap.Request{Cwd: "/mnt", Path: "x"}, "/host/data/x", "/mnt/x", nil, false},
		{"cwd bind dotdot", pathmap.Request{Cwd: "/mnt/d", Path: "../../etc"}, "/r/etc", "/etc", nil, false},
		{"dir", pathmap.Request{Cwd: "/", Dir: "/home/u", Path: "."}, "/r/home/u", "/home/u", nil, false},
		{"dir not dir", pathmap.Request{Cwd: "/", Dir: "/file", Path: "x"}, "", "", unix.ENOTDIR, false},
		{"dir not dir dot", pathmap.Request{Cwd: "/", Dir: "/file", Path: "."}, "", "", unix.ENOTDIR, false},
		{"empty", pathmap.Request{Cwd: "/"}, "", "", unix.ENOENT, false},
		{"empty path", pathmap.Request{Cwd: "/", Dir: "/file", Empty: true}, "/r/file", "/file", nil, false},
		{"empty cwd", pathmap.Request{Cwd: "/home", Empty: true}, "/r/home", "/home", nil, false},
		{"name too long", pathmap.Request{Path: "/" + long}, "", "", unix.ENAMETOOLONG, false},
		{"name 255", pathmap.Request{Path: "/" + long[1:]}, "/r/" + long[1:], "/" + long[1:], nil, false},
		{"path too long", pathmap.Request{Path: "/" + strings.Repeat("a/", 2048)}, "", "", unix.ENAMETOOLONG, false},
		{"parent", pathmap.Request{Path: "/abs", Parent: true, Follow: true}, "/r/abs", "/abs", nil, false},
		{"parent slash", pathmap.Request{Path: "/abs/", Parent: true}, "/r/abs/", "/abs", nil, false},
		{"parent through link", pathmap.Request{Path: "/abs/new", Parent: true}, "/r/etc/new", "/etc/new", nil, false},
		{"parent root", pathmap.Request{Path: "//", Parent: true}, "/", "/", nil, false},
		{"parent dotdot", pathmap.Request{Path: "/home/..", Parent: true}, "/r/home/..", "/", nil, false},
		{"parent dot", pathmap.Request{Path: "/home/.", Parent: true}, "/r/home/.", "/home", nil, false},
		{"parent mount", pathmap.Request{Path: "/mnt", Parent: true}, "/host/data", "/mnt", nil, true},
		{"parent mount cfg", pathmap.Request{Path: "/etc/cfg", Parent: true}, "/host/cfg", "/etc/cfg", nil, true},
		{"virtual parents", pathmap.Request{Path: "/deep/virtual/mnt/y"}, "/host/v/y", "/deep/virtual/mnt/y", nil, false},
		{"virtual parents dotdot", pathmap.Request{Path: "/deep/virtual/mnt/../../virtual/./mnt/y"}, "/host/v/y", "/deep/virtual/mnt/y", nil, false},
		{"virtual parent itself", pathmap.Request{Path: "/deep/virtual", Follow: true}, "/r/deep/virtual", "/deep/virtual", nil, false},
		{"virtual parent other child", pathmap.Request{Path: "/deep/other/x", Follow: true}, "", "", unix.ENOENT, false},
		{"cwd virtual", pathmap.Request{Cwd: "/deep/virtual/mnt", Path: "../mnt/y"}, "/host/v/y", "/deep/virtual/mnt/y", nil, false},
		{"parent missing middle", pathmap.Request{Path: "/missing/x", Parent: true}, "", "", unix.ENOENT, false},
	}
	for _, cache := range []bool{false, true} {
		m, f := memTree(t, cache)
		for round := 0; round < 2; round++ {
			for _, c := range cases {
				t.Run(fmt.Sprintf("cache=%v/%s", cache, c.name), func(t *testing.T) {
					if c.req.Cwd == "" {
						c.req.Cwd = "/"
					}
					r, err := m.Resolve(c.req)
					if c.err != nil {
						if !errors.Is(err, c.err) {
							t.Fatalf("Resolve(%+v) = %+v, %v; want %v", c.req, r, err, c.err)
						}
						return
					}
					if err != nil || r.Host != c.host || r.Guest != c.guest || r.Mount != c.mount {
						t.Fatalf("Resolve(%+v) = %+v, %v; want {%s %s %v}", c.req, r, err, c.host, c.guest, c.mount)
					}
				})
			}
		}
		if len(f.Escapes) > 0 {
			t.Errorf("host symlinks walked: %q", f.Escapes)
		}
	}
}

func TestToGuestMem(t *testing.T) {
	m, _ := memTree(t, false)
	cases := []struct{ host, guest string }{
		{"/r/etc/passwd", "/etc/passwd"},
		{"/r", "/"},
		{"/r/", "/"},
		{"/host/data/x", "/mnt/x"},
		{"/host/data", "/mnt"},
		{"/host/other/o", "/srv/o"}, // the bind's source, resolved
		{"/host/cfg", "/etc/cfg"},   // bind over a file
		{"/r/home/u", "/h2/u"},      // deepest source wins over the root's /home
		{"/r/etc/cfg", ""},          // hidden by the bind over it
		{"/r/mnt/hidden", ""},       // hidden by the bind over /mnt
		{"/host/link", ""},          // the symlink itself is not mounted
		{"/", ""},
		{"/rr", ""},
		{"/host", ""},
		{"relative", ""},
	}
	for _, c := range cases {
		g, err := m.ToGuest(c.host)
		if c.guest == "" {
			if !errors.Is(err, pathmap.ErrNotVisible) {
				t.Errorf("ToGuest(%q) = %q, %v; want ErrNotVisible", c.host, g, err)
			}
			continue
		}
		if err != nil || g != c.guest {
			t.Errorf("ToGuest(%q) = %q, %v; want %q", c.host, g, err, c.guest)
		}
	}
}

func TestNewBindErrors(t *testing.T) {
	f := pathmaptest.New()
	f.File("/r/file")
	f.Symlink("/r/loop", "loop")
	f.Symlink("/r/dang", "/nowhere/x")
	f.Dir("/src")
	for _, c := range []struct {
		bind pathmap.Bind
		err  error
	}{
		{pathmap.Bind{Host: "/src", Guest: "/file/x"}, unix.ENOTDIR},
		{pathmap.Bind{Host: "/src", Guest: "/loop/x"}, unix.ELOOP},
		{pathmap.Bind{Host: "/src", Guest: "/dang/x"}, unix.ENOENT},
		{pathmap.Bind{Host: "/missing", Guest: "/x"}, unix.ENOENT},
		{pathmap.Bind{Host: "src", Guest: "/x"}, nil},
	} {
		_, err := pathmap.New(pathmap.Config{Root: "/r", Binds: []pathmap.Bind{c.bind}, FS: f})
		if err == nil || c.err != nil && !errors.Is(err, c.err) {
			t.Errorf("New with bind %+v: %v; want %v", c.bind, err, c.err)
		}
	}
	if _, err := pathmap.New(pathmap.Config{Root: "/r/file", FS: f}); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("New with a file as root: %v", err)
	}
}

// TestHostPathMax: a guest path the kernel would take can translate to a
// host path it would not; Resolve says so with ENAMETOOLONG.
func TestHostPathMax(t *testing.T) {
	f := pathmaptest.New()
	dir := ""
	for i := 0; i < 16; i++ {
		dir += "/" + strings.Repeat(string(rune('a'+i)), 250)
	}
	f.Dir("/r" + dir)
	m, err := pathmap.New(pathmap.Config{Root: "/r", FS: f})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		final int
		err   error
	}{
		{76, nil},               // guest 4093 bytes, host 4095
		{77, unix.ENAMETOOLONG}, // guest 4094 bytes, host 4096
	} {
		p := dir + "/" + strings.Repeat("z", c.final)
		r, err := m.Resolve(pathmap.Request{Cwd: "/", Path: p})
		if err != c.err || err == nil && r.Host != "/r"+p {
			t.Errorf("guest path of %d bytes: %v, %v; want %v", len(p), len(r.Host), err, c.err)
		}
	}
}

// TestInvalidate checks the cache contract: an entry removed or replaced
// is seen again after Invalidate of its host path, through every mount
// that shows it, and not before.
func TestInvalidate(t *testing.T) {
	m, f := memTree(t, true)
	resolve := func(p string) string {
		r, err := m.Resolve(pathmap.Request{Cwd: "/", Path: p, Follow: true})
		if err != nil {
			return err.Error()
		}
		return r.Host
	}
	f.Dir("/r/home/u/sub")
	f.File("/r/home/u/sub/f")
	for _, p := range []string{"/home/u/sub/f", "/h2/u/sub/f"} {
		if got := resolve(p); got != "/r/home/u/sub/f" {
			t.Fatalf("%s: %s", p, got)
		}
	}
	// The guest replaces /home/u/sub with a symlink (rename over it).
	f.Remove("/r/home/u/sub")
	f.Symlink("/r/home/u/sub", "/etc")
	if got := resolve("/home/u/sub/f"); got != "/r/home/u/sub/f" {
		t.Fatalf("cache not used: %s", got)
	}
	m.Invalidate("/r/home/u/sub")
	for _, p := range []string{"/home/u/sub/f", "/h2/u/sub/f"} {
		if got := resolve(p); got != "/r/etc/f" {
			t.Errorf("%s after Invalidate: %s", p, got)
		}
	}
	// Removing a directory forgets what is below it too.
	f.Remove("/r/home/u")
	f.File("/r/home/u")
	m.Invalidate("/r/home/u/")
	if got := resolve("/h2/u/sub/f"); got != unix.ENOTDIR.Error() {
		t.Errorf("after rmdir and creat: %s", got)
	}
	// Flush forgets everything.
	f.Remove("/r/usr/lib")
	f.Symlink("/r/usr/lib", "/bin")
	m.Flush()
	if got := resolve("/lib/sh"); got != "/r/bin/sh" {
		t.Errorf("after Flush: %s", got)
	}
}
