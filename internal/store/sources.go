package store

import (
	"bytes"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Source keys.
const (
	tagSourcePos = 'o' // o ws source 0x00 part → the source's position in part (bytes the source defines)
)

// SourcePosKey is a source's position in one part of its input (a Kafka
// topic partition "topic:partition", or "binlog"). It is written in the
// same batch as the state the input up to that position produced.
func SourcePosKey(ws uint32, source, part string) []byte {
	k := append(wsKey(tagSourcePos, ws, len(source)+1+len(part)), source...)
	k = append(k, 0)
	return append(k, part...)
}

// ScanSourcePositions calls fn with every stored position of a source.
func ScanSourcePositions(r pebble.Reader, ws uint32, source string, fn func(part string, v []byte) error) error {
	lo := append(wsKey(tagSourcePos, ws, len(source)+1), source...)
	lo = append(lo, 0)
	return scan(r, lo, prefixEnd(lo), func(k, v []byte) error {
		part := k[len(lo):]
		if bytes.IndexByte(part, 0) >= 0 {
			return fmt.Errorf("source %q position key %q: %w", source, k, ErrCorruption)
		}
		return fn(string(part), v)
	})
}
