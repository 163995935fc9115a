package tests

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// debianTarball returns the path of a cached Debian bookworm minbase rootfs
// tarball (with gcc, make, libc6-dev and perl when withGCC), building it with
// debootstrap on first use (about 30 s, more with gcc). Needs root and the
// Debian mirror.
func debianTarball(t testing.TB, withGCC bool) string {
	t.Helper()
	requireRoot(t)
	args := []string{}
	if withGCC {
		args = append(args, "--gcc")
	}
	out, err := exec.Command(filepath.Join(repoRoot, "tests", "mkdebian"), args...).Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			t.Fatalf("mkdebian: %v\n%s", err, ee.Stderr)
		}
		t.Fatalf("mkdebian: %v", err)
	}
	return strings.TrimSpace(string(out))
}
