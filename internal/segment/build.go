package segment

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// buildAndWait queues a build of a segment version and waits up to
// BuildWait for it, then answers with the segment as it is.
func (m *Manager) buildAndWait(ctx context.Context, w *ingest.Workspace, id string, version uint64) (*Segment, error) {
	req := buildReq{ws: w.Num, id: id, version: version, done: make(chan struct{})}
	m.space(w).addPending(1)
	m.enqueue(req)
	t := time.NewTimer(m.opts.BuildWait)
	defer t.Stop()
	select {
	case <-req.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return m.Get(w, id)
}

func (m *Manager) buildLoop() {
	defer m.wg.Done()
	for {
		req, ok := m.dequeue()
		if !ok {
			select {
			case <-m.stop:
				return
			case <-m.wake:
				continue
			}
		}
		if err := m.build(req); err != nil && m.ctx.Err() == nil {
			m.log.Error("segment build failed", "segment", req.id, "err", err)
		}
		if req.done != nil {
			close(req.done)
		}
		m.buildDone()
		select {
		case <-m.stop:
			return
		default:
		}
	}
}

// build evaluates a segment version over the index outside the applier,
// then installs the result in the applier: profiles touched since the
// evaluation are re-evaluated one by one, the difference with the previous
// membership is emitted (reason build for a new segment, definition for an
// edit), the membership snapshot and timers are written, and segments that
// refer to this one are rebuilt before the build counts as done, so an
// answer to an edit already holds every segment the edit changed.
func (m *Manager) build(req buildReq) error {
	queue := []buildReq{req}
	for len(queue) > 0 {
		r := queue[0]
		queue = queue[1:]
		deps, err := m.buildOne(r)
		if err != nil {
			// The dependents not built were counted as pending.
			if sp := m.spaceNum(r.ws); sp != nil && len(queue)+len(deps) > 0 {
				sp.addPending(-(len(queue) + len(deps)))
			}
			return fmt.Errorf("segment %q: %w", r.id, err)
		}
		queue = append(queue, deps...)
	}
	return nil
}

// buildOne builds one segment version and answers with the segments that
// refer to it and must be rebuilt because its membership changed.
func (m *Manager) buildOne(req buildReq) ([]buildReq, error) {
	sp := m.spaceNum(req.ws)
	if sp == nil || sp.ws == nil {
		return nil, fmt.Errorf("workspace %d unknown", req.ws)
	}
	defer sp.addPending(-1)
	sp.mu.RLock()
	s, ok := sp.segs[req.id]
	if !ok || s.Version != req.version {
		sp.mu.RUnlock()
		return nil, nil // deleted or redefined since: a newer build follows
	}
	node := s.node
	sp.mu.RUnlock()

	start := time.Now()
	now := m.opts.Now().UTC()
	sp.ix.RLock()
	gen0 := sp.ix.Gen()
	sp.ix.RUnlock()
	res, err := EvaluateContext(m.ctx, sp.ix, node, now, sp.refs, true)
	if err != nil {
		return nil, fmt.Errorf("evaluate: %w", err)
	}
	// Profiles with data a relative window or within_last reads get a
	// timer; they are found now, outside the applier.
	var timed *roaring.Bitmap
	if node.IsTimeDependent() {
		timed = sp.timeCandidates(node)
	}
	var dependents []buildReq
	err = m.in.Run(m.ctx, sp.ws, func(b *pebble.Batch) error {
		lv, err := sp.liveState(b)
		if err != nil {
			return err
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		s, ok := sp.segs[req.id]
		if !ok || s.Version != req.version {
			return nil
		}
		members := res.Members
		e := &emitter{m: m, sp: sp, lv: lv, b: b, now: m.opts.Now().UTC()}
		// Catch up with the commits made since the evaluation.
		var since []uint32
		keep := lv.touched[:0]
		for _, t := range lv.touched {
			if t.gen > gen0 {
				since = append(since, t.roots...)
			}
			if lv.pendingBuilds > 1 {
				keep = append(keep, t)
			}
		}
		lv.touched = keep
		if sp.ix.Gen() != gen0 {
			members = members.Clone()
			for _, root := range dedup(since) {
				if !sp.ix.IsLive(root) {
					members.Remove(root)
					continue
				}
				p, found, err := store.ReadProfile(b, sp.ws.Num, root)
				if err != nil {
					return err
				}
				if !found {
					members.Remove(root)
					continue
				}
				r := root
				pe := newProfileEval(sp.ix, root, p.Traits, e.now, func(id string) bool {
					o, ok := sp.segs[id]
					return ok && o.members.Contains(r)
				})
				if pe.match(node) {
					members.Add(root)
				} else {
					members.Remove(root)
				}
			}
			members.And(sp.ix.All())
		}
		reason := ReasonDefinition
		if !s.built {
			reason = ReasonBuild
		}
		exits := roaring.AndNot(s.members, members)
		enters := roaring.AndNot(members, s.members)
		for it := exits.Iterator(); it.HasNext(); {
			n := it.Next()
			id, _ := sp.ix.ID(n)
			if id == "" {
				id = fmt.Sprint(n)
			}
			if err := e.emit(s, n, id, false, reason); err != nil {
				return err
			}
		}
		for it := enters.Iterator(); it.HasNext(); {
			n := it.Next()
			id, _ := sp.ix.ID(n)
			if err := e.emit(s, n, id, true, reason); err != nil {
				return err
			}
		}
		s.members = members
		if e.dirty == nil {
			e.dirty = map[*seg]bool{}
		}
		e.dirty[s] = true
		s.built = true
		s.Status, s.Progress = StatusReady, 1
		s.Size = members.GetCardinality()
		s.Criteria = res.Criteria
		s.SnapshotSeq = lv.seq
		// Timers: clear this segment's old ones, set the new.
		if err := m.resetTimers(e, s, node, timed); err != nil {
			return err
		}
		snap, err := store.EncodeBitmap(members)
		if err != nil {
			return err
		}
		if err := b.Set(store.MembersKey(sp.ws.Num, s.ID), snap, nil); err != nil {
			return err
		}
		if err := putRecord(b, sp.ws.Num, s.Segment); err != nil {
			return err
		}
		if enters.GetCardinality()+exits.GetCardinality() > 0 {
			for _, o := range sp.segs {
				if o.ID != s.ID && slices.Contains(o.node.SegmentRefs(), s.ID) {
					dependents = append(dependents, buildReq{ws: req.ws, id: o.ID, version: o.Version})
				}
			}
		}
		return e.finish()
	})
	if err != nil {
		return nil, err
	}
	m.m.build.Observe(time.Since(start).Seconds())
	// Count the dependents as pending now, so commits made before their
	// evaluation are logged for their catch-up.
	sp.addPending(len(dependents))
	return dependents, nil
}

// spaceNum is the workspace's segment space, or nil before it is known.
func (m *Manager) spaceNum(ws uint32) *space {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.spaces[ws]
}

// timeCandidates are the profiles that have data a time-dependent leaf of
// n reads: events of its windowed event names, or its within_last traits.
func (sp *space) timeCandidates(n *condition.Node) *roaring.Bitmap {
	sp.ix.RLock()
	defer sp.ix.RUnlock()
	out := roaring.New()
	n.Walk(func(l *condition.Node) bool {
		switch l.Kind {
		case condition.Event:
			out.Or(sp.ix.EventProfiles(l.Name))
		case condition.Trait:
			if l.Test.Op == condition.OpWithinLast || l.Test.Op == condition.OpNotWithinLast {
				head := l.Name
				for i := range head {
					if head[i] == '.' {
						head = head[:i]
						break
					}
				}
				out.Or(sp.ix.TraitProfiles(l.Name))
				out.Or(sp.ix.TraitProfiles(head))
			}
		}
		return true
	})
	out.And(sp.ix.All())
	return out
}

// resetTimers recomputes the timers of every candidate profile for s.
func (m *Manager) resetTimers(e *emitter, s *seg, node *condition.Node, timed *roaring.Bitmap) error {
	lv := e.lv
	lv.tmu.Lock()
	var old []timerID
	for id := range lv.timers {
		if id.seg == s.ID {
			old = append(old, id)
		}
	}
	lv.tmu.Unlock()
	for _, id := range old {
		if err := e.schedule(id.num, s, time.Time{}, false); err != nil {
			return err
		}
	}
	if timed == nil {
		return nil
	}
	sp := e.sp
	// The profile record is read only when the condition tests a trait.
	readsTraits := len(node.TraitNames()) > 0
	for it := timed.Iterator(); it.HasNext(); {
		root := it.Next()
		if !sp.ix.IsLive(root) {
			continue
		}
		var traits map[string]any
		if readsTraits {
			p, found, err := store.ReadProfile(e.b, sp.ws.Num, root)
			if err != nil {
				return err
			}
			if !found {
				continue
			}
			traits = p.Traits
		}
		pe := newProfileEval(sp.ix, root, traits, e.now, func(id string) bool {
			o, ok := sp.segs[id]
			return ok && o.members.Contains(root)
		})
		pe.match(node)
		if due, ok := pe.nextChange(); ok {
			if err := e.schedule(root, s, due, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func dedup(xs []uint32) []uint32 {
	slices.Sort(xs)
	return slices.Compact(xs)
}

// addPending counts builds queued for the space (while any is, commits
// log the profiles they touch so a build can catch up).
func (sp *space) addPending(delta int) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.live == nil {
		sp.live = &liveState{}
	}
	sp.live.pendingBuilds += delta
}
