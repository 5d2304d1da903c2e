package segment

import (
	"sync"

	"github.com/cohortdb/cohort/internal/store"
)

// openProgress spreads Open's progress over the workspaces, each weighted
// by its estimated bytes on disk (equally when nothing is on disk yet); in
// a workspace the index load is nine tenths and its segments the rest.
type openProgress struct {
	fn      func(float64)
	weights []float64 // fractions of the whole, summing to 1
	mu      sync.Mutex
	base    float64 // of the workspaces finished
	last    float64
}

func newOpenProgress(st *store.Store, wss []store.Workspace, fn func(float64)) *openProgress {
	if fn == nil {
		return nil
	}
	p := &openProgress{fn: fn, weights: make([]float64, len(wss))}
	var total float64
	for i, w := range wss {
		span, err := store.ReadLoadSpan(st.DB(), w.Num)
		if err == nil {
			p.weights[i] = float64(span.ProfileBytes + span.EventBytes)
		}
		total += p.weights[i]
	}
	for i := range p.weights {
		if total > 0 {
			p.weights[i] /= total
		} else {
			p.weights[i] = 1 / float64(len(wss))
		}
	}
	fn(0)
	return p
}

// index returns the index-load progress callback of workspace i (nil when
// nothing listens).
func (p *openProgress) index(i int) func(float64) {
	if p == nil {
		return nil
	}
	return func(f float64) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reportLocked(p.base + 0.9*p.weights[i]*f)
	}
}

// done marks workspace i loaded.
func (p *openProgress) done(i int) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.base += p.weights[i]
	p.reportLocked(p.base)
}

// finish reports 1 (also when there was no workspace).
func (p *openProgress) finish() {
	if p != nil {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reportLocked(1)
	}
}

func (p *openProgress) reportLocked(f float64) {
	f = min(f, 1)
	if f > p.last {
		p.last = f
		p.fn(f)
	}
}
