package rootfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// go-containerregistry parses the manifests (docker save's manifest.json,
// OCI index nesting, platforms); the layers themselves are applied by
// Extract, never by its mutate.Extract, so hostile layers meet the same
// fd-relative checks as rootfs tarballs.

// dockerSave applies the layers of the (single, or first) image of a
// docker save archive, bottom to top.
func (im *importer) dockerSave(archive string) error {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(archive) })
	if err != nil {
		return fmt.Errorf("reading manifest.json: %w", err)
	}
	if len(m) == 0 {
		return errors.New("manifest.json lists no image")
	}
	desc := m[0]
	if len(desc.RepoTags) > 0 {
		im.defaultName = desc.RepoTags[0]
	}
	if st, err := os.Stat(archive); err == nil {
		im.startProgress(st.Size())
	}
	for _, l := range desc.Layers {
		name := path.Clean(strings.TrimPrefix(l, "./"))
		r, closer, err := openMember(archive, name)
		if err != nil {
			return fmt.Errorf("layer %s: %w", l, err)
		}
		err = im.layer(r)
		closer()
		if err != nil {
			return fmt.Errorf("layer %s: %w", l, err)
		}
	}
	return nil
}

// layer decompresses (by magic) and applies one image layer.
func (im *importer) layer(r io.Reader) error {
	d, err := decompress(im.counted(r))
	if err != nil {
		return err
	}
	defer d.Close()
	if err := im.extract(d, true); err != nil {
		return err
	}
	return d.drain(im.ctx, im.max-im.written, im.max)
}

// ociLayout applies the linux/amd64 image of the OCI layout at dir.
func (im *importer) ociLayout(dir string) error {
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("reading the OCI layout: %w", err)
	}
	img, ref, err := pickImage(idx, 0)
	if err != nil {
		return err
	}
	if ref != "" {
		im.defaultName = ref
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("reading the image manifest: %w", err)
	}
	var total int64
	for _, l := range layers {
		if n, err := l.Size(); err == nil {
			total += n
		}
	}
	im.startProgress(total)
	for i, l := range layers {
		dg, _ := l.Digest()
		r, err := l.Compressed()
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i+1, dg, err)
		}
		err = im.layer(r)
		r.Close()
		if err != nil {
			return fmt.Errorf("layer %d (%s): %w", i+1, dg, err)
		}
	}
	return nil
}

// wantPlatform is the only platform nook runs.
var wantPlatform = v1.Platform{OS: "linux", Architecture: "amd64"}

// pickImage finds the linux/amd64 image in idx, descending into nested
// indexes; a manifest without a platform counts as a match only if it is
// the only image. It also returns the image's reference name from the
// annotations, if any.
func pickImage(idx v1.ImageIndex, depth int) (v1.Image, string, error) {
	if depth > 8 {
		return nil, "", errors.New("OCI indexes nested too deeply")
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, "", fmt.Errorf("reading the OCI index: %w", err)
	}
	var untyped []v1.Descriptor
	for _, d := range im.Manifests {
		ref := refName(d.Annotations)
		switch {
		case d.MediaType.IsIndex():
			child, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, "", fmt.Errorf("index %s: %w", d.Digest, err)
			}
			img, cref, err := pickImage(child, depth+1)
			if err == nil {
				if cref == "" {
					cref = ref
				}
				return img, cref, nil
			}
			if !errors.Is(err, errNoPlatform) {
				return nil, "", err
			}
		case d.MediaType.IsImage():
			if d.Platform == nil {
				untyped = append(untyped, d)
				continue
			}
			if d.Platform.OS == wantPlatform.OS && d.Platform.Architecture == wantPlatform.Architecture {
				img, err := idx.Image(d.Digest)
				if err != nil {
					return nil, "", fmt.Errorf("image %s: %w", d.Digest, err)
				}
				return img, ref, nil
			}
		}
	}
	if len(untyped) == 1 {
		img, err := idx.Image(untyped[0].Digest)
		if err != nil {
			return nil, "", fmt.Errorf("image %s: %w", untyped[0].Digest, err)
		}
		return img, refName(untyped[0].Annotations), nil
	}
	return nil, "", errNoPlatform
}

var errNoPlatform = errors.New("the OCI layout has no linux/amd64 image")

// refName is the image name an index annotates a manifest with: containerd
// and docker write the full reference, the OCI spec only the tag.
func refName(a map[string]string) string {
	if n := a["io.containerd.image.name"]; n != "" {
		return n
	}
	return a["org.opencontainers.image.ref.name"]
}
