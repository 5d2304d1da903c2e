package segment

import "github.com/cohortdb/cohort/internal/ingest"

// ReevaluateEvent re-evaluates profile num against the segments that read
// event name, as a step in which the profile got such an event does
// (without the writing), keeps the running states its walks made and
// returns how many segments matched. Benchmarks call it while nothing is
// submitted: it does the applier's work on the caller's goroutine.
func (m *Manager) ReevaluateEvent(w *ingest.Workspace, num uint32, name string) int {
	sp := m.space(w)
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.running == nil {
		sp.running = newRunStates(m.opts.RunsFrom)
	}
	order := sp.order()
	job := &evalJob{root: num, t: &touch{events: map[string]bool{name: true}, traits: map[string]bool{}}, traits: map[string]any{}, have: true}
	m.decide(sp, order, newSegDeps(order), m.opts.Now().UTC(), job, nil, nil)
	sp.running.keep(job.made)
	in := 0
	for _, v := range job.verdicts {
		if v.in {
			in++
		}
	}
	return in
}
