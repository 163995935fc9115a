package rootfs

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// nobody is the unprivileged identity the non-root tests run as.
const nobody = 65534

// asNobody reruns the test named name in a copy of this test binary as
// uid/gid 65534 and reports whether the caller is that rerun (and must do
// the unprivileged part). As root it runs the rerun and fails t if it
// fails; as any other user the test runs directly.
func asNobody(t *testing.T, name string) bool {
	t.Helper()
	if os.Getenv("NOOK_TEST_UNPRIV") != "" || os.Geteuid() != 0 {
		return true
	}
	dir, err := os.MkdirTemp("", "nook-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveTree(dir) })
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "rootfs.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	dst, err := os.OpenFile(bin, os.O_WRONLY|os.O_CREATE, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(dst, src)
	src.Close()
	dst.Close()
	work := filepath.Join(dir, "work")
	os.Mkdir(work, 0o755)
	os.Chown(work, nobody, nobody)
	cmd := exec.Command(bin, "-test.run=^"+name+"$", "-test.v", "-test.count=1")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "NOOK_TEST_UNPRIV=1", "TMPDIR="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("as uid %d: %v\n%s", nobody, err, out)
	}
	return false
}
