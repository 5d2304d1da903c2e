package index

import (
	"maps"
	"math"
	"slices"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
)

// Daily rollups of presence. Every part keeps, for each UTC day its
// events fall on, the bitmap of the profile numbers with an event that
// day (made when the part is made, written in its file). An event leaf
// that only asks whether a profile has an event in its window (no where,
// no aggregate, a count that is the same for every count from one up:
// "did", "did not", "at least once") is the union of the bitmaps of the
// days wholly inside the window, plus the profiles of the events in the
// window's two partial days, read from the events themselves. The head,
// and parts of files without days, are read event by event.

const dayNs = int64(24 * 60 * 60 * 1e9)

// dayOf is the UTC day of Unix nanoseconds t (days since 1970-01-01).
func dayOf(t int64) int64 {
	d := t / dayNs
	if t%dayNs < 0 {
		d--
	}
	return d
}

// partDays is a part's presence by day: days ascending, with each day's
// bitmap, either made in memory or read in place from the part's file.
type partDays struct {
	days []int32
	bms  []*roaring.Bitmap // in memory; nil when read from a file
	// In a file: bitmap i is raw[off[i]:off[i+1]] (portable format).
	off []uint64
	raw []byte
}

// bitmap is day i's bitmap, read only. One read from a file refers to the
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

// makeDays computes a run's presence by day. Events are grouped by day
// (mostly in order: the last day's group is at hand), then each day's
// numbers are set in a bit set, turned into a bitmap and cleared: no sort.
func makeDays(prof []uint32, ts []int64) *partDays {
	byDay := map[int64][]uint32{}
	lastDay, last := int64(math.MinInt64), []uint32(nil)
	var top uint32
	for i, t := range ts {
		if d := dayOf(t); d != lastDay {
			if last != nil {
				byDay[lastDay] = last
			}
			lastDay, last = d, byDay[d]
		}
		last = append(last, prof[i])
		top = max(top, prof[i])
	}
	if last != nil {
		byDay[lastDay] = last
	}
	pd := &partDays{}
	dense := make([]uint64, top/64+1)
	for _, d := range slices.Sorted(maps.Keys(byDay)) {
		nums := byDay[d]
		for _, n := range nums {
			dense[n/64] |= 1 << (n % 64)
		}
		bm := roaring.FromDense(dense, false)
		for _, n := range nums {
			dense[n/64] = 0
		}
		bm.RunOptimize()
		pd.days = append(pd.days, int32(d))
		pd.bms = append(pd.bms, bm)
	}
	return pd
}

// presenceOnly reports whether a leaf's answer depends only on whether a
// profile has a qualifying event, and whether having one passes.
func presenceOnly(n *condition.Node) (ok, present bool) {
	if len(n.Where) > 0 || n.Aggregate != nil {
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

// present adds to dst (unsorted) the profile numbers with an event in
// [lo, hi] in the given runs: whole days from the parts' bitmaps (into
// bms), the rest from the events.
func present(runs []*run, days []*partDays, lo, hi int64, dst []uint32, bms []*roaring.Bitmap) ([]uint32, []*roaring.Bitmap) {
	// The whole days inside [lo, hi]: [first, end).
	first, end := dayOf(lo), dayOf(hi)
	if dayStart(first) < lo {
		first++
	}
	if dayEnd(end) <= hi {
		end++
	}
	for r, rn := range runs {
		pd := days[r]
		if pd == nil || first >= end {
			dst = rn.eventsIn(lo, hi, dst)
			continue
		}
		for i, d := range pd.days {
			if int64(d) >= first && int64(d) < end {
				if bm := pd.bitmap(i); bm != nil {
					bms = append(bms, bm)
				}
			}
		}
		if s := dayStart(first); s > lo {
			dst = rn.eventsIn(lo, s-1, dst)
		}
		if e := dayEnd(end - 1); e < hi {
			dst = rn.eventsIn(e+1, hi, dst)
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

// eventsIn appends the profile numbers of the run's events in [lo, hi].
func (r *run) eventsIn(lo, hi int64, dst []uint32) []uint32 {
	if lo > hi {
		return dst
	}
	for b, bl := range r.blocks {
		if bl.max < lo || bl.min > hi {
			continue
		}
		start, stop := b*blockSize, min((b+1)*blockSize, len(r.prof))
		if bl.min >= lo && bl.max <= hi {
			dst = append(dst, r.prof[start:stop]...)
			continue
		}
		for i := start; i < stop; i++ {
			if t := r.ts[i]; t >= lo && t <= hi {
				dst = append(dst, r.prof[i])
			}
		}
	}
	return dst
}
