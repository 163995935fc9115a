package tracer

import (
	"golang.org/x/sys/unix"

	"nook/pathmap"
)

// Creds are a guest process's fake credentials (the simple model: set*id
// calls always succeed and get*id report what was set).
type Creds struct {
	Ruid, Euid, Suid, Fsuid int
	Rgid, Egid, Sgid, Fsgid int
	Groups                  []int
}

// Process is the state shared by the threads of one guest process. Fork
// copies it; a thread shares it. Files of this package may add their own
// state through Own (set in a ProcessHook).
type Process struct {
	Tgid  int
	Exe   string // guest path of the running program; "" if unknown
	Creds Creds

	// cwd caches the guest path of the working directory; valid while
	// cwdGen equals the tracer's generation (renames and chdir bump it).
	cwd     string
	cwdHost string // the host path of the same directory
	cwdGen  uint64

	// as is the address space, shared with threads and vfork children.
	as *addrSpace
	// notDumpable is what the guest set with PR_SET_DUMPABLE (see
	// dumpable.go); the process really stays dumpable.
	notDumpable bool
	// view is what the guest's /proc shows of the program (procfs.go).
	view procView

	// Own is free for other files of the package (fake ownership state).
	Own any
}

// Thread is the state of one traced thread.
type Thread struct {
	Tid int
	P   *Process

	// pendingExe is the guest path of the program an execve in progress
	// runs; it becomes P.Exe at the exec event, pendingView P.view.
	pendingExe  string
	pendingView procView
	// pendingStat is the stat of pendingExe's file that exec.go made
	// (when pendingStatOK), for own_exec.go's set-id bits.
	pendingStat   unix.Stat_t
	pendingStatOK bool
	// exitOnce, if set, runs at the exit stop of the current call only
	// (Call.ExitOnce).
	exitOnce func(*Call)
	// exitNr is the syscall whose exit stop is expected, -1 for none.
	exitNr int
	// last is what the last translated calls wrote, to redo after a
	// restart (see tracer.restarted); lastNext is the record to reuse.
	last     [4]restartState
	lastNext int

	// injecting is the mmap of a scratch region in progress; noRegion is
	// set when mapping one failed.
	injecting *injection
	noRegion  bool

	// invalidate holds the host names a removal or rename in progress
	// gives the kernel: pathmap's cache forgets them once it succeeded.
	invalidate []string
	// mine carries a value from Entry to Exit of the same call for the
	// hooks of this file set (chdir, sockets).
	mine any

	// Own is free for other files of the package; Scratch for their hooks
	// to carry a value from Entry to Exit of the same call.
	Own     any
	Scratch any

	place placeThread // CPU placement (placement.go)
}

// restartState remembers the scratch writes of the last translated call of
// a thread: a call interrupted by a signal with -ERESTARTSYS is re-executed
// by the kernel with the registers the tracer set, after a signal handler
// may have overwritten the scratch area below the stack pointer.
type restartState struct {
	valid bool
	nr    uint64
	sp    uint64
	args  [6]uint64
	data  []byte // the written bytes, concatenated
	addrs []write
	// region is the scratch region the call used, held until the
	// record is reused.
	region region
}

// ProcessHook lets other files of the package attach state to processes:
// it runs when a process is created (parent is nil for the first one) and
// when a thread is created (thread true, child == parent).
var processHooks []func(parent, child *Process, thread bool)

// OnProcess registers a hook run at every process or thread creation.
func OnProcess(h func(parent, child *Process, thread bool)) {
	processHooks = append(processHooks, h)
}

// tracer is the state of one traced guest; all of it is used only by the
// goroutine that runs the ptrace loop.
type tracer struct {
	m       *pathmap.Mapper
	root    string
	threads map[int]*Thread
	// unannounced holds new tids whose first stop came before their
	// parent's fork/clone event, with that stop's status.
	unannounced map[int]unix.WaitStatus
	initial     int // pid of the guest's first process
	gen         uint64

	// readBuf and the iovecs are reused by every stop to avoid allocation.
	readBuf []byte
	call    Call
	proc    procHook

	loaders map[loaderKey]bool // does this dynamic loader accept --argv0
	exes    map[fileKey]exeResult
	// hostLoaders: is the host's file at a PT_INTERP the guest's loader
	// (exec_hostloader.go)
	hostLoaders map[hostLoaderKey]bool
	stats       *stats
	// base is the host path of the directory the last resolve started
	// from, for a relative path ("" otherwise).
	base string

	// unix socket paths too long for sun_path go through O_PATH
	// descriptors of their directory, held here.
	sockDirs map[string]int

	// dirs caches the paths of guest directory descriptors (fdcache.go).
	dirs dirCache
}

// procHook answers pathmap's questions about the calling process.
type procHook struct {
	tr  *tracer
	cur *Thread
}

func (h *procHook) Self() (int, int) { return h.cur.P.Tgid, h.cur.Tid }

func (h *procHook) Link(pid int, name string) (string, bool) {
	t, ok := h.tr.threads[pid]
	if !ok {
		return "", false
	}
	switch name {
	case "exe":
		if t.P.Exe != "" {
			return t.P.Exe, true
		}
		g, err := h.tr.guestOfLink(pid, "exe")
		return g, err == nil
	case "cwd":
		g, err := h.tr.cwdOf(t)
		return g, err == nil
	case "root":
		return "/", true
	}
	return "", false
}

func newProcess(tgid int) *Process {
	return &Process{Tgid: tgid, as: &addrSpace{}}
}

// forkProcess returns the state of a new process forked from parent.
func forkProcess(parent *Process, tgid int) *Process {
	p := &Process{Tgid: tgid, Exe: parent.Exe, Creds: parent.Creds, cwd: parent.cwd, cwdHost: parent.cwdHost, cwdGen: parent.cwdGen,
		notDumpable: parent.notDumpable, view: parent.view}
	p.Creds.Groups = append([]int(nil), parent.Creds.Groups...)
	// A fork child has a copy of the parent's memory: the regions free
	// in the parent exist, unused, in the child too.
	p.as = &addrSpace{free: append([]region(nil), parent.as.free...)}
	for _, h := range processHooks {
		h(parent, p, false)
	}
	return p
}
