package index

import (
	"maps"
	"slices"
)

// run is a read-only view of a run of one event name's events in arrival
// order: the column's mutable head, or a sealed part. Positions are the
// run's own.
type run struct {
	prof   []uint32
	ts     []int64
	next   []int32 // position → the same profile's next older position in this run; -1: none
	blocks []block
	ids    []*idCol // by property column (propCol.k); nil or beyond: the events lack the path
	// first finds a profile's newest position in this run.
	first func(num uint32) (int32, bool)
}

// idsOf is the value ids of property column k, or nil when the run's
// events all lack it (the column was made after the run was sealed).
func (r *run) idsOf(k int) *idCol {
	if k < len(r.ids) {
		return r.ids[k]
	}
	return nil
}

// idAt is event i's value id in property column k (0: it lacks the path).
func (r *run) idAt(k int, i int32) uint32 {
	if ids := r.idsOf(k); ids != nil {
		return ids.at(int(i))
	}
	return 0
}

// decodeIDs writes the value ids of column k for events [from, to) into
// dst, zeros when the run lacks the column.
func (r *run) decodeIDs(k int, dst []uint32, from, to int) []uint32 {
	if ids := r.idsOf(k); ids != nil {
		return ids.decode(dst, from, to)
	}
	dst = dst[:to-from]
	clear(dst)
	return dst
}

// part is a sealed run: immutable once made, held in memory until it is
// written, then read through the mapping of its file (partfile.go).
type part struct {
	run
	// Each profile's newest position in the part, by profile number
	// ascending: a binary search finds a profile's chain.
	hprof []uint32
	hpos  []int32
	// heads holds them instead in a part the writer made and did not
	// write yet: sorting a million numbers took ~60 ms on the applier at
	// each checkpoint; the checkpoint's goroutine sorts them as it writes.
	heads map[uint32]int32
	min   int64 // the part's time bounds
	max   int64
	days  *partDays // presence by day (days.go); nil in a file of version 1
	file  *partFile // nil while only in memory
}

func (p *part) firstPos(num uint32) (int32, bool) {
	if p.heads != nil {
		if i, ok := p.heads[num]; ok {
			return i, true
		}
		return -1, false
	}
	i, ok := slices.BinarySearch(p.hprof, num)
	if !ok {
		return -1, false
	}
	return p.hpos[i], true
}

// newPart makes a part of a run's arrays and its chains' heads.
func newPart(r run, heads map[uint32]int32) *part {
	p := &part{run: r}
	p.hprof, p.hpos = sortHeads(heads)
	p.bounds()
	p.first = p.firstPos
	return p // presence by day is made when the part is written
}

// sealedPart is newPart without the sort, for the parts the writer makes
// (sealed heads, retention's copies): the heads stay in their map until
// the checkpoint's goroutine writes the part.
func sealedPart(r run, heads map[uint32]int32) *part {
	p := &part{run: r, heads: heads}
	p.bounds()
	p.first = p.firstPos
	return p
}

// sortHeads lists heads by profile number.
func sortHeads(heads map[uint32]int32) ([]uint32, []int32) {
	nums := slices.Sorted(maps.Keys(heads))
	pos := make([]int32, len(nums))
	for i, n := range nums {
		pos[i] = heads[n]
	}
	return nums, pos
}

// sortedHeads is the part's heads by profile number, sorted now for a
// part sealed and not written (the part itself is left as it is: readers
// may be using it).
func (p *part) sortedHeads() ([]uint32, []int32) {
	if p.heads != nil {
		return sortHeads(p.heads)
	}
	return p.hprof, p.hpos
}

// eachHead calls fn with every profile number that has an event in the
// part.
func (p *part) eachHead(fn func(num uint32)) {
	if p.heads != nil {
		for n := range p.heads {
			fn(n)
		}
		return
	}
	for _, n := range p.hprof {
		fn(n)
	}
}

func (p *part) bounds() {
	for i, b := range p.blocks {
		if i == 0 || b.min < p.min {
			p.min = b.min
		}
		if i == 0 || b.max > p.max {
			p.max = b.max
		}
	}
}

// len is the number of events in the part.
func (p *part) len() int { return len(p.prof) }

// head is a view of the column's mutable head. The caller holds the
// index's lock (either way) or is its writer.
func (c *eventCol) head() *run {
	r := &run{prof: c.prof, ts: c.ts, next: c.next, blocks: c.blocks, ids: make([]*idCol, len(c.order))}
	for k, col := range c.order {
		r.ids[k] = &col.ids
	}
	byProf := c.byProf
	r.first = func(num uint32) (int32, bool) {
		i, ok := byProf[num]
		return i, ok
	}
	return r
}

// snapshot is runs for a scan that may let the writer in while it reads
// (Index.EventYielding): the head's id columns and block bounds are
// copied (the writer widens the one and updates the last of the other in
// place); its other arrays are only appended to, so the captured slices
// keep their contents.
func (c *eventCol) snapshot() []*run {
	out := c.runs()
	h := out[len(out)-1]
	for k, ids := range h.ids {
		cp := *ids
		h.ids[k] = &cp
	}
	h.blocks = slices.Clone(h.blocks)
	return out
}

// daysOf lists the presence by day of the runs a snapshot or runs gives:
// its parts', then nil for the head.
func (c *eventCol) daysOf() []*partDays {
	out := make([]*partDays, 0, len(c.parts)+1)
	for _, p := range c.parts {
		out = append(out, p.days)
	}
	return append(out, nil)
}

// runs lists the column's runs, oldest first: its parts, then the head.
func (c *eventCol) runs() []*run {
	out := make([]*run, 0, len(c.parts)+1)
	for _, p := range c.parts {
		out = append(out, &p.run)
	}
	return append(out, c.head())
}

// events is the number of events the column holds.
func (c *eventCol) events() int {
	n := len(c.prof)
	for _, p := range c.parts {
		n += p.len()
	}
	return n
}

// sealHead makes the head's events a new part, in memory, and leaves the
// head empty. The caller is the index's writer; the swap takes the lock.
func (x *Index) sealHead(c *eventCol) *part {
	if len(c.prof) == 0 {
		return nil
	}
	r := run{prof: c.prof, ts: c.ts, next: c.next, blocks: c.blocks, ids: make([]*idCol, len(c.order))}
	for k, col := range c.order {
		ids := col.ids
		r.ids[k] = &ids
	}
	p := sealedPart(r, c.byProf) // readers only read the head: no lock yet
	x.mu.Lock()
	defer x.mu.Unlock()
	c.parts = append(c.parts, p)
	c.prof, c.ts, c.next, c.blocks, c.byProf = nil, nil, nil, nil, map[uint32]int32{}
	for _, col := range c.order {
		col.ids = newIDCol(0)
	}
	return p
}
