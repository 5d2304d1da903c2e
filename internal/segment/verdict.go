package segment

import (
	"cmp"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// A step re-evaluates every profile it touched against the segments that
// could change for it. Profiles are independent of one another (a
// profile's memberships read only its own traits, events and memberships),
// so they are decided apart from the writing: decide reads the index, the
// traits and the memberships and returns verdicts, without writing
// anything; applyVerdicts then writes the changes and timers, profile by
// profile in number order, so the change stream is the same whether the
// profiles were decided one after another or on several goroutines.

// verdict is the outcome of one segment for one profile.
type verdict struct {
	s      *seg
	in     bool // the profile matches
	change bool // and that differs from its membership
	sched  bool // the segment is time-dependent: set the timer
	due    time.Time
	dueOK  bool
}

// evalJob is one touched profile of a step.
type evalJob struct {
	root     uint32
	t        *touch
	traits   map[string]any
	have     bool // traits holds the profile's traits (false after a fetch: it has no stored record)
	verdicts []verdict
	made     []madeRun // running states its walks made (running.go)
	err      error
}

// decide evaluates job's profile against the segments of order that could
// change for it (only, when set, adds those named). It writes nothing; the
// caller holds sp.mu. deps is the caller's own (candidates scratch).
// needTraits, when the job's traits are not at hand, fetches them (a read
// of the store: only on the applier's goroutine).
func (m *Manager) decide(sp *space, order []*seg, deps *segDeps, now time.Time, job *evalJob, only map[string]bool, needTraits func(*evalJob) error) {
	root, t := job.root, job.t
	var changed []verdict // this profile's memberships changed so far
	member := func(id string) bool {
		for i := len(changed) - 1; i >= 0; i-- {
			if changed[i].s.ID == id {
				return changed[i].in
			}
		}
		s, ok := sp.segs[id]
		return ok && s.members.Contains(root)
	}
	cand := deps.candidates(t.events, t.traits)
	for i, s := range order {
		if !s.built {
			continue
		}
		switch {
		case only != nil:
			if !only[s.ID] && !cand[i] {
				continue
			}
		case !t.all && !cand[i]:
			continue
		}
		if !job.have && deps.readsTraits[i] {
			if needTraits != nil {
				if job.err = needTraits(job); job.err != nil {
					return
				}
			}
			if !job.have {
				return // no stored record: nothing more is evaluated
			}
		}
		pe := newProfileEval(sp.ix, root, job.traits, now, member)
		pe.running = sp.running
		v := verdict{s: s, in: pe.match(s.node)}
		job.made = append(job.made, pe.made...)
		if was := s.members.Contains(root); v.in != was {
			v.change = true
			changed = append(changed, v)
			deps.changed(s.ID)
		}
		if deps.timeDep[i] {
			v.sched = true
			v.due, v.dueOK = pe.nextChange()
		}
		if v.change || v.sched {
			job.verdicts = append(job.verdicts, v)
		}
	}
}

// applyVerdicts writes a decided profile's changes and timers.
func (e *emitter) applyVerdicts(job *evalJob) error {
	user, _ := e.sp.ix.ID(job.root)
	e.origin = job.t.origin
	defer func() { e.origin = "" }()
	for _, v := range job.verdicts {
		if v.change {
			if err := e.emit(v.s, job.root, user, v.in, job.t.reason); err != nil {
				return err
			}
		}
		if v.sched {
			schedule := e.schedule
			if job.t.reason == ReasonEvent {
				schedule = e.scheduleEarlier
			}
			if err := schedule(job.root, v.s, v.due, v.dueOK); err != nil {
				return err
			}
		}
	}
	return nil
}

// parallelFrom is the number of touched profiles from which a step
// decides them on several goroutines.
const parallelFrom = 64

// decideAll decides every job, on up to GOMAXPROCS goroutines when there
// are many (each with its own candidates scratch), taking jobs in turn so
// that a busy profile does not hold up a share of the others. The traits
// the jobs need were fetched before (needTraits is not called here).
func (m *Manager) decideAll(sp *space, order []*seg, deps *segDeps, now time.Time, jobs []*evalJob) {
	from := cmp.Or(m.opts.ParallelFrom, parallelFrom)
	workers := min(runtime.GOMAXPROCS(0), len(jobs)/from+1)
	if workers <= 1 {
		for _, j := range jobs {
			m.decide(sp, order, deps, now, j, nil, nil)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		d := deps
		if w > 0 {
			d = deps.fork()
		}
		wg.Go(func() {
			for {
				k := int(next.Add(1)) - 1
				if k >= len(jobs) {
					return
				}
				m.decide(sp, order, d, now, jobs[k], nil, nil)
			}
		})
	}
	wg.Wait()
}
