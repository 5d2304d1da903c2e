package index

import "github.com/cohortdb/cohort/internal/condition"

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
