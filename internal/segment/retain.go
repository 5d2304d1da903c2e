package segment

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/ingest"
)

// Retain moves a workspace's retention horizon to from: in the applier's
// order, the index drops the events before it (freeing their memory), and
// every live profile that lost an event is re-evaluated against the
// segments that read that event's name, so memberships change exactly as
// a recompute at the new horizon says, with reason "time". Call it before
// the events are deleted from the store: a crash in between leaves them
// stored, and the next sweep drops them again (re-evaluating, finding
// nothing to change).
func (m *Manager) Retain(ctx context.Context, w *ingest.Workspace, from time.Time) error {
	sp := m.space(w)
	return m.in.Run(ctx, w, func(b *pebble.Batch) error {
		lost := sp.ix.Retain(from)
		if sp.running != nil {
			for _, roots := range lost {
				for it := roots.Iterator(); it.HasNext(); {
					sp.running.drop(it.Next())
				}
			}
		}
		if err := sp.ix.JournalRetain(b, from); err != nil {
			return err
		}
		if err := writeLiveSeq(b, sp); err != nil {
			return err
		}
		lv, err := sp.liveState(b)
		if err != nil {
			return err
		}
		now := m.opts.Now().UTC()
		e := &emitter{m: m, sp: sp, lv: lv, b: b, now: now}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if len(lost) == 0 {
			return e.finish()
		}
		touched := map[uint32]*touch{}
		for _, name := range slices.Sorted(maps.Keys(lost)) {
			for it := lost[name].Iterator(); it.HasNext(); {
				r := it.Next()
				t := touched[r]
				if t == nil {
					t = &touch{reason: ReasonTime, events: map[string]bool{}}
					touched[r] = t
				}
				t.events[name] = true
			}
		}
		roots := slices.Sorted(maps.Keys(touched))
		if lv.pendingBuilds > 0 {
			// A build evaluated before this step catches up with it.
			lv.touched = append(lv.touched, touchedAt{gen: sp.ix.Gen(), roots: roots})
		}
		order := sp.order()
		deps := newSegDeps(order)
		for _, r := range roots {
			if !sp.ix.IsLive(r) {
				continue
			}
			if err := m.reevaluate(e, order, deps, r, nil, false, touched[r], nil); err != nil {
				return err
			}
		}
		return e.finish()
	})
}
