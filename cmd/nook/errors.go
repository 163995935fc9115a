package main

// exitStatus is not an error of nook's: the guest command finished and nook
// must exit with its status, printing nothing.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return "exit status" }

// hinted carries a one-line suggestion printed after the error.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: hint}
}

// codedError is an error that must exit with a status other than 125 (for
// example 127 when the command is not found).
type codedError struct {
	err  error
	code int
}

func (c *codedError) Error() string { return c.err.Error() }
func (c *codedError) Unwrap() error { return c.err }
