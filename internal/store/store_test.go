package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestFormatVersion: a new store records this build's format version; a
// store of another version is refused with a sentence naming both.
func TestFormatVersion(t *testing.T) {
	fs := vfs.NewMem()
	s, err := Open("db", Options{FS: fs})
	if err != nil {
		t.Fatal(err)
	}
	v, ok, err := Get(s.DB(), formatKey)
	if err != nil || !ok || binary.BigEndian.Uint32(v) != FormatVersion {
		t.Fatalf("format version %x %v %v", v, ok, err)
	}
	if err := s.DB().Set(formatKey, binary.BigEndian.AppendUint32(nil, FormatVersion+1), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open("db", Options{FS: fs})
	if err == nil || !strings.Contains(err.Error(), "format version") {
		t.Fatalf("a store of another format version opened: %v", err)
	}
}

// TestProfileEventsOrder: one profile's events come back day by day in
// time order (before 1970 too), other profiles' and other workspaces'
// events are not mixed in, and a profile's events survive the retention
// of other days.
func TestProfileEventsOrder(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	times := []time.Time{
		time.Date(1969, 12, 31, 23, 0, 0, 0, time.UTC),
		time.Date(2026, 5, 1, 10, 0, 0, 5, time.UTC),
		time.Date(2026, 5, 1, 10, 0, 0, 6, time.UTC),
		time.Date(2026, 5, 3, 0, 0, 0, 0, time.UTC),
	}
	b := s.DB().NewBatch()
	put := func(ws, num uint32, ts time.Time, seq uint64, name string) {
		if err := b.Set(EventKey(ws, Day(ts), num, ts, seq), EncodeEvent(name, "m", []byte(`{"k":1}`)), nil); err != nil {
			t.Fatal(err)
		}
	}
	// Written out of order, with neighbours in the same days.
	for i := len(times) - 1; i >= 0; i-- {
		put(1, 7, times[i], uint64(10+i), "E")
		put(1, 6, times[i], uint64(20+i), "other profile")
		put(1, 8, times[i], uint64(30+i), "other profile")
		put(2, 7, times[i], uint64(40+i), "other workspace")
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	var got []time.Time
	err = ProfileEvents(context.Background(), s.DB(), 1, 7, func(e StoredEvent) error {
		if e.Name != "E" || e.Profile != 7 || e.Properties["k"] != 1.0 {
			t.Errorf("event %+v", e)
		}
		got = append(got, e.Timestamp)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(times) {
		t.Fatalf("%d events, want %d: %v", len(got), len(times), got)
	}
	for i := range times {
		if !got[i].Equal(times[i]) {
			t.Errorf("event %d at %s, want %s", i, got[i], times[i])
		}
	}
}

// TestDecodeCorruption: records that do not decode are errors wrapping
// ErrCorruption, never panics or empty values taken as real.
func TestDecodeCorruption(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("{"), []byte(`{"traits":{}}`), []byte(`[1]`)} {
		if _, err := DecodeProfile(b); !errors.Is(err, ErrCorruption) {
			t.Errorf("DecodeProfile(%q): %v", b, err)
		}
	}
	p, err := DecodeProfile(EncodeProfile(&ProfileRecord{ID: "u1", IDs: []string{"u1", "a1"}}))
	if err != nil || p.ID != "u1" || p.Traits == nil || len(p.IDs) != 2 {
		t.Errorf("round trip: %+v %v", p, err)
	}
	if _, err := decodeEvent([]byte("short"), nil); !errors.Is(err, ErrCorruption) {
		t.Errorf("short event key: %v", err)
	}
}

// TestDeleteMsgIDsBeforeInBatches: the dedup sweep removes exactly the
// ids received before the cutoff, across several bounded batches.
func TestDeleteMsgIDsBeforeInBatches(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.DB().NewBatch()
	const old, recent = 2*msgIDSweepBatch + 123, 50
	for i := range old + recent {
		day := uint32(10)
		if i >= old {
			day = 20
		}
		if err := b.Set(MsgIDKey(1, fmt.Sprint("m", i)), U32(day), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteMsgIDsBefore(context.Background(), 1, 15)
	if err != nil || n != old {
		t.Fatalf("deleted %d (%v), want %d", n, err, old)
	}
	left := 0
	lo, hi := wsRange(tagMsgID, 1)
	scan(s.DB(), lo, hi, func(k, v []byte) error { left++; return nil })
	if left != recent {
		t.Errorf("%d ids left, want the %d recent ones", left, recent)
	}
}

// TestScanEventsParallel: the parallel scan yields exactly the sequential
// scan's events in the same order, stops at fn's error, and at a
// cancelled context.
func TestScanEventsParallel(t *testing.T) {
	s, err := Open("db", Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := s.DB().NewBatch()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5000 {
		ts := t0.Add(time.Duration(i*7919%5000) * time.Minute)
		props := []byte(fmt.Sprintf(`{"i":%d,"tag":"t%d"}`, i, i%13))
		if err := b.Set(EventKey(1, Day(ts), uint32(i%97), ts, uint64(i+1)), EncodeEvent("E", fmt.Sprint("m", i), props), nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var want, got []string
	ScanEvents(ctx, s.DB(), 1, func(ev StoredEvent) error { want = append(want, fmt.Sprint(ev.Seq, ev.Properties)); return nil })
	if err := ScanEventsParallel(ctx, s.DB(), 1, 3, func(ev StoredEvent) error { got = append(got, fmt.Sprint(ev.Seq, ev.Properties)); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(want) != 5000 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("parallel scan: %d events, sequential %d, or another order", len(got), len(want))
	}
	stop := errors.New("stop")
	n := 0
	if err := ScanEventsParallel(ctx, s.DB(), 1, 3, func(StoredEvent) error {
		if n++; n == 2500 {
			return stop
		}
		return nil
	}); !errors.Is(err, stop) || n != 2500 {
		t.Fatalf("fn's error: %v after %d events", err, n)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := ScanEventsParallel(cctx, s.DB(), 1, 3, func(StoredEvent) error { return nil }); !errors.Is(err, context.Canceled) {
		t.Fatalf("a cancelled scan: %v", err)
	}
}
