package rootfs

import (
	"fmt"
	"path"
)

// PrepareRequest is what nook run was asked, minus the choice of tree and
// mode: Prepare turns it into a RunSpec for one prepared guest tree.
type PrepareRequest struct {
	User    UserRequest
	Argv    []string // empty: the user's shell, as a login shell
	Workdir string   // guest path; "" chooses as su - (login) or chroot (command) would
	// Env is the -e list with bare KEY entries already replaced by the
	// host's KEY=VALUE (or dropped); Term is the host's TERM ("" if unset).
	Env   []string
	Term  string
	Binds []Bind
}

// Prepare does user setup in the guest tree at root and returns the spec a
// runner starts: identity, login environment, argv and working directory.
// It is the same for both modes; root mode calls it inside its private
// mount namespace (after the ephemeral overlay is mounted), rootless mode
// before starting the tracer.
//
// Working directory: -w if given; otherwise the user's home for a login
// shell (as su - and login do, "/" when the home is missing) and "/" for a
// command (as chroot(8) does).
func Prepare(root string, req PrepareRequest) (*RunSpec, *UserSetup, error) {
	setup, err := SetupUser(root, req.User)
	if err != nil {
		return nil, nil, err
	}
	id := setup.Identity
	host := func(k string) (string, bool) {
		if k == "TERM" && req.Term != "" {
			return req.Term, true
		}
		return "", false
	}
	env, err := LoginEnv(id, req.Env, host)
	if err != nil {
		return nil, nil, err
	}
	spec := &RunSpec{Root: root, Env: env, User: id, Binds: req.Binds}
	if len(req.Argv) == 0 {
		spec.Argv = []string{id.Shell}
		spec.Login = true
	} else {
		spec.Argv = append([]string(nil), req.Argv...)
	}
	switch {
	case req.Workdir != "":
		if !path.IsAbs(req.Workdir) {
			return nil, nil, fmt.Errorf("working directory %q: must be an absolute guest path", req.Workdir)
		}
		spec.Workdir = path.Clean(req.Workdir)
	case spec.Login:
		spec.Workdir = "/"
		g, err := OpenGuestRoot(root)
		if err != nil {
			return nil, nil, err
		}
		defer g.Close()
		if st, err := g.Stat(id.Home); err == nil && st.Mode&0170000 == 0040000 {
			spec.Workdir = path.Clean("/" + id.Home)
		}
	default:
		spec.Workdir = "/"
	}
	return spec, setup, nil
}
