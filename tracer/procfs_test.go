package tracer

import (
	"testing"

	"nook/ownership"
)

func TestProcfsCmdline(t *testing.T) {
	const ld = "/lib/ld-musl-x86_64.so.1"
	for _, tc := range []struct {
		name string
		real string
		v    procView
		want string // "-": left as it is
	}{
		{"argv0", ld + "\x00--argv0\x00ls\x00/bin/ls\x00-l\x00/tmp\x00", procView{loader: ld, layout: loaderArgv0}, "ls\x00-l\x00/tmp\x00"},
		{"argv0 no args", ld + "\x00--argv0\x00sh\x00/bin/sh\x00", procView{loader: ld, layout: loaderArgv0}, "sh\x00"},
		{"plain", ld + "\x00./prog\x00a\x00", procView{loader: ld, layout: loaderPlain}, "./prog\x00a\x00"},
		{"rewritten by the program", "nginx: worker process\x00", procView{loader: ld, layout: loaderArgv0}, "-"},
		{"no --argv0", ld + "\x00x\x00", procView{loader: ld, layout: loaderArgv0}, "-"},
		{"static program", "/bin/prog\x00", procView{}, "-"},
	} {
		got := procfsCmdline([]byte(tc.real), tc.v)
		if (got == nil) != (tc.want == "-") || (got != nil && string(got) != tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestProcfsStat(t *testing.T) {
	v := newProcView("/bin/ls", "/root/lib/ld-musl-x86_64.so.1", "", loaderNone)
	if v.comm != "ls" || v.realComm != "ld-musl-x86_64." {
		t.Fatalf("view %+v", v)
	}
	for _, tc := range []struct{ real, want string }{
		{"42 (ld-musl-x86_64.) S 1 42", "42 (ls) S 1 42"},
		{"42 (my (name)) S 1 42", "-"},
		{"42 (renamed) S 1", "-"},
	} {
		got := procfsStat([]byte(tc.real), v)
		if (got == nil) != (tc.want == "-") || (got != nil && string(got) != tc.want) {
			t.Errorf("%q: got %q, want %q", tc.real, got, tc.want)
		}
	}
	if v := newProcView("/usr/bin/a-very-long-program-name", "/h/usr/bin/a-very-long-program-name", "", loaderNone); v.comm != "" {
		t.Errorf("same name, view %+v", v)
	}
}

func TestProcfsStatus(t *testing.T) {
	real := "Name:\tld-musl-x86_64.\nUmask:\t0022\nTracerPid:\t4242\nUid:\t1000\t1000\t1000\t1000\n" +
		"Gid:\t1000\t1000\t1000\t1000\nGroups:\t1000 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n" +
		"CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
	cr := ownership.NewCreds(2000, 2001, []uint32{2001, 10})
	p := &Process{Own: &ownProc{creds: cr}, view: procView{comm: "su", realComm: "ld-musl-x86_64."}}
	want := "Name:\tsu\nUmask:\t0022\nTracerPid:\t0\nUid:\t2000\t2000\t2000\t2000\n" +
		"Gid:\t2001\t2001\t2001\t2001\nGroups:\t2001 10 \nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n" +
		"CapEff:\t0000000000000000\nCapBnd:\t" + hex16(cr.Caps.Bounding) + "\nCapAmb:\t0000000000000000\nNoNewPrivs:\t1\n"
	if got := string(procfsStatus([]byte(real), p)); got != want {
		t.Fatalf("got:\n%s\nwant:\n%s", got, want)
	}
}

func hex16(v uint64) string {
	const digits = "0123456789abcdef"
	b := make([]byte, 16)
	for i := 15; i >= 0; i-- {
		b[i] = digits[v&15]
		v >>= 4
	}
	return string(b)
}
