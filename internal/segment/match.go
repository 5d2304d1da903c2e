package segment

import (
	"math"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/model"
)

// profileEval evaluates conditions for one profile from its own traits and
// events: the real-time path. It agrees with Evaluate by construction of
// the tests (the replay test compares the two), and also finds the next
// instant at which the answer could change with no new data (an event
// entering or leaving a relative window, a date-time trait or property
// crossing a within_last bound).
type profileEval struct {
	ix     *index.Index
	root   uint32
	traits map[string]any
	now    time.Time
	member func(segID string) bool
	next   int64 // earliest instant > now at which an input changes; MaxInt64 for never
}

func newProfileEval(ix *index.Index, root uint32, traits map[string]any, now time.Time, member func(string) bool) *profileEval {
	return &profileEval{ix: ix, root: root, traits: traits, now: now, member: member, next: math.MaxInt64}
}

// due notes t as a candidate change instant.
func (e *profileEval) due(t time.Time) {
	if t.After(e.now) {
		e.next = min(e.next, t.UnixNano())
	}
}

func (e *profileEval) match(n *condition.Node) bool {
	switch n.Kind {
	case condition.And:
		ok := true
		for _, c := range n.Children {
			// No short-circuit: every child's change instants count.
			if !e.match(c) {
				ok = false
			}
		}
		return ok
	case condition.Or:
		ok := false
		for _, c := range n.Children {
			if e.match(c) {
				ok = true
			}
		}
		return ok
	case condition.Not:
		return !e.match(n.Children[0])
	case condition.All:
		return true
	case condition.Segment:
		return e.member(n.SegmentID)
	case condition.Trait:
		v, ok := model.Lookup(e.traits, n.Name)
		e.timeTest(n.Test, v, ok)
		return n.Test.Match(v, ok, e.now)
	case condition.Event:
		return e.event(n)
	}
	return false
}

// timeTest notes when a within_last test on v changes its answer.
func (e *profileEval) timeTest(t *condition.Test, v any, present bool) {
	if t.Op != condition.OpWithinLast && t.Op != condition.OpNotWithinLast || !present {
		return
	}
	s, ok := v.(string)
	if !ok {
		return
	}
	if ts, ok := model.ParseTime(s); ok {
		e.due(ts)                 // enters (now − d, now] when now reaches it
		e.due(ts.Add(t.Duration)) // leaves when it turns d old
	}
}

func (e *profileEval) event(n *condition.Node) bool {
	count, agg := e.eventStats(n)
	if c, ok := n.EffectiveCount(); ok && !c.Match(count) {
		return false
	}
	if agg != nil {
		return n.Aggregate.Match(agg.Result())
	}
	return true
}

// eventStats counts the profile's events that satisfy an event leaf's
// name, where-predicates and window, and folds its aggregate (nil without
// one) over them.
func (e *profileEval) eventStats(n *condition.Node) (int64, *condition.AggState) {
	var count int64
	var agg *condition.AggState
	if n.Aggregate != nil {
		agg = n.Aggregate.NewState()
	}
	// An event that left a relative window, or lies outside a fixed
	// range, can never count again: its where-predicates (and the
	// instants at which a within_last predicate on it would flip) do not
	// matter, so they are not evaluated.
	// The walk itself stops at the first event before the window (a
	// profile's events come newest first), so its cost follows the events
	// in the window, not the profile's history.
	var gone func(ts time.Time) bool
	var since time.Time
	switch n.Window.Kind {
	case condition.WindowLast:
		cut := e.now.Add(-n.Window.Last)
		gone = func(ts time.Time) bool { return !ts.After(cut) }
		since = cut.Add(time.Nanosecond)
	case condition.WindowRange:
		gone = func(ts time.Time) bool { return !n.Window.Contains(ts, e.now) }
		since = n.Window.From
	}
	// A leaf that asks for at least need events (no aggregate) over all
	// history or a fixed range is decided by the newest need of them: its
	// walk goes newest first and stops there. Its answer can change only
	// when one of those stops counting (a within_last predicate on it
	// flips), so the instants noted for them are the ones that matter;
	// events further back can only keep the count up. Not with a relative
	// window: the noted exit would then be the need-th newest event's,
	// which moves with every new event, and rewriting the profile's timer
	// each time costs more than the walk saves (BENCHMARKS.md).
	var need int64 // 0: walk every event
	if c, ok := n.EffectiveCount(); ok && n.Aggregate == nil && n.Window.Kind != condition.WindowLast && (c.Op == condition.OpGte || c.Op == condition.OpGt) {
		need = c.Lo
		if c.Op == condition.OpGt {
			need++ // gt MaxInt64 wraps to MinInt64: decided below, as false
		}
		if need <= 0 {
			return 0, nil // decided without a walk (0 events), and nothing changes it
		}
	}
	visit := func(ev index.Event) {
		if gone != nil && gone(ev.Time()) {
			return
		}
		for i := range n.Where {
			p := &n.Where[i]
			v, ok := ev.Prop(p.Property)
			e.timeTest(&p.Test, v, ok)
			if !p.Match(v, ok, e.now) {
				return
			}
		}
		ts := ev.Time()
		if n.Window.Kind == condition.WindowLast {
			e.due(ts)
			e.due(ts.Add(n.Window.Last))
		}
		if !n.Window.Contains(ts, e.now) {
			return
		}
		count++
		if agg != nil {
			v, ok := ev.Prop(n.Aggregate.Property)
			agg.Add(v, ok)
		}
	}
	if need > 0 {
		e.ix.EachEventNewest(e.root, n.Name, since, func(ev index.Event) bool {
			visit(ev)
			return count < need
		})
		return count, agg
	}
	e.ix.EachEventSince(e.root, n.Name, since, visit)
	return count, agg
}

// nextChange is the instant found by the last evaluations, if any.
func (e *profileEval) nextChange() (time.Time, bool) {
	if e.next == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.Unix(0, e.next).UTC(), true
}
