package tests

import (
	"strings"
	"testing"
)

// TestRootlessRootDescriptor: the guest root descriptor that makes opens
// immune to the symlink-swap race (tracer/rootfd.go) cannot be closed,
// replaced or made close-on-exec by the guest, close_range around it still
// closes everything else, and opens keep working in this process and in
// an executed child. Without the protection, the opens after the attempts
// fail (openat2 on a closed or foreign descriptor).
func TestRootlessRootDescriptor(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "rootfd", musl(t, testSource(t, "rootfd/rootfd.c"), true), 0o755)
	r := g.run(t, "/rootfd")
	if r.Code != 0 {
		t.Fatal(r)
	}
	want := []string{
		"close: EBADF",
		"close-highbits: EBADF",
		"dup2: EBADF",
		"dup3: EBADF",
		"setfd: EBADF",
		"open-after-close: ok",
		"dup2-above: ok",
		"close_range: ok",
		"above-closed: EBADF",
		"open-after-close_range: ok",
		"close_range-exact: ok",
		"open-after-exact: ok",
		"close_range-cloexec: ok",
		"child-open: ok",
		"open-at-end: ok",
	}
	got := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got:\n%s\nwant:\n%s\nstderr: %s", r.Stdout, strings.Join(want, "\n"), r.Stderr)
	}
}
