package tracer

import (
	"bytes"
	"encoding/binary"
	"errors"

	"golang.org/x/sys/unix"
)

const pageSize = 4096

// readMem fills buf from the memory of tid at addr with process_vm_readv,
// one call for the whole buffer; a short read means the range is not
// mapped (EFAULT, as the kernel would say).
func readMem(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	local := [1]unix.Iovec{{Base: &buf[0]}}
	local[0].SetLen(len(buf))
	remote := [1]unix.RemoteIovec{{Base: uintptr(addr), Len: len(buf)}}
	for {
		n, err := unix.ProcessVMReadv(tid, local[:], remote[:], 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOSYS || err == unix.EPERM || err == unix.EACCES {
			// ENOSYS: a kernel without process_vm_readv. EPERM: the
			// tracee made itself non-dumpable (PR_SET_DUMPABLE 0, as
			// ssh-agent and gpg-agent do), which process_vm_readv
			// checks but the tracer's own PTRACE_PEEKDATA does not.
			return peekMem(tid, addr, buf)
		}
		if err != nil {
			return err
		}
		if n != len(buf) {
			return unix.EFAULT
		}
		return nil
	}
}

// peekMem is the PTRACE_PEEKDATA fallback of readMem.
func peekMem(tid int, addr uint64, buf []byte) error {
	n, err := unix.PtracePeekData(tid, uintptr(addr), buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return unix.EFAULT
	}
	return nil
}

// writeMem writes buf into the memory of tid at addr.
func writeMem(tid int, addr uint64, buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	return writeMany(tid, buf, []write{{addr: addr, off: 0, n: len(buf)}})
}

// writeMany performs all ws (slices of data) in one process_vm_writev.
// process_vm_writev cannot write read-only pages, but the stack, where
// all the tracer's writes go, is writable; PTRACE_POKEDATA is the fallback
// for kernels without it and for non-dumpable tracees.
func writeMany(tid int, data []byte, ws []write) error {
	var localA [8]unix.Iovec
	var remoteA [8]unix.RemoteIovec
	local, remote := localA[:0], remoteA[:0]
	total := 0
	for _, w := range ws {
		if w.n == 0 {
			continue
		}
		iov := unix.Iovec{Base: &data[w.off]}
		iov.SetLen(w.n)
		local = append(local, iov)
		remote = append(remote, unix.RemoteIovec{Base: uintptr(w.addr), Len: w.n})
		total += w.n
	}
	if total == 0 {
		return nil
	}
	for {
		n, err := unix.ProcessVMWritev(tid, local, remote, 0)
		if err == unix.EINTR {
			continue
		}
		if err == unix.ENOSYS || err == unix.EPERM || err == unix.EACCES {
			// As in readMem.
			for _, w := range ws {
				if err := pokeMem(tid, w.addr, data[w.off:w.off+w.n]); err != nil {
					return err
				}
			}
			return nil
		}
		if err != nil {
			return err
		}
		if n != total {
			return unix.EFAULT
		}
		return nil
	}
}

func pokeMem(tid int, addr uint64, buf []byte) error {
	n, err := unix.PtracePokeData(tid, uintptr(addr), buf)
	if err != nil {
		return err
	}
	if n != len(buf) {
		return unix.EFAULT
	}
	return nil
}

// readString reads a NUL-terminated string from tid at addr, at most
// PATH_MAX bytes including the NUL (ENAMETOOLONG beyond, as the kernel's
// getname). It reads up to each page boundary at a time, so a string that
// ends just before an unmapped page is still read, and most paths take one
// process_vm_readv.
func (tr *tracer) readString(tid int, addr uint64) (string, error) {
	if addr == 0 {
		return "", unix.EFAULT
	}
	buf := tr.readBuf[:0]
	for len(buf) < unix.PathMax {
		chunk := int(pageSize - (addr+uint64(len(buf)))%pageSize)
		if len(buf)+chunk > unix.PathMax {
			chunk = unix.PathMax - len(buf)
		}
		start := len(buf)
		buf = buf[:start+chunk]
		if err := readMem(tid, addr+uint64(start), buf[start:]); err != nil {
			return "", err
		}
		if i := bytes.IndexByte(buf[start:], 0); i >= 0 {
			return string(buf[:start+i]), nil
		}
	}
	return "", unix.ENAMETOOLONG
}

// readU64s reads n little-endian 64-bit words from tid at addr.
func readU64(tid int, addr uint64) (uint64, error) {
	var b [8]byte
	if err := readMem(tid, addr, b[:]); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

// errnoOf returns the errno inside err, EFAULT for anything else: it is what
// a failed copy from user memory reports.
func errnoOf(err error) unix.Errno {
	var e unix.Errno
	if errors.As(err, &e) {
		return e
	}
	return unix.EFAULT
}
