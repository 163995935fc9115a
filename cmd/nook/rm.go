package main

import "errors"

type rmCmd struct {
	Name string `arg:"" help:"Store name of the rootfs to remove."`
}

func (c *rmCmd) Run() error { return errors.New("rm: not implemented yet") }
