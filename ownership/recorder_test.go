package ownership

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// capV2 is a VFS_CAP_REVISION_2 value with cap_net_raw permitted and the
// effective flag, as setcap cap_net_raw+ep writes it.
var capV2 = string([]byte{1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})

// archive is an Alpine-like listing: what the headers say, and how a
// non-root extraction leaves the tree (owned by the real user, special
// bits not applied).
var archive = []struct {
	hdr  tar.Header
	disk uint32 // mode the extraction left; 0: create no file
}{
	{tar.Header{Name: ".", Typeflag: tar.TypeDir, Mode: 0o755}, 0o755},
	{tar.Header{Name: "etc", Typeflag: tar.TypeDir, Mode: 0o755}, 0o755},
	{tar.Header{Name: "etc/shadow", Typeflag: tar.TypeReg, Mode: 0o640, Gid: 42}, 0o640},
	{tar.Header{Name: "root", Typeflag: tar.TypeDir, Mode: 0o700}, 0o700},
	{tar.Header{Name: "bin", Typeflag: tar.TypeDir, Mode: 0o755}, 0o755},
	{tar.Header{Name: "bin/bbsuid", Typeflag: tar.TypeReg, Mode: 0o4111}, 0o111},
	{tar.Header{Name: "bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: map[string]string{paxCap: capV2}}, 0o755},
	{tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox", Mode: 0o777}, 0o777},
	{tar.Header{Name: "tmp", Typeflag: tar.TypeDir, Mode: 0o1777}, 0o777},
	{tar.Header{Name: "dev", Typeflag: tar.TypeDir, Mode: 0o755}, 0o755},
	{tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}, 0},
	{tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Gid: 6, Devmajor: 8}, 0},
	{tar.Header{Name: "home", Typeflag: tar.TypeDir, Mode: 0o755}, 0o755},
	{tar.Header{Name: "home/u", Typeflag: tar.TypeDir, Mode: 0o750, Uid: 1000, Gid: 1000}, 0o750},
}

// importLike builds the tree as a non-root extraction would and feeds
// the recorder, returning the root and database.
func importLike(t *testing.T) (string, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "rootfs")
	os.Mkdir(root, 0o755)
	db := filepath.Join(base, "ownership.db")
	rec, err := NewRecorder(root, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range archive {
		p := filepath.Join(root, e.hdr.Name)
		if e.disk != 0 {
			switch e.hdr.Typeflag {
			case tar.TypeDir:
				os.MkdirAll(p, 0o700)
			case tar.TypeReg:
				os.WriteFile(p, []byte("data of "+e.hdr.Name), 0o600)
			case tar.TypeSymlink:
				os.Symlink(e.hdr.Linkname, p)
			}
		}
		h := e.hdr
		if err := rec.Record(filepath.Clean(h.Name), &h); err != nil {
			t.Fatal(err)
		}
	}
	// Modes are applied after the contents, as the extractor does.
	for _, e := range archive {
		if e.disk != 0 && e.hdr.Typeflag != tar.TypeSymlink {
			os.Chmod(filepath.Join(root, e.hdr.Name), os.FileMode(e.disk))
		}
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "bin/bbsuid"), 0o755) })
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	return root, db
}

func TestRecorderViews(t *testing.T) {
	root, db := importLike(t)
	s := openT(t, db, root, Options{})
	defer s.Close()
	for _, e := range archive {
		st := lstat(t, filepath.Join(root, e.hdr.Name))
		v := s.View(st, me())
		want := headerType(e.hdr.Typeflag) | uint32(e.hdr.Mode)&0o7777
		if e.hdr.Typeflag == tar.TypeSymlink {
			want = st.Mode
		}
		if v.Mode != want || v.UID != uint32(e.hdr.Uid) || v.GID != uint32(e.hdr.Gid) {
			t.Errorf("%s: mode %o %d:%d, want %o %d:%d", e.hdr.Name, v.Mode, v.UID, v.GID, want, e.hdr.Uid, e.hdr.Gid)
		}
		if e.hdr.Typeflag == tar.TypeChar || e.hdr.Typeflag == tar.TypeBlock {
			if st.Type() != unix.S_IFREG || v.Rdev != unix.Mkdev(uint32(e.hdr.Devmajor), uint32(e.hdr.Devminor)) {
				t.Errorf("%s: on disk %o, rdev %x", e.hdr.Name, st.Mode, v.Rdev)
			}
		}
	}
	ping := lstat(t, filepath.Join(root, "bin/ping"))
	f := s.ExecFileOf(ping, me())
	if !f.HasCaps || f.CapsPermitted != 1<<unix.CAP_NET_RAW || !f.CapsEffectiveFlag {
		t.Errorf("ping caps: %+v", f)
	}
	// Only what differs from the default rule is recorded.
	if n := len(s.Records()); n != 7 {
		for _, r := range s.Records() {
			t.Logf("%+v", r)
		}
		t.Errorf("%d records, want 7", n)
	}
}

// listing is a tar stream's metadata, one line per entry, without times.
func listing(t *testing.T, b []byte) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var lines []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		lines = append(lines, fmt.Sprintf("%s %c %o %d:%d %s %d,%d %q %q", h.Name, h.Typeflag, h.Mode, h.Uid, h.Gid, h.Linkname, h.Devmajor, h.Devminor, h.PAXRecords[paxCap], data))
	}
	return strings.Join(lines, "\n")
}

func TestExportRoundTrip(t *testing.T) {
	root, db := importLike(t)
	os.Link(filepath.Join(root, "etc/shadow"), filepath.Join(root, "etc/shadow-hard"))
	// Export reads files the owner cannot (bin/bbsuid is 0111 on disk)
	// through a journalled temporary grant.
	secret := filepath.Join(root, "root/secret")
	os.WriteFile(secret, []byte("data of root/secret"), 0o600)
	os.Chmod(secret, 0)
	s := openT(t, db, root, Options{})
	var out bytes.Buffer
	if err := WriteTar(&out, root, s, me()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	got := listing(t, out.Bytes())
	for _, want := range []string{
		"./ 5 755 0:0",
		"./etc/shadow 0 640 0:42",
		"./etc/shadow-hard 1 640 0:42 ./etc/shadow",
		"./bin/bbsuid 0 4111 0:0",
		"./root/ 5 700 0:0",
		"./tmp/ 5 1777 0:0",
		"./dev/null 3 666 0:0  1,3",
		"./dev/sda 4 660 0:6  8,0",
		"./home/u/ 5 750 1000:1000",
		`./bin/ping 0 755 0:0  0,0 "` + strings.ReplaceAll(fmt.Sprintf("%q", capV2), `"`, ""),
		"./bin/sh 2 777 0:0 /bin/busybox",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("export lacks %q:\n%s", want, got)
		}
	}
	for _, f := range []string{"bin/bbsuid", "root/secret"} {
		if !strings.Contains(got, `"data of `+f+`"`) {
			t.Errorf("unreadable file %s not exported:\n%s", f, got)
		}
	}
	if m := lstat(t, filepath.Join(root, "bin/bbsuid")).Mode & 0o7777; m != 0o111 {
		t.Errorf("export left mode %o on an unreadable file", m)
	}
	if !strings.Contains(got, `"data of root/secret"`) {
		t.Errorf("unreadable file's data not exported:\n%s", got)
	}
	if m := lstat(t, secret).Mode & 0o7777; m != 0 {
		t.Errorf("export left mode %o on an unreadable file", m)
	}
	os.Remove(secret)

	// Import the export again (non-root style) and export once more: the
	// same metadata.
	base := t.TempDir()
	root2 := filepath.Join(base, "rootfs")
	os.Mkdir(root2, 0o755)
	db2 := filepath.Join(base, "ownership.db")
	rec, _ := NewRecorder(root2, db2)
	tr := tar.NewReader(bytes.NewReader(out.Bytes()))
	var chmods []func()
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(root2, h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			os.MkdirAll(p, 0o700)
		case tar.TypeReg:
			data, _ := io.ReadAll(tr)
			os.WriteFile(p, data, 0o600)
		case tar.TypeLink:
			os.Link(filepath.Join(root2, h.Linkname), p)
		case tar.TypeSymlink:
			os.Symlink(h.Linkname, p)
		}
		if h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeReg {
			mode := os.FileMode(h.Mode & 0o777)
			chmods = append(chmods, func() { os.Chmod(p, mode) })
		}
		if err := rec.Record(filepath.Clean(h.Name), h); err != nil {
			t.Fatal(err)
		}
	}
	for i := len(chmods) - 1; i >= 0; i-- {
		chmods[i]()
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root2, "bin/bbsuid"), 0o755) })
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openT(t, db2, root2, Options{})
	defer s2.Close()
	var out2 bytes.Buffer
	if err := WriteTar(&out2, root2, s2, me()); err != nil {
		t.Fatal(err)
	}
	if got2 := listing(t, out2.Bytes()); got2 != got {
		t.Errorf("second export differs:\n%s\n---\n%s", got, got2)
	}
}

// A directory the archive makes 0555 stays 0555 on disk after import
// and for the guest, and gets owner write on disk when a run starts.
func TestApplyFloor(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "rootfs")
	os.MkdirAll(filepath.Join(root, "var/empty"), 0o755)
	os.WriteFile(filepath.Join(root, "locked"), []byte("x"), 0o600)
	db := filepath.Join(base, "ownership.db")
	rec, _ := NewRecorder(root, db)
	for _, h := range []tar.Header{
		{Name: "var/empty", Typeflag: tar.TypeDir, Mode: 0o555},
		{Name: "locked", Typeflag: tar.TypeReg, Mode: 0o044},
	} {
		os.Chmod(filepath.Join(root, h.Name), os.FileMode(h.Mode))
		if err := rec.Record(h.Name, &h); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(filepath.Join(root, "var/empty"), 0o755) })
	if m := lstat(t, filepath.Join(root, "var/empty")).Mode & 0o7777; m != 0o555 {
		t.Fatalf("import left %o on disk", m)
	}
	s := openT(t, db, root, Options{})
	defer s.Close()
	if err := s.ApplyFloor(me()); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]uint32{"var/empty": {0o755, 0o555}, "locked": {0o644, 0o044}} {
		st := lstat(t, filepath.Join(root, name))
		if st.Mode&0o7777 != want[0] {
			t.Errorf("%s: disk mode %o, want %o", name, st.Mode&0o7777, want[0])
		}
		if v := s.View(st, me()); v.Mode&0o7777 != want[1] {
			t.Errorf("%s: guest sees %o, want %o", name, v.Mode&0o7777, want[1])
		}
	}
}
