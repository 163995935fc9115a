package tests

import (
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// tarListing is `tar --numeric-owner -tv` of a tarball, one entry per line,
// sorted, with the date and time columns dropped unless keepTimes.
func tarListing(t *testing.T, tarball string, keepTimes bool) string {
	t.Helper()
	out, err := exec.Command("tar", "--numeric-owner", "-tvf", tarball).Output()
	if err != nil {
		t.Fatalf("tar -tvf %s: %v", tarball, err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("odd listing line %q", l)
		}
		if !keepTimes {
			f = append(f[:3], f[5:]...)
		}
		lines = append(lines, strings.Join(f, " "))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A non-root import records what the archive says about owners and modes,
// and export writes it back: import, export, import, export gives the
// archive's metadata each time.
func TestOwnershipImportExportRoundTrip(t *testing.T) {
	u := unprivileged(t)
	home := u.TempDir(t)
	src := sharedRootfs(t, alpine312)

	if r := u.Nook(t, home, "import", "--name", "a1", src); r.Code != 0 {
		t.Fatalf("import: %s", r)
	}
	out1 := filepath.Join(home, "a1.tar")
	if r := u.Nook(t, home, "export", "a1", out1); r.Code != 0 {
		t.Fatalf("export: %s", r)
	}
	orig := tarListing(t, src, false)
	got := tarListing(t, out1, false)
	if got != orig {
		t.Fatalf("export differs from the imported archive:\n--- archive\n%s\n--- export\n%s", orig, got)
	}
	mustContain(t, got,
		"-rw-r----- 0/42 422 ./etc/shadow",
		"drwx------ 0/0 0 ./root/",
		"dr-xr-xr-x 0/0 0 ./var/empty/",
		"drwxrwxrwt 0/0 0 ./tmp/",
	)

	if r := u.Nook(t, home, "import", "--name", "a2", out1); r.Code != 0 {
		t.Fatalf("second import: %s", r)
	}
	out2 := filepath.Join(home, "a2.tar")
	if r := u.Nook(t, home, "export", "a2", out2); r.Code != 0 {
		t.Fatalf("second export: %s", r)
	}
	if a, b := tarListing(t, out1, true), tarListing(t, out2, true); a != b {
		t.Fatalf("second round trip differs:\n--- first\n%s\n--- second\n%s", a, b)
	}
}

func TestOwnershipExportUnknownName(t *testing.T) {
	home := t.TempDir()
	r := nook(t, home, "export", "nosuch", filepath.Join(home, "x.tar"))
	if r.Code != 125 {
		t.Fatalf("export of an unknown name: %s", r)
	}
	mustContain(t, r.Stderr, "nook: error:", "nook: hint:")
}
