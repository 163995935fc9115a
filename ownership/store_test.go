package ownership

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

func lstat(t testing.TB, p string) Stat {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return StatFrom(&st)
}

func me() Host { return Host{uint32(os.Getuid()), uint32(os.Getgid())} }

func openT(t testing.TB, db, root string, opt Options) *Store {
	t.Helper()
	s, err := Open(db, root, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRecordEncoding(t *testing.T) {
	r := &Record{Type: unix.S_IFREG, Flags: HasOwner | HasCap, UID: 1, GID: 2, Mode: 0o4755, FakeType: unix.S_IFCHR, Rdev: 77, Cap: []byte{1, 2, 3}, Path: "usr/bin/x"}
	b := r.marshal()
	got, err := unmarshalRecord(b)
	if err != nil || !reflect.DeepEqual(got, r) {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	for i := 0; i < len(b); i++ {
		if _, err := unmarshalRecord(b[:i]); err == nil {
			t.Fatalf("truncated record of %d bytes accepted", i)
		}
	}
	if _, err := unmarshalRecord(append(b, 0)); err == nil {
		t.Fatal("trailing garbage accepted")
	}
}

func TestStoreChownPersists(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	f := filepath.Join(root, "f")
	os.WriteFile(f, nil, 0o755)
	s := openT(t, db, root, Options{})
	c := NewCreds(0, 0, nil)
	st := lstat(t, f)
	if v := s.View(st, me()); v.UID != 0 || v.GID != 0 {
		t.Fatalf("default view %d:%d, want 0:0", v.UID, v.GID)
	}
	if err := s.Chown(st, "f", 123, 456, c, me()); err != nil {
		t.Fatal(err)
	}
	if err := s.Chmod(st, "f", 0o4755, c, me()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, db, root, Options{})
	defer s.Close()
	v := s.View(lstat(t, f), me())
	if v.UID != 123 || v.GID != 456 || v.Mode != unix.S_IFREG|0o4755 {
		t.Fatalf("after reopen: %d:%d %o", v.UID, v.GID, v.Mode)
	}
	// chown again clears set-user-ID, as the kernel does.
	if err := s.Chown(lstat(t, f), "f", NoChange, 7, c, me()); err != nil {
		t.Fatal(err)
	}
	if v := s.View(lstat(t, f), me()); v.UID != 123 || v.GID != 7 || v.Mode&0o7777 != 0o755 {
		t.Fatalf("after second chown: %d:%d %o", v.UID, v.GID, v.Mode)
	}
	// Back to the default: the record disappears.
	if err := s.Chown(lstat(t, f), "f", 0, 0, c, me()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Records()); n != 0 {
		t.Fatalf("%d records left for a file back to the default", n)
	}
}

func TestStoreTypeMismatchDiscarded(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	d := filepath.Join(root, "d")
	os.Mkdir(d, 0o755)
	st := lstat(t, d)
	s := openT(t, db, root, Options{FlushDelay: -1})
	// A record for a regular file under the directory's inode: what is
	// left when a recorded file is deleted outside nook and its inode is
	// reused by a directory.
	if err := s.Put(st.Key(), &Record{Type: unix.S_IFREG, Flags: HasOwner, UID: 9, GID: 9, Path: "old"}); err != nil {
		t.Fatal(err)
	}
	if v := s.View(st, me()); v.UID != 0 || v.GID != 0 {
		t.Fatalf("stale record applied: %d:%d", v.UID, v.GID)
	}
	s.Close()
	s = openT(t, db, root, Options{})
	defer s.Close()
	if n := len(s.Records()); n != 0 {
		t.Fatalf("stale record not deleted from the database: %d left", n)
	}
}

func TestStoreLinksAndRenames(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	os.MkdirAll(filepath.Join(root, "a/b"), 0o755)
	f := filepath.Join(root, "a/b/f")
	os.WriteFile(f, nil, 0o644)
	s := openT(t, db, root, Options{})
	defer s.Close()
	c := NewCreds(0, 0, nil)
	if err := s.Chown(lstat(t, f), "a/b/f", 5, 5, c, me()); err != nil {
		t.Fatal(err)
	}
	// A hard link shares the record.
	l := filepath.Join(root, "link")
	if err := os.Link(f, l); err != nil {
		t.Fatal(err)
	}
	if err := s.Linked(lstat(t, l).Key(), "link"); err != nil {
		t.Fatal(err)
	}
	if v := s.View(lstat(t, l), me()); v.UID != 5 {
		t.Fatalf("hard link shows uid %d", v.UID)
	}
	// Unlinking one of two names keeps the record.
	st := lstat(t, f)
	os.Remove(f)
	s.Unlinked(st.Key(), st.Type(), st.Nlink, "a/b/f")
	if v := s.View(lstat(t, l), me()); v.UID != 5 {
		t.Fatalf("record lost with a link left: uid %d", v.UID)
	}
	// A rename keeps the inode; the hint follows it.
	os.Rename(l, filepath.Join(root, "a/g"))
	if err := s.Renamed(lstat(t, filepath.Join(root, "a/g")).Key(), unix.S_IFREG, "link", "a/g"); err != nil {
		t.Fatal(err)
	}
	if err := s.Renamed(lstat(t, filepath.Join(root, "a")).Key(), unix.S_IFDIR, "a", "z"); err != nil {
		t.Fatal(err)
	}
	os.Rename(filepath.Join(root, "a"), filepath.Join(root, "z"))
	for _, r := range s.Records() {
		if r.Path != "z/g" {
			t.Fatalf("hint %q, want z/g", r.Path)
		}
	}
	// The last link goes: so does the record.
	st = lstat(t, filepath.Join(root, "z/g"))
	os.Remove(filepath.Join(root, "z/g"))
	s.Unlinked(st.Key(), st.Type(), st.Nlink, "z/g")
	if n := len(s.Records()); n != 0 {
		t.Fatalf("%d records after the last unlink", n)
	}
}

// copyTree copies src to dst with cp -a (new inode numbers).
func copyTree(t testing.TB, src, dst string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
}

func TestStoreCopyAndRekey(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/shadow"), nil, 0o640)
	os.WriteFile(filepath.Join(root, "etc/gone"), nil, 0o640)
	os.WriteFile(filepath.Join(root, "etc/retyped"), nil, 0o640)
	db := filepath.Join(base, "own.db")
	s := openT(t, db, root, Options{})
	c := NewCreds(0, 0, nil)
	for _, p := range []string{"etc/shadow", "etc/gone", "etc/retyped"} {
		if err := s.Chown(lstat(t, filepath.Join(root, p)), p, 0, 42, c, me()); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Chown(lstat(t, root), ".", 0, 3, c, me()); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}

	check := func(t *testing.T, s *Store, root string) {
		t.Helper()
		if v := s.View(lstat(t, filepath.Join(root, "etc/shadow")), me()); v.GID != 42 {
			t.Fatalf("shadow gid %d in the copy", v.GID)
		}
		if v := s.View(lstat(t, root), me()); v.GID != 3 {
			t.Fatalf("top gid %d in the copy", v.GID)
		}
		if n := len(s.Records()); n != 2 {
			t.Fatalf("%d records in the copy, want 2 (missing and retyped files dropped)", n)
		}
	}

	// CopyTo a copy of the tree.
	cp1 := filepath.Join(base, "copy1")
	copyTree(t, root, cp1)
	os.Remove(filepath.Join(cp1, "etc/gone"))
	os.Remove(filepath.Join(cp1, "etc/retyped"))
	os.Mkdir(filepath.Join(cp1, "etc/retyped"), 0o755)
	db1 := filepath.Join(base, "copy1.db")
	if err := s.CopyTo(db1, cp1); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s1 := openT(t, db1, cp1, Options{})
	t.Run("CopyTo", func(t *testing.T) { check(t, s1, cp1) })
	s1.Close()

	// A copied tree with a copied database re-keys itself on Open.
	cp2 := filepath.Join(base, "copy2")
	copyTree(t, root, cp2)
	os.Remove(filepath.Join(cp2, "etc/gone"))
	os.Remove(filepath.Join(cp2, "etc/retyped"))
	os.Mkdir(filepath.Join(cp2, "etc/retyped"), 0o755)
	db2 := filepath.Join(base, "copy2.db")
	copyTree(t, db, db2)
	s2 := openT(t, db2, cp2, Options{})
	t.Run("rekey on open", func(t *testing.T) { check(t, s2, cp2) })
	s2.Close()
}

func TestStoreSeesOtherWriters(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	f := filepath.Join(root, "f")
	os.WriteFile(f, nil, 0o644)
	a := openT(t, db, root, Options{RecheckInterval: time.Nanosecond})
	defer a.Close()
	b := openT(t, db, root, Options{})
	st := lstat(t, f)
	if v := a.View(st, me()); v.UID != 0 {
		t.Fatal(v.UID)
	}
	if err := b.Chown(st, "f", 77, 78, NewCreds(0, 0, nil), me()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if v := a.View(st, me()); v.UID != 77 || v.GID != 78 {
		t.Fatalf("other writer's chown not seen: %d:%d", v.UID, v.GID)
	}
}

// Child processes for the crash and concurrency tests.
const storeChildEnv = "NOOK_OWNERSHIP_STORE_CHILD"

// TestStoreChild chowns N files through the store, printing each index
// once the call returned: NOOK_OWNERSHIP_STORE_CHILD=db:root:first:n:sync.
func TestStoreChild(t *testing.T) {
	spec := os.Getenv(storeChildEnv)
	if spec == "" {
		t.Skip("only run as a child")
	}
	p := strings.Split(spec, ":")
	first, _ := strconv.Atoi(p[2])
	n, _ := strconv.Atoi(p[3])
	opt := Options{}
	if p[4] == "sync" {
		opt.FlushDelay = -1
	}
	s := openT(t, p[0], p[1], opt)
	c := NewCreds(0, 0, nil)
	for i := first; i < first+n; i++ {
		rel := "f" + strconv.Itoa(i)
		st := lstat(t, filepath.Join(p[1], rel))
		if err := s.Chown(st, rel, uint32(i), uint32(i+1), c, me()); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("done %d\n", i)
		if p[4] == "group" {
			// Spread the calls over many group-commit windows.
			time.Sleep(time.Millisecond)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func makeFiles(t testing.TB, root string, n int) {
	for i := 0; i < n; i++ {
		if err := os.WriteFile(filepath.Join(root, "f"+strconv.Itoa(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func storeChild(db, root string, first, n int, mode string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s:%s:%d:%d:%s", storeChildEnv, db, root, first, n, mode))
	return cmd
}

// checkWhole verifies that every record in the database decodes and is
// exactly what the child wrote for that file.
func checkWhole(t *testing.T, db, root string) map[string]bool {
	t.Helper()
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("database does not open: %v", err)
	}
	defer bdb.Close()
	seen := map[string]bool{}
	err = bdb.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, v []byte) error {
			r, err := unmarshalRecord(v)
			if err != nil {
				return fmt.Errorf("record %x: %w", k, err)
			}
			i, err := strconv.Atoi(strings.TrimPrefix(r.Path, "f"))
			if err != nil || r.UID != uint32(i) || r.GID != uint32(i+1) || r.Flags != HasOwner {
				return fmt.Errorf("record %x is not whole: %+v", k, r)
			}
			key, _ := keyFrom(k)
			if st := lstat(t, filepath.Join(root, r.Path)); st.Key() != key {
				return fmt.Errorf("record for %s under the wrong key", r.Path)
			}
			seen[r.Path] = true
			return nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

func TestStoreCrashSafety(t *testing.T) {
	if os.Getenv(storeChildEnv) != "" {
		t.Skip("child")
	}
	for _, mode := range []string{"sync", "group"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			db := filepath.Join(t.TempDir(), "own.db")
			makeFiles(t, root, 1000)
			cmd := storeChild(db, root, 0, 1000, mode)
			out, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			done := -1
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), "done ") {
					done, _ = strconv.Atoi(strings.TrimPrefix(sc.Text(), "done "))
					if done >= 300 {
						break
					}
				}
			}
			if mode == "group" {
				// Kill only once a group commit has landed, however slow
				// the disk: otherwise the test proves nothing.
				for deadline := time.Now().Add(10 * time.Second); countRecords(db) == 0 && time.Now().Before(deadline); {
					time.Sleep(2 * time.Millisecond)
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			if done < 300 {
				t.Fatalf("child stopped early at %d", done)
			}
			seen := checkWhole(t, db, root)
			if len(seen) >= 1000 {
				t.Fatalf("child finished before the kill (%d records)", len(seen))
			}
			if len(seen) == 0 {
				t.Fatalf("no commit happened before the kill: the test proves nothing")
			}
			if mode == "sync" {
				// Every chown that returned was committed.
				for i := 0; i <= done; i++ {
					if !seen["f"+strconv.Itoa(i)] {
						t.Fatalf("committed chown %d lost", i)
					}
				}
			}
			// The store opens and can be written after the crash.
			s := openT(t, db, root, Options{})
			if err := s.Chown(lstat(t, filepath.Join(root, "f999")), "f999", 999, 1000, NewCreds(0, 0, nil), me()); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("killed after %d acknowledged chowns; %d records whole", done+1, len(seen))
		})
	}
}

func TestStoreConcurrentProcesses(t *testing.T) {
	if os.Getenv(storeChildEnv) != "" {
		t.Skip("child")
	}
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	makeFiles(t, root, 400)
	a := storeChild(db, root, 0, 200, "group")
	b := storeChild(db, root, 200, 200, "sync")
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := a.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	seen := checkWhole(t, db, root)
	if len(seen) != 400 {
		t.Fatalf("%d records, want 400", len(seen))
	}
}

func TestStatRewrite(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	f := filepath.Join(root, "tty")
	os.WriteFile(f, nil, 0o600)
	os.Chmod(f, 0o620)
	s := openT(t, db, root, Options{})
	defer s.Close()
	parent := s.View(lstat(t, root), me())
	c := NewCreds(0, 0, nil)
	if err := s.Mknod(lstat(t, f), "tty", unix.S_IFCHR|0o620, unix.Mkdev(4, 1), c, parent, me()); err != nil {
		t.Fatal(err)
	}
	if err := s.Chown(lstat(t, f), "tty", 0, 5, c, me()); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	unix.Lstat(f, &st)
	s.FakeStat(&st, me())
	if st.Mode != unix.S_IFCHR|0o620 || st.Uid != 0 || st.Gid != 5 || st.Rdev != unix.Mkdev(4, 1) {
		t.Fatalf("stat: mode %o %d:%d rdev %x", st.Mode, st.Uid, st.Gid, st.Rdev)
	}
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, f, unix.AT_SYMLINK_NOFOLLOW, unix.STATX_BASIC_STATS, &stx); err != nil {
		t.Fatal(err)
	}
	s.FakeStatx(&stx, me())
	if stx.Mode != unix.S_IFCHR|0o620 || stx.Uid != 0 || stx.Gid != 5 || stx.Rdev_major != 4 || stx.Rdev_minor != 1 {
		t.Fatalf("statx: mode %o %d:%d rdev %d,%d", stx.Mode, stx.Uid, stx.Gid, stx.Rdev_major, stx.Rdev_minor)
	}
	// Raw bytes, at an odd offset as in a tracee buffer.
	var st2 unix.Stat_t
	unix.Lstat(f, &st2)
	buf := make([]byte, SizeofStat+1)
	copy(buf[1:], statBytes(&st2))
	if err := s.FakeStatBytes(buf[1:], me()); err != nil {
		t.Fatal(err)
	}
	st2 = statFromBytes(buf[1:])
	if st2.Mode != unix.S_IFCHR|0o620 || st2.Gid != 5 {
		t.Fatalf("raw stat: mode %o gid %d", st2.Mode, st2.Gid)
	}
	if err := s.FakeStatBytes(buf[:10], me()); err != unix.EINVAL {
		t.Fatalf("short buffer: %v", err)
	}
}

func TestDefaultOwner(t *testing.T) {
	h := Host{1000, 1000}
	for _, tc := range []struct{ uid, gid, wu, wg uint32 }{
		{1000, 1000, 0, 0},
		{1000, 100, 0, 100},
		{0, 0, 0, 0},
		{1001, 1001, 1001, 1001},
	} {
		if u, g := DefaultOwner(tc.uid, tc.gid, h); u != tc.wu || g != tc.wg {
			t.Errorf("DefaultOwner(%d,%d) = %d:%d, want %d:%d", tc.uid, tc.gid, u, g, tc.wu, tc.wg)
		}
	}
}

func TestPermission(t *testing.T) {
	root := NewCreds(0, 0, nil)
	user := NewCreds(1000, 1000, []uint32{50})
	file := func(mode, uid, gid uint32) Stat { return Stat{Mode: unix.S_IFREG | mode, UID: uid, GID: gid} }
	dir := func(mode, uid, gid uint32) Stat { return Stat{Mode: unix.S_IFDIR | mode, UID: uid, GID: gid} }
	for _, tc := range []struct {
		name string
		c    *Creds
		v    Stat
		mask int
		want error
	}{
		{"root reads 0000", root, file(0, 0, 0), MayRead, nil},
		{"root cannot exec 0644", root, file(0o644, 0, 0), MayExec, unix.EACCES},
		{"root execs 0100", root, file(0o100, 5, 5), MayExec, nil},
		{"root writes 0555 dir", root, dir(0o555, 0, 0), MayWrite | MayExec, nil},
		{"user reads shadow", user, file(0o640, 0, 42), MayRead, unix.EACCES},
		{"user in group reads", user, file(0o640, 0, 50), MayRead, nil},
		{"owner class only", user, file(0o077, 1000, 1000), MayRead, unix.EACCES},
		{"user writes own", user, file(0o600, 1000, 1000), MayWrite, nil},
		{"other bits", user, file(0o604, 0, 0), MayRead, nil},
	} {
		if err := Permission(tc.c, tc.v, tc.mask); err != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// NeedsGrant: the guest root may read its 0000 file; the real user
	// needs u+r for that, and never for other users' files.
	h := Host{1000, 1000}
	real := Stat{Mode: unix.S_IFREG, UID: 1000, GID: 1000}
	if add, ok := NeedsGrant(root, file(0, 0, 0), real, h, MayRead); !ok || add != 0o400 {
		t.Errorf("NeedsGrant: %o %v", add, ok)
	}
	if _, ok := NeedsGrant(user, file(0, 0, 0), real, h, MayRead); ok {
		t.Error("grant for a guest without the right")
	}
	real.UID = 1001
	if _, ok := NeedsGrant(root, file(0, 0, 0), real, h, MayRead); ok {
		t.Error("grant on another user's file")
	}
}

func TestChownAllowed(t *testing.T) {
	user := NewCreds(1000, 1000, []uint32{50})
	v := Stat{Mode: unix.S_IFREG | 0o644, UID: 1000, GID: 1000}
	for _, tc := range []struct {
		uid, gid uint32
		want     error
	}{
		{NoChange, 50, nil},
		{NoChange, 60, unix.EPERM},
		{1000, NoChange, nil},
		{0, NoChange, unix.EPERM},
	} {
		if err := ChownAllowed(user, v, tc.uid, tc.gid); err != tc.want {
			t.Errorf("chown %d:%d: %v, want %v", int32(tc.uid), int32(tc.gid), err, tc.want)
		}
	}
	if err := ChownAllowed(NewCreds(0, 0, nil), v, 5, 5); err != nil {
		t.Error(err)
	}
}

func TestJournalRecovery(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	d := filepath.Join(root, "ro")
	os.Mkdir(d, 0o555)
	t.Cleanup(func() { os.Chmod(d, 0o755) })
	s := openT(t, db, root, Options{})
	g, err := s.GrantTemp(lstat(t, d), "ro", 0o200)
	if err != nil {
		t.Fatal(err)
	}
	if m := lstat(t, d).Mode & 0o7777; m != 0o755 {
		t.Fatalf("granted mode %o", m)
	}
	// Restore works...
	if err := g.Restore(); err != nil {
		t.Fatal(err)
	}
	if m := lstat(t, d).Mode & 0o7777; m != 0o555 {
		t.Fatalf("restored mode %o", m)
	}
	// ...and a run killed between grant and restore is repaired by the
	// next Open.
	if _, err := s.GrantTemp(lstat(t, d), "ro", 0o200); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openT(t, db, root, Options{})
	defer s.Close()
	if m := lstat(t, d).Mode & 0o7777; m != 0o555 {
		t.Fatalf("mode after recovery %o, want 555", m)
	}
}

// A chmod to a mode that would lock the owner out keeps owner access on
// disk and shows the requested mode to the guest.
func TestChmodDiskFloor(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	f := filepath.Join(root, "f")
	d := filepath.Join(root, "d")
	os.WriteFile(f, nil, 0o644)
	os.Mkdir(d, 0o755)
	s := openT(t, db, root, Options{})
	defer s.Close()
	c := NewCreds(0, 0, nil)
	for _, tc := range []struct {
		p          string
		mode, disk uint32
	}{
		{f, 0, 0o600},
		{f, 0o4711, 0o711},
		{f, 0o640, 0o640},
		{d, 0o555, 0o755},
		{d, 0o1777, 0o777},
	} {
		st := lstat(t, tc.p)
		disk := DiskMode(st.Mode, tc.mode)
		if disk != tc.disk {
			t.Errorf("DiskMode(%o) = %o, want %o", tc.mode, disk, tc.disk)
		}
		os.Chmod(tc.p, os.FileMode(disk))
		st = lstat(t, tc.p)
		if err := s.Chmod(st, filepath.Base(tc.p), tc.mode, c, me()); err != nil {
			t.Fatal(err)
		}
		if v := s.View(lstat(t, tc.p), me()); v.Mode&0o7777 != tc.mode {
			t.Errorf("chmod %o: guest sees %o", tc.mode, v.Mode&0o7777)
		}
	}
	// A mode equal to the disk's needs no record.
	if _, ok := s.Get(lstat(t, f).Key(), unix.S_IFREG); ok {
		t.Error("record kept for a mode the disk shows")
	}
}

// A group commit that cannot take the lock keeps its changes and commits
// them once the lock is free.
func TestStoreRetriesBlockedCommit(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	f := filepath.Join(root, "f")
	os.WriteFile(f, nil, 0o644)
	s := openT(t, db, root, Options{LockTimeout: 50 * time.Millisecond, FlushDelay: time.Millisecond})
	holder, err := bolt.Open(db, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Chown(lstat(t, f), "f", 3, 4, NewCreds(0, 0, nil), me()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the first commit has failed by now
	holder.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		other := openT(t, db, root, Options{})
		n := len(other.Records())
		other.Close()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("blocked commit never retried")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

// A file replaced outside nook by a new one renamed over it (sed -i,
// editors, user setup) keeps its faked metadata at the next Open.
func TestStoreFollowsReplacedFiles(t *testing.T) {
	root := t.TempDir()
	db := filepath.Join(t.TempDir(), "own.db")
	f := filepath.Join(root, "shadow")
	os.WriteFile(f, []byte("old"), 0o640)
	s := openT(t, db, root, Options{})
	if err := s.Chown(lstat(t, f), "shadow", 0, 42, NewCreds(0, 0, nil), me()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	tmp := filepath.Join(root, "shadow+")
	os.WriteFile(tmp, []byte("new"), 0o640)
	if err := os.Rename(tmp, f); err != nil {
		t.Fatal(err)
	}
	s = openT(t, db, root, Options{})
	defer s.Close()
	if v := s.View(lstat(t, f), me()); v.GID != 42 {
		t.Fatalf("replaced file shows gid %d, want 42", v.GID)
	}
	if n := len(s.Records()); n != 1 {
		t.Fatalf("%d records", n)
	}
}

// countRecords is the number of records committed to db (0 if it cannot
// be read yet).
func countRecords(db string) int {
	bdb, err := bolt.Open(db, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return 0
	}
	defer bdb.Close()
	n := 0
	bdb.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketFiles); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	})
	return n
}
