package ownership

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Key identifies a file: its device and inode numbers as stat reports them.
type Key struct {
	Dev, Ino uint64
}

func (k Key) bytes() []byte {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], k.Dev)
	binary.BigEndian.PutUint64(b[8:], k.Ino)
	return b[:]
}

func keyFrom(b []byte) (Key, error) {
	if len(b) != 16 {
		return Key{}, fmt.Errorf("ownership: bad key length %d", len(b))
	}
	return Key{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}, nil
}

// Flags say which fields of a Record override the real file's.
type Flags uint8

const (
	HasOwner Flags = 1 << iota // UID and GID
	HasMode                    // Mode's permission bits (07777)
	HasDev                     // FakeType and Rdev: a faked device node or fifo
	HasCap                     // Cap: the security.capability xattr
)

// Record is the faked metadata of one file.
type Record struct {
	// Type is the S_IFMT bits of the file on disk. A record whose Type
	// differs from the file found under its key belongs to a deleted
	// file whose inode was reused: it is discarded, never applied.
	Type  uint32
	Flags Flags
	UID   uint32
	GID   uint32
	Mode  uint32 // permission bits including S_ISUID, S_ISGID, S_ISVTX
	// FakeType is the S_IFMT bits the guest sees (S_IFCHR, S_IFBLK,
	// S_IFIFO) for a node created on disk as an empty regular file.
	FakeType uint32
	Rdev     uint64
	Cap      []byte
	// Path is where the file was last seen, relative to the rootfs top
	// ("." for the top). It is a hint, used only to carry records over to
	// a copy of the tree, where inode numbers differ.
	Path string
}

const recordVersion = 1

// fixed part: version, flags, type, uid, gid, mode, faketype, rdev.
const recordFixed = 1 + 1 + 4*5 + 8

func (r *Record) marshal() []byte {
	b := make([]byte, recordFixed, recordFixed+len(r.Path)+len(r.Cap)+2*binary.MaxVarintLen64)
	b[0] = recordVersion
	b[1] = byte(r.Flags)
	binary.BigEndian.PutUint32(b[2:], r.Type)
	binary.BigEndian.PutUint32(b[6:], r.UID)
	binary.BigEndian.PutUint32(b[10:], r.GID)
	binary.BigEndian.PutUint32(b[14:], r.Mode)
	binary.BigEndian.PutUint32(b[18:], r.FakeType)
	binary.BigEndian.PutUint64(b[22:], r.Rdev)
	b = binary.AppendUvarint(b, uint64(len(r.Path)))
	b = append(b, r.Path...)
	b = binary.AppendUvarint(b, uint64(len(r.Cap)))
	b = append(b, r.Cap...)
	return b
}

var errBadRecord = errors.New("ownership: malformed record")

func unmarshalRecord(b []byte) (*Record, error) {
	if len(b) < recordFixed || b[0] != recordVersion {
		return nil, errBadRecord
	}
	r := &Record{
		Flags:    Flags(b[1]),
		Type:     binary.BigEndian.Uint32(b[2:]),
		UID:      binary.BigEndian.Uint32(b[6:]),
		GID:      binary.BigEndian.Uint32(b[10:]),
		Mode:     binary.BigEndian.Uint32(b[14:]),
		FakeType: binary.BigEndian.Uint32(b[18:]),
		Rdev:     binary.BigEndian.Uint64(b[22:]),
	}
	rest := b[recordFixed:]
	field := func() ([]byte, error) {
		n, k := binary.Uvarint(rest)
		if k <= 0 || n > uint64(len(rest)-k) {
			return nil, errBadRecord
		}
		f := rest[k : k+int(n)]
		rest = rest[k+int(n):]
		return f, nil
	}
	p, err := field()
	if err != nil {
		return nil, err
	}
	r.Path = string(p)
	c, err := field()
	if err != nil {
		return nil, err
	}
	if len(c) > 0 {
		r.Cap = append([]byte(nil), c...)
	}
	if len(rest) != 0 {
		return nil, errBadRecord
	}
	return r, nil
}

func (r *Record) clone() *Record {
	n := *r
	n.Cap = append([]byte(nil), r.Cap...)
	if len(n.Cap) == 0 {
		n.Cap = nil
	}
	return &n
}
