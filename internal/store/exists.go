package store

import (
	"errors"
	"fmt"
	"io/fs"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// InDir reports whether dir holds a store, without opening or changing
// it: a directory that does not exist, or holds no database, is not one.
// Tools that must not create a store by mistake ask this first.
func InDir(dir string) (bool, error) {
	desc, err := pebble.Peek(dir, vfs.Default)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look for a store in %s: %w", dir, err)
	}
	return desc.Exists, nil
}
