package segment

import (
	"context"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/store"
)

// Explanation says why a user is in or out of a segment.
type Explanation struct {
	Segment string `json:"segment"`
	User    string `json:"user"`
	// Member is the stored membership.
	Member bool `json:"member"`
	// Matches is the condition's verdict over the user's data now. It
	// equals Member except while a re-evaluation is deferred (a build in
	// progress, a throttled bot's quiet period); NextChangeAt then says
	// when it is due.
	Matches      bool          `json:"matches"`
	Status       string        `json:"status"`
	Leaves       []ExplainLeaf `json:"leaves"`
	NextChangeAt *time.Time    `json:"next_change_at,omitempty"`
}

// ExplainLeaf is one leaf condition's part of an explanation.
type ExplainLeaf struct {
	Path    string `json:"path"`
	Matched bool   `json:"matched"`
	// Value is what the leaf saw: the trait's value (null when absent),
	// an event leaf's aggregate (null over no events) or else its count,
	// the referenced segment's membership, or true for {"all": true}.
	Value any `json:"value"`
	// Count is an event leaf's number of qualifying events.
	Count *int64 `json:"count,omitempty"`
}

// Explain evaluates a segment's condition for one user, leaf by leaf. It
// runs in the applier, after firing the timers due by now, and evaluates
// with the per-profile code the real-time path uses (match.go) over the
// same index, traits and memberships that path last saw, so Member (the
// stored membership) and Matches agree whenever no re-evaluation is
// pending.
func (m *Manager) Explain(ctx context.Context, w *ingest.Workspace, userID, segID string) (*Explanation, error) {
	sp := m.space(w)
	var out *Explanation
	var verr error
	err := m.in.Run(ctx, w, func(b *pebble.Batch) error {
		now := m.opts.Now().UTC()
		if err := m.fire(sp, b, now); err != nil {
			return err
		}
		num, ok, err := store.ResolveID(b, w.Num, userID)
		if err != nil {
			return err
		}
		var p *store.ProfileRecord
		if ok {
			if p, ok, err = store.ReadProfile(b, w.Num, num); err != nil {
				return err
			}
		}
		if !ok || !sp.ix.IsLive(num) {
			verr = fmt.Errorf("user %q: %w", userID, ErrNotFound)
			return nil
		}
		sp.mu.RLock()
		defer sp.mu.RUnlock()
		s, ok := sp.segs[segID]
		if !ok {
			verr = fmt.Errorf("segment %q: %w", segID, ErrNotFound)
			return nil
		}
		out = sp.explain(s, num, p, now)
		if due, ok := sp.timer(num, s.ID); ok && (out.NextChangeAt == nil || due.Before(*out.NextChangeAt)) {
			out.NextChangeAt = &due
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, verr
}

// explain evaluates s for one live profile; the caller holds sp.mu.
func (sp *space) explain(s *seg, num uint32, p *store.ProfileRecord, now time.Time) *Explanation {
	member := func(id string) bool {
		o, ok := sp.segs[id]
		return ok && o.members.Contains(num)
	}
	pe := newProfileEval(sp.ix, num, p.Traits, now, member)
	out := &Explanation{Segment: s.ID, User: p.ID, Member: s.members.Contains(num), Status: s.Status,
		Matches: pe.match(s.node), Leaves: []ExplainLeaf{}}
	if s.node.IsTimeDependent() {
		if due, ok := pe.nextChange(); ok {
			out.NextChangeAt = &due
		}
	}
	for _, n := range s.node.Leaves() {
		leaf := ExplainLeaf{Path: n.Path}
		switch n.Kind {
		case condition.All:
			leaf.Matched, leaf.Value = true, true
		case condition.Segment:
			leaf.Matched = member(n.SegmentID)
			leaf.Value = leaf.Matched
		case condition.Trait:
			v, ok := model.Lookup(p.Traits, n.Name)
			leaf.Matched = n.Test.Match(v, ok, now)
			if ok {
				leaf.Value = v
			}
		case condition.Event:
			le := newProfileEval(sp.ix, num, p.Traits, now, member)
			le.exact = true // the whole count, not the deciding one
			leaf.Matched = le.event(n)
			count, agg := le.eventStats(n)
			leaf.Count, leaf.Value = &count, count
			if agg != nil {
				leaf.Value = nil
				if r, ok := agg.Result(); ok {
					leaf.Value = r
				}
			}
		}
		out.Leaves = append(out.Leaves, leaf)
	}
	return out
}

// timer is the pending re-evaluation of (num, segment), if any.
func (sp *space) timer(num uint32, segID string) (time.Time, bool) {
	lv := sp.live
	if lv == nil {
		return time.Time{}, false
	}
	lv.tmu.Lock()
	defer lv.tmu.Unlock()
	due, ok := lv.timers[timerID{num, segID}]
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(0, due).UTC(), true
}
