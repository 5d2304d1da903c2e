package store

import (
	"encoding/binary"

	"github.com/cockroachdb/pebble/v2"
)

// LoadSpan describes what loading a workspace's index will scan, so the
// load can report how far along it is: profile keys come in profile-number
// order, event keys in (day, profile number) order.
type LoadSpan struct {
	NextProfile uint32 // profile numbers are below this
	HasEvents   bool
	FirstDay    uint32 // day of the first stored event
	LastDay     uint32 // day of the last stored event
	// On-disk size estimates of the profile and event key ranges; both 0
	// when the data is still only in the memtable (or r is not a DB).
	ProfileBytes, EventBytes uint64
}

// ReadLoadSpan reads a workspace's LoadSpan: its counters, the days of its
// first and last event keys, and pebble's disk-usage estimates.
func ReadLoadSpan(r pebble.Reader, ws uint32) (LoadSpan, error) {
	c, err := ReadCounters(r, ws)
	if err != nil {
		return LoadSpan{}, err
	}
	s := LoadSpan{NextProfile: c.NextProfile}
	lo, hi := wsRange(tagEvent, ws)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return LoadSpan{}, err
	}
	if it.First() && len(it.Key()) >= 9 {
		s.HasEvents = true
		s.FirstDay = binary.BigEndian.Uint32(it.Key()[5:])
		if it.Last() && len(it.Key()) >= 9 {
			s.LastDay = max(s.FirstDay, binary.BigEndian.Uint32(it.Key()[5:]))
		}
	}
	if err := it.Close(); err != nil {
		return LoadSpan{}, err
	}
	if db, ok := r.(*pebble.DB); ok {
		plo, phi := wsRange(tagProfile, ws)
		if s.ProfileBytes, err = db.EstimateDiskUsage(plo, phi); err != nil {
			return LoadSpan{}, err
		}
		if s.EventBytes, err = db.EstimateDiskUsage(lo, hi); err != nil {
			return LoadSpan{}, err
		}
	}
	return s, nil
}

// Fraction is how far a load that has reached the event of profile num on
// day is through the workspace's events, from 0 to 1: whole days done plus
// the share of profile numbers done within the day.
func (s LoadSpan) Fraction(day, num uint32) float64 {
	if !s.HasEvents || day < s.FirstDay {
		return 0
	}
	days := float64(s.LastDay-s.FirstDay) + 1
	within := 0.0
	if s.NextProfile > 0 {
		within = min(float64(num)/float64(s.NextProfile), 1)
	}
	return min((float64(day-s.FirstDay)+within)/days, 1)
}
