package main

// Examples shown by `nook COMMAND --help` (kong prints a command's Help()
// below its one-line description).

func (importCmd) Help() string {
	return `Examples:
  nook import alpine-minirootfs-3.20.3-x86_64.tar.gz            # stored as alpine-minirootfs-3.20.3-x86_64
  nook import debian.tar.zst --name debian
  nook import alpine-image.tar --name alpine                    # docker save output
  nook import ./oci-layout-dir --name myimage                   # OCI image layout
  nook import ./unpacked-tree --name mytree                     # a directory

The store is $NOOK_HOME (default $XDG_DATA_HOME/nook, else ~/.local/share/nook).
Exit status: 0 on success, 125 on any error (the store is left as it was).`
}

func (listCmd) Help() string {
	return `Example:
  nook list
  NAME    SIZE    SOURCE                                     IMPORTED
  alpine  5.3MiB  /srv/alpine-minirootfs-3.12.12-x86_64.tar.gz  2026-11-29 08:47`
}

func (rmCmd) Help() string {
	return `Example:
  nook rm alpine

Refused while a run uses the rootfs. Exit status: 0, or 125 on error.`
}

func (runCmd) Help() string {
	return `Examples:
  nook run alpine                                     # login shell as root
  nook run alpine -- sh -l -c 'ls /'
  nook run -u myuser:2000 -g mygroup:2000 alpine -- sh -c 'cd && touch x && ls -l x'
  nook run -b ~/src:/src -w /src debian -- make -j2
  nook run --ephemeral alpine -- apk add gcc          # a pristine copy, removed afterwards
  nook run --layer ./patch --layer extra.tar.gz alpine -- ls /
  nook run --mode rootless alpine -- id               # ptrace + seccomp, no privilege

Exit status: the command's own; 128+N when it dies of signal N; 125 when nook
itself fails; 126 when the command cannot be executed; 127 when it is not found.`
}

func (exportCmd) Help() string {
	return `Examples:
  nook export alpine alpine.tar          # owners and modes as the guest sees them
  nook export alpine - | gzip > alpine.tar.gz

Exit status: 0 on success, 125 on error.`
}
