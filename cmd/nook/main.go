// Command nook runs a command inside a private root filesystem, as root with a
// real chroot or unprivileged under a ptrace + seccomp tracer.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/alecthomas/kong"

	"nook/rootfs"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// cli is the whole command line; each subcommand lives in its own file.
type cli struct {
	Version kong.VersionFlag `help:"Print nook's version and exit."`

	Import importCmd `cmd:"" help:"Import a rootfs tarball, docker-save archive, OCI layout or directory into the store."`
	List   listCmd   `cmd:"" help:"List the rootfs trees in the store."`
	Rm     rmCmd     `cmd:"" help:"Remove a rootfs tree from the store."`
	Run    runCmd    `cmd:"" help:"Run a command inside a rootfs."`
	Export exportCmd `cmd:"" help:"Write a stored rootfs, with its recorded owners and modes, to a tarball."`

	// Internal entry points used when nook re-executes itself; hidden.
	Init initCmd `cmd:"" name:"__init" hidden:""`
}

func main() {
	os.Exit(runMain(os.Args[1:]))
}

// runMain parses args, runs the chosen command and returns the process exit
// status: the command's own status for run, 0 on success, 125 on nook's own
// failures.
func runMain(args []string) int {
	var c cli
	parser, err := kong.New(&c,
		kong.Name("nook"),
		kong.Description("Run a command inside a private root filesystem, with or without root."),
		kong.UsageOnError(),
		kong.Vars{"version": "nook " + version},
		kong.Exit(func(code int) {
			// kong exits 80 on usage errors by default; a bad command line
			// is nook's own failure.
			if code != 0 {
				code = rootfs.ExitToolFailure
			}
			os.Exit(code)
		}),
	)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nook: error: %v\n", err)
		return rootfs.ExitToolFailure
	}
	ctx, err := parser.Parse(args)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nook: error: %v\n", err)
		return rootfs.ExitToolFailure
	}
	err = ctx.Run()
	return report(err)
}

// report prints err the way every nook command does and maps it to an exit
// status.
func report(err error) int {
	if err == nil {
		return 0
	}
	var st *exitStatus
	if errors.As(err, &st) {
		return st.code
	}
	fmt.Fprintf(os.Stderr, "nook: error: %v\n", err)
	var h *hinted
	if errors.As(err, &h) {
		fmt.Fprintf(os.Stderr, "nook: hint: %s\n", h.hint)
	}
	var c *codedError
	if errors.As(err, &c) {
		return c.code
	}
	return rootfs.ExitToolFailure
}
