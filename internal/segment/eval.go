package segment

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
)

// Criterion is how many profiles one leaf of a condition matches alone.
type Criterion struct {
	Path string `json:"path"`
	Size uint64 `json:"size"`
}

// Refs resolves {"segment": id} to that segment's stored membership.
type Refs func(id string) (*roaring.Bitmap, error)

// Result is an evaluation's answer.
type Result struct {
	Members  *roaring.Bitmap
	Criteria []Criterion // one per leaf, in document order; nil unless asked
}

// Evaluate evaluates a condition over ix at now. With criteria, every leaf
// is evaluated (each leaf's own count is part of the answer) and then
// combined; without, and/or short-circuit and the cheapest operands go
// first.
func Evaluate(ix *index.Index, n *condition.Node, now time.Time, refs Refs, criteria bool) (*Result, error) {
	return EvaluateContext(context.Background(), ix, n, now, refs, criteria)
}

// EvaluateContext is Evaluate for a caller that may give up (a query whose
// client went away, a build at Close): it stops between leaves and within
// event scans when ctx is done, releasing the index's read lock, which the
// applier may be waiting for, and answers ctx's error.
func EvaluateContext(ctx context.Context, ix *index.Index, n *condition.Node, now time.Time, refs Refs, criteria bool) (*Result, error) {
	ix.RLock()
	defer ix.RUnlock()
	e := &evaluator{ctx: ctx, ix: ix, now: now, refs: refs}
	if criteria {
		e.memo = map[*condition.Node]*roaring.Bitmap{}
		leaves := n.Leaves()
		out := make([]Criterion, len(leaves))
		for i, l := range leaves {
			bm, err := e.leaf(l)
			if err != nil {
				return nil, err
			}
			e.memo[l] = bm
			out[i] = Criterion{Path: l.Path, Size: bm.GetCardinality()}
		}
		bm, err := e.eval(n)
		if err != nil {
			return nil, err
		}
		return &Result{Members: bm, Criteria: out}, nil
	}
	bm, err := e.eval(n)
	if err != nil {
		return nil, err
	}
	return &Result{Members: bm}, nil
}

type evaluator struct {
	ctx  context.Context
	ix   *index.Index
	now  time.Time
	refs Refs
	memo map[*condition.Node]*roaring.Bitmap
}

// cost orders operands: stored sets first, then trait lookups, then event
// scans; nested boolean nodes by their most expensive part.
func cost(n *condition.Node) int {
	switch n.Kind {
	case condition.All, condition.Segment:
		return 0
	case condition.Trait:
		return 1
	case condition.Event:
		return 3
	}
	c := 0
	for _, ch := range n.Children {
		c = max(c, cost(ch))
	}
	return c + 1
}

// eval returns a bitmap the caller may modify.
func (e *evaluator) eval(n *condition.Node) (*roaring.Bitmap, error) {
	if bm, ok := e.memo[n]; ok {
		// Each node is evaluated once: the leaf's bitmap (its criterion
		// counted) is handed over, not copied (a copy of a set over ten
		// million profiles costs about a millisecond).
		delete(e.memo, n)
		return bm, nil
	}
	all := e.ix.All()
	switch n.Kind {
	case condition.And:
		kids := slices.Clone(n.Children)
		slices.SortStableFunc(kids, func(a, b *condition.Node) int { return cost(a) - cost(b) })
		var acc *roaring.Bitmap
		for _, k := range kids {
			bm, err := e.eval(k)
			if err != nil {
				return nil, err
			}
			if acc == nil {
				acc = bm
			} else {
				acc.And(bm)
			}
			if acc.IsEmpty() {
				break
			}
		}
		return acc, nil
	case condition.Or:
		parts := make([]*roaring.Bitmap, 0, len(n.Children))
		for _, k := range n.Children {
			bm, err := e.eval(k)
			if err != nil {
				return nil, err
			}
			parts = append(parts, bm)
		}
		return roaring.FastOr(parts...), nil
	case condition.Not:
		bm, err := e.eval(n.Children[0])
		if err != nil {
			return nil, err
		}
		return roaring.AndNot(all, bm), nil
	}
	return e.leaf(n)
}

func (e *evaluator) leaf(n *condition.Node) (*roaring.Bitmap, error) {
	if err := e.ctx.Err(); err != nil {
		return nil, err
	}
	switch n.Kind {
	case condition.All:
		return e.ix.All().Clone(), nil
	case condition.Segment:
		if e.refs == nil {
			return nil, fmt.Errorf("segment %q: references are not available here", n.SegmentID)
		}
		bm, err := e.refs(n.SegmentID)
		if err != nil {
			return nil, err
		}
		return roaring.And(bm, e.ix.All()), nil
	case condition.Trait:
		return e.ix.Trait(n, e.now), nil
	case condition.Event:
		// Between two event leaves, and within a long scan, the applier
		// may go in (a condition of many leaves must not hold it back
		// for its whole length); leaves answered before are ours.
		e.ix.Yield()
		bm := e.ix.EventYielding(e.ctx, n, e.now)
		if err := e.ctx.Err(); err != nil {
			return nil, err // the scan gave up: bm is meaningless
		}
		return bm, nil
	}
	return nil, fmt.Errorf("condition node %s at %q is not a leaf", n.Kind, n.Path)
}
