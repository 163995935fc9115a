package tracer

import (
	"encoding/binary"
	"testing"
)

func TestForeignMagic(t *testing.T) {
	tr := &tracer{threads: map[int]*Thread{100: {Tid: 100}, 101: {Tid: 101}}}
	for _, tc := range []struct {
		host string
		want bool
	}{
		{"/proc/100/root", false},
		{"/proc/100/task/101/cwd/x", false},
		{"/proc/200/root", true},
		{"/proc/200/root/etc/passwd", true},
		{"/proc/200/cwd", true},
		{"/proc/200/exe", true},
		{"/proc/200/fd/3/..", true},
		{"/proc/200/fd", false},
		{"/proc/200/map_files/400000-401000", true},
		{"/proc/200/status", false},
		{"/proc/100/task/200/root", true},
		{"/proc/self/root", false},
		{"/proc/cpuinfo", false},
		{"/tmp/proc/200/root", false},
	} {
		if got := tr.foreignMagic(tc.host); got != tc.want {
			t.Errorf("foreignMagic(%q) = %v, want %v", tc.host, got, tc.want)
		}
	}
}

func TestUnixPath(t *testing.T) {
	sa := func(family uint16, path string) []byte {
		b := make([]byte, 2+len(path))
		binary.LittleEndian.PutUint16(b, family)
		copy(b[2:], path)
		return b
	}
	for _, tc := range []struct {
		sa   []byte
		path string
		ok   bool
	}{
		{sa(1, "/tmp/s\x00"), "/tmp/s", true},
		{sa(1, "rel\x00junk"), "rel", true},
		{sa(1, "/no/nul"), "/no/nul", true},
		{sa(1, "\x00abstract"), "", false},
		{sa(1, ""), "", false},
		{sa(2, "/tmp/s\x00"), "", false},
	} {
		p, ok := unixPath(tc.sa)
		if p != tc.path || ok != tc.ok {
			t.Errorf("unixPath(%q) = %q, %v; want %q, %v", tc.sa, p, ok, tc.path, tc.ok)
		}
	}
}

func TestFollowRules(t *testing.T) {
	const (
		atNoFollow = 0x100
		atFollow   = 0x400
		oNoFollow  = 0x20000
		oCreat     = 0x40
		oExcl      = 0x80
	)
	for _, tc := range []struct {
		rule  followRule
		flags uint64
		want  bool
	}{
		{followAlways, 0, true},
		{followNever, 0, false},
		{followUnlessAt, 0, true},
		{followUnlessAt, atNoFollow, false},
		{followIfAt, 0, false},
		{followIfAt, atFollow, true},
		{followOpen, 0, true},
		{followOpen, oNoFollow, false},
		{followOpen, oCreat, true},
		{followOpen, oCreat | oExcl, false},
	} {
		c := &Call{}
		c.Regs.Rsi = tc.flags
		a := pathArg{dir: noArg, path: 0, flags: 1, follow: tc.rule}
		if got := a.follows(c); got != tc.want {
			t.Errorf("rule %d flags %#x: follows %v, want %v", tc.rule, tc.flags, got, tc.want)
		}
	}
}
