package tracer

import (
	"fmt"
	"io"
	"os"
	"sort"

	seccomp "github.com/seccomp/libseccomp-golang"
)

// stats counts the stops of a run, per syscall; with NOOK_TRACE_STATS set
// in nook's environment the counts are printed to stderr at the end (to
// see where a workload's stops go: every stop is two context switches).
type stats struct {
	on    bool
	entry [maxSyscall]uint64
	exit  [maxSyscall]uint64
	other uint64 // event and signal stops
}

func newStats() *stats {
	return &stats{on: os.Getenv("NOOK_TRACE_STATS") != ""}
}

func (s *stats) print(w io.Writer) {
	if !s.on {
		return
	}
	type row struct {
		nr          int
		entry, exit uint64
	}
	var rows []row
	var total uint64
	for nr := range s.entry {
		if s.entry[nr]+s.exit[nr] > 0 {
			rows = append(rows, row{nr, s.entry[nr], s.exit[nr]})
			total += s.entry[nr] + s.exit[nr]
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		return rows[i].entry+rows[i].exit > rows[j].entry+rows[j].exit
	})
	fmt.Fprintf(w, "nook: tracer stops: %d syscall, %d other\n", total, s.other)
	for _, r := range rows {
		name, err := seccomp.ScmpSyscall(r.nr).GetName()
		if err != nil {
			name = fmt.Sprint(r.nr)
		}
		fmt.Fprintf(w, "nook: %10d entry %10d exit  %s\n", r.entry, r.exit, name)
	}
}
