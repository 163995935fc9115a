package tracer

import (
	"bytes"
	"testing"
)

func TestContiguous(t *testing.T) {
	// data holds "AAAA" "BB" "CCC" at offsets 0, 4, 6.
	data := []byte("AAAABBCCC")
	a := func(addr uint64) write { return write{addr: addr, off: 0, n: 4} }
	b := func(addr uint64) write { return write{addr: addr, off: 4, n: 2} }
	c := func(addr uint64) write { return write{addr: addr, off: 6, n: 3} }
	for _, tc := range []struct {
		name string
		ws   []write
		want string
		lo   uint64
	}{
		{"pushed downwards", []write{a(1005), b(1003), c(1000)}, "CCCBBAAAA", 1000},
		{"upwards", []write{a(1000), b(1004), c(1006)}, "AAAABBCCC", 1000},
		{"empty write ignored", []write{a(1000), {addr: 5000}, b(1004)}, "AAAABB", 1000},
		{"alignment gap", []write{a(1000), b(1005)}, "AAAA\x00BB", 1000},
		{"wide gap", []write{a(1000), b(1020)}, "", 0},
		{"overlap", []write{a(1000), b(1003), c(1005)}, "", 0},
		{"overlap and a gap", []write{a(1000), b(1002), c(1006)}, "", 0},
		{"one write", []write{a(1000)}, "", 0},
		{"none", nil, "", 0},
	} {
		got, lo, ok := contiguous(data, tc.ws)
		if ok != (tc.want != "") || (ok && (!bytes.Equal(got, []byte(tc.want)) || lo != tc.lo)) {
			t.Errorf("%s: got %q at %d (%v), want %q at %d", tc.name, got, lo, ok, tc.want, tc.lo)
		}
	}
}
