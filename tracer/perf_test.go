package tracer

import (
	"os"
	"testing"
)

// BenchmarkBuildFilter measures what every rootless start pays to generate
// the seccomp filter with libseccomp (in the tracee, before its execve).
func BenchmarkBuildFilter(b *testing.B) {
	for b.Loop() {
		f, err := buildFilter()
		if err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}

// BenchmarkExportFilter adds libseccomp's BPF generation, which seccomp_load
// does before the seccomp(2) call.
func BenchmarkExportFilter(b *testing.B) {
	devnull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer devnull.Close()
	for b.Loop() {
		f, err := buildFilter()
		if err != nil {
			b.Fatal(err)
		}
		if err := f.ExportBPF(devnull); err != nil {
			b.Fatal(err)
		}
		f.Release()
	}
}
