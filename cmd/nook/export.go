package main

import "errors"

type exportCmd struct {
	Name string `arg:"" help:"Store name of the rootfs to export."`
	File string `arg:"" help:"Tarball to write."`
}

func (c *exportCmd) Run() error { return errors.New("export: not implemented yet") }
