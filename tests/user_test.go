package tests

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
)

// unprivUser is a real unprivileged account the rootless tests run nook as.
type unprivUser struct {
	Name     string
	UID, GID int
	Home     string
}

const unprivName = "nooktest"

var unprivOnce struct {
	sync.Once
	u   *unprivUser
	err error
}

// unprivileged returns the test's unprivileged user, creating it with
// useradd on first use. Requires root.
func unprivileged(t testing.TB) *unprivUser {
	t.Helper()
	requireRoot(t)
	unprivOnce.Do(func() {
		if _, err := user.Lookup(unprivName); err != nil {
			out, err := exec.Command("useradd", "--create-home", "--shell", "/bin/sh", unprivName).CombinedOutput()
			if err != nil {
				unprivOnce.err = &os.PathError{Op: "useradd", Path: unprivName, Err: os.ErrInvalid}
				t.Logf("useradd: %s", out)
				return
			}
		}
		u, err := user.Lookup(unprivName)
		if err != nil {
			unprivOnce.err = err
			return
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		unprivOnce.u = &unprivUser{Name: u.Username, UID: uid, GID: gid, Home: u.HomeDir}
	})
	if unprivOnce.err != nil {
		t.Fatalf("unprivileged user: %v", unprivOnce.err)
	}
	return unprivOnce.u
}

// TempDir returns a fresh directory owned by u (removed at the end of t).
// Every directory above it must be searchable by u, so it lives under /tmp.
func (u *unprivUser) TempDir(t testing.TB) string {
	t.Helper()
	d, err := os.MkdirTemp("/tmp", "nook-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	if err := os.Chown(d, u.UID, u.GID); err != nil {
		t.Fatal(err)
	}
	return d
}

// Command returns cmd prepared to run as u: real and effective ids dropped,
// no supplementary groups, HOME set. The process really is unprivileged: it
// gets no capability and its uid is u's.
func (u *unprivUser) Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: uint32(u.UID), Gid: uint32(u.GID), Groups: []uint32{}},
	}
	cmd.Env = []string{
		"HOME=" + u.Home, "USER=" + u.Name, "LOGNAME=" + u.Name,
		"PATH=/usr/local/bin:/usr/bin:/bin",
	}
	return cmd
}

// Nook runs the binary under test as u with NOOK_HOME=home.
func (u *unprivUser) Nook(t testing.TB, home string, args ...string) result {
	t.Helper()
	cmd := u.Command(nookBin, args...)
	cmd.Env = append(cmd.Env, "NOOK_HOME="+home)
	return runCmd(t, cmd)
}

// Untar unpacks tarball into dir as u (so u owns every file, as on a
// machine where u has no root).
func (u *unprivUser) Untar(t testing.TB, tarball, dir string) {
	t.Helper()
	abs, err := filepath.Abs(tarball)
	if err != nil {
		t.Fatal(err)
	}
	r := runCmd(t, u.Command("tar", "-xf", abs, "-C", dir))
	if r.Code != 0 {
		t.Fatalf("untar %s as %s: %s", tarball, u.Name, r)
	}
}
