package segment

import (
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// Running states: the live path's answer to a profile's long history.
//
// An event leaf over all history or a fixed range, with no predicate
// that depends on the instant (condition.Node.IsTimeDependent), counts
// and aggregates the same events whenever it is evaluated, plus those
// recorded since. Once re-evaluating a profile for such a leaf walked at
// least runsFrom of its events, the walk's count and aggregate are kept
// (a runState), and every event the index then records for the profile
// is added to them as it is recorded (runStates.add, from index.ApplyEach),
// so the next evaluation reads them instead of walking the history
// again: its cost no longer grows with the profile's history. A leaf with
// a relative window walks only the events inside it, and a count-only
// leaf stops at the count that decides it (match.go), so neither needs
// one.
//
// A state holds exactly what a walk of the index would give at every
// point the live path reads it. Whatever changes a profile's events
// other than a new event drops its states: a merge (the survivor's events
// are now more), a deletion, retention dropping events, and a change of
// the segments' definitions drops them all (runStates.reset). The states are
// the applier's: it adds and drops them, and the deciders it waits for
// read them (a decider's new states come back in its job and are kept by
// the applier). They are in memory only, rebuilt by the next long walk
// after a start.

// runsFrom is how many events a walk visits before its state is kept
// (Options.RunsFrom); shorter walks cost less than the states' memory.
const runsFrom = 256

// maxRuns bounds a workspace's states: past it they are all dropped and
// the busiest profiles make theirs again.
const maxRuns = 1 << 17

// maxRunValues bounds a distinct aggregate's kept values, and so the
// states' memory: at most maxRuns × (about 120 B + 32 values).
const maxRunValues = 32

type runKey struct {
	n    *condition.Node
	root uint32
}

// runState is a leaf's count and aggregate over one profile's events.
type runState struct {
	count int64
	agg   *condition.AggState // nil without an aggregate
}

// add folds one event into s as a walk would (eventStats' visit, for a
// leaf that is not time-dependent).
func (s *runState) add(n *condition.Node, ev index.Event) {
	ts := ev.Time()
	var now time.Time // no test of such a leaf reads the instant
	if !n.Window.Contains(ts, now) {
		return
	}
	for i := range n.Where {
		p := &n.Where[i]
		v, ok := ev.Prop(p.Property)
		if !p.Match(v, ok, now) {
			return
		}
	}
	s.count++
	if s.agg != nil {
		v, ok := ev.Prop(n.Aggregate.Property)
		s.agg.Add(v, ok)
	}
}

// runStates is a workspace's running states.
type runStates struct {
	from   int
	states map[runKey]*runState
	byRoot map[uint32][]*condition.Node // the leaves with a state, by profile
	defs   uint64                       // space.defs the states were made under
}

func newRunStates(from int) *runStates {
	if from <= 0 {
		from = runsFrom
	}
	return &runStates{from: from, states: map[runKey]*runState{}, byRoot: map[uint32][]*condition.Node{}}
}

// keeps reports whether a walk of n for a profile is worth a state.
func (r *runStates) keeps(n *condition.Node, visited int) bool {
	return r != nil && visited >= r.from && !n.IsTimeDependent()
}

// get returns root's state for n, if kept.
func (r *runStates) get(n *condition.Node, root uint32) *runState {
	if r == nil || len(r.states) == 0 {
		return nil
	}
	return r.states[runKey{n, root}]
}

// keep installs states made by a step's walks.
func (r *runStates) keep(made []madeRun) {
	for _, mr := range made {
		if len(r.states) >= maxRuns {
			r.reset(r.defs)
		}
		k := runKey{mr.n, mr.root}
		if _, ok := r.states[k]; ok {
			continue // the same leaf walked twice in a step
		}
		r.states[k] = mr.s
		r.byRoot[mr.root] = append(r.byRoot[mr.root], mr.n)
	}
}

// add folds an event the index just recorded for root into root's
// states for leaves of its name.
func (r *runStates) add(root uint32, name string, ev index.Event) {
	for _, n := range r.byRoot[root] {
		if n.Name != name {
			continue
		}
		s := r.states[runKey{n, root}]
		s.add(n, ev)
		if s.agg != nil && s.agg.Values() > maxRunValues {
			r.drop(root) // a distinct over too many values: walk it
			return
		}
	}
}

// drop forgets root's states.
func (r *runStates) drop(root uint32) {
	for _, n := range r.byRoot[root] {
		delete(r.states, runKey{n, root})
	}
	delete(r.byRoot, root)
}

// reset forgets every state; defs is the definitions' generation the
// next states are made under.
func (r *runStates) reset(defs uint64) {
	clear(r.states)
	clear(r.byRoot)
	r.defs = defs
}

// madeRun is a state a walk made, for the applier to keep.
type madeRun struct {
	n    *condition.Node
	root uint32
	s    *runState
}

// followRuns returns index.ApplyEach's callback bringing the running
// states up to date with c (nil when there are none), after dropping the
// states of every profile c merges, removes or deletes. The applier's.
func (sp *space) followRuns(c *ingest.Changes) func(k int, ev index.Event) {
	r := sp.running
	if r == nil || len(r.states) == 0 {
		return nil
	}
	for _, mg := range c.Merges {
		// Before the merges apply: Dst's root is the survivor whose
		// events grow (a later merge of the group that takes that root
		// names it as its Src).
		r.drop(mg.Src)
		if root, ok := sp.ix.Root(mg.Dst); ok {
			r.drop(root)
		}
	}
	for _, p := range c.Profiles {
		if p.NewID == "" {
			r.drop(p.Num)
		}
	}
	for _, n := range c.Deleted {
		r.drop(n)
	}
	return func(k int, ev index.Event) {
		e := &c.Events[k]
		if root, ok := sp.ix.Root(e.Num); ok && len(r.byRoot[root]) > 0 {
			r.add(root, e.Name, ev)
		}
	}
}
