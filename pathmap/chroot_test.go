package pathmap_test

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// The differential test runs every case twice on the same tree: once in a
// real chroot (a re-executed test binary in its own mount namespace, with
// real bind mounts), once through pathmap with OSFS, doing the same
// syscall on the host path Resolve returns. Both must reach the same file
// (dev:ino) or fail with the same errno.

const childEnv = "PATHMAP_CHROOT_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" {
		chrootChild()
		return
	}
	os.Exit(m.Run())
}

type diffCase struct {
	Op     string // stat, open, creat, mkdir, rmdir, unlink, rename (to /renamed), cwd
	Cwd    string
	Dir    string
	Path   string
	Follow bool
	Empty  bool
}

type outcome struct {
	Errno    int
	Dev, Ino uint64
	Cwd      string // getcwd after chdir, for the cwd op
}

func (o outcome) String() string {
	if o.Errno != 0 {
		return fmt.Sprintf("%v", unix.Errno(o.Errno))
	}
	if o.Cwd != "" {
		return o.Cwd
	}
	return fmt.Sprintf("%d:%d", o.Dev, o.Ino)
}

// renameTo is the new name of the rename cases, which all fail.
const renameTo = "/renamed"

type childSpec struct {
	Root  string
	Binds []pathmap.Bind
	Cases []diffCase
}

func errnoOf(err error) int {
	if err == nil {
		return 0
	}
	if e, ok := err.(unix.Errno); ok {
		return int(e)
	}
	return -1
}

// chrootChild runs in the re-executed binary: it sets up the mounts,
// chroots and runs the cases, printing their outcomes (gob).
func chrootChild() {
	var spec childSpec
	if err := gob.NewDecoder(os.Stdin).Decode(&spec); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	die := func(what string, err error) {
		fmt.Fprintf(os.Stderr, "%s: %v\n", what, err)
		os.Exit(2)
	}
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		die("make / private", err)
	}
	// Clone the sources before the chroot and attach them after it, so
	// that each target is looked up inside the guest, following symlinks,
	// as mount(2) called in the chroot would (and as pathmap models).
	// Shallow targets first, like pathmap.New.
	binds := append([]pathmap.Bind(nil), spec.Binds...)
	sort.SliceStable(binds, func(i, j int) bool {
		return strings.Count(path.Clean(binds[i].Guest), "/") < strings.Count(path.Clean(binds[j].Guest), "/")
	})
	trees := make([]int, len(binds))
	for i, b := range binds {
		fd, err := unix.OpenTree(unix.AT_FDCWD, b.Host, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			die("open_tree "+b.Host, err)
		}
		trees[i] = fd
	}
	if err := unix.Chroot(spec.Root); err != nil {
		die("chroot", err)
	}
	if err := unix.Chdir("/"); err != nil {
		die("chdir /", err)
	}
	for i, b := range binds {
		if err := unix.MoveMount(trees[i], "", unix.AT_FDCWD, b.Guest, unix.MOVE_MOUNT_F_EMPTY_PATH|unix.MOVE_MOUNT_T_SYMLINKS); err != nil {
			fmt.Fprintf(os.Stderr, "move_mount %s: %v\n", b.Guest, err)
			os.Exit(3)
		}
	}
	out := make([]outcome, len(spec.Cases))
	for i, c := range spec.Cases {
		cwd := c.Cwd
		if cwd == "" {
			cwd = "/"
		}
		if err := unix.Chdir(cwd); err != nil {
			die("chdir "+cwd, err)
		}
		dirfd := unix.AT_FDCWD
		if c.Dir != "" {
			fd, err := unix.Open(c.Dir, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				die("open dir "+c.Dir, err)
			}
			dirfd = fd
		}
		switch c.Op {
		case "rename":
			out[i] = outcome{Errno: errnoOf(unix.Renameat(dirfd, c.Path, unix.AT_FDCWD, renameTo))}
		case "cwd":
			if err := unix.Chdir(c.Path); err != nil {
				out[i] = outcome{Errno: errnoOf(err)}
			} else if wd, err := unix.Getwd(); err != nil {
				out[i] = outcome{Errno: errnoOf(err)}
			} else {
				out[i] = outcome{Cwd: wd}
			}
		default:
			out[i] = doOp(dirfd, c.Path, c, false)
		}
		if dirfd != unix.AT_FDCWD {
			unix.Close(dirfd)
		}
	}
	if err := gob.NewEncoder(os.Stdout).Encode(out); err != nil {
		die("encode", err)
	}
}

// doOp does c's syscall on p relative to dirfd. host is set on the pathmap
// side, where p is a host path and AT_EMPTY_PATH is not needed.
func doOp(dirfd int, p string, c diffCase, host bool) outcome {
	var st unix.Stat_t
	statOf := func(err error) outcome {
		if err != nil {
			return outcome{Errno: errnoOf(err)}
		}
		return outcome{Dev: st.Dev, Ino: st.Ino}
	}
	switch c.Op {
	case "stat":
		flags := 0
		if !c.Follow {
			flags |= unix.AT_SYMLINK_NOFOLLOW
		}
		if c.Empty && !host {
			flags |= unix.AT_EMPTY_PATH
		}
		return statOf(unix.Fstatat(dirfd, p, &st, flags))
	case "open":
		flags := unix.O_RDONLY | unix.O_CLOEXEC
		if !c.Follow {
			flags |= unix.O_NOFOLLOW
		}
		fd, err := unix.Openat(dirfd, p, flags, 0)
		if err != nil {
			return outcome{Errno: errnoOf(err)}
		}
		defer unix.Close(fd)
		return statOf(unix.Fstat(fd, &st))
	case "creat":
		flags := unix.O_CREAT | unix.O_WRONLY | unix.O_CLOEXEC
		if !c.Follow {
			flags |= unix.O_EXCL
		}
		fd, err := unix.Openat(dirfd, p, flags, 0o644)
		if err != nil {
			return outcome{Errno: errnoOf(err)}
		}
		defer unix.Close(fd)
		return statOf(unix.Fstat(fd, &st))
	case "mkdir":
		if err := unix.Mkdirat(dirfd, p, 0o755); err != nil {
			return outcome{Errno: errnoOf(err)}
		}
		return statOf(unix.Fstatat(dirfd, p, &st, unix.AT_SYMLINK_NOFOLLOW))
	case "rmdir":
		return outcome{Errno: errnoOf(unix.Unlinkat(dirfd, p, unix.AT_REMOVEDIR))}
	case "unlink":
		return outcome{Errno: errnoOf(unix.Unlinkat(dirfd, p, 0))}
	}
	panic("unknown op " + c.Op)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root for chroot and mounts")
	}
}

// diffTree builds the test guest under dir and returns its root and binds.
func diffTree(t *testing.T, dir string) (string, []pathmap.Bind) {
	t.Helper()
	root := filepath.Join(dir, "root")
	host := filepath.Join(dir, "host")
	dirs := []string{
		"root/bin", "root/etc", "root/usr/lib", "root/home/u", "root/mnt/hidden", "root/mnt2",
		"root/c", "root/deep",
		"host/data/d", "host/data/inner", "host/other/o", "host/nest",
	}
	files := []string{
		"root/bin/sh", "root/etc/passwd", "root/etc/cfg", "root/usr/lib/libc.so", "root/file",
		"host/data/x", "host/cfg", "host/nest/n", "host/other/o/f",
	}
	links := [][2]string{
		{"root/lib", "usr/lib"},
		{"root/abs", "/etc"},
		{"root/up", "../../../../etc"},
		{"root/loop", "loop"},
		{"root/loop2a", "loop2b"},
		{"root/loop2b", "loop2a"},
		{"root/dang", "/missing"},
		{"root/dangrel", "../../newtarget"},
		{"root/dangdir", "/nodir/x"},
		{"root/slash", "/"},
		{"root/tofile", "etc/passwd"},
		{"root/todir", "/usr/lib"},
		{"root/todirslash", "/usr/lib/"},
		{"root/tofileslash", "/etc/passwd/"},
		{"root/dots", "./././usr/../usr/./lib/."},
		{"root/home/u/back", "../../"},
		{"host/data/out", "/etc"},
		{"host/data/up", "../../.."},
		{"host/data/rel", "../bin/sh"},
		{"host/link", "other"},
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 41; i++ {
		links = append(links, [2]string{fmt.Sprintf("root/c/l%d", i), fmt.Sprintf("l%d", i+1)})
	}
	if err := os.WriteFile(filepath.Join(root, "c/l42"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, l := range links {
		if err := os.Symlink(l[1], filepath.Join(dir, l[0])); err != nil {
			t.Fatal(err)
		}
	}
	// A guest path long enough to be near PATH_MAX.
	p := filepath.Join(root, "deep")
	for i := 0; i < 15; i++ {
		p = filepath.Join(p, strings.Repeat("d", 250))
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	binds := []pathmap.Bind{
		{Host: filepath.Join(host, "data"), Guest: "/mnt"},
		{Host: filepath.Join(host, "cfg"), Guest: "/etc/cfg"},     // over a file
		{Host: filepath.Join(host, "link"), Guest: "/mnt2"},       // source is a symlink
		{Host: filepath.Join(host, "nest"), Guest: "/mnt/inner"},  // nested in /mnt
		{Host: filepath.Join(root, "usr"), Guest: "/home/u/usr2"}, // source inside the root
	}
	if err := os.Mkdir(filepath.Join(root, "home/u/usr2"), 0o755); err != nil {
		t.Fatal(err)
	}
	return root, binds
}

func diffCases() []diffCase {
	long := strings.Repeat("n", 256)
	deep := "/deep" + strings.Repeat("/"+strings.Repeat("d", 250), 15)
	s := func(p string, follow bool) diffCase { return diffCase{Op: "stat", Path: p, Follow: follow} }
	cases := []diffCase{
		s("/bin/sh", true),
		s("/bin/sh", false),
		s("/etc", false),
		s("/lib/libc.so", true),
		s("/lib", true),
		s("/lib", false),
		s("/abs/passwd", true),
		s("/up/passwd", true),
		s("/../../etc/passwd", true),
		s("/..", true),
		s("/", true),
		s("//", false),
		s("///etc//passwd", false),
		s("/slash", true),
		s("/slash/etc", true),
		s("/dots", true),
		s("/dots/libc.so", false),
		s("/loop", true),
		s("/loop", false),
		s("/loop/x", false),
		s("/loop/", false),
		s("/loop2a", true),
		s("/c/l2", true),  // 40 links
		s("/c/l1", true),  // 41 links
		s("/c/l1", false), // not followed
		s("/dang", true),
		s("/dang", false),
		s("/dang/", false),
		s("/dangdir", true),
		s("/tofile", true),
		s("/tofile", false),
		s("/tofile/", false),
		s("/tofile/.", false),
		s("/tofileslash", true),
		s("/tofileslash", false),
		s("/todir", false),
		s("/todir/", false),
		s("/todir/.", false),
		s("/todir/..", false),
		s("/todirslash", true),
		s("/todirslash/libc.so", false),
		s("/file", true),
		s("/file/x", true),
		s("/file/", true),
		s("/file/.", true),
		s("/file/..", true),
		s("/etc/..", true),
		s("/etc/../", true),
		s("/etc/.", true),
		s("/etc/./", true),
		s("/missing", true),
		s("/missing/x", true),
		s("/missing/", true),
		s("/missing/..", true),
		s("/mnt", false),
		s("/mnt/", false),
		s("/mnt/x", true),
		s("/mnt/x/", true),
		s("/mnt/..", true),
		s("/mnt/d/../../etc", true),
		s("/mnt/out/passwd", true),
		s("/mnt/up", true),
		s("/mnt/up/etc", true),
		s("/mnt/rel", true),
		s("/mnt/hidden", true),
		s("/mnt/inner", true),
		s("/mnt/inner/n", true),
		s("/mnt/inner/../x", true),
		s("/mnt/inner/..", true),
		s("/etc/cfg", true),
		s("/etc/cfg/", true),
		s("/etc/cfg/x", true),
		s("/abs/cfg", true),
		s("/mnt2", true),
		s("/mnt2/o/f", true),
		s("/mnt2/..", true),
		s("/home/u/usr2/lib/libc.so", true),
		s("/home/u/usr2/..", true),
		s("/home/u/usr2/../..", true),
		s("/home/u/back/etc", true),
		s("/home/u/back", true),
		s("/"+long, true),
		s("/"+long+"/x", true),
		s("/"+long[1:], true),
		s("/"+strings.Repeat("./", 2047), true), // 4095 bytes: allowed
		s("/"+strings.Repeat("./", 2047)+"x", true),
		s(strings.Repeat("x", 4096), true),
		s(deep, true),
		s(deep+"/..", true),
		{Op: "stat", Cwd: "/mnt", Path: "x", Follow: true},
		{Op: "stat", Cwd: "/mnt", Path: "..", Follow: true},
		{Op: "stat", Cwd: "/mnt/d", Path: "../../etc", Follow: true},
		{Op: "stat", Cwd: "/mnt/inner", Path: "../x", Follow: true},
		{Op: "stat", Cwd: "/home/u", Path: "../../../..", Follow: true},
		{Op: "stat", Cwd: "/home/u", Path: "back/bin/sh", Follow: true},
		{Op: "stat", Cwd: "/home/u/usr2", Path: "../usr2/lib", Follow: true},
		{Op: "stat", Cwd: "/etc", Path: "", Follow: true},
		{Op: "stat", Cwd: "/etc", Path: "", Empty: true},
		{Op: "stat", Cwd: "/etc", Path: ".", Follow: true},
		{Op: "stat", Dir: "/home/u", Path: ".", Follow: true},
		{Op: "stat", Dir: "/home/u", Path: "back", Follow: false},
		{Op: "stat", Dir: "/home/u", Path: "back/", Follow: false},
		{Op: "stat", Dir: "/mnt", Path: "../etc/passwd", Follow: true},
		{Op: "stat", Dir: "/file", Path: "x", Follow: true},
		{Op: "stat", Dir: "/file", Path: ".", Follow: true},
		{Op: "stat", Dir: "/file", Path: "", Follow: true},
		{Op: "stat", Dir: "/file", Path: "", Empty: true},
		{Op: "stat", Dir: "/tofile", Path: "", Empty: true},
		{Op: "stat", Dir: "/mnt/inner", Path: "", Empty: true},
		{Op: "stat", Dir: "/etc", Path: "/bin/sh", Follow: true},

		{Op: "open", Path: "/tofile", Follow: false}, // O_NOFOLLOW: ELOOP
		{Op: "open", Path: "/tofile", Follow: true},
		{Op: "open", Path: "/todir/", Follow: false},
		{Op: "open", Path: "/dang", Follow: false},
		{Op: "open", Path: "/dang", Follow: true},
		{Op: "open", Path: "/mnt2/o/", Follow: false},
		{Op: "open", Path: "/tofile/", Follow: true},

		// getcwd after chdir against ToGuest of the host path.
		{Op: "cwd", Path: "/mnt/inner"},
		{Op: "cwd", Path: "/mnt/inner/.."},
		{Op: "cwd", Path: "/mnt2/o"},
		{Op: "cwd", Path: "/abs"},
		// Not "/lib": the chroot's getcwd says /usr/lib, ToGuest says
		// /home/u/usr2/lib, the deepest bind showing the same directory
		// (a host path alone cannot tell which way the guest came).
		{Op: "cwd", Path: "/mnt/up"},
		{Op: "cwd", Path: "/home/u/back/mnt/d"},
		{Op: "cwd", Path: "/home/u/usr2/lib"},
		{Op: "cwd", Path: "/"},
		{Op: "cwd", Path: "/file"},

		// Parent-style calls, all failing (the tree must stay intact).
		{Op: "rename", Path: "/missing"},
		{Op: "rename", Path: "/file/"},
		{Op: "rename", Path: "/mnt"},
		{Op: "rename", Path: "/mnt/inner"},
		{Op: "rename", Path: "/"},
		{Op: "rename", Path: "/etc/."},
		{Op: "rename", Path: "/etc/.."},
		{Op: "rename", Path: "/todir/"},
		{Op: "rename", Path: "/missing/x"},
		{Op: "rename", Path: "/mnt/x"},           // EXDEV: another mount
		{Op: "rename", Path: "/home/u/usr2/lib"}, // EXDEV: same file system
		{Op: "rename", Cwd: "/mnt", Path: "../etc/.."},
		{Op: "mkdir", Path: "/etc"},
		{Op: "mkdir", Path: "/"},
		{Op: "mkdir", Path: "/etc/."},
		{Op: "mkdir", Path: "/etc/.."},
		{Op: "mkdir", Path: "/dang"},
		{Op: "mkdir", Path: "/dang/"},
		{Op: "mkdir", Path: "/missing/x"},
		{Op: "mkdir", Path: "/file/x"},
		{Op: "mkdir", Path: "/mnt"},
		{Op: "mkdir", Path: "/etc/cfg"},
		{Op: "mkdir", Path: "/" + long},
		{Op: "rmdir", Path: "/etc"},
		{Op: "rmdir", Path: "/etc/."},
		{Op: "rmdir", Path: "/etc/.."},
		{Op: "rmdir", Path: "/"},
		{Op: "rmdir", Path: "//"},
		{Op: "rmdir", Path: "/todir/"},
		{Op: "rmdir", Path: "/todir"},
		{Op: "rmdir", Path: "/mnt"},
		{Op: "rmdir", Path: "/mnt/inner"},
		{Op: "rmdir", Path: "/file"},
		{Op: "rmdir", Path: "/missing"},
		{Op: "rmdir", Path: "/missing/"},
		{Op: "unlink", Path: "/etc"},
		{Op: "unlink", Path: "/todir/"},
		{Op: "unlink", Path: "/file/"},
		{Op: "unlink", Path: "/"},
		{Op: "unlink", Path: "/etc/."},
		{Op: "unlink", Path: "/missing"},
		{Op: "unlink", Path: "/etc/cfg"},
		{Op: "unlink", Path: "/abs/missing"},

		// Calls that create: each a name of its own, after every case
		// that looks at the same place.
		{Op: "creat", Path: "/dang", Follow: true},    // creates /missing
		{Op: "creat", Path: "/dangrel", Follow: true}, // creates /newtarget
		{Op: "creat", Path: "/dang", Follow: false},   // O_EXCL: EEXIST
		{Op: "creat", Path: "/newfile", Follow: true},
		{Op: "creat", Path: "/newfile2/", Follow: true},
		{Op: "creat", Path: "/tofile/", Follow: true},
		{Op: "creat", Path: "/tofile", Follow: true},
		{Op: "creat", Path: "/abs/created", Follow: false},
		{Op: "creat", Path: "/mnt/created", Follow: true},
		{Op: "creat", Path: "/mnt/up/etc/created3", Follow: true},
		{Op: "creat", Path: "/etc/..", Follow: true},
		{Op: "creat", Cwd: "/mnt/inner", Path: "../../created4", Follow: true},
		{Op: "mkdir", Path: "/newdir"},
		{Op: "mkdir", Path: "/newdir2/"},
		{Op: "mkdir", Path: "/abs/newdir3"},
		{Op: "mkdir", Cwd: "/mnt/inner", Path: "../newdir4"},
		{Op: "mkdir", Dir: "/home/u", Path: "back/newdir5//"},
	}
	return cases
}

func TestResolveChrootDifferential(t *testing.T) {
	requireRoot(t)
	for _, cache := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cache), func(t *testing.T) {
			root, binds := diffTree(t, t.TempDir())
			m, err := pathmap.New(pathmap.Config{Root: root, Binds: binds, Cache: cache})
			if err != nil {
				t.Fatal(err)
			}
			cases := diffCases()
			got := viaPathmap(t, m, cases)
			want, err := inChroot(root, binds, cases)
			if err != nil {
				t.Fatal(err)
			}
			compareOutcomes(t, cases, got, want)
		})
	}
}

// mine is the pathmap side of one case.
type mine struct {
	res     pathmap.Result
	out     outcome
	created bool
}

// viaPathmap runs cases through m on the host, undoing what they create so
// that the chroot side starts from the same tree.
func viaPathmap(t testing.TB, m *pathmap.Mapper, cases []diffCase) []mine {
	got := make([]mine, len(cases))
	for i, c := range cases {
		cwd := c.Cwd
		if cwd == "" {
			cwd = "/"
		}
		parent := c.Op == "mkdir" || c.Op == "rmdir" || c.Op == "unlink" || c.Op == "rename"
		follow := c.Follow || c.Op == "cwd"
		r, err := m.Resolve(pathmap.Request{Cwd: cwd, Dir: c.Dir, Path: c.Path, Follow: follow, Empty: c.Empty, Parent: parent})
		got[i].res = r
		if err != nil {
			got[i].out = outcome{Errno: errnoOf(err)}
			continue
		}
		switch c.Op {
		case "cwd":
			// What the tracer does: chdir on the host path, then
			// getcwd mapped back.
			var st unix.Stat_t
			if err := unix.Stat(r.Host, &st); err != nil {
				got[i].out = outcome{Errno: errnoOf(err)}
			} else if st.Mode&unix.S_IFMT != unix.S_IFDIR {
				got[i].out = outcome{Errno: int(unix.ENOTDIR)}
			} else if g, err := m.ToGuest(r.Host); err != nil {
				t.Errorf("ToGuest(%q): %v", r.Host, err)
			} else {
				got[i].out = outcome{Cwd: g}
			}
			continue
		case "rename":
			to, err := m.Resolve(pathmap.Request{Cwd: "/", Path: renameTo, Parent: true})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case r.MountID != to.MountID:
				got[i].out = outcome{Errno: int(unix.EXDEV)}
			case r.Mount:
				got[i].out = outcome{Errno: int(unix.EBUSY)}
			default:
				got[i].out = outcome{Errno: errnoOf(unix.Rename(r.Host, to.Host))}
			}
			continue
		}
		if r.Mount && (c.Op == "rmdir" || c.Op == "unlink") {
			// What the tracer does for a mount point.
			got[i].out = outcome{Errno: int(unix.EBUSY)}
			continue
		}
		var st unix.Stat_t
		existed := unix.Lstat(strings.TrimRight(r.Host, "/"), &st) == nil
		got[i].out = doOp(unix.AT_FDCWD, r.Host, c, true)
		if got[i].out.Errno == 0 && !existed {
			// Undo, so that the chroot side starts from the same
			// tree; compared again after it ran.
			got[i].created = true
			switch c.Op {
			case "creat":
				err = unix.Unlink(r.Host)
			case "mkdir":
				err = unix.Rmdir(r.Host)
			}
			if err != nil {
				t.Fatalf("undo %s %s: %v", c.Op, r.Host, err)
			}
		}
	}

	return got
}

// compareOutcomes reports every case where the chroot and pathmap differ.
func compareOutcomes(t testing.TB, cases []diffCase, got []mine, want []outcome) {
	for i, c := range cases {
		g := got[i].out
		if got[i].created {
			var st unix.Stat_t
			if err := unix.Lstat(strings.TrimRight(got[i].res.Host, "/"), &st); err != nil {
				g = outcome{Errno: errnoOf(err)}
			} else {
				g = outcome{Dev: st.Dev, Ino: st.Ino}
			}
		}
		if g != want[i] {
			t.Errorf("%s cwd=%q dir=%q %.60q follow=%v: chroot %v, pathmap %v (host %.80q)",
				c.Op, c.Cwd, c.Dir, c.Path, c.Follow, want[i], g, got[i].res.Host)
		}
	}
}

// errMount is returned by inChroot when a bind cannot be mounted in the
// chroot (its target is missing or of the wrong type).
var errMount = errors.New("bind target cannot be mounted")

// inChroot runs cases in a real chroot of root with binds and returns
// their outcomes.
func inChroot(root string, binds []pathmap.Bind, cases []diffCase) ([]outcome, error) {
	// gob, not JSON: paths are bytes, not always UTF-8.
	var spec bytes.Buffer
	if err := gob.NewEncoder(&spec).Encode(childSpec{Root: root, Binds: binds, Cases: cases}); err != nil {
		return nil, err
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stdin = &spec
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNS}
	outb, err := cmd.Output()
	if err != nil {
		if cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 3 {
			return nil, fmt.Errorf("%w: %s", errMount, stderr.Bytes())
		}
		return nil, fmt.Errorf("chroot child: %v\n%s", err, stderr.Bytes())
	}
	var out []outcome
	if err := gob.NewDecoder(bytes.NewReader(outb)).Decode(&out); err != nil {
		return nil, fmt.Errorf("chroot child output: %v\n%s", err, outb)
	}
	return out, nil
}
