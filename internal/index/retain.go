package index

import (
	"slices"
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
	var dead []*part
	x.mu.Lock()
	x.retainFrom = cut
	x.gen++
	for name, nc := range fresh {
		for _, p := range x.events[name].parts {
			if !slices.Contains(nc.parts, p) {
				dead = append(dead, p)
			}
		}
		if nc.events() == 0 {
			delete(x.events, name)
		} else {
			x.events[name] = nc
		}
	}
	x.dead = append(x.dead, dead...)
	x.releaseDead()
	x.mu.Unlock()
	return out
}

// releaseDead unmaps the files of the parts dropped or copied by Retain
// once no yielding scan runs (one may still read a run it took before
// the swap; other readers read under the lock, which the caller holds
// for writing). The next checkpoint deletes the files.
func (x *Index) releaseDead() {
	if len(x.dead) == 0 || x.scans.Load() != 0 {
		return
	}
	for _, p := range x.dead {
		p.file.close()
	}
	x.dead = nil
}

// hasBefore reports whether any event is before cut.
func (c *eventCol) hasBefore(cut int64) bool {
	for _, p := range c.parts {
		if p.min < cut {
			return true
		}
	}
	for _, b := range c.blocks {
		if b.min < cut {
			return true
		}
	}
	return false
}

// compact makes the column without the events before cut and those of
// deleted profiles: parts wholly before cut go, parts that hold none of
// them stay as they are (shared, still on disk), the others and the head
// are copied (the copies of parts are new parts in memory, written at the
// next checkpoint). lost gets the live roots of the events dropped that
// were visible before (at or after prev).
func (x *Index) compact(c *eventCol, cut, prev int64, lost *roaring.Bitmap) *eventCol {
	nc := &eventCol{props: make(map[string]*propCol, len(c.props)), byProf: map[uint32]int32{}}
	for _, col := range c.order {
		n := &propCol{k: col.k, ids: newIDCol(0), dict: col.dict, byKey: col.byKey, byNum: col.byNum, byStr: col.byStr,
			counts: slices.Clone(col.counts)}
		nc.order = append(nc.order, n)
	}
	for path, col := range c.props {
		nc.props[path] = nc.order[col.k]
	}
	// copyRun appends the events of r that stay to dst (whose columns are
	// cols) and uncounts the others.
	copyRun := func(r *run, dst *eventCol, cols []*propCol) {
		for i, num := range r.prof {
			if x.deleted.Contains(num) {
				continue // uncounted when deleted
			}
			if t := r.ts[i]; t < cut {
				if t >= prev {
					if root, ok := x.root(num); ok {
						lost.Add(root)
					}
				}
				for k, col := range nc.order {
					if id := r.idAt(k, int32(i)); id != 0 && int(id) < len(col.counts) && col.counts[id] > 0 {
						col.counts[id]--
					}
				}
				continue
			}
			dst.appendEvent(num, r.ts[i])
			for k, col := range cols {
				col.ids.add(r.idAt(k, int32(i)))
			}
		}
	}
	for _, p := range c.parts {
		if p.min >= cut && !p.holdsAny(x.deleted) {
			nc.parts = append(nc.parts, p)
			continue
		}
		tmp := &eventCol{byProf: map[uint32]int32{}}
		cols := make([]*propCol, len(c.order))
		for k := range cols {
			cols[k] = &propCol{k: k, ids: newIDCol(0)}
		}
		copyRun(&p.run, tmp, cols)
		if len(tmp.prof) == 0 {
			continue
		}
		r := run{prof: tmp.prof, ts: tmp.ts, next: tmp.next, blocks: tmp.blocks, ids: make([]*idCol, len(cols))}
		for k, col := range cols {
			r.ids[k] = &col.ids
		}
		nc.parts = append(nc.parts, sealedPart(r, tmp.byProf)) // its heads sorted when written
	}
	copyRun(c.head(), nc, nc.order)
	return nc
}

// holdsAny reports whether the part holds an event of a profile in set.
func (p *part) holdsAny(set *roaring.Bitmap) bool {
	if set.IsEmpty() {
		return false
	}
	held := false
	p.eachHead(func(n uint32) { held = held || set.Contains(n) })
	return held
}

// uncount removes a deleted profile's events from the value counts and
// marks their columns (the events themselves go at the next Retain).
func (x *Index) uncount(n uint32) {
	for _, c := range x.events {
		for _, r := range c.runs() {
			head, ok := r.first(n)
			if !ok {
				continue
			}
			c.hasDeleted = true
			for i := head; i >= 0; i = r.next[i] {
				for _, col := range c.order {
					if id := r.idAt(col.k, i); id != 0 && int(id) < len(col.counts) && col.counts[id] > 0 {
						col.counts[id]--
					}
				}
			}
		}
	}
}
