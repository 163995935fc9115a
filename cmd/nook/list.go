package main

import (
	"fmt"
	"os"
	"text/tabwriter"

	"nook/rootfs"
)

type listCmd struct{}

func (c *listCmd) Run() error {
	store, err := rootfs.OpenStore()
	if err != nil {
		return err
	}
	metas, err := store.List()
	if err != nil {
		return err
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "NAME\tSIZE\tSOURCE\tIMPORTED")
	for _, m := range metas {
		size, src, date := "?", "?", "?"
		if !m.Imported.IsZero() {
			size = humanSize(m.Size)
			src = m.Source
			date = m.Imported.Local().Format("2006-01-02 15:04")
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", m.Name, size, src, date)
	}
	return w.Flush()
}

// humanSize formats n bytes with binary units, as du -h does.
func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%dB", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f%ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
