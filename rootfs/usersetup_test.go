package rootfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const (
	testPasswd = "root:x:0:0:root:/root:/bin/ash\nbin:x:1:1:bin:/bin:/sbin/nologin\nalice:x:1000:1000:Alice:/home/alice:/bin/bash\n"
	testGroup  = "root:x:0:root\nwheel:x:10:root,alice\nusers:x:100:games\nalice:x:1000:\nstaff:x:50:bob,alice\n"
	testShadow = "root:!::0:::::\nbin:!::0:::::\nalice:!:19000:0:99999:7:::\n"
)

// guestTree builds a small guest tree; files maps guest paths to contents
// ("" entries are directories).
func guestTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, c := range files {
		full := filepath.Join(root, p)
		if strings.HasSuffix(p, "/") {
			if err := os.MkdirAll(full, 0755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0644)
		if strings.HasSuffix(p, "shadow") {
			mode = 0640
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func standardTree(t *testing.T) string {
	return guestTree(t, map[string]string{
		"etc/passwd": testPasswd, "etc/group": testGroup, "etc/shadow": testShadow, "home/": "",
	})
}

func TestSetupUser(t *testing.T) {
	tests := []struct {
		name     string
		req      UserRequest
		want     Identity
		wantErr  string
		passwd   string // line that must be in /etc/passwd afterwards
		group    string
		shadow   string // prefix of a line that must be in /etc/shadow
		modified []string
		home     string // guest dir that must exist afterwards, owned as want
	}{
		{
			name: "default root",
			want: Identity{Name: "root", UID: 0, GID: 0, Groups: []int{0, 10}, Home: "/root", Shell: "/bin/ash"},
		},
		{
			name: "existing user by name",
			req:  UserRequest{User: "alice"},
			want: Identity{Name: "alice", UID: 1000, GID: 1000, Groups: []int{1000, 10, 50}, Home: "/home/alice", Shell: "/bin/bash"},
		},
		{
			name: "existing user with matching id",
			req:  UserRequest{User: "alice:1000", Chown: true},
			want: Identity{Name: "alice", UID: 1000, GID: 1000, Groups: []int{1000, 10, 50}, Home: "/home/alice", Shell: "/bin/bash"},
			home: "/home/alice",
		},
		{
			name:     "create user and group",
			req:      UserRequest{User: "myuser:2000", Group: "mygroup:2001", Chown: true},
			want:     Identity{Name: "myuser", UID: 2000, GID: 2001, Groups: []int{2001}, Home: "/home/myuser", Shell: "/bin/sh"},
			passwd:   "myuser:x:2000:2001:myuser:/home/myuser:/bin/sh",
			group:    "mygroup:x:2001:",
			shadow:   "myuser:!:",
			modified: []string{"/etc/group", "/etc/passwd", "/etc/shadow"},
			home:     "/home/myuser",
		},
		{
			name:     "create user with its own group",
			req:      UserRequest{User: "myuser:2000", Chown: true},
			want:     Identity{Name: "myuser", UID: 2000, GID: 2000, Groups: []int{2000}, Home: "/home/myuser", Shell: "/bin/sh"},
			passwd:   "myuser:x:2000:2000:myuser:/home/myuser:/bin/sh",
			group:    "myuser:x:2000:",
			modified: []string{"/etc/group", "/etc/passwd", "/etc/shadow"},
			home:     "/home/myuser",
		},
		{
			name:     "create user in existing group",
			req:      UserRequest{User: "myuser:2000", Group: "users", Chown: true},
			want:     Identity{Name: "myuser", UID: 2000, GID: 100, Groups: []int{100}, Home: "/home/myuser", Shell: "/bin/sh"},
			passwd:   "myuser:x:2000:100:myuser:/home/myuser:/bin/sh",
			modified: []string{"/etc/passwd", "/etc/shadow"},
		},
		{
			name: "root with another group",
			req:  UserRequest{Group: "users"},
			want: Identity{Name: "root", UID: 0, GID: 100, Groups: []int{100, 0, 10}, Home: "/root", Shell: "/bin/ash"},
		},
		{name: "unknown user", req: UserRequest{User: "nobody2"}, wantErr: "user nobody2 does not exist"},
		{name: "unknown group", req: UserRequest{User: "alice", Group: "nogroup"}, wantErr: "group nogroup does not exist"},
		{name: "user id conflict", req: UserRequest{User: "alice:2000"}, wantErr: "user alice exists in the guest with uid 1000, not 2000"},
		{name: "group id conflict", req: UserRequest{User: "alice", Group: "users:2000"}, wantErr: "group users exists in the guest with gid 100, not 2000"},
		{name: "uid taken", req: UserRequest{User: "bob:1000"}, wantErr: "uid 1000 already belongs to user alice"},
		{name: "gid taken", req: UserRequest{User: "bob:3000", Group: "grp:50"}, wantErr: "gid 50 already belongs to group staff"},
		{name: "user group name taken", req: UserRequest{User: "staff:3000"}, wantErr: "group staff already exists"},
		{name: "user group id taken", req: UserRequest{User: "carol:100"}, wantErr: "gid 100 already belongs to group users"},
		{name: "bad name", req: UserRequest{User: "a:b:c"}, wantErr: "invalid user id"},
		{name: "bad name chars", req: UserRequest{User: "-x:5"}, wantErr: "invalid user name"},
		{name: "uid -1", req: UserRequest{User: "x:4294967295"}, wantErr: "invalid user id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if os.Geteuid() != 0 {
				// Without privilege user setup cannot chown (rootless
				// mode asks it not to).
				tc.req.Chown = false
			}
			root := standardTree(t)
			before := snapshot(t, root)
			res, err := SetupUser(root, tc.req)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if after := snapshot(t, root); !reflect.DeepEqual(before, after) {
					t.Fatalf("a failed setup changed the tree")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(res.Identity, tc.want) {
				t.Fatalf("identity = %+v, want %+v", res.Identity, tc.want)
			}
			if !reflect.DeepEqual(res.Modified, tc.modified) {
				t.Fatalf("modified = %v, want %v", res.Modified, tc.modified)
			}
			checkLine(t, root, "etc/passwd", tc.passwd)
			checkLine(t, root, "etc/group", tc.group)
			checkLine(t, root, "etc/shadow", tc.shadow)
			if tc.home != "" {
				var st unix.Stat_t
				if err := unix.Lstat(filepath.Join(root, tc.home), &st); err != nil {
					t.Fatal(err)
				}
				if st.Mode&unix.S_IFMT != unix.S_IFDIR {
					t.Fatalf("%s is not a directory", tc.home)
				}
				if os.Geteuid() == 0 && (int(st.Uid) != tc.want.UID || int(st.Gid) != tc.want.GID) {
					t.Fatalf("%s owned by %d:%d, want %d:%d", tc.home, st.Uid, st.Gid, tc.want.UID, tc.want.GID)
				}
			}
			// Modes of rewritten files are kept.
			for p, m := range map[string]uint32{"etc/passwd": 0644, "etc/shadow": 0640} {
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(root, p), &st); err != nil {
					t.Fatal(err)
				}
				if st.Mode&07777 != m {
					t.Fatalf("%s mode %o, want %o", p, st.Mode&07777, m)
				}
			}

			// A second identical run changes nothing at all.
			mid := snapshot(t, root)
			res2, err := SetupUser(root, tc.req)
			if err != nil {
				t.Fatalf("second run: %v", err)
			}
			if len(res2.Modified) != 0 || len(res2.Created) != 0 {
				t.Fatalf("second run modified %v created %v", res2.Modified, res2.Created)
			}
			if !reflect.DeepEqual(res2.Identity, tc.want) {
				t.Fatalf("second identity = %+v", res2.Identity)
			}
			if after := snapshot(t, root); !reflect.DeepEqual(mid, after) {
				t.Fatalf("second run changed the tree")
			}
		})
	}
}

func checkLine(t *testing.T, root, p, line string) {
	t.Helper()
	if line == "" {
		return
	}
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, line) {
			return
		}
	}
	t.Fatalf("%s lacks %q:\n%s", p, line, data)
}

type fileState struct {
	Data  string
	Mode  uint32
	Mtime unix.Timespec
	Ino   uint64
}

// snapshot records every file of root with contents, mode, mtime and inode,
// so a rewrite with identical bytes is still noticed.
func snapshot(t *testing.T, root string) map[string]fileState {
	t.Helper()
	m := map[string]fileState{}
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		s := fileState{Mode: st.Mode, Mtime: st.Mtim, Ino: st.Ino}
		if fi.Mode().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s.Data = string(b)
		}
		if fi.IsDir() {
			s.Mtime = unix.Timespec{}
			s.Mode = st.Mode
		}
		m[p] = s
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSetupUserSymlinkEscape: guest databases that are symlinks pointing
// out of the tree, absolute or with "..", resolve inside the guest; the
// host files they name are never read or written.
func TestSetupUserSymlinkEscape(t *testing.T) {
	outside := t.TempDir()
	hostPasswd := filepath.Join(outside, "passwd")
	if err := os.WriteFile(hostPasswd, []byte("host:x:0:0::/:/bin/sh\n"), 0644); err != nil {
		t.Fatal(err)
	}
	hostBefore, _ := os.ReadFile(hostPasswd)

	for _, target := range []string{hostPasswd, "../../../../../../../../" + hostPasswd} {
		t.Run(target, func(t *testing.T) {
			root := guestTree(t, map[string]string{"etc/group": testGroup, "home/": ""})
			// The same relative path exists inside the tree: that is the
			// file a chroot would reach.
			inside := filepath.Join(root, outside)
			if err := os.MkdirAll(inside, 0755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(inside, "passwd"), []byte(testPasswd), 0644); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, filepath.Join(root, "etc/passwd")); err != nil {
				t.Fatal(err)
			}
			res, err := SetupUser(root, UserRequest{User: "myuser:2000"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Identity.UID != 2000 {
				t.Fatalf("identity %+v", res.Identity)
			}
			if got, _ := os.ReadFile(hostPasswd); !bytes.Equal(got, hostBefore) {
				t.Fatalf("host file changed:\n%s", got)
			}
			// The symlink is kept; the file inside the tree it resolves to
			// got the user.
			if fi, err := os.Lstat(filepath.Join(root, "etc/passwd")); err != nil || fi.Mode()&os.ModeSymlink == 0 {
				t.Fatalf("guest /etc/passwd is no longer a symlink: %v", err)
			}
			checkLine(t, root, strings.TrimPrefix(filepath.Join(outside, "passwd"), "/"), "myuser:x:2000:2000:")
		})
	}

	t.Run("dangling", func(t *testing.T) {
		// A link to a host file with no counterpart in the guest: the guest
		// has no passwd, so the name is unknown, and the host file is not
		// consulted.
		root := guestTree(t, map[string]string{"etc/group": testGroup})
		if err := os.Symlink(hostPasswd, filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		_, err := SetupUser(root, UserRequest{User: "host"})
		if err == nil || !strings.Contains(err.Error(), "user host does not exist") {
			t.Fatalf("err = %v", err)
		}
	})

	t.Run("loop", func(t *testing.T) {
		root := guestTree(t, map[string]string{"etc/group": testGroup})
		if err := os.Symlink("/etc/passwd", filepath.Join(root, "etc/passwd")); err != nil {
			t.Fatal(err)
		}
		_, err := SetupUser(root, UserRequest{User: "x:5"})
		if !errors.Is(err, unix.ELOOP) {
			t.Fatalf("err = %v, want ELOOP", err)
		}
	})

	t.Run("home through symlinked /home", func(t *testing.T) {
		root := guestTree(t, map[string]string{"etc/passwd": testPasswd, "etc/group": testGroup})
		if err := os.Symlink(outside, filepath.Join(root, "home")); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(root, outside), 0755); err != nil {
			t.Fatal(err)
		}
		if _, err := SetupUser(root, UserRequest{User: "myuser:2000"}); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(outside, "myuser")); err == nil {
			t.Fatal("home directory created on the host")
		}
		if fi, err := os.Stat(filepath.Join(root, outside, "myuser")); err != nil || !fi.IsDir() {
			t.Fatalf("home not created inside the tree: %v", err)
		}
	})
}

func TestSetupUserHostRoot(t *testing.T) {
	link := filepath.Join(t.TempDir(), "root")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"/", link, "/etc/.."} {
		_, err := SetupUser(root, UserRequest{User: "myuser:2000"})
		if !errors.Is(err, ErrHostRoot) {
			t.Fatalf("%s: err = %v, want ErrHostRoot", root, err)
		}
	}
}

func TestSetupUserNoDatabases(t *testing.T) {
	root := guestTree(t, map[string]string{"bin/": ""})
	res, err := SetupUser(root, UserRequest{})
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{Name: "root", Groups: []int{0}, Home: "/root", Shell: "/bin/sh"}
	if !reflect.DeepEqual(res.Identity, want) {
		t.Fatalf("identity %+v", res.Identity)
	}
	if len(res.Modified) != 0 {
		t.Fatalf("modified %v", res.Modified)
	}
	res, err = SetupUser(root, UserRequest{User: "u:7"})
	if err != nil {
		t.Fatal(err)
	}
	checkLine(t, root, "etc/passwd", "u:x:7:7:u:/home/u:/bin/sh")
	checkLine(t, root, "etc/group", "u:x:7:")
	if _, err := os.Stat(filepath.Join(root, "etc/shadow")); err == nil {
		t.Fatal("shadow created")
	}
	wantC := []CreatedPath{{Path: "/home", Mode: 0755}, {Path: "/home/u", UID: 7, GID: 7, Mode: HomeMode}}
	if !reflect.DeepEqual(res.Created, wantC) {
		t.Fatalf("created %+v", res.Created)
	}
}

func TestLoginEnv(t *testing.T) {
	host := map[string]string{"TERM": "xterm", "LANG": "C.UTF-8", "SECRET": "x"}
	lookup := func(k string) (string, bool) { v, ok := host[k]; return v, ok }
	user := Identity{Name: "u", UID: 5, Home: "/home/u", Shell: "/bin/sh"}
	root := Identity{Name: "root", Home: "/root", Shell: "/bin/ash"}
	tests := []struct {
		id      Identity
		over    []string
		want    []string
		wantErr bool
	}{
		{id: user, want: []string{"HOME=/home/u", "USER=u", "LOGNAME=u", "SHELL=/bin/sh", "PATH=" + UserPath, "TERM=xterm"}},
		{id: root, want: []string{"HOME=/root", "USER=root", "LOGNAME=root", "SHELL=/bin/ash", "PATH=" + RootPath, "TERM=xterm"}},
		{id: user, over: []string{"PATH=/x", "A=b=c", "LANG", "NOPE", "E="},
			want: []string{"HOME=/home/u", "USER=u", "LOGNAME=u", "SHELL=/bin/sh", "PATH=/x", "TERM=xterm", "A=b=c", "LANG=C.UTF-8", "E="}},
		{id: user, over: []string{"=x"}, wantErr: true},
	}
	for _, tc := range tests {
		got, err := LoginEnv(tc.id, tc.over, lookup)
		if (err != nil) != tc.wantErr {
			t.Fatalf("%v: err %v", tc.over, err)
		}
		if !tc.wantErr && !reflect.DeepEqual(got, tc.want) {
			t.Fatalf("%v:\n got %q\nwant %q", tc.over, got, tc.want)
		}
	}
}

// TestSetupUserConcurrent: runs adding different users to one tree at the
// same time keep every addition.
func TestSetupUserConcurrent(t *testing.T) {
	root := standardTree(t)
	const n = 8
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		go func(i int) {
			_, err := SetupUser(root, UserRequest{User: fmt.Sprintf("u%d:%d", i, 5000+i)})
			errs <- err
		}(i)
	}
	for i := 0; i < n; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		checkLine(t, root, "etc/passwd", fmt.Sprintf("u%d:x:%d:%d:", i, 5000+i, 5000+i))
		checkLine(t, root, "etc/group", fmt.Sprintf("u%d:x:%d:", i, 5000+i))
		checkLine(t, root, "etc/shadow", fmt.Sprintf("u%d:!:", i))
	}
}
