package tracer

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// A dynamic program's PT_INTERP is opened by the kernel in the host's tree
// (exec.go). When the host file at that path is byte for byte the guest's
// loader, the kernel would map exactly what the guest's tree holds, so the
// program is given to the kernel as it is, like a static one: no
// "LOADER --argv0 ARGV0 PROGRAM" start, no open and mapping of the program
// by the loader (a stop per exec, and the loader's own mapping of it), and
// the process starts as it would in a chroot: its own argv and comm, an
// auxv that describes the program. This is the common case of a guest of
// the host's distribution and release.
//
// The host file must be owned by root, writable by no one else and
// executable: a file the user (or the guest, through a tree under its own
// root) could rewrite between this check and the exec would let the
// kernel map something else. A guest learns nothing it could not read:
// the file it gets mapped is identical to one in its own tree; what it can
// tell, by timing its exec, is whether the host has a root-owned
// executable identical to a file of its choosing (docs/security.md).
//
// NOOK_HOSTLOADER=off always starts dynamic programs through the guest's
// loader, for measurements and as a way out.

// hostLoaderKey is a pair of file versions compared once.
type hostLoaderKey struct {
	host, guest fileKey
}

// maxLoaderSize bounds the files compared: a loader is a few hundred KiB.
const maxLoaderSize = 16 << 20

// hostLoaderOff is read from NOOK_HOSTLOADER once, when nook starts.
var hostLoaderOff = os.Getenv("NOOK_HOSTLOADER") == "off"

// hostLoaderSame tells whether the host file at interp (a PT_INTERP,
// which the kernel resolves in the host's tree, following symlinks) is the
// guest's loader, whose host path is gh and stat gst.
func (tr *tracer) hostLoaderSame(interp, gh string, gst *unix.Stat_t) bool {
	if hostLoaderOff || interp == "" || interp[0] != '/' {
		return false
	}
	var hst unix.Stat_t
	if statRetry(interp, &hst) != nil {
		return false
	}
	if hst.Mode&unix.S_IFMT != unix.S_IFREG || hst.Uid != 0 || hst.Mode&0o022 != 0 || hst.Mode&0o111 == 0 {
		return false
	}
	if hst.Size != gst.Size || hst.Size > maxLoaderSize {
		return false
	}
	k := hostLoaderKey{host: keyOf(&hst), guest: keyOf(gst)}
	if v, ok := tr.hostLoaders[k]; ok {
		return v
	}
	v := sameContent(interp, gh, hst.Size)
	if len(tr.hostLoaders) >= maxExeCache {
		clear(tr.hostLoaders)
	}
	tr.hostLoaders[k] = v
	return v
}

// sameContent compares two files of the given size. Any error is a
// difference: the guest's loader is then used, as without this check.
func sameContent(a, b string, size int64) bool {
	x, err := os.ReadFile(a)
	if err != nil || int64(len(x)) != size {
		return false
	}
	y, err := os.ReadFile(b)
	if err != nil {
		return false
	}
	return bytes.Equal(x, y)
}
