package main

import (
	"errors"

	"nook/rootfs"
)

type rmCmd struct {
	Name string `arg:"" help:"Store name of the rootfs to remove."`
}

func (c *rmCmd) Run() error {
	store, err := rootfs.OpenStore()
	if err != nil {
		return err
	}
	err = store.Remove(c.Name)
	switch {
	case errors.Is(err, rootfs.ErrUnknownRootfs):
		return withHint(err, "'nook list' shows the stored rootfs trees")
	case errors.Is(err, rootfs.ErrInUse):
		return withHint(err, "wait for the runs using it to finish")
	}
	return err
}
