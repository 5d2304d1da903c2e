package index

import (
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/store"
)

// LoadOptions tune LoadWith.
type LoadOptions struct {
	// Progress, when set, is called now and then with the fraction of the
	// workspace loaded: never decreasing, from 0, ending with 1. Profiles
	// count for their share of the estimated bytes on disk (a fifth when
	// nothing is on disk yet) and are measured by profile number; events
	// are measured by day and profile number (store.LoadSpan.Fraction).
	Progress func(fraction float64)
	// Dir, for Open, is the directory the index is persisted in ("": in
	// memory only).
	Dir string
	// SealEvents seals an event column's head into a part once it holds
	// this many events (0: only at checkpoints). Tests set it small so
	// that every query crosses parts and heads.
	SealEvents int
	// Logger reports how Open found the index.
	Logger *slog.Logger
	// KeepJournalFrom, when not 0, keeps the journal entries from this
	// seq on when Open rebuilds the index from the store (its checkpoint
	// would delete them): another reader of the journal (segment
	// membership's catch-up) has not seen them yet. A later base deletes
	// them.
	KeepJournalFrom uint64
}

// loadMeter turns a load's position into Progress calls; nil reports
// nothing.
type loadMeter struct {
	fn     func(float64)
	span   store.LoadSpan
	share  float64 // of the whole, the profiles' part
	last   float64
	n      int
	day    uint32
	dayNum uint32
}

// meterEvery is how many records pass between two progress computations.
const meterEvery = 4096

func newLoadMeter(r pebble.Reader, ws uint32, fn func(float64)) *loadMeter {
	if fn == nil {
		return nil
	}
	m := &loadMeter{fn: fn, share: 0.2}
	if span, err := store.ReadLoadSpan(r, ws); err == nil { // without it: coarse steps
		m.span = span
		if total := span.ProfileBytes + span.EventBytes; total > 0 {
			m.share = min(max(float64(span.ProfileBytes)/float64(total), 0.02), 0.98)
		}
	}
	fn(0)
	return m
}

func (m *loadMeter) profile(num uint32) {
	if m == nil {
		return
	}
	if m.n++; m.n%meterEvery == 0 && m.span.NextProfile > 0 {
		m.report(m.share * min(float64(num)/float64(m.span.NextProfile), 1))
	}
}

func (m *loadMeter) profilesDone() {
	if m != nil {
		m.report(m.share)
	}
}

func (m *loadMeter) event(ts time.Time, num uint32) {
	if m == nil {
		return
	}
	if m.n++; m.n%meterEvery == 0 {
		m.report(m.share + (1-m.share)*m.span.Fraction(store.Day(ts), num))
	}
}

func (m *loadMeter) done() {
	if m != nil {
		m.report(1)
	}
}

// report passes f on when it moved by at least a thousandth (or is 1).
func (m *loadMeter) report(f float64) {
	if f > m.last && (f-m.last >= 0.001 || f == 1) {
		m.last = f
		m.fn(f)
	}
}
