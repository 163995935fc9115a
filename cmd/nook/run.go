package main

import (
	"archive/tar"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"nook/ownership"
	"nook/rootfs"
	"nook/rootfs/rootmode"
	"nook/tracer"
)

type runCmd struct {
	Mode      string   `enum:"auto,root,rootless" default:"auto" help:"auto (root when the effective uid is 0, else rootless), root or rootless."`
	User      string   `short:"u" placeholder:"NAME[:UID]" help:"Run as this guest user, created if UID is given and it is missing."`
	Group     string   `short:"g" placeholder:"NAME[:GID]" help:"Primary group of the user, created if GID is given and it is missing."`
	Bind      []string `short:"b" sep:"none" placeholder:"HOST[:GUEST]" help:"Bind a host path into the guest (repeatable)."`
	Workdir   string   `short:"w" placeholder:"DIR" help:"Initial working directory inside the guest."`
	Env       []string `short:"e" sep:"none" placeholder:"K=V" help:"Set an environment variable (repeatable)."`
	Ephemeral bool     `help:"Run on a fresh copy of the rootfs that is removed when the command exits."`
	Layer     []string `sep:"none" placeholder:"DIR|TARBALL" help:"Stack a layer over ROOTFS (repeatable, the last on top)."`
	HostBinds string   `name:"host-binds" default:"proc,dev,sys,resolv.conf,hosts" placeholder:"LIST" help:"Host file systems and files to mount in the guest: any of proc, dev, sys, resolv.conf, hosts (empty: none)."`

	Rootfs  string   `arg:"" name:"ROOTFS" help:"Store name or directory."`
	Command []string `arg:"" optional:"" passthrough:"" name:"COMMAND" help:"Command and arguments (default: the user's login shell)."`
}

func (c *runCmd) Run() error {
	mode := c.Mode
	if mode == "auto" {
		mode = "rootless"
		if os.Geteuid() == 0 {
			mode = "root"
		}
	}
	if mode == "root" {
		if err := rootmode.Check(); err != nil {
			return err
		}
	}
	argv := c.Command
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	binds, err := parseBinds(c.Bind)
	if err != nil {
		return err
	}
	hb, err := parseHostBinds(c.HostBinds)
	if err != nil {
		return err
	}
	env, err := expandEnv(c.Env)
	if err != nil {
		return err
	}
	if c.Workdir != "" && !path.IsAbs(c.Workdir) {
		return fmt.Errorf("--workdir %q: must be an absolute guest path", c.Workdir)
	}
	layers, err := absLayers(c.Layer)
	if err != nil {
		return err
	}

	store, err := rootfs.OpenStore()
	if err != nil {
		return err
	}
	dir, name, err := store.Resolve(c.Rootfs)
	if errors.Is(err, rootfs.ErrUnknownRootfs) {
		return withHint(err, "`nook list` shows the stored rootfs trees; a directory path needs a '/' (./"+c.Rootfs+")")
	}
	if err != nil {
		return err
	}
	if name != "" {
		release, err := store.Acquire(name)
		if err != nil {
			return err
		}
		defer release()
	}
	ephemeral := c.Ephemeral || len(layers) > 0
	if c.User != "" || c.Group != "" || ephemeral {
		host, err := rootfs.IsHostRoot(dir)
		if err != nil {
			return err
		}
		// User setup would edit the host's account files; an ephemeral
		// copy of the host (whose store is inside it) is never meant.
		if host && ephemeral {
			return fmt.Errorf("refusing --ephemeral/--layer on %s: %w", c.Rootfs, rootfs.ErrHostRoot)
		}
		if host {
			return fmt.Errorf("refusing --user/--group on %s: %w", c.Rootfs, rootfs.ErrHostRoot)
		}
	}
	req := rootfs.PrepareRequest{
		User:    rootfs.UserRequest{User: c.User, Group: c.Group},
		Argv:    argv,
		Workdir: c.Workdir,
		Env:     env,
		Term:    os.Getenv("TERM"),
		Binds:   binds,
	}

	var code int
	if mode == "root" {
		code, err = runRoot(store, dir, layers, ephemeral, hb, req)
	} else {
		code, err = runRootless(store, dir, name, layers, ephemeral, hb, req)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return &exitStatus{code}
	}
	return nil
}

func runRoot(store *rootfs.Store, dir string, layers []string, ephemeral bool, hb hostBinds, req rootfs.PrepareRequest) (int, error) {
	cfg := &rootmode.Config{Root: dir, Prepare: req, System: rootmode.System{
		Proc: hb.proc, Dev: hb.dev, Sys: hb.sys, Files: hb.files,
	}}
	guard, tmp, err := startRun(store, ephemeral)
	defer guard.done()
	if err != nil {
		return rootfs.ExitToolFailure, err
	}
	if ephemeral {
		o := &rootmode.Overlay{
			Upper:  filepath.Join(tmp, "upper"),
			Work:   filepath.Join(tmp, "work"),
			Merged: filepath.Join(tmp, "merged"),
		}
		for _, d := range []string{o.Upper, o.Work, o.Merged} {
			if err := os.Mkdir(d, 0700); err != nil {
				return rootfs.ExitToolFailure, fmt.Errorf("ephemeral run: %w", err)
			}
		}
		// The merged tree's top directory gets the rootfs's mode and owner
		// (overlayfs copies them from the upper directory).
		if err := copyDirMeta(o.Upper, dir); err != nil {
			return rootfs.ExitToolFailure, fmt.Errorf("ephemeral run: %w", err)
		}
		cfg.Overlay, cfg.Layers = o, layers
	}
	guard.hold()
	code, err := rootmode.Run(cfg)
	var re *rootmode.Error
	if errors.As(err, &re) {
		return code, &codedError{err: err, code: code}
	}
	return code, err
}

func runRootless(store *rootfs.Store, dir, name string, layers []string, ephemeral bool, hb hostBinds, req rootfs.PrepareRequest) (int, error) {
	root := dir
	opts := tracer.Options{}
	if name != "" {
		opts.OwnershipDB = store.OwnershipDB(name)
	} else {
		db, err := store.DirOwnershipDB(dir)
		if err != nil {
			return rootfs.ExitToolFailure, err
		}
		opts.OwnershipDB = db
	}
	guard, tmp, err := startRun(store, ephemeral)
	defer guard.done()
	if err != nil {
		return rootfs.ExitToolFailure, err
	}
	if ephemeral {
		// A real copy (reflinked where the file system can): hard links
		// would let the guest's in-place writes reach the stored tree.
		root = filepath.Join(tmp, "root")
		if err := rootfs.CopyTree(root, dir); err != nil {
			return rootfs.ExitToolFailure, fmt.Errorf("ephemeral copy of %s: %w", dir, err)
		}
		// The copy's faked owners come along, re-keyed to its inodes; the
		// stored rootfs's records are never written by the run.
		if opts.OwnershipDB != "" {
			db := filepath.Join(tmp, "ownership.db")
			if err := copyOwnership(opts.OwnershipDB, dir, db, root); err != nil {
				return rootfs.ExitToolFailure, err
			}
			opts.OwnershipDB = db
		}
		for _, l := range layers {
			if err := rootfs.ApplyLayer(root, l); err != nil {
				return rootfs.ExitToolFailure, fmt.Errorf("layer %s: %w", l, err)
			}
		}
	}
	spec, setup, err := rootfs.Prepare(root, req)
	if err != nil {
		return rootfs.ExitToolFailure, err
	}
	// Without root the home directory stays the caller's on disk; the
	// ownership store makes the guest see it as the user's.
	if opts.OwnershipDB != "" && len(setup.Created) > 0 {
		if err := recordCreated(root, opts.OwnershipDB, setup.Created); err != nil {
			return rootfs.ExitToolFailure, err
		}
	}
	spec.Binds = append(hb.rootlessBinds(), spec.Binds...)
	guard.hold()
	code, err := tracer.Run(spec, opts)
	if err != nil {
		if errors.Is(err, tracer.ErrUnavailable) {
			return code, withHint(err, "rootless mode needs ptrace and seccomp; as root, use --mode root")
		}
		if code == rootfs.ExitNotFound || code == rootfs.ExitNotExecutable {
			return code, &codedError{err: err, code: code}
		}
		return code, err
	}
	return code, nil
}

// copyOwnership writes the ownership records of the tree src (database
// srcDB, if it exists) for its copy dst into dstDB.
func copyOwnership(srcDB, src, dstDB, dst string) error {
	if _, err := os.Stat(srcDB); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	s, err := ownership.Open(srcDB, src, ownership.Options{})
	if err != nil {
		return err
	}
	err = s.CopyTo(dstDB, dst)
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

// recordCreated records the owners user setup could not give the paths it
// created (rootless mode).
func recordCreated(root, db string, created []rootfs.CreatedPath) error {
	rec, err := ownership.NewRecorder(root, db)
	if err != nil {
		return err
	}
	for _, c := range created {
		rel := strings.TrimPrefix(path.Clean(c.Path), "/")
		hdr := &tar.Header{Typeflag: tar.TypeDir, Name: rel, Uid: c.UID, Gid: c.GID, Mode: int64(c.Mode)}
		if err := rec.Record(rel, hdr); err != nil {
			rec.Close()
			return fmt.Errorf("record owner of %s: %w", c.Path, err)
		}
	}
	if err := rec.Close(); err != nil {
		return fmt.Errorf("record owners of created paths: %w", err)
	}
	return nil
}

// runGuard is what a run sets up around the guest and undoes when it
// ends: the ephemeral run's temporary directory in the store, and the
// termination signals nook holds while the guest runs. The signals stay
// held until the directory is removed, so that the Ctrl-C that ended the
// guest does not end nook before it cleaned up.
type runGuard struct {
	release func() error
	held    func()
}

// startRun creates the temporary directory of an ephemeral run (tmp is ""
// for others). guard.done must be called whatever the error.
func startRun(store *rootfs.Store, ephemeral bool) (guard *runGuard, tmp string, err error) {
	guard = &runGuard{}
	if !ephemeral {
		return guard, "", nil
	}
	tmp, guard.release, err = store.TempDir("run-")
	return guard, tmp, err
}

// hold starts holding the termination signals, just before the guest
// starts.
func (g *runGuard) hold() { g.held = holdSignals() }

func (g *runGuard) done() {
	if g.release != nil {
		g.release()
	}
	if g.held != nil {
		g.held()
	}
}

// holdSignals keeps the signals that end a run from killing nook itself
// until the returned function is called: they are meant for the command
// (the runners forward them), and nook must outlive it to remove an
// ephemeral copy. Catching (not ignoring) them matters: an ignored signal
// would stay ignored in the command across execve.
func holdSignals() func() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT)
	return func() { signal.Stop(c) }
}

// copyDirMeta gives dst the permission bits and owner of src.
func copyDirMeta(dst, src string) error {
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	if err := os.Chmod(dst, fi.Mode().Perm()|fi.Mode()&(os.ModeSticky|os.ModeSetgid|os.ModeSetuid)); err != nil {
		return err
	}
	if st, ok := sysStat(fi); ok {
		return os.Lchown(dst, int(st.Uid), int(st.Gid))
	}
	return nil
}

// parseBinds parses -b HOST[:GUEST]. The host path must exist; GUEST
// defaults to HOST and must be absolute.
func parseBinds(specs []string) ([]rootfs.Bind, error) {
	var out []rootfs.Bind
	for _, s := range specs {
		host, guest, hasGuest := strings.Cut(s, ":")
		if host == "" || hasGuest && guest == "" {
			return nil, fmt.Errorf("invalid --bind %q (want HOST[:GUEST])", s)
		}
		abs, err := filepath.Abs(host)
		if err != nil {
			return nil, fmt.Errorf("--bind %s: %w", s, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--bind %s: host path: %w", s, err)
		}
		if !hasGuest {
			guest = abs
		}
		if !path.IsAbs(guest) {
			return nil, fmt.Errorf("invalid --bind %q: the guest path must be absolute", s)
		}
		out = append(out, rootfs.Bind{Host: abs, Guest: path.Clean(guest)})
	}
	return out, nil
}

// hostBinds is the parsed --host-binds list.
type hostBinds struct {
	proc, dev, sys bool
	files          []string // host files present, bound at the same path
}

func parseHostBinds(list string) (hostBinds, error) {
	var hb hostBinds
	for _, item := range strings.Split(list, ",") {
		switch strings.TrimSpace(item) {
		case "":
		case "proc":
			hb.proc = true
		case "dev":
			hb.dev = true
		case "sys":
			hb.sys = true
		case "resolv.conf", "hosts":
			f := "/etc/" + strings.TrimSpace(item)
			// A host without the file has nothing to share.
			if _, err := os.Stat(f); err == nil {
				hb.files = append(hb.files, f)
			}
		default:
			return hb, fmt.Errorf("invalid --host-binds item %q (want proc, dev, sys, resolv.conf, hosts)", item)
		}
	}
	return hb, nil
}

// rootlessBinds are the host binds as the tracer takes them: plain
// host-path to guest-path maps.
func (hb hostBinds) rootlessBinds() []rootfs.Bind {
	var out []rootfs.Bind
	for _, d := range []struct {
		on  bool
		dir string
	}{{hb.proc, "/proc"}, {hb.dev, "/dev"}, {hb.sys, "/sys"}} {
		if d.on {
			out = append(out, rootfs.Bind{Host: d.dir, Guest: d.dir})
		}
	}
	for _, f := range hb.files {
		out = append(out, rootfs.Bind{Host: f, Guest: f})
	}
	return out
}

// expandEnv resolves bare -e KEY entries against nook's own environment
// (dropping unset ones) so the guest side never sees the host's.
func expandEnv(list []string) ([]string, error) {
	var out []string
	for _, kv := range list {
		k, _, hasV := strings.Cut(kv, "=")
		if k == "" {
			return nil, fmt.Errorf("invalid --env %q (want KEY=VALUE or KEY)", kv)
		}
		if !hasV {
			v, ok := os.LookupEnv(k)
			if !ok {
				continue
			}
			kv = k + "=" + v
		}
		out = append(out, kv)
	}
	return out, nil
}

func absLayers(list []string) ([]string, error) {
	var out []string
	for _, l := range list {
		abs, err := filepath.Abs(l)
		if err != nil {
			return nil, fmt.Errorf("--layer %s: %w", l, err)
		}
		if _, err := os.Stat(abs); err != nil {
			return nil, fmt.Errorf("--layer %s: %w", l, err)
		}
		out = append(out, abs)
	}
	return out, nil
}

type initCmd struct {
	Args []string `arg:"" optional:"" passthrough:""`
}

// Run is the child side of root mode; it never returns.
func (c *initCmd) Run() error {
	rootmode.Init(c.Args)
	return nil
}

func sysStat(fi os.FileInfo) (*syscall.Stat_t, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}
