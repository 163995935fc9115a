package rootfs

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"
)

// fuzzNames are the name pieces the fuzzer combines: ordinary names that
// collide with each other (so entries replace and go through each other),
// dot components, whiteouts, and ways out of the target.
var fuzzNames = []string{"a", "b", "c", ".", "..", "", ".wh.a", ".wh.b", ".wh..wh..opq", ".wh..", "OUT", "/"}

// fuzzLinks are symlink and hard link targets; OUT is replaced by the
// sandbox's outside directory.
var fuzzLinks = []string{"a", "b", "a/b", "..", "../outside", "../outside/secret", "OUT", "OUT/secret", "OUT/dir", "/", ".", "c/../..", "b/../../outside"}

var fuzzTypes = []byte{tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeFifo, tar.TypeChar, tar.TypeReg}

// decodeFuzz turns fuzz bytes into archive entries, three bytes an entry:
// type, name (two or three components), link target.
func decodeFuzz(data []byte, outside string) []ent {
	var ents []ent
	for len(data) >= 3 && len(ents) < 64 {
		typ := fuzzTypes[int(data[0])%len(fuzzTypes)]
		n := int(data[1])
		var parts []string
		for i := 0; i < 1+int(data[0]>>6); i++ {
			parts = append(parts, fuzzNames[n%len(fuzzNames)])
			n /= len(fuzzNames)
		}
		name := strings.ReplaceAll(strings.Join(parts, "/"), "OUT", outside)
		link := strings.ReplaceAll(fuzzLinks[int(data[2])%len(fuzzLinks)], "OUT", outside)
		mode := int64(data[2]) << 3 & 0o7777
		if mode == 0 {
			mode = noPerm
		}
		ents = append(ents, ent{name: name, typ: typ, link: link, body: name, mode: mode})
		data = data[3:]
	}
	return ents
}

// FuzzExtract checks the one property that matters for hostile archives:
// whatever the entries, nothing outside the target directory is created,
// written, chmod-ed or removed. The first byte picks raw mode (the rest is
// fed to the tar reader as is) or entry mode (decodeFuzz), and layer mode.
func FuzzExtract(f *testing.F) {
	f.Add([]byte{1, 0, 0})
	f.Add([]byte{2, 2, 6, 0, 10 + 12*0, 0, 0, 22, 0})           // symlink then write through
	f.Add([]byte{2, 2, 4, 0, 2 + 12*1, 0})                      // symlink to ../outside, then a/a
	f.Add([]byte{3, 3, 0, 5, 1, 0, 1, 1 + 12*0, 0})             // hard link out, dir over it
	f.Add([]byte{1, 1, 8, 0, 0, 1, 0x41, 0 + 12*8, 0, 2, 4, 0}) // opaque dir in a layer
	f.Add([]byte{0, 'n', 'o', 't', ' ', 'a', ' ', 't', 'a', 'r'})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		s := newSandbox(t)
		before := s.snapshot(t)
		mode, data := data[0], data[1:]
		var archive []byte
		if mode == 0 {
			archive = data
		} else {
			archive = mkTarLenient(decodeFuzz(data, s.outside))
		}
		_ = extractBytes(s.root, archive, ExtractOptions{Layer: mode&1 == 1, MaxBytes: 1 << 20})
		if after := s.snapshot(t); after != before {
			t.Fatalf("outside changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if err := RemoveTree(s.root); err != nil {
			t.Fatalf("RemoveTree: %v", err)
		}
		if after := s.snapshot(t); after != before {
			t.Fatalf("RemoveTree changed outside:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

// mkTarLenient is mkTar for generated entries: ones archive/tar cannot
// encode are left out.
func mkTarLenient(ents []ent) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		mode := e.mode
		if mode == noPerm {
			mode = 0
		}
		hdr := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: mode, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if tw.WriteHeader(hdr) != nil {
			continue
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return buf.Bytes()
}
