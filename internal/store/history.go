package store

import (
	"encoding/binary"
	"fmt"
	"math"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// tagHistory keys a segment's size series: z ws u8(len id) id u32 hour →
// uvarint size, the segment's size at the end of the last step that
// changed it within that UTC hour. One point per segment per hour, and
// only for hours in which the size moved.
const tagHistory = 'z'

// Hour is the number of whole UTC hours since the Unix epoch, clamped to
// [0, MaxUint32]: the bucket of a size-series point.
func Hour(t time.Time) uint32 {
	if t.Unix() < 0 {
		return 0
	}
	h := t.Unix() / 3600
	if h > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(h)
}

// HourStart is the instant an hour bucket starts.
func HourStart(h uint32) time.Time { return time.Unix(int64(h)*3600, 0).UTC() }

func historyPrefix(ws uint32, seg string) []byte {
	k := append(wsKey(tagHistory, ws, 1+len(seg)+4), byte(len(seg)))
	return append(k, seg...)
}

// HistoryKey is the key of a segment's size point for one hour.
func HistoryKey(ws uint32, seg string, hour uint32) []byte {
	return appendU32(historyPrefix(ws, seg), hour)
}

// HistoryRange is the key range of one segment's size series.
func HistoryRange(ws uint32, seg string) (lo, hi []byte) {
	lo = historyPrefix(ws, seg)
	return lo, prefixEnd(lo)
}

// EncodeSize is a size point's value.
func EncodeSize(n uint64) []byte { return binary.AppendUvarint(nil, n) }

func decodeHistoryPoint(prefixLen int, k, v []byte) (uint32, uint64, error) {
	if len(k) != prefixLen+4 {
		return 0, 0, fmt.Errorf("size-series key %x: %w", k, ErrCorruption)
	}
	n, w := binary.Uvarint(v)
	if w <= 0 || w != len(v) {
		return 0, 0, fmt.Errorf("size-series value %x: %w", v, ErrCorruption)
	}
	return binary.BigEndian.Uint32(k[prefixLen:]), n, nil
}

// ScanHistory calls fn for one segment's size points in hour order: first
// the latest point before hour from (the size going into the range), if
// any, then every point with from ≤ hour ≤ to.
func ScanHistory(r pebble.Reader, ws uint32, seg string, from, to uint32, fn func(hour uint32, size uint64)) error {
	lo, hi := HistoryRange(ws, seg)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	plen := len(lo)
	if it.SeekLT(HistoryKey(ws, seg, from)) {
		h, n, err := decodeHistoryPoint(plen, it.Key(), it.Value())
		if err != nil {
			return err
		}
		fn(h, n)
	}
	for ok := it.SeekGE(HistoryKey(ws, seg, from)); ok; ok = it.Next() {
		h, n, err := decodeHistoryPoint(plen, it.Key(), it.Value())
		if err != nil {
			return err
		}
		if h > to {
			break
		}
		fn(h, n)
	}
	return it.Error()
}
