package pathmap

import "unsafe"

// bstr views b as a string without copying. The string is valid only until
// b is next modified, which is why FS implementations must not retain the
// paths they are given.
func bstr(b []byte) string {
	return unsafe.String(unsafe.SliceData(b), len(b))
}
