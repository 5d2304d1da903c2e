package store

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ScanBots calls fn for every flagged profile of a workspace.
func ScanBots(r pebble.Reader, ws uint32, fn func(num, minute uint32) error) error {
	lo, hi := wsRange(tagBot, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(k) < 4 || len(v) != 4 {
			return fmt.Errorf("bot record %x: %w", k, ErrCorruption)
		}
		return fn(binary.BigEndian.Uint32(k[len(k)-4:]), binary.BigEndian.Uint32(v))
	})
}
