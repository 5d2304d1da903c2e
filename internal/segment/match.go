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
	// running, when set, holds the applier's running states, read (not
	// written): states made by long walks go to made instead.
	running *runStates
	made    []madeRun
	// exact: every count is the whole count, walked (explanations).
	exact bool
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
// one) over them. Unless e.exact, a count-only leaf's count may stop at
// the count that decides it, and a kept running state answers without a
// walk (running.go).
func (e *profileEval) eventStats(n *condition.Node) (int64, *condition.AggState) {
	if !e.exact {
		if s := e.running.get(n, e.root); s != nil {
			return s.count, s.agg
		}
	}
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
	// A count-only leaf is decided by its newest need events, need being
	// the count from which every count answers alike (at least 3: 3;
	// fewer than 3: 3; exactly 3: 4): its walk goes newest first and
	// stops there. Its answer can change only when one of those stops
	// counting (leaves a relative window, a within_last predicate on it
	// flips): the others can only keep the count at need or above, so the
	// instants noted for the visited ones are the ones that matter. With
	// a relative window, the exit noted is the need-th newest event's,
	// which moves later with every new event: an event's re-evaluation
	// only ever moves a timer earlier (emitter.scheduleEarlier), so that
	// costs no timer write, only a firing now and then that finds the
	// later instant.
	var need int64 // 0: walk every event
	if c, ok := n.EffectiveCount(); ok && !e.exact && n.Aggregate == nil {
		if k, ok := decidingCount(c); ok {
			if k <= 0 {
				return 0, nil // every count answers as 0 does, and nothing changes it
			}
			need = k
		}
	}
	visited := 0
	visit := func(ev index.Event) {
		visited++
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
		if count < need {
			e.keep(n, visited, count, agg) // the whole history was walked
		}
		return count, agg
	}
	e.ix.EachEventSince(e.root, n.Name, since, visit)
	e.keep(n, visited, count, agg)
	return count, agg
}

// keep hands a long walk's count and aggregate to the applier as the
// leaf's running state for the profile, when the leaf can keep one.
func (e *profileEval) keep(n *condition.Node, visited int, count int64, agg *condition.AggState) {
	if e.exact || !e.running.keeps(n, visited) || agg != nil && agg.Values() > maxRunValues {
		return
	}
	e.made = append(e.made, madeRun{n: n, root: e.root, s: &runState{count: count, agg: agg}})
}

// decidingCount is the count from which every count answers c alike,
// and false when only MaxInt64 or none is.
func decidingCount(c condition.Cmp) (int64, bool) {
	var last int64 // the largest count whose answer may differ from the next one's
	switch c.Op {
	case condition.OpGte, condition.OpLt:
		return c.Lo, true
	case condition.OpGt, condition.OpLte, condition.OpEq, condition.OpNeq:
		last = c.Lo
	case condition.OpBetween:
		last = max(c.Lo, c.Hi)
	default:
		return 0, false
	}
	if last == math.MaxInt64 {
		return 0, false
	}
	return last + 1, true
}

// nextChange is the instant found by the last evaluations, if any.
func (e *profileEval) nextChange() (time.Time, bool) {
	if e.next == math.MaxInt64 {
		return time.Time{}, false
	}
	return time.Unix(0, e.next).UTC(), true
}
