package ownership

import "unsafe"

// ptr and ptr32 pass Go buffers to raw syscalls in the kernel comparison
// tests.
func ptr(s []uint32) unsafe.Pointer {
	if len(s) == 0 {
		return nil
	}
	return unsafe.Pointer(&s[0])
}

func ptr32(p *uint32) unsafe.Pointer { return unsafe.Pointer(p) }
