package index

import (
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// Retain makes the events before from disappear: they are removed from the
// columns (their memory is freed, not only hidden), together with the
// events of deleted profiles. It answers, by event name, the live roots
// that lost events that were still visible, so their memberships can be
// re-evaluated. from never moves back.
//
// It must be called by the change feed's goroutine, the index's only
// writer: the new columns are built from the old ones without the lock,
// while queries go on reading the old ones, and the lock is held only to
// swap them in.
func (x *Index) Retain(from time.Time) map[string]*roaring.Bitmap {
	cut, prev := max(from.UnixNano(), x.retainFrom), x.retainFrom
	out := map[string]*roaring.Bitmap{}
	fresh := map[string]*eventCol{}
	for name, c := range x.events {
		if !c.hasBefore(cut) && !c.hasDeleted {
			continue
		}
		lost := roaring.New()
		fresh[name] = x.compact(c, cut, prev, lost)
		if !lost.IsEmpty() {
			out[name] = lost
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	x.retainFrom = cut
	x.gen++
	for name, nc := range fresh {
		if len(nc.prof) == 0 {
			delete(x.events, name)
		} else {
			x.events[name] = nc
		}
	}
	return out
}

// hasBefore reports whether any block holds an event before cut.
func (c *eventCol) hasBefore(cut int64) bool {
	for _, b := range c.blocks {
		if b.min < cut {
			return true
		}
	}
	return false
}

// compact copies the events of c at or after cut, of profiles not
// deleted, into a new column. lost gets the live roots of the events
// dropped that were visible before (at or after prev).
func (x *Index) compact(c *eventCol, cut, prev int64, lost *roaring.Bitmap) *eventCol {
	nc := &eventCol{props: make(map[string]*propCol, len(c.props)), byProf: map[uint32]int32{}}
	cols := make([]*propCol, len(c.order))
	for i, col := range c.order {
		n := &propCol{ids: newIDCol(0), dict: col.dict, byKey: col.byKey, byNum: col.byNum, byStr: col.byStr,
			counts: make([]uint32, len(col.counts))}
		cols[i] = n
		nc.order = append(nc.order, n)
	}
	for path, col := range c.props {
		for i, o := range c.order {
			if o == col {
				nc.props[path] = cols[i]
			}
		}
	}
	for i, num := range c.prof {
		t := c.ts[i]
		if x.deleted.Contains(num) {
			continue
		}
		if t < cut {
			if t >= prev {
				if r, ok := x.root(num); ok {
					lost.Add(r)
				}
			}
			continue
		}
		nc.appendEvent(num, t)
		for k, col := range c.order {
			cols[k].push(col.ids.at(i))
		}
	}
	return nc
}

// uncount removes a deleted profile's events from the value counts and
// marks their columns (the events themselves go at the next Retain).
func (x *Index) uncount(n uint32) {
	for _, c := range x.events {
		head, ok := c.byProf[n]
		if !ok {
			continue
		}
		c.hasDeleted = true
		for i := head; i >= 0; i = c.next[i] {
			for _, col := range c.order {
				if id := col.ids.at(int(i)); id != 0 && int(id) < len(col.counts) && col.counts[id] > 0 {
					col.counts[id]--
				}
			}
		}
	}
}
