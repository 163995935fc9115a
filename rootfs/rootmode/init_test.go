package rootmode

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"nook/rootfs"
)

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	mk := func(p string, mode os.FileMode) string {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0755); err != nil {
			t.Fatal(err)
		}
		if mode.IsDir() {
			if err := os.Mkdir(full, 0755); err != nil {
				t.Fatal(err)
			}
		} else if err := os.WriteFile(full, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return full
	}
	exe := mk("a/prog", 0755)
	noexec := mk("b/prog", 0644)
	mk("b/onlyhere", 0644)
	mk("c/prog", os.ModeDir|0755)
	exe2 := mk("c/other", 0755)
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")

	tests := []struct {
		file, path string
		want       string
		code       int
		errSub     string
	}{
		{file: "prog", path: a + ":" + b, want: exe},
		// A non-executable match earlier in PATH is skipped, like execvp.
		{file: "prog", path: b + ":" + a, want: exe},
		// A directory named like the command is skipped too.
		{file: "prog", path: c + ":" + a, want: exe},
		{file: "other", path: a + "::" + c, want: filepath.Join(c, "other")},
		{file: "onlyhere", path: a + ":" + b, code: rootfs.ExitNotExecutable, errSub: "permission denied"},
		{file: "missing", path: a + ":" + b, code: rootfs.ExitNotFound, errSub: "command not found"},
		{file: "prog", path: "", code: rootfs.ExitNotFound, errSub: "command not found"},
		{file: exe2, path: "", want: exe2},
		{file: noexec, path: a, code: rootfs.ExitNotExecutable, errSub: "permission denied"},
		{file: filepath.Join(dir, "c/prog"), path: a, code: rootfs.ExitNotExecutable, errSub: "is a directory"},
		{file: filepath.Join(dir, "nope/x"), path: a, code: rootfs.ExitNotFound, errSub: "command not found"},
		{file: exe + "/x", path: a, code: rootfs.ExitNotFound, errSub: "command not found"},
		{file: "", path: a, code: rootfs.ExitNotFound, errSub: "empty command"},
	}
	for _, tc := range tests {
		got, code, err := lookPath(tc.file, tc.path)
		if tc.errSub != "" {
			if err == nil || code != tc.code || !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("lookPath(%q, %q) = %q, %d, %v; want code %d and %q", tc.file, tc.path, got, code, err, tc.code, tc.errSub)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("lookPath(%q, %q) = %q, %v; want %q", tc.file, tc.path, got, err, tc.want)
		}
	}
}

func TestEscapeOverlay(t *testing.T) {
	for in, want := range map[string]string{
		"/var/lib/nook":  "/var/lib/nook",
		"/a,b:c":         `/a\,b\:c`,
		`/back\slash`:    `/back\\slash`,
		`/x\,lowerdir=/`: `/x\\\,lowerdir=/`,
	} {
		if got := escapeOverlay(in); got != want {
			t.Errorf("escapeOverlay(%q) = %q, want %q", in, got, want)
		}
	}
}
