package segment

import (
	"container/heap"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// Change reasons.
const (
	ReasonBuild      = "build"
	ReasonEvent      = "event"
	ReasonTrait      = "trait"
	ReasonTime       = "time"
	ReasonMerge      = "merge"
	ReasonDefinition = "definition"
	ReasonDelete     = "delete"
)

// Change is one membership change, as the change stream shows it.
type Change struct {
	Seq     uint64    `json:"seq"`
	Segment string    `json:"segment"`
	User    string    `json:"user"`
	Change  string    `json:"change"` // "enter" or "exit"
	At      time.Time `json:"at"`
	Reason  string    `json:"reason"`
	// Origin names the source record that caused the change (a Kafka
	// record, a binlog position), when it came from a source.
	Origin string `json:"origin,omitempty"`
}

// storedChange is a Change as kept in the store, with the profile number
// its membership snapshot replay needs.
type storedChange struct {
	Change
	Num uint32 `json:"n"`
}

// DecodeChange decodes a stored change record.
func DecodeChange(b []byte) (Change, uint32, error) {
	if c, ok := decodeChangeFast(b); ok {
		return c.Change, c.Num, nil
	}
	var c storedChange
	if err := json.Unmarshal(b, &c); err != nil {
		return Change{}, 0, fmt.Errorf("change record: %v: %w", err, store.ErrCorruption)
	}
	return c.Change, c.Num, nil
}

// liveState is a workspace's real-time membership machinery. Its fields
// are used from the applier goroutine (OnApply and Run functions), except
// where noted.
type liveState struct {
	loaded bool
	seq    uint64 // last change seq written

	// Timers: at most one per (profile, segment). The heap may hold stale
	// entries; an entry is live only while due matches the map.
	tmu    sync.Mutex // guards timers and heap (Tick peeks from another goroutine)
	timers map[timerID]int64
	heap   timerHeap

	// While builds are pending, the roots every commit touched, so a
	// build can catch up with what changed since its evaluation.
	pendingBuilds int // under space.mu
	touched       []touchedAt

	bots map[uint32]*botState // flagged roots' throttles (applier)

	traits traitCache // decoded traits of recently re-evaluated profiles
}

type timerID struct {
	num uint32
	seg string
}

type timerEntry struct {
	due int64
	id  timerID
}

type timerHeap []timerEntry

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].due < h[j].due }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timerEntry)) }
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

type touchedAt struct {
	gen   uint64
	roots []uint32
}

// botState is a flagged profile's throttle: when it was last
// re-evaluated. Entries exist only for flagged profiles.
type botState struct {
	lastEval int64
}

// live returns the space's live state, loading its seq and timers on
// first use. r reads the store (the applier's batch, or the DB at open).
func (sp *space) liveState(r pebble.Reader) (*liveState, error) {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	if sp.live != nil && sp.live.loaded {
		return sp.live, nil
	}
	lv := &liveState{loaded: true, timers: map[timerID]int64{}, bots: map[uint32]*botState{}}
	if sp.live != nil {
		lv.pendingBuilds = sp.live.pendingBuilds
	}
	var err error
	if lv.seq, err = store.ReadChangeSeq(r, sp.ws.Num); err != nil {
		return nil, err
	}
	err = store.ScanTimers(r, sp.ws.Num, func(due time.Time, num uint32, seg string) error {
		id := timerID{num, seg}
		lv.timers[id] = due.UnixNano()
		lv.heap = append(lv.heap, timerEntry{due.UnixNano(), id})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load timers: %w", err)
	}
	heap.Init(&lv.heap)
	sp.live = lv
	return lv, nil
}

// emitter writes the changes of one applier step.
type emitter struct {
	m     *Manager
	sp    *space
	lv    *liveState
	b     *pebble.Batch
	now   time.Time
	n     int           // changes written
	dirty map[*seg]bool // segments whose membership this step changed
	// republish: the set of segments changed (a delete), publish even
	// when no membership did.
	republish bool
	// origin: the source record behind the profile being re-evaluated.
	origin string
}

func (e *emitter) emit(s *seg, num uint32, user string, enter bool, reason string) error {
	e.lv.seq++
	c := storedChange{Change: Change{Seq: e.lv.seq, Segment: s.ID, User: user, At: e.now, Reason: reason, Origin: e.origin}, Num: num}
	if e.dirty == nil {
		e.dirty = map[*seg]bool{}
	}
	e.dirty[s] = true
	if enter {
		c.Change.Change = "enter"
		s.members.Add(num)
	} else {
		c.Change.Change = "exit"
		s.members.Remove(num)
	}
	v, err := encodeChange(&c)
	if err != nil {
		return fmt.Errorf("encode change: %w", err)
	}
	e.n++
	e.m.m.changes.WithLabelValues(reason).Inc()
	return e.b.Set(store.ChangeKey(e.sp.ws.Num, c.Seq), v, nil)
}

// finish publishes the memberships the step changed and records the
// last seq written. The caller holds sp.mu for writing.
func (e *emitter) finish() error {
	if len(e.dirty) > 0 || e.republish {
		e.sp.publish(e.dirty)
	}
	if e.n == 0 {
		return nil
	}
	e.m.dur.written(e.sp.ws.Num, e.lv.seq)
	if err := e.writeHistory(); err != nil {
		return err
	}
	return e.b.Set(store.ChangeSeqKey(e.sp.ws.Num), binary.BigEndian.AppendUint64(nil, e.lv.seq), nil)
}

// schedule sets (or clears, when !ok) the timer of (num, segment).
func (e *emitter) schedule(num uint32, s *seg, due time.Time, ok bool) error {
	lv := e.lv
	id := timerID{num, s.ID}
	lv.tmu.Lock()
	defer lv.tmu.Unlock()
	old, had := lv.timers[id]
	if ok && had && old == due.UnixNano() {
		return nil
	}
	if had {
		delete(lv.timers, id)
		if err := e.b.Delete(store.TimerKey(e.sp.ws.Num, time.Unix(0, old), num, s.ID), nil); err != nil {
			return err
		}
	}
	if !ok {
		return nil
	}
	lv.timers[id] = due.UnixNano()
	heap.Push(&lv.heap, timerEntry{due.UnixNano(), id})
	return e.b.Set(store.TimerKey(e.sp.ws.Num, due, num, s.ID), nil, nil)
}

// scheduleEarlier is schedule for the re-evaluation of a profile that got
// events in the step (with or without trait changes): it only moves the
// timer earlier, never later or away. A timer left
// earlier than needed fires, re-evaluates and finds the later instant
// (or none), so the answer is never late; meanwhile a busy profile's
// events, each moving the exit of a "3 in the last 7 days" a little
// later, write no timer.
func (e *emitter) scheduleEarlier(num uint32, s *seg, due time.Time, ok bool) error {
	e.lv.tmu.Lock()
	old, had := e.lv.timers[timerID{num, s.ID}]
	e.lv.tmu.Unlock()
	if had && (!ok || old <= due.UnixNano()) {
		return nil
	}
	return e.schedule(num, s, due, ok)
}

// scheduleBy makes sure (num, segment) is re-evaluated no later than due.
func (e *emitter) scheduleBy(num uint32, s *seg, due time.Time) error {
	e.lv.tmu.Lock()
	old, had := e.lv.timers[timerID{num, s.ID}]
	e.lv.tmu.Unlock()
	if had && old <= due.UnixNano() {
		return nil
	}
	return e.schedule(num, s, due, true)
}

// order returns the ready segments, every segment after those it refers
// to. The caller holds sp.mu.
func (sp *space) order() []*seg {
	var out []*seg
	seen := map[string]bool{}
	var visit func(s *seg)
	visit = func(s *seg) {
		if seen[s.ID] {
			return
		}
		seen[s.ID] = true
		for _, r := range s.node.SegmentRefs() {
			if d, ok := sp.segs[r]; ok {
				visit(d)
			}
		}
		out = append(out, s)
	}
	for _, id := range slices.Sorted(maps.Keys(sp.segs)) {
		visit(sp.segs[id])
	}
	return out
}

// touch is what changed for one root in one step.
type touch struct {
	reason string
	origin string // the source record that caused it, if any
	all    bool   // evaluate every segment (new profile, merge, id change)
	events map[string]bool
	traits map[string]bool
}

// Listen sets o's listeners to m's: OnRecord, OnApply, OnCommitted and
// OnSynced, which only work together.
func (m *Manager) Listen(o *ingest.Options) {
	o.OnRecord, o.OnApply, o.OnCommitted, o.OnSynced = m.OnRecord, m.OnApply, m.OnCommitted, m.OnSynced
}

// OnRecord is the ingestion path's first listener: it journals a commit
// group's changes to the workspace's index in the group's own batch, so
// the journal holds them exactly when the store does, and loads the live
// state (reading that batch) before OnApply needs it.
func (m *Manager) OnRecord(w *ingest.Workspace, c *ingest.Changes, b *pebble.Batch) error {
	sp := m.space(w)
	if !sp.liveSeqWritten {
		// The first entry since the start: a crash before its changes
		// are written must find the key naming the entry before it.
		if err := writeLiveSeq(b, sp); err != nil {
			return err
		}
		sp.liveSeqWritten = true
	}
	if err := sp.ix.Journal(b, c); err != nil {
		return err
	}
	_, err := sp.liveState(b)
	return err
}

// OnApply is the ingestion path's second listener, called while the
// group's batch commits: it brings the workspace's index up to date with
// the group and updates every affected segment membership for exactly
// the touched profiles, writing the changes, timers and the journal entry
// they answer (store.LiveSeqKey) into b, committed right after the group.
// A start after a crash between the two commits re-evaluates the profiles
// of the entries after that one (Attach).
func (m *Manager) OnApply(w *ingest.Workspace, c *ingest.Changes, b *pebble.Batch) error {
	sp := m.space(w)
	sp.ix.ApplyEach(c, sp.followRuns(c))
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
	if sp.running == nil {
		sp.running = newRunStates(m.opts.RunsFrom)
	}
	if sp.running.defs != sp.defs {
		sp.running.reset(sp.defs)
	}
	order := sp.order()
	if len(order) == 0 && lv.pendingBuilds == 0 {
		// No segment to re-evaluate, no build to catch up: only the
		// trait cache and the bot throttles follow the changes.
		for _, p := range c.Profiles {
			lv.traits.update(p.Num, p.NewID, p.New)
			if p.NewID == "" {
				delete(lv.bots, p.Num)
			}
		}
		m.m.observeLatency(c, now)
		return e.finish()
	}
	deps := newSegDeps(order)

	touched := map[uint32]*touch{}
	get := func(root uint32, reason string) *touch {
		t := touched[root]
		if t == nil {
			t = &touch{reason: reason, events: map[string]bool{}, traits: map[string]bool{}}
			touched[root] = t
		}
		if rank(reason) > rank(t.reason) {
			t.reason = reason
		}
		return t
	}
	mergedSrc := map[uint32]bool{}
	for _, mg := range c.Merges {
		mergedSrc[mg.Src] = true
		if r, ok := sp.ix.Root(mg.Dst); ok {
			get(r, ReasonMerge).all = true
		}
	}
	for _, p := range c.Profiles {
		switch {
		case p.NewID == "": // merged away or deleted: it leaves everything
			reason := ReasonDelete
			if mergedSrc[p.Num] {
				reason = ReasonMerge
			}
			for _, s := range order {
				if s.members.Contains(p.Num) {
					if err := e.emit(s, p.Num, p.OldID, false, reason); err != nil {
						return err
					}
				}
				if err := e.schedule(p.Num, s, time.Time{}, false); err != nil {
					return err
				}
			}
			delete(lv.bots, p.Num)
		case p.OldID == "": // created
			get(p.Num, ReasonTrait).all = true
		case p.OldID != p.NewID: // an anonymous profile got its userId
			for _, s := range order {
				if s.members.Contains(p.Num) {
					if err := e.emit(s, p.Num, p.OldID, false, ReasonMerge); err != nil {
						return err
					}
				}
			}
			get(p.Num, ReasonMerge).all = true
		default:
			t := get(p.Num, ReasonTrait)
			for k, v := range p.New {
				if ov, ok := p.Old[k]; !ok || condition.CanonicalJSON(ov) != condition.CanonicalJSON(v) {
					t.traits[k] = true
				}
			}
			for k := range p.Old {
				if _, ok := p.New[k]; !ok {
					t.traits[k] = true
				}
			}
		}
	}
	for _, ev := range c.Events {
		if r, ok := sp.ix.Root(ev.Num); ok {
			get(r, ReasonEvent).events[ev.Name] = true
		}
	}
	if lv.pendingBuilds > 0 && len(touched) > 0 {
		roots := slices.Collect(maps.Keys(touched))
		lv.touched = append(lv.touched, touchedAt{gen: sp.ix.Gen(), roots: roots})
	}
	newTraits := map[uint32]map[string]any{}
	for _, p := range c.Profiles {
		lv.traits.update(p.Num, p.NewID, p.New)
		if p.NewID != "" {
			newTraits[p.Num] = p.New
		}
	}
	var jobs []*evalJob
	for _, root := range slices.Sorted(maps.Keys(touched)) {
		if !sp.ix.IsLive(root) {
			continue
		}
		t := touched[root]
		if m.throttled(sp, lv, root, now) {
			// Deferred, not dropped: a timer re-evaluates what this
			// touch affects once the bot's quiet period is over.
			due := time.Unix(0, lv.bots[root].lastEval).Add(botEvery)
			cand := deps.candidates(t.events, t.traits)
			for i, s := range order {
				if s.built && (t.all || cand[i]) {
					if err := e.scheduleBy(root, s, due); err != nil {
						return err
					}
				}
			}
			continue
		}
		traits, ok := newTraits[root]
		t.origin = c.Origins[root]
		job := &evalJob{root: root, t: t, traits: traits, have: ok}
		// The store is read here, on the applier's goroutine, for every
		// profile that may need its traits; deciding reads no store.
		if !ok && deps.mayRead(order, t.events, t.traits, t.all) {
			if err := e.fetchTraits(job); err != nil {
				return err
			}
		}
		jobs = append(jobs, job)
	}
	m.decideAll(sp, order, deps, now, jobs)
	for _, job := range jobs {
		if job.err != nil {
			return job.err
		}
		sp.running.keep(job.made)
		if err := e.applyVerdicts(job); err != nil {
			return err
		}
	}
	m.m.observeLatency(c, now)
	return e.finish()
}

func rank(reason string) int {
	switch reason {
	case ReasonMerge:
		return 3
	case ReasonEvent:
		return 2
	case ReasonTrait:
		return 1
	}
	return 0
}

// reevaluate re-evaluates one live root against the segments its touch
// may affect (only among `only` when given), in dependency order,
// emitting every change and rescheduling timers. deps indexes order.
// Unless haveTraits, the root's traits are read from the store when the
// first segment that tests a trait is evaluated (a live root always has
// its profile record; without one, nothing more is evaluated).
func (m *Manager) reevaluate(e *emitter, order []*seg, deps *segDeps, root uint32, traits map[string]any, haveTraits bool, t *touch, only map[string]bool) error {
	job := &evalJob{root: root, t: t, traits: traits, have: haveTraits}
	m.decide(e.sp, order, deps, e.now, job, only, e.fetchTraits)
	if job.err != nil {
		return job.err
	}
	if e.sp.running != nil {
		e.sp.running.keep(job.made)
	}
	return e.applyVerdicts(job)
}

// fetchTraits reads job's profile's traits (through the step's cache).
func (e *emitter) fetchTraits(job *evalJob) error {
	tr, found, err := e.lv.traits.get(e.b, e.sp.ws.Num, job.root)
	if err != nil {
		return err
	}
	job.traits, job.have = tr, found
	return nil
}

// BotTrait is the trait set on profiles whose event rate marks them as
// bots (by the ingestion path, see ingest.BotTrait).
const BotTrait = ingest.BotTrait

// throttled reports whether a flagged bot's re-evaluation is skipped now:
// at most one per botEvery; a timer makes sure the skipped work is done.
const botEvery = 10 * time.Second

func (m *Manager) throttled(sp *space, lv *liveState, root uint32, now time.Time) bool {
	if !sp.ix.HasTraitValue(BotTrait, true, root) {
		delete(lv.bots, root) // never flagged, or the flag was lifted
		return false
	}
	st := lv.bots[root]
	if st == nil {
		st = &botState{}
		lv.bots[root] = st
	}
	if now.UnixNano()-st.lastEval < int64(botEvery) {
		m.m.throttled.Inc()
		return true
	}
	st.lastEval = now.UnixNano()
	return false
}

// Tick fires every timer due at or before now: each (profile, segment)
// is re-evaluated in the applier, in the ingest order, and changes are
// emitted with reason "time".
func (m *Manager) Tick(ctx context.Context, now time.Time) error {
	m.mu.RLock()
	spaces := slices.Collect(maps.Values(m.spaces))
	m.mu.RUnlock()
	for _, sp := range spaces {
		if sp.ws == nil || !sp.hasDue(now) {
			continue
		}
		err := m.in.Run(ctx, sp.ws, func(b *pebble.Batch) error { return m.fire(sp, b, now) })
		if err != nil {
			return fmt.Errorf("timers of workspace %q: %w", sp.ws.Name, err)
		}
	}
	return nil
}

func (sp *space) hasDue(now time.Time) bool {
	sp.mu.RLock()
	lv := sp.live
	sp.mu.RUnlock()
	if lv == nil || !lv.loaded {
		return false
	}
	lv.tmu.Lock()
	defer lv.tmu.Unlock()
	for len(lv.heap) > 0 {
		top := lv.heap[0]
		if d, ok := lv.timers[top.id]; !ok || d != top.due {
			heap.Pop(&lv.heap) // stale
			continue
		}
		return top.due <= now.UnixNano()
	}
	return false
}

// NextDue is the earliest pending timer of any workspace (false if none).
func (m *Manager) NextDue() (time.Time, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var best int64
	found := false
	for _, sp := range m.spaces {
		sp.mu.RLock()
		lv := sp.live
		sp.mu.RUnlock()
		if lv == nil {
			continue
		}
		lv.tmu.Lock()
		for len(lv.heap) > 0 {
			top := lv.heap[0]
			if d, ok := lv.timers[top.id]; !ok || d != top.due {
				heap.Pop(&lv.heap)
				continue
			}
			if !found || top.due < best {
				best, found = top.due, true
			}
			break
		}
		lv.tmu.Unlock()
	}
	return time.Unix(0, best).UTC(), found
}

// PendingTimers counts the pending timers.
func (m *Manager) PendingTimers() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	n := 0
	for _, sp := range m.spaces {
		sp.mu.RLock()
		lv := sp.live
		sp.mu.RUnlock()
		if lv != nil {
			lv.tmu.Lock()
			n += len(lv.timers)
			lv.tmu.Unlock()
		}
	}
	return n
}

func (m *Manager) fire(sp *space, b *pebble.Batch, now time.Time) error {
	lv, err := sp.liveState(b)
	if err != nil {
		return err
	}
	due := map[uint32]map[string]bool{}
	lv.tmu.Lock()
	for len(lv.heap) > 0 && lv.heap[0].due <= now.UnixNano() {
		top := heap.Pop(&lv.heap).(timerEntry)
		if d, ok := lv.timers[top.id]; !ok || d != top.due {
			continue
		}
		m.m.lateness.Observe(float64(now.UnixNano()-top.due) / 1e9)
		delete(lv.timers, top.id)
		if err := b.Delete(store.TimerKey(sp.ws.Num, time.Unix(0, top.due), top.id.num, top.id.seg), nil); err != nil {
			lv.tmu.Unlock()
			return err
		}
		if due[top.id.num] == nil {
			due[top.id.num] = map[string]bool{}
		}
		due[top.id.num][top.id.seg] = true
	}
	lv.tmu.Unlock()
	e := &emitter{m: m, sp: sp, lv: lv, b: b, now: now}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	order := sp.order()
	deps := newSegDeps(order)
	for _, root := range slices.Sorted(maps.Keys(due)) {
		if !sp.ix.IsLive(root) {
			continue
		}
		if err := m.reevaluate(e, order, deps, root, nil, false, &touch{reason: ReasonTime}, due[root]); err != nil {
			return err
		}
	}
	return e.finish()
}

// replayChanges brings the stored membership snapshots up to date with the
// changelog written after them (at open).
func (m *Manager) replayChanges(sp *space, ws uint32) error {
	if len(sp.segs) == 0 {
		return nil
	}
	from := ^uint64(0)
	for _, s := range sp.segs {
		from = min(from, s.SnapshotSeq)
	}
	var ferr error
	err := store.ScanChanges(m.st.DB(), ws, from, func(seq uint64, rec []byte) bool {
		c, num, err := DecodeChange(rec)
		if err != nil {
			ferr = err
			return false
		}
		s, ok := sp.segs[c.Segment]
		if !ok || seq <= s.SnapshotSeq {
			return true
		}
		if c.Change == "enter" {
			s.members.Add(num)
		} else {
			s.members.Remove(num)
		}
		return true
	})
	if ferr != nil {
		return ferr
	}
	return err
}

// ReadChanges reads up to limit changes with since < seq ≤ upTo, of the
// segments keep accepts (all when nil). next is the seq to continue from:
// the last one read, or upTo when the range was exhausted.
func ReadChanges(r pebble.Reader, ws uint32, since, upTo uint64, keep func(segment string) bool, limit int) ([]Change, uint64, error) {
	out := []Change{}
	next := since
	var derr error
	err := store.ScanChanges(r, ws, since, func(seq uint64, rec []byte) bool {
		if seq > upTo || len(out) >= limit {
			return false
		}
		next = seq
		c, _, err := DecodeChange(rec)
		if err != nil {
			derr = err
			return false
		}
		if keep == nil || keep(c.Segment) {
			out = append(out, c)
		}
		return true
	})
	if derr != nil {
		return nil, 0, derr
	}
	if err != nil {
		return nil, 0, err
	}
	if len(out) < limit && next < upTo {
		next = upTo
	}
	return out, next, nil
}

// writeLiveSeq records in b that the membership changes of every index
// journal entry so far are written (with b).
func writeLiveSeq(b *pebble.Batch, sp *space) error {
	if !sp.ix.Persisted() {
		return nil // an index kept in memory: no journal
	}
	return b.Set(store.LiveSeqKey(sp.ws.Num), binary.BigEndian.AppendUint64(nil, sp.ix.JournalSeq()), nil)
}
