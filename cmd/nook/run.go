package main

import "errors"

type runCmd struct {
	Mode      string   `enum:"auto,root,rootless" default:"auto" help:"auto (root when the effective uid is 0, else rootless), root or rootless."`
	User      string   `short:"u" placeholder:"NAME[:UID]" help:"Run as this guest user, created if UID is given and it is missing."`
	Group     string   `short:"g" placeholder:"NAME[:GID]" help:"Primary group of the user, created if GID is given and it is missing."`
	Bind      []string `short:"b" sep:"none" placeholder:"HOST[:GUEST]" help:"Bind a host path into the guest (repeatable)."`
	Workdir   string   `short:"w" placeholder:"DIR" help:"Initial working directory inside the guest."`
	Env       []string `short:"e" sep:"none" placeholder:"K=V" help:"Set an environment variable (repeatable)."`
	Ephemeral bool     `help:"Run on a fresh copy of the rootfs that is removed when the command exits."`
	Layer     []string `sep:"none" placeholder:"DIR|TARBALL" help:"Stack a layer over ROOTFS (repeatable, the last on top)."`

	Rootfs  string   `arg:"" name:"ROOTFS" help:"Store name or directory."`
	Command []string `arg:"" optional:"" passthrough:"" name:"COMMAND" help:"Command and arguments (default: the user's login shell)."`
}

func (c *runCmd) Run() error { return errors.New("run: not implemented yet") }

type initCmd struct {
	Args []string `arg:"" optional:"" passthrough:""`
}

func (c *initCmd) Run() error { return errors.New("__init: not implemented yet") }
