package tracer

import "testing"

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
