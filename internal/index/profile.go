package index

import (
	"time"

	"github.com/RoaringBitmap/roaring/v2"
)

// Gen counts the change-feed applications so far; an evaluation that
// notes it can tell later whether anything changed since.
func (x *Index) Gen() uint64 { return x.gen }

// Nums returns root and every number merged into it, directly or not.
// The caller holds RLock (or is the change feed's goroutine).
func (x *Index) Nums(root uint32) []uint32 {
	out := []uint32{root}
	for i := 0; i < len(out); i++ {
		out = append(out, x.kids[out[i]]...)
	}
	return out
}

// Root maps a profile number to the live root it belongs to; false when
// the profile was deleted.
func (x *Index) Root(n uint32) (uint32, bool) { return x.root(n) }

// IsLive reports whether n is a live root profile.
func (x *Index) IsLive(n uint32) bool { return x.all.Contains(n) }

// Event is one event of one profile, as EachEvent yields it: in a sealed
// part (run), or in the column's head (run nil).
type Event struct {
	col *eventCol
	run *run
	i   int32
}

// Time is the event's timestamp.
func (e Event) Time() time.Time {
	ts := e.col.ts
	if e.run != nil {
		ts = e.run.ts
	}
	return time.Unix(0, ts[e.i]).UTC()
}

// Prop returns the value at a property path (model.Lookup's semantics).
func (e Event) Prop(path string) (any, bool) {
	pc := e.col.props[path]
	if pc == nil {
		return nil, false
	}
	var id uint32
	if e.run != nil {
		id = e.run.idAt(pc.k, e.i)
	} else {
		id = pc.ids.at(int(e.i))
	}
	if id == 0 {
		return nil, false
	}
	return pc.dict[id], true
}

// EachEvent calls fn for every retained event named name of the profile
// root (including the events of profiles merged into it), newest first
// within each profile number. The caller holds RLock or is the change
// feed's goroutine.
func (x *Index) EachEvent(root uint32, name string, fn func(Event)) {
	x.EachEventSince(root, name, time.Time{}, fn)
}

// EachEventSince is EachEvent for the events at or after from (the zero
// time: all): each profile's walk stops at its first older event, so its
// cost follows the events since from, not the profile's history.
func (x *Index) EachEventSince(root uint32, name string, from time.Time, fn func(Event)) {
	c := x.events[name]
	if c == nil || x.deleted.Contains(root) {
		return
	}
	lo := x.walkFrom(from)
	nums := x.Nums(root)
	for _, p := range c.parts {
		if p.max < lo {
			continue // the whole part is older than the window
		}
		for _, n := range nums {
			if head, ok := p.firstPos(n); ok {
				for i := head; i >= 0 && p.ts[i] >= lo; i = p.next[i] {
					fn(Event{c, &p.run, i})
				}
			}
		}
	}
	for _, n := range nums {
		if head, ok := c.byProf[n]; ok {
			for i := head; i >= 0 && c.ts[i] >= lo; i = c.next[i] {
				fn(Event{c, nil, i})
			}
		}
	}
}

// walkFrom is the oldest instant (Unix nanoseconds) a walk of events at
// or after from reads: from (the zero time: all), and never before the
// retention horizon.
func (x *Index) walkFrom(from time.Time) int64 {
	if !from.IsZero() && from.After(minInstant) {
		return max(x.retainFrom, from.UnixNano())
	}
	return x.retainFrom
}

// EachEventNewest calls fn for the events named name of the profile root
// (and of the numbers merged into it) at or after from (the zero time:
// all), newest first across all of them, until fn returns false: a walk
// that needs only the newest few stops there. Each run chains a number's
// events newest first; the walk merges those chains. The caller is the
// writer, holds RLock, or reads while the writer waits.
func (x *Index) EachEventNewest(root uint32, name string, from time.Time, fn func(Event) bool) {
	c := x.events[name]
	if c == nil || x.deleted.Contains(root) {
		return
	}
	lo := x.walkFrom(from)
	type cursor struct {
		r *run // nil: the head
		i int32
	}
	var buf [8]cursor
	curs := buf[:0]
	nums := x.Nums(root)
	for _, p := range c.parts {
		if p.max < lo {
			continue
		}
		for _, n := range nums {
			if head, ok := p.firstPos(n); ok && p.ts[head] >= lo {
				curs = append(curs, cursor{&p.run, head})
			}
		}
	}
	for _, n := range nums {
		if head, ok := c.byProf[n]; ok && c.ts[head] >= lo {
			curs = append(curs, cursor{nil, head})
		}
	}
	tsOf := func(cu cursor) int64 {
		if cu.r != nil {
			return cu.r.ts[cu.i]
		}
		return c.ts[cu.i]
	}
	for len(curs) > 0 {
		best, bestTS := 0, tsOf(curs[0])
		for k := 1; k < len(curs); k++ {
			if t := tsOf(curs[k]); t > bestTS {
				best, bestTS = k, t
			}
		}
		cu := curs[best]
		if !fn(Event{c, cu.r, cu.i}) {
			return
		}
		next := c.next
		if cu.r != nil {
			next = cu.r.next
		}
		if j := next[cu.i]; j >= 0 && tsOf(cursor{cu.r, j}) >= lo {
			curs[best].i = j
		} else {
			curs[best] = curs[len(curs)-1]
			curs = curs[:len(curs)-1]
		}
	}
}

// AllClone returns a copy of the live profiles.
func (x *Index) AllClone() *roaring.Bitmap {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.all.Clone()
}

// ID is a live root's canonical id. The caller holds RLock or is the
// change feed's goroutine.
func (x *Index) ID(n uint32) (string, bool) {
	return x.ids.get(n)
}

// Profiles with any event of name (by recorded number, mapped to roots).
func (x *Index) EventProfiles(name string) *roaring.Bitmap {
	out := roaring.New()
	c := x.events[name]
	if c == nil {
		return out
	}
	add := func(num uint32) {
		if r, ok := x.root(num); ok {
			out.Add(r)
		}
	}
	for num := range c.byProf {
		add(num)
	}
	for _, p := range c.parts {
		p.eachHead(add)
	}
	return out
}

// TraitProfiles are the profiles that have a trait key (the head of a
// dotted name).
func (x *Index) TraitProfiles(name string) *roaring.Bitmap {
	if t := x.traits[name]; t != nil {
		return t.keys.Clone()
	}
	return roaring.New()
}

// HasTraitValue reports whether profile n's trait name holds v. The caller
// holds RLock or is the change feed's goroutine.
func (x *Index) HasTraitValue(name string, v any, n uint32) bool {
	t := x.traits[name]
	if t == nil {
		return false
	}
	e := t.vals[canonKey(v)]
	return e != nil && e.contains(n)
}
