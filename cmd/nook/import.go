package main

import "errors"

type importCmd struct {
	Source string `arg:"" help:"Tarball (.tar, .tar.gz, .tgz, .tar.xz, .tar.zst), docker-save archive, OCI layout (directory or tar) or directory."`
	Name   string `help:"Store name (default: derived from SOURCE)."`
}

func (c *importCmd) Run() error { return errors.New("import: not implemented yet") }
