package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"
)

// ScanSegments calls fn with every segment record of a workspace.
func ScanSegments(r pebble.Reader, ws uint32, fn func(id string, rec []byte) error) error {
	lo, hi := wsRange(tagSegment, ws)
	return scan(r, lo, hi, func(k, v []byte) error { return fn(string(k[5:]), v) })
}

// EncodeBitmap serialises a bitmap for storage.
func EncodeBitmap(bm *roaring.Bitmap) ([]byte, error) {
	bm.RunOptimize()
	b, err := bm.ToBytes()
	if err != nil {
		return nil, fmt.Errorf("encode bitmap: %w", err)
	}
	return b, nil
}

// DecodeBitmap decodes a stored bitmap, validating it: corrupt input is an
// error, never a panic.
func DecodeBitmap(b []byte) (bm *roaring.Bitmap, err error) {
	defer func() {
		if r := recover(); r != nil {
			bm, err = nil, fmt.Errorf("bitmap: %v: %w", r, ErrCorruption)
		}
	}()
	bm = roaring.New()
	if _, err := bm.FromUnsafeBytes(append([]byte(nil), b...)); err != nil {
		return nil, fmt.Errorf("bitmap: %v: %w", err, ErrCorruption)
	}
	if err := bm.Validate(); err != nil {
		return nil, fmt.Errorf("bitmap: %v: %w", err, ErrCorruption)
	}
	return bm, nil
}

// ReadMembers reads a segment's stored membership (empty when none).
func ReadMembers(r pebble.Reader, ws uint32, id string) (*roaring.Bitmap, error) {
	v, ok, err := Get(r, MembersKey(ws, id))
	if err != nil {
		return nil, err
	}
	if !ok {
		return roaring.New(), nil
	}
	bm, err := DecodeBitmap(v)
	if err != nil {
		return nil, fmt.Errorf("members of segment %q: %w", id, err)
	}
	return bm, nil
}

// ScanChanges calls fn for every change record with seq > after, in order,
// until fn returns false.
func ScanChanges(r pebble.Reader, ws uint32, after uint64, fn func(seq uint64, rec []byte) bool) error {
	lo := ChangeKey(ws, after+1)
	_, hi := wsRange(tagChange, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(k) != 13 {
			return fmt.Errorf("change key %x: %w", k, ErrCorruption)
		}
		if !fn(binary.BigEndian.Uint64(k[5:]), v) {
			return errStop
		}
		return nil
	})
}

// ReadChangeSeq reads a workspace's last change seq.
func ReadChangeSeq(r pebble.Reader, ws uint32) (uint64, error) {
	v, ok, err := Get(r, ChangeSeqKey(ws))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("change seq: %w", ErrCorruption)
	}
	return binary.BigEndian.Uint64(v), nil
}

// ReadLiveSeq reads a workspace's LiveSeqKey; found is false when it was
// never written.
func ReadLiveSeq(r pebble.Reader, ws uint32) (seq uint64, found bool, err error) {
	v, ok, err := Get(r, LiveSeqKey(ws))
	if err != nil || !ok {
		return 0, false, err
	}
	if len(v) != 8 {
		return 0, false, fmt.Errorf("live journal seq: %w", ErrCorruption)
	}
	return binary.BigEndian.Uint64(v), true, nil
}

// ScanTimers calls fn for every pending timer of a workspace.
func ScanTimers(r pebble.Reader, ws uint32, fn func(due time.Time, num uint32, seg string) error) error {
	lo, hi := wsRange(tagTimer, ws)
	return scan(r, lo, hi, func(k, v []byte) error {
		if len(k) < 17 {
			return fmt.Errorf("timer key %x: %w", k, ErrCorruption)
		}
		return fn(decodeTime(binary.BigEndian.Uint64(k[5:])), binary.BigEndian.Uint32(k[13:]), string(k[17:]))
	})
}

// ScanChangesBack calls fn for every change with seq ≤ upTo, newest first,
// until fn returns false.
func ScanChangesBack(r pebble.Reader, ws uint32, upTo uint64, fn func(seq uint64, rec []byte) bool) error {
	lo, _ := wsRange(tagChange, ws)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: ChangeKey(ws, upTo+1)})
	if err != nil {
		return err
	}
	defer it.Close()
	for it.Last(); it.Valid(); it.Prev() {
		k := it.Key()
		if len(k) != 13 {
			return fmt.Errorf("change key %x: %w", k, ErrCorruption)
		}
		if !fn(binary.BigEndian.Uint64(k[5:]), it.Value()) {
			break
		}
	}
	return it.Error()
}

// ReadCompacted reads the seq through which a workspace's change log is
// compacted (0: never).
func ReadCompacted(r pebble.Reader, ws uint32) (uint64, error) {
	v, ok, err := Get(r, CompactedKey(ws))
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("change log compaction mark: %w", ErrCorruption)
	}
	return binary.BigEndian.Uint64(v), nil
}
