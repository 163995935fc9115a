package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"nook/ownership"
	"nook/rootfs"
)

// A non-root import records the archive's owners, modes, device nodes and
// file capabilities in the tree's ownership store.
func init() {
	rootfs.NewRecorder = func(rootfsDir, dbPath string) (rootfs.MetadataRecorder, error) {
		return ownership.NewRecorder(rootfsDir, dbPath)
	}
}

type exportCmd struct {
	Name string `arg:"" help:"Store name of the rootfs to export."`
	File string `arg:"" help:"Tarball to write ('-' for standard output)."`
}

func (c *exportCmd) Run() error {
	store, err := rootfs.OpenStore()
	if err != nil {
		return err
	}
	if err := rootfs.ValidateName(c.Name); err != nil {
		return err
	}
	release, err := store.Acquire(c.Name)
	if err != nil {
		if errors.Is(err, rootfs.ErrUnknownRootfs) {
			return withHint(err, "'nook list' shows the stored rootfs trees")
		}
		return err
	}
	defer release()
	root := store.RootfsDir(c.Name)

	// The store exists for trees imported or run without root; without
	// one, the tree's real owners are shown through the default rule.
	var own *ownership.Store
	db := store.OwnershipDB(c.Name)
	if _, err := os.Lstat(db); err == nil {
		own, err = ownership.Open(db, root, ownership.Options{})
		if err != nil {
			return err
		}
		defer own.Close()
	} else if !os.IsNotExist(err) {
		return err
	}
	host := ownership.Host{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())}

	if c.File == "-" {
		w := bufio.NewWriterSize(os.Stdout, 1<<20)
		if err := ownership.WriteTar(w, root, own, host); err != nil {
			return fmt.Errorf("export %s: %w", c.Name, err)
		}
		return w.Flush()
	}
	// Written beside the destination and renamed into place, so that a
	// failed or interrupted export never leaves a truncated tarball under
	// the requested name.
	dst, err := filepath.Abs(c.File)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".tmp-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("export %s: cannot write %s: %w", c.Name, dst, err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	if err := ownership.WriteTar(w, root, own, host); err != nil {
		tmp.Close()
		return fmt.Errorf("export %s: %w", c.Name, err)
	}
	if err := w.Flush(); err != nil {
		tmp.Close()
		return fmt.Errorf("export %s: %w", c.Name, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("export %s: %w", c.Name, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("export %s: %w", c.Name, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("export %s: %w", c.Name, err)
	}
	return nil
}
