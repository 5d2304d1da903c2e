package index

import (
	"cmp"
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
)

// Daily rollups of presence. Every part file holds, for each UTC day its
// events fall on, the bitmap of the profile numbers with an event that
// day, and the same for each value of its low-cardinality property
// columns (made as the part is written, by the checkpoint's goroutine;
// a part only in memory has none). An event
// leaf that only asks whether a profile has an event in its window (no
// aggregate, at most one where-predicate, a count that is the same for
// every count from one up: "did", "did not", "at least once") is the
// union of the bitmaps of the days wholly inside the window (of the
// values the predicate accepts), plus the profiles of the qualifying
// events in the window's two partial days, read from the events
// themselves. The head, and parts without the bitmaps, are read event by
// event.

const dayNs = int64(24 * 60 * 60 * 1e9)

// A column has presence by value when its value ids in the part are all
// below maxDayValues; a part keeps it for its first maxDayCols such.
const (
	maxDayValues = 64
	maxDayCols   = 4
)

// dayOf is the UTC day of Unix nanoseconds t (days since 1970-01-01).
func dayOf(t int64) int64 {
	d := t / dayNs
	if t%dayNs < 0 {
		d--
	}
	return d
}

// dayKey orders a part's bitmaps: by column (0: every event; k+1:
// property column k), value id, then day.
func dayKey(col int, id uint32, day int64) uint64 {
	return uint64(col)<<48 | uint64(id)<<32 | uint64(uint32(int32(day))^1<<31)
}

func keyDay(key uint64) int64 { return int64(int32(uint32(key) ^ 1<<31)) }

// partDays is a part's presence by day: bitmaps by dayKey ascending,
// either made in memory or read in place from the part's file.
type partDays struct {
	keys []uint64
	cols []int             // the property columns with presence by value
	bms  []*roaring.Bitmap // in memory; nil when read from a file
	// In a file: bitmap i is raw[off[i]:off[i+1]] (portable format).
	off []uint64
	raw []byte
}

// bitmap is bitmap i, read only. One read from a file refers to the
// file's mapping: it must not outlive the caller's hold on the part.
func (d *partDays) bitmap(i int) *roaring.Bitmap {
	if d.bms != nil {
		return d.bms[i]
	}
	bm := roaring.New()
	if _, err := bm.FromBuffer(d.raw[d.off[i]:d.off[i+1]]); err != nil {
		return nil // checked when the part was opened
	}
	return bm
}

// gather appends the bitmaps of column col (0: every event), value id,
// days [first, end).
func (d *partDays) gather(col int, id uint32, first, end int64, bms []*roaring.Bitmap) []*roaring.Bitmap {
	i, _ := slices.BinarySearch(d.keys, dayKey(col, id, first))
	for ; i < len(d.keys) && d.keys[i] < dayKey(col, id, end); i++ {
		if bm := d.bitmap(i); bm != nil {
			bms = append(bms, bm)
		}
	}
	return bms
}

// colsOf lists the columns keys hold (keys sorted).
func colsOf(keys []uint64) []int {
	var cols []int
	for _, k := range keys {
		if c := int(k >> 48); c > 0 && (len(cols) == 0 || cols[len(cols)-1] != c-1) {
			cols = append(cols, c-1)
		}
	}
	return cols
}

// makeDays computes a run's presence by day, and by day and value for
// its low-cardinality columns. Events are grouped by day (mostly in
// order: the last day's groups are at hand) and key, then each group's
// numbers are set in a bit set, turned into a bitmap and cleared: no
// sort of numbers.
func makeDays(r *run) *partDays {
	var cols []int
	var vals [][]uint32
	for k := range r.ids {
		if len(cols) == maxDayCols {
			break
		}
		if ids := r.idsOf(k); ids != nil {
			v := ids.decode(make([]uint32, len(r.prof)), 0, len(r.prof))
			if !slices.ContainsFunc(v, func(id uint32) bool { return id >= maxDayValues }) {
				cols, vals = append(cols, k), append(vals, v)
			}
		}
	}
	// A day's groups: [0] every event, [1+c*maxDayValues+id] column c's value id.
	byDay := map[int64][][]uint32{}
	lastDay, last := int64(math.MinInt64), [][]uint32(nil)
	var top uint32
	for i, t := range r.ts {
		if d := dayOf(t); d != lastDay || last == nil {
			if last = byDay[d]; last == nil {
				last = make([][]uint32, 1+len(cols)*maxDayValues)
				byDay[d] = last
			}
			lastDay = d
		}
		n := r.prof[i]
		top = max(top, n)
		last[0] = append(last[0], n)
		for c, v := range vals {
			g := 1 + c*maxDayValues + int(v[i])
			last[g] = append(last[g], n)
		}
	}
	type group struct {
		key  uint64
		nums []uint32
	}
	var all []group
	for d, gs := range byDay {
		for g, nums := range gs {
			if len(nums) == 0 {
				continue
			}
			key := dayKey(0, 0, d)
			if g > 0 {
				key = dayKey(cols[(g-1)/maxDayValues]+1, uint32((g-1)%maxDayValues), d)
			}
			all = append(all, group{key, nums})
		}
	}
	slices.SortFunc(all, func(a, b group) int { return cmp.Compare(a.key, b.key) })
	pd := &partDays{cols: cols}
	dense := make([]uint64, top/64+1)
	for _, g := range all {
		var bm *roaring.Bitmap
		if len(g.nums) < len(dense)/64 { // sorting a few costs less than reading the bit set
			slices.Sort(g.nums)
			bm = roaring.New()
			bm.AddMany(g.nums)
		} else {
			for _, n := range g.nums {
				dense[n/64] |= 1 << (n % 64)
			}
			bm = roaring.FromDense(dense, true) // not false: its dense containers would be the bit set, cleared below
			for _, n := range g.nums {
				dense[n/64] = 0
			}
		}
		bm.RunOptimize()
		pd.keys = append(pd.keys, g.key)
		pd.bms = append(pd.bms, bm)
	}
	return pd
}

// presenceOnly reports whether a leaf's answer depends only on whether a
// profile has a qualifying event (it has no aggregate and at most one
// where-predicate), and whether having one passes.
func presenceOnly(n *condition.Node) (ok, present bool) {
	if len(n.Where) > 1 || n.Aggregate != nil {
		return false, false
	}
	cnt, hasCnt := n.EffectiveCount()
	if !hasCnt {
		return false, false
	}
	// Cmp's answer changes only at Lo, Lo+1, Hi and Hi+1: the same
	// answer at each of them from one up is the same for every count.
	one := cnt.Match(1)
	for _, c := range []int64{2, cnt.Lo - 1, cnt.Lo, cnt.Lo + 1, cnt.Hi, cnt.Hi + 1, math.MaxInt64} {
		if c >= 1 && cnt.Match(c) != one {
			return false, false
		}
	}
	return true, one
}

// present adds to dst (unsorted) the profile numbers with a qualifying
// event (f: nil, or the one predicate) in [lo, hi] in the given runs:
// whole days from the parts' bitmaps (into bms), the rest from the
// events.
func present(runs []*run, days []*partDays, f *filterPlan, lo, hi int64, dst []uint32, bms []*roaring.Bitmap) ([]uint32, []*roaring.Bitmap) {
	// The whole days inside [lo, hi]: [first, end).
	first, end := dayOf(lo), dayOf(hi)
	if dayStart(first) < lo {
		first++
	}
	if dayEnd(end) <= hi {
		end++
	}
	for r, rn := range runs {
		rf := f
		if f != nil && rn.idsOf(f.k) == nil { // the run's events all lack the path
			if !f.ok[0] {
				continue
			}
			rf = nil
		}
		pd := days[r]
		if pd == nil || first >= end || rf != nil && !slices.Contains(pd.cols, rf.k) {
			dst = rn.eventsIn(lo, hi, rf, dst)
			continue
		}
		if rf == nil {
			bms = pd.gather(0, 0, first, end, bms)
		} else {
			for id := range min(len(rf.ok), maxDayValues) {
				if rf.ok[id] {
					bms = pd.gather(rf.k+1, uint32(id), first, end, bms)
				}
			}
		}
		if s := dayStart(first); s > lo {
			dst = rn.eventsIn(lo, s-1, rf, dst)
		}
		if e := dayEnd(end - 1); e < hi {
			dst = rn.eventsIn(e+1, hi, rf, dst)
		}
	}
	return dst, bms
}

// The int64 nanoseconds span days minDay..maxDay, the first and last in
// part.
const (
	minDay = math.MinInt64/dayNs - 1
	maxDay = math.MaxInt64 / dayNs
)

// dayStart is the first nanosecond of day d that an int64 holds.
func dayStart(d int64) int64 {
	if d <= minDay {
		return math.MinInt64
	}
	return d * dayNs
}

// dayEnd is the last nanosecond of day d that an int64 holds.
func dayEnd(d int64) int64 {
	if d >= maxDay {
		return math.MaxInt64
	}
	return dayStart(d+1) - 1
}

// eventsIn appends the profile numbers of the run's events in [lo, hi]
// that f (when not nil) accepts.
func (r *run) eventsIn(lo, hi int64, f *filterPlan, dst []uint32) []uint32 {
	if lo > hi {
		return dst
	}
	var ids *idCol
	if f != nil {
		ids = r.idsOf(f.k)
	}
	for b, bl := range r.blocks {
		if bl.max < lo || bl.min > hi {
			continue
		}
		start, stop := b*blockSize, min((b+1)*blockSize, len(r.prof))
		if f == nil && bl.min >= lo && bl.max <= hi {
			dst = append(dst, r.prof[start:stop]...)
			continue
		}
		for i := start; i < stop; i++ {
			if t := r.ts[i]; t >= lo && t <= hi && (f == nil || f.ok[ids.at(i)]) {
				dst = append(dst, r.prof[i])
			}
		}
	}
	return dst
}
