package tests

import (
	"bytes"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOwnershipKillDuringChowns: SIGKILL to nook in the middle of 1000
// chowns leaves an ownership store that opens, and whose records are each
// either fully there or absent: every file shows either the new owner and
// group together, or the default 0:0, never a mix.
func TestOwnershipKillDuringChowns(t *testing.T) {
	u, home := rootlessStore(t)
	run := func(args ...string) result {
		t.Helper()
		return u.Nook(t, home, append([]string{"run", "--mode", "rootless", "a320", "--"}, args...)...)
	}
	if r := run("sh", "-c", "mkdir /k && cd /k && i=0; while [ $i -lt 1000 ]; do : > f$i; i=$((i+1)); done"); r.Code != 0 {
		t.Fatal(r)
	}
	cmd := u.Command(nookBin, "run", "--mode", "rootless", "a320", "--",
		"sh", "-c", "cd /k && i=0; while [ $i -lt 1000 ]; do chown 1234:5678 f$i; i=$((i+1)); done; echo done")
	cmd.Env = append(cmd.Env, "NOOK_HOME="+home)
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once some chowns have been committed (group commits land every
	// few tens of milliseconds), but long before 1000 chowns are done.
	time.Sleep(700 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if strings.Contains(out.String(), "done") {
		t.Skip("the guest finished its 1000 chowns before the kill; nothing to check")
	}
	r := run("sh", "-c", "cd /k && stat -c '%u:%g' f*")
	if r.Code != 0 {
		t.Fatalf("the store does not open after the kill: %s", r)
	}
	counts := map[string]int{}
	for _, l := range strings.Fields(r.Stdout) {
		counts[l]++
	}
	for k := range counts {
		if k != "1234:5678" && k != "0:0" {
			t.Fatalf("a half-applied record %q after the kill: %v", k, counts)
		}
	}
	if counts["1234:5678"]+counts["0:0"] != 1000 {
		t.Fatalf("files: %v", counts)
	}
	if counts["1234:5678"] == 0 {
		t.Fatalf("no chown survived 700 ms of chowning: %v", counts)
	}
	t.Logf("after the kill: %v", counts)
}
