package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/term"

	"nook/rootfs"
)

type importCmd struct {
	Source string `arg:"" help:"Tarball (.tar, .tar.gz, .tgz, .tar.xz, .tar.zst), docker-save archive, OCI layout (directory or tar) or directory."`
	Name   string `help:"Store name (default: derived from SOURCE)."`
}

func (c *importCmd) Run() error {
	if c.Name != "" {
		if err := rootfs.ValidateName(c.Name); err != nil {
			return err
		}
	}
	store, err := rootfs.OpenStore()
	if err != nil {
		return err
	}
	// SIGINT/SIGTERM cancel the import, which then removes its staging
	// directory before nook exits with 128+signal.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	var got os.Signal
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case got = <-sigs:
			cancel()
		case <-done:
		}
	}()

	name, err := store.Import(ctx, c.Source, rootfs.ImportOptions{
		Name:     c.Name,
		Progress: term.IsTerminal(int(os.Stderr.Fd())),
	})
	if err != nil {
		if sig, ok := got.(syscall.Signal); ok && errors.Is(err, context.Canceled) {
			return &codedError{fmt.Errorf("import %s: interrupted by %v; nothing was imported", c.Source, sig), 128 + int(sig)}
		}
		if errors.Is(err, rootfs.ErrExists) {
			return withHint(err, "choose another name with --name, or remove the old one with 'nook rm'")
		}
		return err
	}
	fmt.Fprintf(os.Stderr, "imported %s\n", name)
	return nil
}
