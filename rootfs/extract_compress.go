package rootfs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is how a tar stream is compressed, as told by its magic
// bytes (file names lie, and docker save output is often piped through
// gzip without being renamed).
type Compression string

const (
	None  Compression = ""
	Gzip  Compression = "gzip"
	Xz    Compression = "xz"
	Zstd  Compression = "zstd"
	Bzip2 Compression = "bzip2"
)

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte("BZh")},
}

// decompressed is a decompressing reader that also checks, when drained,
// that the compressed stream ends cleanly (a tar reader stops at the
// end-of-archive blocks and would never see a bad gzip trailer).
type decompressed struct {
	io.Reader
	kind  Compression
	close func() error
	src   *eofReader
}

// eofReader notes when the compressed input ran out: a decompressor that
// fails after that was given a cut stream, whatever it calls the failure
// (bzip2 reports a block checksum mismatch for a stream cut mid-block).
type eofReader struct {
	r   io.Reader
	eof bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.eof = true
	}
	return n, err
}

// Read tags the decompressor's errors, which would otherwise reach the
// user as a bare "flate: corrupt input".
func (d *decompressed) Read(p []byte) (int, error) {
	n, err := d.Reader.Read(p)
	if err != nil && err != io.EOF && d.kind != None {
		if errors.Is(err, io.ErrUnexpectedEOF) || (d.src.eof && !errors.Is(err, context.Canceled)) {
			err = fmt.Errorf("%s stream is truncated: %w", d.kind, err)
		} else if !errors.Is(err, context.Canceled) {
			err = fmt.Errorf("corrupt %s data: %w", d.kind, err)
		}
	}
	return n, err
}

func (d *decompressed) Close() error {
	if d.close != nil {
		return d.close()
	}
	return nil
}

// drain reads the rest of the stream, so checksums in the compressed
// trailer are verified and truncation after the tar end is noticed. What
// follows the tar end is normally a few KiB of record padding; more than
// limit bytes of it is a decompression bomb hidden where no entry counts
// it, refused like one (total is the import's whole limit, for the
// message).
func (d *decompressed) drain(ctx context.Context, limit, total int64) error {
	if d.kind == None {
		return nil
	}
	var r io.Reader = d
	if ctx.Done() != nil {
		r = ctxReader{ctx, r}
	}
	n, err := io.Copy(io.Discard, io.LimitReader(r, max(limit, 0)+1))
	if err != nil {
		return err
	}
	if n > limit {
		return fmt.Errorf("%w of %d bytes: data follows the end of the tar archive (set NOOK_IMPORT_MAX_BYTES to raise it)", ErrTooLarge, total)
	}
	return nil
}

// decompress sniffs r's first bytes and returns the decompressed stream.
func decompress(r io.Reader) (*decompressed, error) {
	src := &eofReader{r: r}
	br := bufio.NewReaderSize(src, 1<<16)
	head, err := br.Peek(6)
	if err != nil && len(head) == 0 {
		if err == io.EOF {
			return nil, fmt.Errorf("empty file")
		}
		return nil, err
	}
	kind := None
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			kind = m.c
			break
		}
	}
	d := &decompressed{kind: kind, src: src}
	switch kind {
	case None:
		d.Reader = br
	case Gzip:
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		d.Reader, d.close = z, z.Close
	case Xz:
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("xz: %w", err)
		}
		d.Reader = z
	case Zstd:
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		d.Reader, d.close = z, func() error { z.Close(); return nil }
	case Bzip2:
		d.Reader = bzip2.NewReader(br)
	}
	return d, nil
}
