package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestBenchFloor checks the floor tracer of tests/bench/floor.c, which
// docs/performance.md's floor rows come from: it must run a real guest to
// completion in every mode, pass its exit status through and stop it on the
// calls it claims to (none of this is timed: the numbers are the harness's).
func TestBenchFloor(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	floor := filepath.Join(dir, "floor")
	if out, err := exec.Command("gcc", "-O2", "-Wall", "-Werror", "-o", floor, filepath.Join(repoRoot, "tests/bench/floor.c"), "-lseccomp").CombinedOutput(); err != nil {
		t.Fatalf("building the floor tracer: %v\n%s", err, out)
	}
	root := filepath.Join(dir, "rootfs")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", sharedRootfs(t, alpine320), "-C", root).CombinedOutput(); err != nil {
		t.Fatalf("unpacking: %v\n%s", err, out)
	}
	stops := regexp.MustCompile(`floor: (\d+) seccomp stops`)
	for _, tc := range []struct {
		mode, place string
		min         int // seccomp stops at least
	}{
		{"bare", "same", 10},
		{"min", "off", 10},
		{"owner", "same", 3}, // ls -l stats every entry of /
		{"work", "same", 10}, // writes the paths back: the guest must not notice
	} {
		cmd := exec.Command(floor, tc.mode, tc.place, root, "/bin/sh", "-c", "ls -l / >/dev/null && cat /etc/alpine-release && exit 7")
		cmd.Env = append(os.Environ(), "FLOOR_STATS=1")
		r := runCmd(t, cmd)
		if r.Code != 7 {
			t.Fatalf("%s %s: %v", tc.mode, tc.place, r)
		}
		mustContain(t, r.Stdout, "3.20.3")
		m := stops.FindStringSubmatch(r.Stderr)
		if m == nil {
			t.Fatalf("%s: no stop count: %v", tc.mode, r)
		}
		if n, _ := strconv.Atoi(m[1]); n < tc.min {
			t.Errorf("%s: %d seccomp stops, want at least %d", tc.mode, n, tc.min)
		}
	}
}
