package tests

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Load: many rootless runs at once, many threads in one guest, and a long
// soak during which the tracer's memory must stay flat.

// TestLoadConcurrentRootless: 8 rootless runs of one stored rootfs at once,
// each doing 1000 rounds of create/write, rename, stat, read and unlink
// (6,000+ checked file operations each, with forks and threads), all give
// correct results.
func TestLoadConcurrentRootless(t *testing.T) {
	u, home := rootlessStore(t)
	r := &runner{mode: "rootless", home: home, u: u}
	r.put(t, "fileops", musl(t, testSource(t, "load/fileops.c"), true, "-lpthread"))
	const runs = 8
	results := make([]result, runs)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = r.run(t, "a320", "--", "/fileops", fmt.Sprintf("/tmp/load%d", i), "1000")
		}()
	}
	wg.Wait()
	t.Logf("%d concurrent runs in %v", runs, time.Since(start))
	for i, res := range results {
		if res.Code != 0 || !strings.HasPrefix(res.Stdout, "ok ") {
			t.Errorf("run %d: %s", i, res)
		}
	}
}

// TestLoadThreads64: 64 guest threads opening and stat-ing files at once
// all get the right files.
func TestLoadThreads64(t *testing.T) {
	g := newGuest(t, sharedRootfs(t, alpine320))
	g.put(t, "threads64", musl(t, testSource(t, "load/threads64.c"), true, "-lpthread"), 0o755)
	start := time.Now()
	r := g.run(t, "/threads64")
	t.Logf("64 threads in %v", time.Since(start))
	if r.Code != 0 || r.Stdout != "bad=0\n" {
		t.Fatal(r)
	}
}

// vmRSS returns the resident set of pid in KiB.
func vmRSS(pid int) (int, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			return strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// TestLoadSoak (NOOK_LONG_TESTS=1; NOOK_SOAK_DURATION, default 10m): a
// rootless guest loops over file operations, forks and threads for the
// whole duration while nook's resident memory is sampled every two
// seconds; the mean of the last third of the samples must not exceed the
// mean of the first third by more than 25% plus 4 MiB.
func TestLoadSoak(t *testing.T) {
	if os.Getenv("NOOK_LONG_TESTS") != "1" {
		t.Skip("long test: set NOOK_LONG_TESTS=1")
	}
	d := 10 * time.Minute
	if v := os.Getenv("NOOK_SOAK_DURATION"); v != "" {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			t.Fatal(err)
		}
	}
	u, home := rootlessStore(t)
	r := &runner{mode: "rootless", home: home, u: u}
	r.put(t, "fileops", musl(t, testSource(t, "load/fileops.c"), true, "-lpthread"))
	cmd, out := r.start(t, "a320", "--", "/fileops", "/tmp/soak", "500", strconv.Itoa(int(d.Seconds())))
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var samples []int
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
loop:
	for {
		select {
		case <-done:
			break loop
		case <-tick.C:
			if kb, err := vmRSS(cmd.Process.Pid); err == nil {
				samples = append(samples, kb)
			}
		}
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 || !strings.HasPrefix(out.String(), "ok ") {
		t.Fatalf("soak guest: exit %d\n%s", code, out)
	}
	if len(samples) < 9 {
		t.Fatalf("only %d samples", len(samples))
	}
	third := len(samples) / 3
	mean := func(s []int) int {
		sum := 0
		for _, v := range s {
			sum += v
		}
		return sum / len(s)
	}
	first, last := mean(samples[:third]), mean(samples[len(samples)-third:])
	peak := 0
	for _, v := range samples {
		peak = max(peak, v)
	}
	t.Logf("%v: %s; nook RSS: first third %d KiB, last third %d KiB, peak %d KiB, %d samples",
		d, strings.TrimSpace(out.String()), first, last, peak, len(samples))
	if last > first+first/4+4096 {
		t.Errorf("nook's memory grew: first third %d KiB, last third %d KiB", first, last)
	}
}
