package segment

import "strings"

// segDeps indexes an evaluation order by what each segment reads: from an
// event name, a trait name (or the head of a dotted one) or a segment id
// to the positions in the order of the segments that read it. Built once
// per commit group, it finds the segments a touched profile can affect
// with a few map lookups, where walking every segment's condition tree
// for every touched profile dominated the applier's time.
type segDeps struct {
	events      map[string][]int
	traits      map[string][]int
	refs        map[string][]int // referenced segment id → the referring segments
	timeDep     []bool           // per position: the condition is time-dependent
	readsTraits []bool           // per position: the condition tests a trait
	mark        []bool           // scratch: candidates of the profile being re-evaluated
}

func newSegDeps(order []*seg) *segDeps {
	d := &segDeps{events: map[string][]int{}, traits: map[string][]int{}, refs: map[string][]int{},
		timeDep: make([]bool, len(order)), readsTraits: make([]bool, len(order)), mark: make([]bool, len(order))}
	add := func(m map[string][]int, k string, i int) {
		if l := m[k]; len(l) == 0 || l[len(l)-1] != i {
			m[k] = append(l, i)
		}
	}
	for i, s := range order {
		for _, n := range s.node.EventNames() {
			add(d.events, n, i)
		}
		for _, n := range s.node.TraitNames() {
			d.readsTraits[i] = true
			head, _, _ := strings.Cut(n, ".")
			add(d.traits, n, i)
			add(d.traits, head, i)
		}
		for _, r := range s.node.SegmentRefs() {
			add(d.refs, r, i)
		}
		d.timeDep[i] = s.node.IsTimeDependent()
	}
	return d
}

// candidates marks (in d.mark) the segments that could change for a
// profile whose given events and traits changed.
func (d *segDeps) candidates(events, traits map[string]bool) []bool {
	clear(d.mark)
	for n := range events {
		for _, i := range d.events[n] {
			d.mark[i] = true
		}
	}
	for n := range traits {
		for _, i := range d.traits[n] {
			d.mark[i] = true
		}
	}
	return d.mark
}

// changed marks the segments that refer to segment id, whose membership
// of the profile changed.
func (d *segDeps) changed(id string) {
	for _, i := range d.refs[id] {
		d.mark[i] = true
	}
}

// fork returns deps with a scratch of its own, for another goroutine (the
// rest is read only).
func (d *segDeps) fork() *segDeps {
	c := *d
	c.mark = make([]bool, len(d.mark))
	return &c
}

// mayRead tells whether deciding a profile whose given events and traits
// changed (all: every segment) could evaluate a built segment that tests
// a trait: a candidate, or a segment referring to one, transitively.
func (d *segDeps) mayRead(order []*seg, events, traits map[string]bool, all bool) bool {
	cand := d.candidates(events, traits)
	var queue []int
	for i, c := range cand {
		if c || all {
			queue = append(queue, i)
			cand[i] = true
		}
	}
	for len(queue) > 0 {
		i := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		if order[i].built && d.readsTraits[i] {
			return true
		}
		for _, j := range d.refs[order[i].ID] {
			if !cand[j] {
				cand[j] = true
				queue = append(queue, j)
			}
		}
	}
	return false
}
