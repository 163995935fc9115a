package tracer

import (
	"fmt"
	"os"
	"runtime/pprof"

	"nook/rootfs"
)

// NOOK_CPUPROFILE=FILE in nook's environment writes a Go CPU profile of
// the tracer (the whole nook process) for the run to FILE, for
// `go tool pprof`: where the tracer's own time per stop goes.
func init() {
	OnStart(func(*rootfs.RunSpec, Options) (func() error, error) {
		path := os.Getenv("NOOK_CPUPROFILE")
		if path == "" {
			return nil, nil
		}
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("NOOK_CPUPROFILE: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, fmt.Errorf("NOOK_CPUPROFILE: %w", err)
		}
		return func() error {
			pprof.StopCPUProfile()
			return f.Close()
		}, nil
	})
}
