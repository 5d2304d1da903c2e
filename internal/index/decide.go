package index

import (
	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
)

// decider decides a scanned root against a leaf's count and aggregate,
// with everything that does not depend on the root worked out once: the
// count comparison for small counts in a table, the aggregate function
// as a number, its comparison unboxed (condition.Agg.NumberMatch). A
// sweep decides millions of roots; comparing operator names and boxing
// each result per root took most of a 10M-profile decision.
type decider struct {
	s      *scratch
	cnt    condition.Cmp
	hasCnt bool
	small  [256]bool // count c < 256 passes the count comparison
	fn     aggKind
	aggOK  func(float64) bool
}

type aggKind uint8

const (
	aggNone aggKind = iota
	aggSum
	aggAvg
	aggMinMax
	aggDistinct
)

func newDecider(n *condition.Node, cnt condition.Cmp, hasCnt bool, s *scratch) *decider {
	d := &decider{s: s, cnt: cnt, hasCnt: hasCnt}
	for c := range d.small {
		d.small[c] = !hasCnt || cnt.Match(int64(c))
	}
	if a := n.Aggregate; a != nil {
		d.aggOK = a.NumberMatch()
		switch a.Fn {
		case condition.FnSum:
			d.fn = aggSum
		case condition.FnAvg:
			d.fn = aggAvg
		case condition.FnMin, condition.FnMax:
			d.fn = aggMinMax
		case condition.FnDistinct:
			d.fn = aggDistinct
		}
	}
	return d
}

// keep tells whether root's count and aggregate satisfy the leaf.
func (d *decider) keep(root uint32) bool {
	s := d.s
	c := s.cnt[root]
	if c < uint32(len(d.small)) {
		if !d.small[c] {
			return false
		}
	} else if d.hasCnt && !d.cnt.Match(int64(c)) {
		return false
	}
	switch d.fn {
	case aggSum:
		return d.aggOK(s.cells[root].v)
	case aggAvg:
		cl := &s.cells[root]
		return cl.n > 0 && d.aggOK(cl.v/float64(cl.n))
	case aggMinMax:
		cl := &s.cells[root]
		return cl.n > 0 && d.aggOK(cl.v)
	case aggDistinct:
		return d.aggOK(float64(s.dcnt[root]))
	}
	return true
}

// sweepBitmap decides every number below the scan's size whose count is
// not 0, and returns the bitmap of those whose decision differs from
// zeroOK (the roots the leaf adds or removes), for numbers below
// universe. It builds the bitmap's words 64 numbers at a time: at 10M
// profiles, half of them touched, a branch per number on its count and a
// list of millions of numbers set one by one into a bitmap took most of a
// decision. Counts and distinct counts below 256 are decided by table,
// without a branch; the rest by keep.
func (d *decider) sweepBitmap(zeroOK bool, universe int) *roaring.Bitmap {
	s := d.s
	cnt := s.cnt[:s.size]
	words := (max(universe, s.size) + 63) / 64
	s.dense = grow(s.dense, words)
	var z uint64 // 1 when zeroOK: a touched root is in the bitmap when it fails
	if zeroOK {
		z = 1
	}
	// byCnt[c]: 1 when c passes the count comparison (0 for c = 0, so
	// an untouched root never gets a bit).
	var byCnt [256]uint64
	for c := 1; c < len(byCnt); c++ {
		if d.small[c] {
			byCnt[c] = 1
		}
	}
	switch d.fn {
	case aggNone:
		for w := 0; w*64 < len(cnt); w++ {
			var word uint64
			for i, c := range cnt[w*64 : min(w*64+64, len(cnt))] {
				if c < 256 {
					word |= (byCnt[c] ^ z) & nonZero(c) << i
				} else if d.keep(uint32(w*64+i)) != zeroOK {
					word |= 1 << i
				}
			}
			s.dense[w] = word
		}
	case aggDistinct:
		var byDistinct [256]uint64
		for k := range byDistinct {
			if d.aggOK(float64(k)) {
				byDistinct[k] = 1
			}
		}
		dcnt := s.dcnt[:len(cnt)]
		for w := 0; w*64 < len(cnt); w++ {
			var word uint64
			base := w * 64
			for i, c := range cnt[base:min(base+64, len(cnt))] {
				if k := dcnt[base+i]; c < 256 && k < 256 {
					word |= (byCnt[c]&byDistinct[k] ^ z) & nonZero(c) << i
				} else if c != 0 && d.keep(uint32(base+i)) != zeroOK {
					word |= 1 << i
				}
			}
			s.dense[w] = word
		}
	default:
		for w := 0; w*64 < len(cnt); w++ {
			var word uint64
			for i, c := range cnt[w*64 : min(w*64+64, len(cnt))] {
				if c != 0 && d.keep(uint32(w*64+i)) != zeroOK {
					word |= 1 << i
				}
			}
			s.dense[w] = word
		}
	}
	bm := roaring.FromDense(s.dense[:words], true)
	clear(s.dense[:words])
	return bm
}

// nonZero is 1 for c > 0, else 0, without a branch.
func nonZero(c uint32) uint64 { return uint64(-int64(c)) >> 63 }
