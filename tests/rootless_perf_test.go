package tests

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The guest's first process is forked by the tracer and runs no Go code
// (tracer/perf_spawn_unsafe.go): it must start as a plain execve from nook
// would, with the RLIMIT_NOFILE soft limit nook was started with (the Go
// runtime raises its own), no blocked signals and no caught ones.
func TestRootlessStartState(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	soft := uint64(512)
	if lim.Max < soft {
		t.Skipf("RLIMIT_NOFILE hard limit %d", lim.Max)
	}
	script := fmt.Sprintf(`ulimit -Sn %d && exec "$0" "$@"`, soft)
	cmd := g.u.Command("/bin/sh", "-c", script, nookBin, "run", "--mode", "rootless", g.dir, "--",
		"/bin/sh", "-c", "ulimit -n; exec grep -E '^Sig(Blk|Cgt|Ign)' /proc/self/status")
	cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home)
	r := runCmd(t, cmd)
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	// Signals ignored where nook was started stay ignored, except those
	// nook catches to forward them (SIGHUP, SIGINT, SIGQUIT, SIGTERM).
	host := runCmd(t, g.u.Command("/bin/sh", "-c", "exec grep '^SigIgn' /proc/self/status"))
	ign, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(host.Stdout, "SigIgn:")), 16, 64)
	if err != nil {
		t.Fatalf("host SigIgn: %q: %v", host.Stdout, err)
	}
	for _, sig := range []unix.Signal{unix.SIGHUP, unix.SIGINT, unix.SIGQUIT, unix.SIGTERM} {
		ign &^= 1 << (sig - 1)
	}
	want := fmt.Sprintf("%d\nSigBlk:\t0000000000000000\nSigIgn:\t%016x\nSigCgt:\t0000000000000000\n", soft, ign)
	if r.Stdout != want {
		t.Errorf("guest start state:\n%s\nwant:\n%s", r.Stdout, want)
	}
}

// CPU placement (tracer/placement.go) pins busy guest threads to the
// tracer's CPU; the guest must still see the mask nook started with, and a
// mask it sets itself must stay.
func TestRootlessAffinity(t *testing.T) {
	var mask unix.CPUSet
	if err := unix.SchedGetaffinity(0, &mask); err != nil {
		t.Fatal(err)
	}
	cpus := mask.Count()
	first := -1
	for i := 0; i < runtime.NumCPU()*4 && first < 0; i++ {
		if mask.IsSet(i) {
			first = i
		}
	}
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "setaff", musl(t, setAffinityC, true), 0o755)
	// A burst of short commands gets the shell pinned (with "same", the
	// whole guest is pinned from the start).
	burst := `i=0; while [ $i -lt 40 ]; do test -e /etc/passwd; /bin/true; i=$((i+1)); done; `
	for _, policy := range []string{"", "same", "off"} {
		t.Run("policy="+policy, func(t *testing.T) {
			run := func(script string) string {
				cmd := g.u.Command(nookBin, "run", "--mode", "rootless", g.dir, "--", "/bin/sh", "-c", script)
				cmd.Env = append(cmd.Env, "NOOK_HOME="+g.home, "NOOK_PLACEMENT="+policy)
				r := runCmd(t, cmd)
				if r.Code != 0 {
					t.Fatalf("%s:\n%s", script, r)
				}
				return r.Stdout
			}
			if got, want := run(burst+"nproc"), fmt.Sprintf("%d\n", cpus); got != want {
				t.Errorf("nproc in the guest: %q, want %q", got, want)
			}
			want := fmt.Sprintf("mask %d cpus, on cpu %d\n", 1, first)
			if got := run(fmt.Sprintf("%s/setaff %d", burst, first)); got != want {
				t.Errorf("guest-set affinity: %q, want %q", got, want)
			}
		})
	}
}

// setAffinityC pins itself to the CPU given, makes a burst of trapped calls
// (which would get an unpinned thread moved) and reports its mask and CPU.
const setAffinityC = `#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
int main(int argc, char **argv) {
	int cpu = atoi(argv[1]);
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof set, &set)) { perror("sched_setaffinity"); return 1; }
	struct stat st;
	for (int i = 0; i < 200; i++)
		stat("/etc/passwd", &st);
	CPU_ZERO(&set);
	if (sched_getaffinity(0, sizeof set, &set)) { perror("sched_getaffinity"); return 1; }
	printf("mask %d cpus, on cpu %d\n", CPU_COUNT(&set), sched_getcpu());
	return 0;
}
`
