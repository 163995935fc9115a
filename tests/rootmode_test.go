package tests

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// rootStore makes a temporary NOOK_HOME holding both Alpine releases, as
// a312 and a320, imported with nook import.
func rootStore(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	home := t.TempDir()
	for name, tarball := range map[string]string{"a312": alpine312, "a320": alpine320} {
		r := nook(t, home, "import", "--name", name, sharedRootfs(t, tarball))
		if r.Code != 0 {
			t.Fatalf("import %s: %s", name, r)
		}
	}
	return home
}

// rootTree unpacks the 3.12 tarball into a plain directory (a ROOTFS given
// as a path rather than a store name).
func rootTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "alpine")
	if err := os.Mkdir(dir, 0755); err != nil {
		t.Fatal(err)
	}
	if r := runCmd(t, exec.Command("tar", "-xzf", sharedRootfs(t, alpine312), "-C", dir)); r.Code != 0 {
		t.Fatalf("untar: %s", r)
	}
	return dir
}

// noMountsUnder fails t if the test process's mount table has a mount
// point below any of dirs: every mount of a run must stay in the run's
// namespace.
func noMountsUnder(t *testing.T, dirs ...string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		for _, d := range dirs {
			if f[4] == d || strings.HasPrefix(f[4], d+"/") {
				t.Fatalf("mount leaked into the host's namespace: %s", l)
			}
		}
	}
}

// runRoot runs nook run --mode root with args and checks the host's mount
// table afterwards.
func runRoot(t *testing.T, home string, args ...string) result {
	t.Helper()
	r := nook(t, home, append([]string{"run", "--mode", "root"}, args...)...)
	noMountsUnder(t, home, os.TempDir())
	return r
}

func TestRootModeAlpine(t *testing.T) {
	home := rootStore(t)
	for _, tc := range []struct{ name, release string }{{"a312", "3.12.12"}, {"a320", "3.20.3"}} {
		t.Run(tc.name, func(t *testing.T) {
			r := runRoot(t, home, tc.name, "--", "sh", "-l", "-c", "ls /")
			if r.Code != 0 {
				t.Fatal(r)
			}
			got := strings.Fields(r.Stdout)
			for _, d := range []string{"bin", "dev", "etc", "home", "lib", "proc", "root", "sbin", "sys", "tmp", "usr", "var"} {
				if !contains(got, d) {
					t.Fatalf("ls / lacks %s: %q", d, got)
				}
			}
			r = runRoot(t, home, tc.name, "cat", "/etc/alpine-release")
			if r.Code != 0 || strings.TrimSpace(r.Stdout) != tc.release {
				t.Fatalf("alpine-release: %s", r)
			}
			// /proc is mounted: ps sees itself.
			r = runRoot(t, home, tc.name, "ps", "-o", "pid,comm")
			if r.Code != 0 {
				t.Fatal(r)
			}
			mustContain(t, r.Stdout, "PID", "ps")
			// The login environment and nothing else of the host's.
			cmd := nookCmd(home, "run", "--mode", "root", tc.name, "env")
			cmd.Env = append(cmd.Env, "TERM=vt100", "NOOK_SECRET=1")
			r = runCmd(t, cmd)
			mustContain(t, r.Stdout, "HOME=/root\n", "USER=root\n", "LOGNAME=root\n", "TERM=vt100\n",
				"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n")
			if strings.Contains(r.Stdout, "NOOK_SECRET") || strings.Contains(r.Stdout, "NOOK_HOME") {
				t.Fatalf("host environment leaked:\n%s", r.Stdout)
			}
		})
	}
}

// TestRootModePIDNamespace: the run has a PID namespace of its own whose
// pid 1 is nook's __init: the guest's /proc lists the guest's processes
// only, the command is pid 1's child (not pid 1, whose signals the kernel
// filters), orphans are reaped (no zombies pile up), and what the command
// leaves running dies when it exits.
func TestRootModePIDNamespace(t *testing.T) {
	requireRoot(t)
	tree := rootTree(t)
	home := t.TempDir()
	script := `echo ppid=$PPID; tr '\0' ' ' < /proc/1/cmdline; echo
( (sleep 0.2; exit 3) & ); ( (exit 4) & ); sleep 1
cat /proc/[0-9]*/stat 2>/dev/null; exit 0`
	r := runRoot(t, home, tree, "sh", "-c", script)
	if r.Code != 0 {
		t.Fatal(r)
	}
	lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
	if len(lines) < 3 || lines[0] != "ppid=1" || strings.TrimSpace(lines[1]) != "nook __init" {
		t.Fatalf("want the command as the child of pid 1, nook __init:\n%s", r)
	}
	var comms []string
	for _, l := range lines[2:] {
		// pid (comm) state ...
		i, j := strings.IndexByte(l, '('), strings.LastIndexByte(l, ')')
		if i < 0 || j < i {
			t.Fatalf("odd stat line %q", l)
		}
		comm, state := l[i+1:j], strings.Fields(l[j+1:])[0]
		if state == "Z" {
			t.Errorf("zombie left unreaped by pid 1: %s", l)
		}
		comms = append(comms, comm)
	}
	// pid 1 (exe: nook started through /proc/self/exe) and the shell (the
	// glob is expanded before cat starts).
	sort.Strings(comms)
	if strings.Join(comms, " ") != "exe sh" {
		t.Errorf("guest /proc lists %q, want the guest's processes only", comms)
	}

	// The command's exit ends the run at once, background jobs included.
	start := time.Now()
	r = runRoot(t, home, tree, "sh", "-c", "sleep 100 & sleep 100 & exit 5")
	if r.Code != 5 || time.Since(start) > 20*time.Second {
		t.Fatalf("exit %d after %v: %s", r.Code, time.Since(start), r)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestRootModeUser(t *testing.T) {
	home := rootStore(t)
	passwd := filepath.Join(home, "rootfs", "a320", "rootfs", "etc", "passwd")
	args := []string{"--user", "myuser:2000", "--group", "mygroup:2000", "a320", "--", "sh", "-c", "cd && touch x && ls -l x && pwd && id -u && id -g"}
	r := runRoot(t, home, args...)
	if r.Code != 0 {
		t.Fatal(r)
	}
	mustContain(t, r.Stdout, " myuser ", " mygroup ", "/home/myuser\n2000\n2000\n")
	before, beforeSt := readWithStat(t, passwd)

	// The same again: nothing is rewritten.
	if r := runRoot(t, home, args...); r.Code != 0 {
		t.Fatal(r)
	}
	after, afterSt := readWithStat(t, passwd)
	if !bytes.Equal(before, after) || beforeSt.Mtim != afterSt.Mtim || beforeSt.Ino != afterSt.Ino {
		t.Fatalf("second run rewrote /etc/passwd")
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--user", "myuser:2001"}, "user myuser exists in the guest with uid 2000, not 2001"},
		{[]string{"--user", "x:3000", "--group", "mygroup:3000"}, "group mygroup exists in the guest with gid 2000, not 3000"},
		{[]string{"--user", "nosuchuser"}, "user nosuchuser does not exist"},
	} {
		r := runRoot(t, home, append(tc.args, "a320", "true")...)
		if r.Code != 125 || !strings.Contains(r.Stderr, "nook: error: "+tc.want) || strings.Count(r.Stderr, "\n") != 1 {
			t.Fatalf("%v: want exit 125 and one line %q, got %s", tc.args, tc.want, r)
		}
	}
	if now, _ := readWithStat(t, passwd); !bytes.Equal(now, before) {
		t.Fatal("a refused run changed /etc/passwd")
	}

	// An existing user by name, with its supplementary groups.
	r = runRoot(t, home, "--user", "daemon", "a320", "id")
	if r.Code != 0 {
		t.Fatal(r)
	}
	mustContain(t, r.Stdout, "uid=2(daemon) gid=2(daemon) groups=1(bin),2(daemon),4(adm)")
}

func readWithStat(t *testing.T, p string) ([]byte, syscall.Stat_t) {
	t.Helper()
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return data, st
}

func TestRootModeExitStatus(t *testing.T) {
	requireRoot(t)
	tree := rootTree(t)
	home := t.TempDir()
	for _, tc := range []struct {
		argv   []string
		code   int
		stderr string
	}{
		{[]string{"sh", "-c", "exit 7"}, 7, ""},
		{[]string{"true"}, 0, ""},
		{[]string{"nosuchcommand"}, 127, "nook: error: nosuchcommand: command not found"},
		{[]string{"/no/such/file"}, 127, "nook: error: /no/such/file: command not found"},
		{[]string{"/etc/passwd"}, 126, "nook: error: /etc/passwd: permission denied"},
		{[]string{"/etc"}, 126, "nook: error: /etc: is a directory"},
		{[]string{"sh", "-c", "kill -9 $$"}, 137, ""},
		{[]string{"sh", "-c", "kill -USR1 $$"}, 128 + int(syscall.SIGUSR1), ""},
	} {
		r := runRoot(t, home, append([]string{tree, "--"}, tc.argv...)...)
		if r.Code != tc.code {
			t.Fatalf("%q: exit %d, want %d\n%s", tc.argv, r.Code, tc.code, r)
		}
		if tc.stderr == "" && r.Stderr != "" || !strings.HasPrefix(r.Stderr, tc.stderr) || strings.Count(r.Stderr, "\n") > 1 {
			t.Fatalf("%q: stderr %q, want one line starting %q", tc.argv, r.Stderr, tc.stderr)
		}
	}
}

// startNook starts nook run in the background and waits until its command
// (comm) runs, i.e. a process of that name below nook (the command is a
// child of nook's __init, the run's pid 1).
func startNook(t *testing.T, home, comm string, args ...string) (*exec.Cmd, *bytes.Buffer, int) {
	t.Helper()
	cmd := nookCmd(home, append([]string{"run", "--mode", "root"}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if pid := descendantWithComm(cmd.Process.Pid, comm); pid > 0 {
			return cmd, &out, pid
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never started: %s", comm, out.String())
	return nil, nil, 0
}

// descendantWithComm returns the pid of a descendant of root whose command
// name is comm, or 0.
func descendantWithComm(root int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		c, ppid := procStat(pid)
		if c != comm {
			continue
		}
		for p, depth := ppid, 0; p > 1 && depth < 64; depth++ {
			if p == root {
				return pid
			}
			_, p = procStat(p)
		}
	}
	return 0
}

// procStat returns the command name and parent pid of pid ("", 0 if it is
// gone).
func procStat(pid int) (string, int) {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return "", 0
	}
	// pid (comm) state ppid ...
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	j := strings.IndexByte(s, '(')
	if i < 0 || j < 0 {
		return "", 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return "", 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return s[j+1 : i], ppid
}

// childWithComm returns the pid of a child of ppid whose command name is
// comm, or 0.
func childWithComm(ppid int, comm string) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		i := strings.LastIndexByte(s, ')')
		if i < 0 || s[strings.IndexByte(s, '(')+1:i] != comm {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) > 1 && f[1] == strconv.Itoa(ppid) {
			return pid
		}
	}
	return 0
}

func exitCode(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	err := cmd.Wait()
	if err == nil {
		return 0
	}
	ee, ok := err.(*exec.ExitError)
	if !ok {
		t.Fatal(err)
	}
	ws := ee.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		t.Fatalf("nook itself died of %v", ws.Signal())
	}
	return ws.ExitStatus()
}

func TestRootModeSignals(t *testing.T) {
	requireRoot(t)
	tree := rootTree(t)
	home := t.TempDir()
	for _, tc := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}, {syscall.SIGHUP, 129}} {
		t.Run(tc.sig.String(), func(t *testing.T) {
			cmd, out, _ := startNook(t, home, "sleep", tree, "sleep", "100")
			start := time.Now()
			cmd.Process.Signal(tc.sig)
			if code := exitCode(t, cmd); code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, out)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("the command did not die of the signal")
			}
		})
	}
	// The command itself gets the signal (and may handle it).
	cmd, out, sh := startNook(t, home, "sh", tree, "sh", "-c", `trap 'echo got INT; kill $!; exit 3' INT; sleep 100 & wait`)
	for childWithComm(sh, "sleep") == 0 {
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGINT)
	if code := exitCode(t, cmd); code != 3 || !strings.Contains(out.String(), "got INT") {
		t.Fatalf("exit %d: %s", code, out)
	}
	// Killing nook kills the command: no guest outlives its nook.
	cmd, _, pid := startNook(t, home, "sleep", tree, "sleep", "100")
	cmd.Process.Kill()
	cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("command %d outlived nook", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	noMountsUnder(t, tree, home)
}

// treeSum is a digest of a whole tree: names, types, modes, owners, sizes,
// mtimes, symlink targets and file contents.
func treeSum(t *testing.T, root string) string {
	t.Helper()
	var lines []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %o %d:%d %d %d", strings.TrimPrefix(p, root), st.Mode, st.Uid, st.Gid, st.Size, st.Mtim.Nano())
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", h.Sum(nil))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	h := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return fmt.Sprintf("%x (%d entries)", h, len(lines))
}

func tmpEntries(t *testing.T, home string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(home, "tmp"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestRootModeEphemeral(t *testing.T) {
	home := rootStore(t)
	stored := filepath.Join(home, "rootfs", "a312", "rootfs")
	before := treeSum(t, stored)
	script := `echo changed > /etc/motd && rm /bin/ls && mkdir /newdir && chmod 700 /etc && chown 5:5 /root && cat /etc/motd && test ! -e /bin/ls`
	r := runRoot(t, home, "--ephemeral", "--user", "eph:3000", "a312", "id", "-u")
	if r.Code != 0 || r.Stdout != "3000\n" {
		t.Fatal(r)
	}
	r = runRoot(t, home, "--ephemeral", "a312", "--", "sh", "-c", script)
	if r.Code != 0 || !strings.Contains(r.Stdout, "changed") {
		t.Fatal(r)
	}
	// A second ephemeral run starts from the stored tree again.
	r = runRoot(t, home, "--ephemeral", "a312", "--", "sh", "-c", "cat /etc/motd; ls -d /newdir; grep -c eph /etc/passwd")
	if strings.Contains(r.Stdout, "changed") || !strings.Contains(r.Stdout, "Welcome") || !strings.Contains(r.Stdout, "\n0\n") {
		t.Fatalf("changes survived an ephemeral run: %s", r)
	}
	if after := treeSum(t, stored); after != before {
		t.Fatalf("stored tree changed: %s -> %s", before, after)
	}
	if left := tmpEntries(t, home); len(left) != 0 {
		t.Fatalf("ephemeral runs left %v", left)
	}

	// SIGINT/SIGTERM end the command, then nook removes the copy.
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		cmd, _, _ := startNook(t, home, "sleep", "--ephemeral", "a312", "sleep", "100")
		if left := tmpEntries(t, home); len(left) != 1 {
			t.Fatalf("running ephemeral run: tmp holds %v", left)
		}
		cmd.Process.Signal(sig)
		if code := exitCode(t, cmd); code != 128+int(sig) {
			t.Fatalf("%v: exit %d", sig, code)
		}
		if left := tmpEntries(t, home); len(left) != 0 {
			t.Fatalf("%v: ephemeral copy left: %v", sig, left)
		}
	}

	// A run killed outright leaves its copy; the next run removes it.
	cmd, _, _ := startNook(t, home, "sleep", "--ephemeral", "a312", "sleep", "100")
	cmd.Process.Kill()
	cmd.Wait()
	if left := tmpEntries(t, home); len(left) == 0 {
		t.Fatal("expected the killed run's leftovers")
	}
	if r := runRoot(t, home, "--ephemeral", "a312", "true"); r.Code != 0 {
		t.Fatal(r)
	}
	if left := tmpEntries(t, home); len(left) != 0 {
		t.Fatalf("leftovers not cleaned: %v", left)
	}
	if after := treeSum(t, stored); after != before {
		t.Fatalf("stored tree changed: %s -> %s", before, after)
	}
}

func TestRootModeLayers(t *testing.T) {
	home := rootStore(t)
	stored := filepath.Join(home, "rootfs", "a320", "rootfs")
	base := t.TempDir()
	write := func(p, content string) {
		t.Helper()
		full := filepath.Join(base, p)
		if err := os.MkdirAll(filepath.Dir(full), 0755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0644); err != nil {
			t.Fatal(err)
		}
	}
	// Layer 1 adds files; layer 2 deletes one of them and one of the
	// rootfs's, replaces a directory's whole content (opaque) and adds a
	// file under it.
	write("l1/data/a", "a1")
	write("l1/data/b", "b1")
	write("l1/opq/x", "x1")
	write("l1/etc/layer", "one")
	write("l2/data/.wh.a", "")
	write("l2/etc/.wh.motd", "")
	write("l2/opq/.wh..wh..opq", "")
	write("l2/opq/y", "y2")
	write("l2/etc/layer", "two")
	write("l2/etc/apk/.wh..wh..opq", "")
	write("l2/etc/apk/only", "")
	layers := []string{filepath.Join(base, "l1"), filepath.Join(base, "l2")}
	before, beforeLayers := treeSum(t, stored), treeSum(t, base)

	r := runRoot(t, home, "--layer", layers[0], "--layer", layers[1], "a320", "--", "sh", "-c",
		"ls -A /data /opq /etc/apk; cat /etc/layer; echo; test -e /etc/motd && echo motd; ls -A / | grep -c wh; echo written > /data/new")
	if r.Code != 0 {
		t.Fatal(r)
	}
	want := "/data:\nb\n\n/etc/apk:\nonly\n\n/opq:\ny\ntwo\n0\n"
	if r.Stdout != want {
		t.Fatalf("merged tree:\n%s\nwant:\n%s", r.Stdout, want)
	}
	if treeSum(t, stored) != before || treeSum(t, base) != beforeLayers {
		t.Fatal("--layer changed the rootfs or a layer")
	}
	if left := tmpEntries(t, home); len(left) != 0 {
		t.Fatalf("layered run left %v", left)
	}
}

func TestRootModeHostRoot(t *testing.T) {
	requireRoot(t)
	home := t.TempDir()
	link := filepath.Join(t.TempDir(), "hostroot")
	if err := os.Symlink("/", link); err != nil {
		t.Fatal(err)
	}
	before, beforeSt := readWithStat(t, "/etc/passwd")
	for _, root := range []string{"/", link} {
		for _, args := range [][]string{{"--user", "nookhostuser:2999"}, {"--group", "nookhostgrp:2999"}, {"--ephemeral"}} {
			r := runRoot(t, home, append(args, root, "true")...)
			if r.Code != 125 || !strings.Contains(r.Stderr, "host's own root") {
				t.Fatalf("%s %v: %s", root, args, r)
			}
		}
	}
	after, afterSt := readWithStat(t, "/etc/passwd")
	if !bytes.Equal(before, after) || beforeSt.Mtim != afterSt.Mtim {
		t.Fatal("the host's /etc/passwd changed")
	}
	// A guest tree whose /etc/passwd and /etc/group point at the host's
	// files: resolved inside the guest they are loops, never the host's.
	tree := rootTree(t)
	for _, f := range []string{"passwd", "group"} {
		p := filepath.Join(tree, "etc", f)
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../../../../../../../../../etc/"+f, p); err != nil {
			t.Fatal(err)
		}
	}
	r := runRoot(t, home, "--user", "nookhostuser:2999", tree, "true")
	if r.Code != 125 || !strings.Contains(r.Stderr, "too many levels of symbolic links") {
		t.Fatal(r)
	}
	if after, afterSt := readWithStat(t, "/etc/passwd"); !bytes.Equal(before, after) || beforeSt.Mtim != afterSt.Mtim {
		t.Fatal("the host's /etc/passwd changed")
	}

	// Without user setup the host's root is a valid (if pointless) tree.
	if r := runRoot(t, home, "--host-binds=", link, "sh", "-c", "test -d /etc && id -u"); r.Code != 0 || r.Stdout != "0\n" {
		t.Fatal(r)
	}
}

func TestRootModeBindWorkdirEnv(t *testing.T) {
	requireRoot(t)
	tree := rootTree(t)
	home := t.TempDir()
	hostDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(hostDir, "in-dir"), []byte("from dir\n"), 0644); err != nil {
		t.Fatal(err)
	}
	hostFile := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(hostFile, []byte("from file\n"), 0644); err != nil {
		t.Fatal(err)
	}
	r := runRoot(t, home, "-b", hostDir+":/mnt/hostdir", "-b", hostFile+":/opt/new/hostfile", "-b", hostDir,
		"-w", "/mnt/hostdir", "-e", "FOO=bar baz", "-e", "PATH=/bin", tree, "--",
		"sh", "-c", `cat in-dir /opt/new/hostfile; pwd; echo "$FOO $PATH"; ls `+hostDir+`; echo guest > out`)
	if r.Code != 0 {
		t.Fatal(r)
	}
	if want := "from dir\nfrom file\n/mnt/hostdir\nbar baz /bin\nin-dir\n"; r.Stdout != want {
		t.Fatalf("got %q, want %q", r.Stdout, want)
	}
	if b, err := os.ReadFile(filepath.Join(hostDir, "out")); err != nil || string(b) != "guest\n" {
		t.Fatalf("write through the bind: %q %v", b, err)
	}
	// A guest symlink cannot move a mount point out of the tree.
	if err := os.Symlink(hostDir, filepath.Join(tree, "escape")); err != nil {
		t.Fatal(err)
	}
	r = runRoot(t, home, "-b", hostFile+":/escape/x", tree, "cat", "/escape/x")
	if r.Code != 0 || r.Stdout != "from file\n" {
		t.Fatal(r)
	}
	if _, err := os.Stat(filepath.Join(hostDir, "x")); err == nil {
		t.Fatal("mount point created on the host through a guest symlink")
	}

	// The host's resolv.conf reaches a guest whose own is a dangling
	// symlink (Ubuntu's systemd-resolved layout), read-only.
	if hostResolv, err := os.ReadFile("/etc/resolv.conf"); err == nil {
		p := filepath.Join(tree, "etc", "resolv.conf")
		os.Remove(p)
		if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", p); err != nil {
			t.Fatal(err)
		}
		r = runRoot(t, home, tree, "sh", "-c", "cat /etc/resolv.conf; echo x >> /etc/resolv.conf && echo writable")
		if r.Stdout != string(hostResolv) || !strings.Contains(r.Stderr, "Read-only file system") {
			t.Fatalf("resolv.conf through a dangling symlink: %s", r)
		}
	}

	// Default working directories: "/" for a command, home for a login
	// shell.
	if r := runRoot(t, home, tree, "pwd"); r.Stdout != "/\n" {
		t.Fatal(r)
	}
	cmd := nookCmd(home, "run", "--mode", "root", tree)
	cmd.Stdin = strings.NewReader("pwd; echo $0\n")
	if r := runCmd(t, cmd); r.Stdout != "/root\n-ash\n" {
		t.Fatal(r)
	}
}

func TestRunBadInput(t *testing.T) {
	requireRoot(t)
	home := t.TempDir()
	tree := rootTree(t)
	empty := t.TempDir()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"./no/such/dir", "true"}, "no such file or directory"},
		{[]string{empty, "true"}, "does not look like a root filesystem"},
		{[]string{"nosuchname", "true"}, "no such rootfs in the store"},
		{[]string{"-b", "/no/such/host/path", tree, "true"}, "--bind /no/such/host/path"},
		{[]string{"-b", "/tmp:relative", tree, "true"}, "guest path must be absolute"},
		{[]string{"-w", "relative", tree, "true"}, "must be an absolute guest path"},
		{[]string{"-w", "/no/such/dir", tree, "true"}, "working directory /no/such/dir"},
		{[]string{"--host-binds", "proc,bogus", tree, "true"}, "invalid --host-binds item"},
		{[]string{"--layer", "/no/such/layer", tree, "true"}, "--layer /no/such/layer"},
		{[]string{"-u", "bad:name:1", tree, "true"}, "invalid user id"},
	} {
		r := runRoot(t, home, tc.args...)
		if r.Code != 125 || !strings.HasPrefix(r.Stderr, "nook: error: ") || !strings.Contains(r.Stderr, tc.want) {
			t.Fatalf("%v: want exit 125 and %q, got %s", tc.args, tc.want, r)
		}
	}
}

// TestRootModeTerminal: on a terminal the command runs in its own process
// group, which is the terminal's foreground group (so ^C reaches it alone
// and a guest shell has job control).
func TestRootModeTerminal(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) from util-linux is needed for a pseudo-terminal")
	}
	tree := rootTree(t)
	home := t.TempDir()
	inner := fmt.Sprintf("%s run --mode root %s sh -c 'echo $$; cat /proc/self/stat; exit 3'", nookBin, tree)
	cmd := exec.Command("script", "-qfec", inner, "/dev/null")
	cmd.Env = append(os.Environ(), "NOOK_HOME="+home)
	r := runCmd(t, cmd)
	if r.Code != 3 {
		t.Fatalf("exit status through the terminal: %s", r)
	}
	lines := strings.Split(strings.ReplaceAll(r.Stdout, "\r", ""), "\n")
	if len(lines) < 2 {
		t.Fatal(r)
	}
	pid := strings.TrimSpace(lines[0])
	// pid (comm) state ppid pgrp session tty_nr tpgid ...
	stat := lines[1]
	f := strings.Fields(stat[strings.LastIndexByte(stat, ')')+1:])
	if len(f) < 6 || f[2] != pid || f[5] != pid {
		t.Fatalf("command %s: want pgrp and terminal foreground group %s, got stat %q", pid, pid, stat)
	}
}

// TestRootModeRmInUse: a stored rootfs cannot be removed while a run uses
// it.
func TestRootModeRmInUse(t *testing.T) {
	home := rootStore(t)
	cmd, _, _ := startNook(t, home, "sleep", "a312", "sleep", "100")
	r := nook(t, home, "rm", "a312")
	if r.Code != 125 || !strings.Contains(r.Stderr, "in use") {
		t.Fatalf("rm during a run: %s", r)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	if code := exitCode(t, cmd); code != 143 {
		t.Fatalf("exit %d", code)
	}
	if r := nook(t, home, "rm", "a312"); r.Code != 0 {
		t.Fatalf("rm after the run: %s", r)
	}
}

// TestRootModeEphemeralCopyFallback: a store on a file system that cannot
// hold an overlay's upper directory (here an overlay itself) still gets
// ephemeral runs, by copy.
func TestRootModeEphemeralCopyFallback(t *testing.T) {
	requireRoot(t)
	base := t.TempDir()
	for _, d := range []string{"l", "u", "w", "m"} {
		if err := os.Mkdir(filepath.Join(base, d), 0755); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(base, "m")
	opts := fmt.Sprintf("lowerdir=%s/l,upperdir=%s/u,workdir=%s/w", base, base, base)
	if err := syscall.Mount("overlay", m, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount an overlay here: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(m, syscall.MNT_DETACH) })
	home := filepath.Join(m, "home")
	if r := nook(t, home, "import", "--name", "a320", sharedRootfs(t, alpine320)); r.Code != 0 {
		t.Fatal(r)
	}
	stored := filepath.Join(home, "rootfs", "a320", "rootfs")
	before := treeSum(t, stored)
	r := nook(t, home, "run", "--mode", "root", "--ephemeral", "a320", "sh", "-c", "echo changed > /etc/motd && cat /etc/motd")
	if r.Code != 0 || r.Stdout != "changed\n" {
		t.Fatal(r)
	}
	noMountsUnder(t, home)
	if after := treeSum(t, stored); after != before {
		t.Fatalf("stored tree changed: %s -> %s", before, after)
	}
	if left := tmpEntries(t, home); len(left) != 0 {
		t.Fatalf("ephemeral run left %v", left)
	}
}

// TestRootModeJobControl: under an interactive job-control shell on a
// pseudo-terminal, ^Z stops the command and nook with it (the shell
// reports the job stopped and gets the terminal back); fg gives the
// terminal back to the command, which finishes normally.
func TestRootModeJobControl(t *testing.T) {
	requireRoot(t)
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) from util-linux is needed for a pseudo-terminal")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is needed as the job-control shell")
	}
	tree := rootTree(t)
	home := t.TempDir()
	cmd := exec.Command("script", "-qec", "bash --norc --noprofile -i", "/dev/null")
	cmd.Env = append(os.Environ(), "NOOK_HOME="+home, "PS1=$ ")
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nookLine := fmt.Sprintf("%s run --mode root %s sh -c 'sleep 3; echo after-stop; exit 5'\n", nookBin, tree)
	steps := []struct {
		input string
		wait  time.Duration
	}{
		{nookLine, 1500 * time.Millisecond},
		{"\x1a", 1500 * time.Millisecond},
		{"jobs; echo between; fg; echo resumed-$?\n", 5 * time.Second},
		{"exit\n", 0},
	}
	for _, s := range steps {
		time.Sleep(500 * time.Millisecond)
		in.Write([]byte(s.input))
		time.Sleep(s.wait)
	}
	in.Close()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("interactive shell hung:\n%s", out.String())
	}
	o := strings.ReplaceAll(out.String(), "\r", "")
	mustContain(t, o, "Stopped", "between\n", "after-stop\n", "resumed-5\n")
	if i, j := strings.Index(o, "between\n"), strings.Index(o, "after-stop\n"); i > j {
		t.Fatalf("the command ran on while stopped:\n%s", o)
	}
}
