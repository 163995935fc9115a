package ownership

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

const n1 = NoChange

// op is one credential syscall, in a form both the model and a real
// process can perform.
type op struct {
	Call string
	Args []uint32
}

func (o op) String() string { return fmt.Sprintf("%s%v", o.Call, o.Args) }

// state is what a process's credentials look like from inside.
type state struct {
	UID, EUID, SUID, FSUID uint32
	GID, EGID, SGID, FSGID uint32
	Groups                 []uint32
	Eff, Perm, Inh         uint64
}

type step struct {
	Errno uintptr // 0 on success
	Ret   uint32  // setfsuid/setfsgid's return
	State state
}

func modelState(c *Creds) state {
	e, p, i := c.Capget()
	g := append([]uint32{}, c.Groups...)
	return state{c.UID, c.EUID, c.SUID, c.FSUID, c.GID, c.EGID, c.SGID, c.FSGID, g, e, p, i}
}

func errnoOf(err error) uintptr {
	if err == nil {
		return 0
	}
	var e unix.Errno
	if errors.As(err, &e) {
		return uintptr(e)
	}
	return 1 << 20
}

// apply performs o on the model.
func (c *Creds) apply(o op) step {
	var err error
	var ret uint32
	a := o.Args
	switch o.Call {
	case "setuid":
		err = c.Setuid(a[0])
	case "setreuid":
		err = c.Setreuid(a[0], a[1])
	case "setresuid":
		err = c.Setresuid(a[0], a[1], a[2])
	case "setfsuid":
		ret = c.Setfsuid(a[0])
	case "setgid":
		err = c.Setgid(a[0])
	case "setregid":
		err = c.Setregid(a[0], a[1])
	case "setresgid":
		err = c.Setresgid(a[0], a[1], a[2])
	case "setfsgid":
		ret = c.Setfsgid(a[0])
	case "setgroups":
		err = c.Setgroups(a)
	case "capset":
		err = c.Capset(uint64(a[0])|uint64(a[1])<<32, uint64(a[2])|uint64(a[3])<<32, uint64(a[4])|uint64(a[5])<<32)
	case "keepcaps":
		c.KeepCaps = a[0] != 0
	default:
		panic(o.Call)
	}
	return step{Errno: errnoOf(err), Ret: ret, State: modelState(c)}
}

func TestCredsTable(t *testing.T) {
	root := func() *Creds { return NewCreds(0, 0, nil) }
	user := func() *Creds { return NewCreds(1000, 1000, []uint32{1000}) }
	tests := []struct {
		name  string
		start func() *Creds
		ops   []op
		errno unix.Errno // of the last op
		want  func(c *Creds) bool
	}{
		{"root setuid sets all and drops caps", root, []op{{"setuid", []uint32{1000}}}, 0, func(c *Creds) bool {
			return c.UID == 1000 && c.EUID == 1000 && c.SUID == 1000 && c.FSUID == 1000 && c.Caps.Permitted == 0 && c.Caps.Effective == 0
		}},
		{"user setuid to other uid", user, []op{{"setuid", []uint32{0}}}, unix.EPERM, func(c *Creds) bool { return c.EUID == 1000 }},
		{"user setuid to own uid", user, []op{{"setuid", []uint32{1000}}}, 0, nil},
		{"setuid -1", root, []op{{"setuid", []uint32{n1}}}, unix.EINVAL, nil},
		{"seteuid round trip keeps permitted", root, []op{{"setresuid", []uint32{n1, 100, n1}}, {"setresuid", []uint32{n1, 0, n1}}}, 0, func(c *Creds) bool {
			return c.EUID == 0 && c.SUID == 0 && c.Caps.Effective == AllCaps
		}},
		{"seteuid drops effective only", root, []op{{"setresuid", []uint32{n1, 100, n1}}}, 0, func(c *Creds) bool {
			return c.EUID == 100 && c.FSUID == 100 && c.Caps.Effective == 0 && c.Caps.Permitted == AllCaps
		}},
		{"seteuid user cannot set arbitrary", root, []op{{"setresuid", []uint32{n1, 100, n1}}, {"setuid", []uint32{200}}}, unix.EPERM, nil},
		{"apt drop: setgroups, setresgid, setresuid", root, []op{
			{"setgroups", []uint32{65534}}, {"setresgid", []uint32{65534, 65534, 65534}}, {"setresuid", []uint32{100, 100, 100}},
		}, 0, func(c *Creds) bool {
			return c.Caps.Permitted == 0 && c.GID == 65534 && reflect.DeepEqual(c.Groups, []uint32{65534})
		}},
		{"after full drop no way back", root, []op{{"setresuid", []uint32{100, 100, 100}}, {"setresuid", []uint32{0, 0, 0}}}, unix.EPERM, nil},
		{"keepcaps keeps permitted", root, []op{{"keepcaps", []uint32{1}}, {"setresuid", []uint32{100, 100, 100}}}, 0, func(c *Creds) bool {
			return c.Caps.Permitted == AllCaps && c.Caps.Effective == 0
		}},
		{"setreuid swap", root, []op{{"setreuid", []uint32{100, 0}}}, 0, func(c *Creds) bool {
			return c.UID == 100 && c.EUID == 0 && c.SUID == 0
		}},
		{"setfsuid returns old, drops fs caps", root, []op{{"setfsuid", []uint32{5}}}, 0, func(c *Creds) bool {
			return c.FSUID == 5 && c.Caps.Effective == AllCaps&^fsCaps
		}},
		{"user setgroups", user, []op{{"setgroups", []uint32{1, 2}}}, unix.EPERM, nil},
		{"setgroups sorts", root, []op{{"setgroups", []uint32{30, 10, 20}}}, 0, func(c *Creds) bool {
			return reflect.DeepEqual(c.Groups, []uint32{10, 20, 30})
		}},
		{"capset cannot raise permitted", user, []op{{"capset", []uint32{0, 0, 1, 0, 0, 0}}}, unix.EPERM, nil},
		{"capset drop", root, []op{{"capset", []uint32{0, 0, 1, 0, 0, 0}}}, 0, func(c *Creds) bool {
			return c.Caps.Permitted == 1 && c.Caps.Effective == 0
		}},
		{"user setresgid to own", user, []op{{"setresgid", []uint32{n1, 1000, n1}}}, 0, nil},
		{"user setregid other", user, []op{{"setregid", []uint32{n1, 5}}}, unix.EPERM, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.start()
			var last step
			for _, o := range tt.ops {
				last = c.apply(o)
			}
			if unix.Errno(last.Errno) != tt.errno {
				t.Fatalf("last op errno %v, want %v", unix.Errno(last.Errno), tt.errno)
			}
			if tt.want != nil && !tt.want(c) {
				t.Fatalf("unexpected creds %+v", *c)
			}
		})
	}
}

func TestCredsExec(t *testing.T) {
	// A setuid-root binary run by a user gets euid 0 and all capabilities;
	// run by root with no setuid bit after a full drop, nothing.
	c := NewCreds(1000, 1000, nil)
	c.Exec(ExecFile{Mode: unix.S_ISUID | 0o755, UID: 0, GID: 0})
	if c.EUID != 0 || c.UID != 1000 || c.SUID != 0 || c.Caps.Effective != AllCaps {
		t.Fatalf("setuid root exec: %+v", *c)
	}
	c.Exec(ExecFile{Mode: 0o755})
	if c.EUID != 0 || c.Caps.Effective != AllCaps {
		t.Fatalf("plain exec by euid 0: %+v", *c)
	}
	d := NewCreds(0, 0, nil)
	if err := d.Setresuid(100, 100, 100); err != nil {
		t.Fatal(err)
	}
	d.Exec(ExecFile{Mode: 0o755})
	if d.Caps.Permitted != 0 || d.Caps.Effective != 0 {
		t.Fatalf("user exec: %+v", *d)
	}
	// Real uid 0 but euid not: permitted all, effective none.
	e := NewCreds(0, 0, nil)
	if err := e.Setresuid(0, 100, 100); err != nil {
		t.Fatal(err)
	}
	e.Exec(ExecFile{Mode: 0o755})
	if e.Caps.Permitted != AllCaps || e.Caps.Effective != 0 || e.SUID != 100 {
		t.Fatalf("ruid 0 exec: %+v", *e)
	}
	// setgid without group execute is not setgid.
	f := NewCreds(1000, 1000, nil)
	f.Exec(ExecFile{Mode: unix.S_ISGID | 0o744, GID: 42})
	if f.EGID != 1000 {
		t.Fatalf("setgid without g+x applied: %+v", *f)
	}
	f.Exec(ExecFile{Mode: unix.S_ISGID | 0o755, GID: 42})
	if f.EGID != 42 || f.SGID != 42 || f.GID != 1000 {
		t.Fatalf("setgid exec: %+v", *f)
	}
}

// kernelSequences are checked step by step against the real kernel.
var kernelSequences = [][]op{
	{{"setuid", []uint32{1000}}, {"setuid", []uint32{0}}, {"setresuid", []uint32{n1, 1000, n1}}},
	{{"setresuid", []uint32{n1, 100, n1}}, {"setfsuid", []uint32{0}}, {"setfsuid", []uint32{7}}, {"setresuid", []uint32{n1, 0, n1}}, {"setfsuid", []uint32{3}}},
	{{"setreuid", []uint32{100, 200}}, {"setreuid", []uint32{200, 100}}, {"setreuid", []uint32{n1, 300}}, {"setuid", []uint32{100}}},
	{{"setresuid", []uint32{1, 2, 0}}, {"setresuid", []uint32{n1, 0, n1}}, {"setresuid", []uint32{5, n1, n1}}, {"setresuid", []uint32{n1, n1, 6}}},
	{{"keepcaps", []uint32{1}}, {"setresuid", []uint32{100, 100, 100}}, {"capset", []uint32{0, 0, 0xffffffff, 0x1ff, 0, 0}}, {"setresuid", []uint32{0, 0, 0}}},
	{{"setgroups", []uint32{5, 3, 9}}, {"setresgid", []uint32{10, 20, 30}}, {"setregid", []uint32{20, n1}}, {"setfsgid", []uint32{99}}, {"setgid", []uint32{1}}},
	{{"setresgid", []uint32{10, 20, 30}}, {"setresuid", []uint32{100, 100, 100}}, {"setgid", []uint32{30}}, {"setgid", []uint32{40}}, {"setregid", []uint32{n1, 10}}, {"setresgid", []uint32{30, n1, 20}}, {"setgroups", []uint32{1}}, {"setfsgid", []uint32{20}}, {"setfsgid", []uint32{77}}},
	{{"capset", []uint32{0x1, 0, 0x3, 0, 0x2, 0}}, {"capset", []uint32{0x3, 0, 0x3, 0, 0, 0}}, {"capset", []uint32{0, 0, 0x7, 0, 0, 0}}},
	{{"setuid", []uint32{n1}}, {"setresuid", []uint32{n1, n1, n1}}, {"setreuid", []uint32{n1, n1}}},
}

const childEnv = "NOOK_OWNERSHIP_CREDS_CHILD"

// TestCredsMatchKernel runs each sequence in a real root process (a child
// of the test binary) and in the model, and compares every step.
func TestCredsMatchKernel(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("child")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to compare with the kernel")
	}
	for i, seq := range kernelSequences {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			js, _ := json.Marshal(seq)
			cmd := exec.Command(os.Args[0], "-test.run=^TestCredsChild$")
			cmd.Env = append(os.Environ(), childEnv+"="+string(js))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			var got []step
			line := ""
			for _, l := range strings.Split(string(out), "\n") {
				if strings.HasPrefix(l, "RESULT ") {
					line = strings.TrimPrefix(l, "RESULT ")
				}
			}
			if err := json.Unmarshal([]byte(line), &got); err != nil {
				t.Fatalf("child output: %v\n%s", err, out)
			}
			// got[0] is the starting state: seed the model with it.
			s := got[0].State
			c := &Creds{UID: s.UID, EUID: s.EUID, SUID: s.SUID, FSUID: s.FSUID,
				GID: s.GID, EGID: s.EGID, SGID: s.SGID, FSGID: s.FSGID, Groups: s.Groups}
			c.Caps.Effective, c.Caps.Permitted, c.Caps.Inheritable = s.Eff, s.Perm, s.Inh
			c.Caps.Bounding = AllCaps
			for j, o := range seq {
				want := got[j+1]
				have := c.apply(o)
				if !reflect.DeepEqual(have, want) {
					t.Fatalf("step %d %v:\nmodel  %+v\nkernel %+v", j, o, have, want)
				}
			}
		})
	}
}

// TestCredsChild is the child side of TestCredsMatchKernel: it performs
// the sequence with raw syscalls on one locked thread (credentials are per
// thread in the kernel) and prints the state after every step.
func TestCredsChild(t *testing.T) {
	js := os.Getenv(childEnv)
	if js == "" {
		t.Skip("only run as a child of TestCredsMatchKernel")
	}
	runtime.LockOSThread()
	var seq []op
	if err := json.Unmarshal([]byte(js), &seq); err != nil {
		t.Fatal(err)
	}
	// Start from a clean, known group list.
	if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, 0, 0, 0); e != 0 {
		t.Fatal(e)
	}
	steps := []step{{State: realState(t)}}
	for _, o := range seq {
		var e unix.Errno
		var ret uintptr
		a := make([]uintptr, 3)
		for i, v := range o.Args {
			if i < 3 {
				a[i] = uintptr(v)
			}
		}
		switch o.Call {
		case "setuid":
			_, _, e = unix.RawSyscall(unix.SYS_SETUID, a[0], 0, 0)
		case "setreuid":
			_, _, e = unix.RawSyscall(unix.SYS_SETREUID, a[0], a[1], 0)
		case "setresuid":
			_, _, e = unix.RawSyscall(unix.SYS_SETRESUID, a[0], a[1], a[2])
		case "setfsuid":
			ret, _, _ = unix.RawSyscall(unix.SYS_SETFSUID, a[0], 0, 0)
		case "setgid":
			_, _, e = unix.RawSyscall(unix.SYS_SETGID, a[0], 0, 0)
		case "setregid":
			_, _, e = unix.RawSyscall(unix.SYS_SETREGID, a[0], a[1], 0)
		case "setresgid":
			_, _, e = unix.RawSyscall(unix.SYS_SETRESGID, a[0], a[1], a[2])
		case "setfsgid":
			ret, _, _ = unix.RawSyscall(unix.SYS_SETFSGID, a[0], 0, 0)
		case "setgroups":
			gs := append([]uint32{0}, o.Args...)
			_, _, e = unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(o.Args)), uintptr(ptr(gs[1:])), 0)
		case "capset":
			hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
			data := [2]unix.CapUserData{
				{Effective: o.Args[0], Permitted: o.Args[2], Inheritable: o.Args[4]},
				{Effective: o.Args[1], Permitted: o.Args[3], Inheritable: o.Args[5]},
			}
			if err := unix.Capset(&hdr, &data[0]); err != nil {
				e = err.(unix.Errno)
			}
		case "keepcaps":
			_, _, e = unix.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_KEEPCAPS, a[0], 0)
		}
		steps = append(steps, step{Errno: uintptr(e), Ret: uint32(ret), State: realState(t)})
	}
	out, _ := json.Marshal(steps)
	fmt.Printf("RESULT %s\n", out)
}

func realState(t *testing.T) state {
	var s state
	var r, e, sv uint32
	if _, _, err := unix.RawSyscall(unix.SYS_GETRESUID, uintptr(ptr32(&r)), uintptr(ptr32(&e)), uintptr(ptr32(&sv))); err != 0 {
		t.Fatal(err)
	}
	s.UID, s.EUID, s.SUID = r, e, sv
	if _, _, err := unix.RawSyscall(unix.SYS_GETRESGID, uintptr(ptr32(&r)), uintptr(ptr32(&e)), uintptr(ptr32(&sv))); err != 0 {
		t.Fatal(err)
	}
	s.GID, s.EGID, s.SGID = r, e, sv
	fs, _, _ := unix.RawSyscall(unix.SYS_SETFSUID, uintptr(NoChange), 0, 0)
	s.FSUID = uint32(fs)
	fs, _, _ = unix.RawSyscall(unix.SYS_SETFSGID, uintptr(NoChange), 0, 0)
	s.FSGID = uint32(fs)
	gs := make([]uint32, 1024)
	n, _, err := unix.RawSyscall(unix.SYS_GETGROUPS, uintptr(len(gs)), uintptr(ptr(gs)), 0)
	if err != 0 {
		t.Fatal(err)
	}
	s.Groups = append([]uint32{}, gs[:n]...)
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	s.Eff = uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	s.Perm = uint64(data[0].Permitted) | uint64(data[1].Permitted)<<32
	s.Inh = uint64(data[0].Inheritable) | uint64(data[1].Inheritable)<<32
	return s
}
