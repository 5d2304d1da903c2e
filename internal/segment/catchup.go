package segment

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/store"
)

// catchUp re-evaluates, at a start, the profiles of the index journal
// entries whose membership changes a crash lost. OnApply's batch commits
// right after the group's (which holds the journal entry), so a crash in
// between keeps the entry, which the index replays, and loses the changes:
// store.LiveSeqKey then names an earlier entry than the journal's last.
// Every profile those entries touched is re-evaluated against every
// segment, in the applier's order, with reason "event"; one they merged
// away or deleted leaves its segments. A change that entered and left
// within the lost commits is not seen: the stream gets the net change.
func (m *Manager) catchUp(sp *space) error {
	db := m.st.DB()
	done, found, err := store.ReadLiveSeq(db, sp.ws.Num)
	if err != nil {
		return err
	}
	last := sp.ix.JournalSeq()
	if !found || done >= last {
		return nil // never written: the store predates the split commits
	}
	tc, err := sp.ix.JournalTouched(db, done, last)
	if err != nil {
		return err
	}
	nums := tc.Nums
	if !tc.Complete {
		// Entries are missing, which neither a base (it trims through the
		// entries whose changes are written) nor a rebuild (it keeps those
		// after L) should cause: every profile, and every number a segment
		// holds, is looked at, in one step that holds the applier.
		all := sp.ix.AllClone()
		sp.mu.RLock()
		for _, s := range sp.segs {
			all.Or(s.members)
		}
		sp.mu.RUnlock()
		nums = all.ToArray()
	}
	m.log.Warn("re-evaluating the profiles whose membership changes were lost by the last stop",
		"workspace", sp.ws.Name, "journal_entries", last-done, "complete", tc.Complete, "profiles", len(nums))
	return m.in.Run(m.ctx, sp.ws, func(b *pebble.Batch) error {
		lv, err := sp.liveState(b)
		if err != nil {
			return err
		}
		e := &emitter{m: m, sp: sp, lv: lv, b: b, now: m.opts.Now().UTC()}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if err := m.reevaluateAll(e, nums, tc.IDs); err != nil {
			return err
		}
		if err := writeLiveSeq(b, sp); err != nil {
			return err
		}
		return e.finish()
	})
}

// reevaluateAll re-evaluates the roots of nums against every segment.
// First, a profile whose id changed (an anonymous profile identified) or
// that is gone (merged away, deleted) leaves every segment under its old
// id, as OnApply would have had it; the re-evaluation enters the first
// again under its new id. The caller holds sp.mu.
func (m *Manager) reevaluateAll(e *emitter, nums []uint32, ids map[uint32]index.IDChange) error {
	sp := e.sp
	order := sp.order()
	deps := newSegDeps(order)
	roots := map[uint32]bool{}
	for _, n := range nums {
		if r, ok := sp.ix.Root(n); ok && sp.ix.IsLive(r) {
			roots[r] = true
		}
		ch, known := ids[n]
		gone := !sp.ix.IsLive(n)
		renamed := known && ch.Old != "" && ch.New != "" && ch.Old != ch.New
		if !gone && !renamed {
			continue
		}
		old := ch.Old
		if old == "" { // unknown when the journal was incomplete
			if old, _ = sp.ix.ID(n); old == "" {
				old = fmt.Sprint(n)
			}
		}
		reason := ReasonMerge
		if r, ok := sp.ix.Root(n); gone && (!ok || r == n) {
			reason = ReasonDelete
		}
		for _, s := range order {
			if s.members.Contains(n) {
				if err := e.emit(s, n, old, false, reason); err != nil {
					return err
				}
			}
			if gone {
				if err := e.schedule(n, s, time.Time{}, false); err != nil {
					return err
				}
			}
		}
	}
	for _, r := range slices.Sorted(maps.Keys(roots)) {
		t := &touch{reason: ReasonEvent, all: true, events: map[string]bool{}, traits: map[string]bool{}}
		if err := m.reevaluate(e, order, deps, r, nil, false, t, nil); err != nil {
			return err
		}
	}
	return nil
}
