// Package tests holds nook's end-to-end tests: they build the real binary and
// run real guest programs in real rootfs trees. Most need root (they compare
// with a real chroot, or create an unprivileged user to prove rootless mode);
// scripts/test runs them as root.
package tests

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

var (
	nookBin  string // absolute path of the binary under test
	repoRoot string // the repository's top directory
)

func TestMain(m *testing.M) {
	_, file, _, _ := runtime.Caller(0)
	repoRoot = filepath.Dir(filepath.Dir(file))
	nookBin = os.Getenv("NOOK_BIN")
	if nookBin == "" {
		dir, err := os.MkdirTemp("", "nook-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		// The unprivileged test users run the binary too: MkdirTemp's
		// 0700 would shut them out.
		if err := os.Chmod(dir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		nookBin = filepath.Join(dir, "nook")
		build := exec.Command("go", "build", "-tags", "osusergo,netgo", "-o", nookBin, "./cmd/nook")
		build.Dir = repoRoot
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building nook:", err)
			os.Exit(2)
		}
		code := m.Run()
		os.RemoveAll(dir)
		os.Exit(code)
	}
	os.Exit(m.Run())
}

// sharedRootfs returns the path of a file in ../shared/rootfs (beside the
// repository, in development and in CI alike).
func sharedRootfs(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(repoRoot, "..", "shared", "rootfs", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("test rootfs missing: %v", err)
	}
	return p
}

// Alpine tarballs shipped in ../shared/rootfs.
const (
	alpine312 = "alpine-minirootfs-3.12.12-x86_64.tar.gz"
	alpine320 = "alpine-minirootfs-3.20.3-x86_64.tar.gz"
)

// result is what one nook invocation did.
type result struct {
	Stdout, Stderr string
	Code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// runCmd runs cmd to completion and returns its output and exit status
// (128+N for a death by signal N, as a shell reports it).
func runCmd(t testing.TB, cmd *exec.Cmd) result {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := result{Stdout: out.String(), Stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		ws := ee.Sys().(syscall.WaitStatus)
		if ws.Signaled() {
			r.Code = 128 + int(ws.Signal())
		} else {
			r.Code = ws.ExitStatus()
		}
	default:
		t.Fatalf("running %v: %v", cmd.Args, err)
	}
	return r
}

// nookCmd returns an exec.Cmd for the binary under test with NOOK_HOME set
// to home.
func nookCmd(home string, args ...string) *exec.Cmd {
	cmd := exec.Command(nookBin, args...)
	cmd.Env = append(os.Environ(), "NOOK_HOME="+home)
	return cmd
}

// nook runs the binary under test as the current user with NOOK_HOME=home.
func nook(t testing.TB, home string, args ...string) result {
	t.Helper()
	return runCmd(t, nookCmd(home, args...))
}

// requireRoot skips t unless it runs as root; scripts/test (and CI) always
// run the suite as root, so these tests run there.
func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (run the suite with scripts/test)")
	}
}

// mustContain fails t unless s contains every one of subs.
func mustContain(t testing.TB, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Fatalf("output lacks %q:\n%s", sub, s)
		}
	}
}
