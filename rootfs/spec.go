package rootfs

// Exit statuses shared by both run modes. They follow chroot(8) and the
// env(1)/POSIX shell convention so scripts can tell nook's own failures
// from the command's.
const (
	ExitToolFailure   = 125 // nook itself failed (bad input, setup error)
	ExitNotExecutable = 126 // the command exists but could not be executed
	ExitNotFound      = 127 // the command was not found
	ExitSignalBase    = 128 // 128+N: the command died of signal N
)

// Bind is one bind mount: the host path Host appears at guest path Guest.
// Guest is absolute and clean.
type Bind struct {
	Host  string
	Guest string
}

// Identity is who the command runs as inside the guest.
type Identity struct {
	Name   string // user name in the guest's /etc/passwd ("root" by default)
	UID    int
	GID    int
	Groups []int // supplementary groups, from the guest's /etc/group
	Home   string
	Shell  string
}

// RunSpec is everything a runner (root mode's chroot runner or rootless
// mode's tracer) needs to start the guest command. The run command builds it
// after resolving the rootfs, stacking layers, making the ephemeral copy and
// doing user setup, so both modes start from the same prepared tree.
type RunSpec struct {
	Root    string   // host path of the prepared guest root
	Argv    []string // command and arguments; Argv[0] is looked up in the guest PATH
	Env     []string // full environment of the command, KEY=VALUE
	Workdir string   // guest path of the initial working directory
	Binds   []Bind
	User    Identity
	Login   bool // argv[0] of the shell is prefixed with '-' (login shell)
}
