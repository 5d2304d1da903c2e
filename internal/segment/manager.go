package segment

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// Sentinel errors the API maps to status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrConflict = errors.New("conflict")
	ErrInvalid  = errors.New("invalid")
)

// Segment statuses.
const (
	StatusBuilding = "building"
	StatusReady    = "ready"
)

// Segment is a segment as the API shows it.
type Segment struct {
	ID        string          `json:"id"`
	Name      string          `json:"name"`
	Condition json.RawMessage `json:"condition"`
	Status    string          `json:"status"`
	Progress  float64         `json:"progress"`
	Size      uint64          `json:"size"`
	Criteria  []Criterion     `json:"criteria"`
	UpdatedAt time.Time       `json:"updated_at"`
	CreatedAt time.Time       `json:"created_at"`
	// Version counts definition changes; a build of an older version is
	// discarded.
	Version uint64 `json:"version"`
	// SnapshotSeq is the changelog seq its stored membership snapshot
	// includes (internal).
	SnapshotSeq uint64 `json:"snapshot_seq,omitempty"`
}

// seg is a segment's live state.
type seg struct {
	Segment
	node    *condition.Node
	members *roaring.Bitmap // live membership (profile numbers)
	built   bool            // members are the result of a build of some version
}

// space is one workspace's segments and index.
//
// Locks, in the order they may be taken (see docs/design.md, "Locks and
// goroutines"): Manager.mu → space.mu → index → liveState.tmu. The
// applier holds space.mu while it changes memberships; readers (queries,
// builds' evaluations, member pages) never take space.mu while they hold
// the index's read lock: they read memberships from view, an immutable
// snapshot the applier publishes after every step.
type space struct {
	ws   *ingest.Workspace
	ix   *index.Index
	mu   sync.RWMutex // guards segs and every seg's fields
	segs map[string]*seg
	live *liveState
	view atomic.Pointer[memberView]
	// liveSeqWritten: store.LiveSeqKey was written since the start
	// (applier goroutine).
	liveSeqWritten bool
	// running holds the live path's running states (running.go; the applier's,
	// made at its first step); defs counts changes of the segments'
	// definitions (under mu), which drop them.
	running *runStates
	defs    uint64
}

// memberView is every segment's membership as of the applier's last
// published step. Neither the map nor its bitmaps are ever modified:
// readers use them without a lock.
type memberView map[string]*roaring.Bitmap

// frozen returns an immutable copy of a live membership bitmap. The live
// bitmap is copy-on-write, so the copy shares its containers until the
// applier next changes one of them; the copy itself is not copy-on-write,
// so readers cloning it never write to it.
func frozen(live *roaring.Bitmap) *roaring.Bitmap {
	live.SetCopyOnWrite(true)
	c := live.Clone()
	c.SetCopyOnWrite(false)
	return c
}

// publish replaces the published memberships of the given segments (and
// drops those no longer defined). The caller holds sp.mu for writing.
func (sp *space) publish(changed map[*seg]bool) {
	old := sp.view.Load()
	next := make(memberView, len(sp.segs))
	for id, s := range sp.segs {
		if old != nil && !changed[s] {
			if bm, ok := (*old)[id]; ok {
				next[id] = bm
				continue
			}
		}
		next[id] = frozen(s.members)
	}
	sp.view.Store(&next)
}

// members is a segment's published membership (nil when undefined).
func (sp *space) members(id string) *roaring.Bitmap {
	if v := sp.view.Load(); v != nil {
		return (*v)[id]
	}
	return nil
}

// Options configure a Manager.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Now        func() time.Time
	// BuildWait is how long Create and Update wait for the build before
	// answering with status "building"; 0 means 2 s.
	BuildWait time.Duration
	// Progress, when set, is called during Open with the fraction loaded
	// (0 to 1, never decreasing; see progress.go for how it is weighed).
	Progress func(fraction float64)
	// IndexDir, when set, persists every workspace's index under it (in a
	// directory named by the workspace's number): a start opens it rather
	// than reading every stored event (index.Open).
	IndexDir string
	// CheckpointEvents and CheckpointEvery say when an index checkpoint is
	// written: once this many events arrived since the last one (0: 1M),
	// or this long after it when anything changed (0: 5 minutes). The
	// events since the last checkpoint are what a start replays.
	CheckpointEvents int
	CheckpointEvery  time.Duration
	// SealEvents seals an event column's head into a part in memory once
	// it holds this many events (0: at checkpoints only); tests set it
	// small.
	SealEvents int
	// ScanYieldBlocks, when not 0, is how often (in blocks of 1,024
	// events) a query's event scan lets the applier in (default 64); tests
	// set 1.
	ScanYieldBlocks int
	// PartialBytes bounds each index's kept partial aggregates of parts
	// (index.SetPartials; config index.partial_cache_bytes; 0: none).
	PartialBytes int
	// ParallelFrom, when not 0, is how many touched profiles a step needs
	// for them to be decided on several goroutines (default 64); tests
	// set 1.
	ParallelFrom int
	// RunsFrom, when not 0, is how many events a live re-evaluation's walk
	// of a leaf visits before the leaf's running state for the profile is
	// kept (running.go; default 256); tests set 1.
	RunsFrom int
}

// Manager owns every workspace's segments.
type Manager struct {
	st   *store.Store
	in   *ingest.Ingester
	opts Options
	log  *slog.Logger
	m    *metrics

	mu     sync.RWMutex
	spaces map[uint32]*space

	// builds queued for the build goroutine (unbounded, so enqueueing
	// never blocks and starts no goroutine); wake signals it.
	qmu   sync.Mutex
	queue []buildReq
	wake  chan struct{}
	// inflight counts queued and running builds; idle is signalled when
	// it drops to zero.
	inflightMu sync.Mutex
	inflight   int
	idle       *sync.Cond
	stop       chan struct{}
	// ctx is done at Close: a build in progress gives up (it is redone
	// at the next start, its segment still "building").
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	dur    durability
}

type buildReq struct {
	ws      uint32
	id      string
	version uint64
	done    chan struct{} // closed when this build finished (or was dropped)
}

// Open loads every workspace's index and segments from the store.
func Open(ctx context.Context, st *store.Store, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BuildWait == 0 {
		opts.BuildWait = 2 * time.Second
	}
	if opts.CheckpointEvents == 0 {
		opts.CheckpointEvents = 1_000_000
	}
	if opts.CheckpointEvery == 0 {
		opts.CheckpointEvery = 5 * time.Minute
	}
	m := &Manager{st: st, opts: opts, log: opts.Logger, m: newMetrics(opts.Registerer),
		spaces: map[uint32]*space{}, wake: make(chan struct{}, 1), stop: make(chan struct{})}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.registerPartials(opts.Registerer)
	m.dur.init()
	m.idle = sync.NewCond(&m.inflightMu)
	wss, err := st.Workspaces()
	if err != nil {
		return nil, err
	}
	prog := newOpenProgress(st, wss, opts.Progress)
	for i, w := range wss {
		start := time.Now()
		o := m.indexOptions(w.Num, prog.index(i))
		// A rebuild keeps the journal entries catchUp has to read.
		if done, found, err := store.ReadLiveSeq(st.DB(), w.Num); err != nil {
			return nil, fmt.Errorf("workspace %q: %w", w.Name, err)
		} else if found {
			o.KeepJournalFrom = done + 1
		}
		ix, err := index.Open(ctx, st.DB(), w.Num, o)
		if err != nil {
			return nil, fmt.Errorf("workspace %q: %w", w.Name, err)
		}
		m.tune(ix)
		sp := &space{ix: ix, segs: map[string]*seg{}}
		if err := m.loadSegments(sp, w.Num); err != nil {
			return nil, fmt.Errorf("workspace %q: %w", w.Name, err)
		}
		sp.publish(nil)
		m.spaces[w.Num] = sp
		seq, err := store.ReadChangeSeq(st.DB(), w.Num)
		if err != nil {
			return nil, err
		}
		m.setDurable(w.Num, seq) // whatever survived a restart is on disk
		m.log.Info("index loaded", "workspace", w.Name, "profiles", ix.Size(), "segments", len(sp.segs), "took", time.Since(start).Round(time.Millisecond))
		prog.done(i)
	}
	prog.finish()
	return m, nil
}

// Attach connects the manager to the ingestion path (which was built with
// m.Listen), starts the build worker and timers, and first re-evaluates
// what a crash left without its membership changes (catchUp).
func (m *Manager) Attach(in *ingest.Ingester) error {
	m.in = in
	m.mu.Lock()
	var pending []buildReq
	for num, sp := range m.spaces {
		w, ok := in.Workspace(num)
		if !ok {
			m.mu.Unlock()
			return fmt.Errorf("workspace %d has segments but is unknown to ingestion", num)
		}
		sp.ws = w
		// Timers are loaded now, so they fire after a restart even before
		// the first commit.
		if _, err := sp.liveState(m.st.DB()); err != nil {
			m.mu.Unlock()
			return fmt.Errorf("workspace %q: %w", w.Name, err)
		}
		for _, s := range sp.segs {
			if s.Status == StatusBuilding {
				pending = append(pending, buildReq{ws: num, id: s.ID, version: s.Version})
			}
		}
	}
	spaces := slices.Collect(maps.Values(m.spaces))
	m.mu.Unlock()
	for _, sp := range spaces {
		if err := m.catchUp(sp); err != nil {
			return fmt.Errorf("workspace %q: %w", sp.ws.Name, err)
		}
	}
	m.wg.Add(1)
	go m.buildLoop()
	for _, b := range pending {
		m.spaces[b.ws].addPending(1)
		m.enqueue(b)
	}
	return nil
}

// enqueue queues a build without blocking the caller.
func (m *Manager) enqueue(b buildReq) {
	m.inflightMu.Lock()
	m.inflight++
	m.inflightMu.Unlock()
	m.qmu.Lock()
	m.queue = append(m.queue, b)
	m.qmu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default: // already signalled
	}
}

// dequeue takes the oldest queued build.
func (m *Manager) dequeue() (buildReq, bool) {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	if len(m.queue) == 0 {
		return buildReq{}, false
	}
	b := m.queue[0]
	m.queue[0] = buildReq{}
	m.queue = m.queue[1:]
	return b, true
}

func (m *Manager) buildDone() {
	m.inflightMu.Lock()
	m.inflight--
	if m.inflight == 0 {
		m.idle.Broadcast()
	}
	m.inflightMu.Unlock()
}

// WaitBuilds blocks until no build is queued or running.
func (m *Manager) WaitBuilds() {
	m.inflightMu.Lock()
	for m.inflight > 0 {
		m.idle.Wait()
	}
	m.inflightMu.Unlock()
}

// Close stops the build worker.
func (m *Manager) Close() {
	m.cancel()
	close(m.stop)
	m.wg.Wait()
}

// CloseIndexes releases the indexes' files. The ingestion path must be
// closed first: no commit may reach an index after.
func (m *Manager) CloseIndexes() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, sp := range m.spaces {
		sp.ix.Close()
	}
}

// indexOptions are how workspace ws's index is opened.
func (m *Manager) indexOptions(ws uint32, progress func(float64)) index.LoadOptions {
	o := index.LoadOptions{Progress: progress, SealEvents: m.opts.SealEvents, Logger: m.log}
	if m.opts.IndexDir != "" {
		o.Dir = filepath.Join(m.opts.IndexDir, strconv.FormatUint(uint64(ws), 10))
	}
	return o
}

func (m *Manager) loadSegments(sp *space, ws uint32) error {
	var ids []string
	err := store.ScanSegments(m.st.DB(), ws, func(id string, rec []byte) error {
		var s seg
		if err := json.Unmarshal(rec, &s.Segment); err != nil {
			return fmt.Errorf("segment %q record: %v: %w", id, err, store.ErrCorruption)
		}
		n, err := condition.Parse(s.Condition)
		if err != nil {
			return fmt.Errorf("segment %q stored condition: %w", id, err)
		}
		s.node = n
		bm, err := store.ReadMembers(m.st.DB(), ws, id)
		if err != nil {
			return err
		}
		s.members, s.built = bm, s.Status == StatusReady || s.SnapshotSeq > 0
		sp.segs[id] = &s
		ids = append(ids, id)
		return nil
	})
	if err != nil {
		return err
	}
	return m.replayChanges(sp, ws)
}

// space returns a workspace's segments, creating them for a new workspace.
func (m *Manager) space(w *ingest.Workspace) *space {
	m.mu.RLock()
	sp := m.spaces[w.Num]
	m.mu.RUnlock()
	if sp != nil {
		return sp
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if sp = m.spaces[w.Num]; sp == nil {
		// A workspace made since the start: nothing of it is stored yet.
		ix := index.New()
		ix.Persist(w.Num, m.indexOptions(w.Num, nil))
		m.tune(ix)
		sp = &space{ws: w, ix: ix, segs: map[string]*seg{}}
		sp.publish(nil)
		m.spaces[w.Num] = sp
	}
	return sp
}

// Index returns a workspace's index.
func (m *Manager) Index(w *ingest.Workspace) *index.Index { return m.space(w).ix }

var segmentID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.:-]{0,127}$`)

// InvalidError is a bad request with the JSON pointer of the offending
// part of the request body.
type InvalidError struct {
	Path string
	Msg  string
}

func (e *InvalidError) Error() string { return e.Msg }
func (e *InvalidError) Unwrap() error { return ErrInvalid }

// parse validates a condition, prefixing error paths with "/condition".
func parseCondition(raw json.RawMessage) (*condition.Node, error) {
	if len(raw) == 0 {
		return nil, &InvalidError{Path: "/condition", Msg: "condition is required"}
	}
	n, err := condition.Parse(raw)
	if err != nil {
		var ce *condition.Error
		if errors.As(err, &ce) {
			return nil, &InvalidError{Path: ce.Path, Msg: ce.Msg}
		}
		return nil, &InvalidError{Path: "", Msg: err.Error()}
	}
	return n, nil
}

func (sp *space) lookup(id string) (*condition.Node, bool) {
	s, ok := sp.segs[id]
	if !ok {
		return nil, false
	}
	return s.node, true
}

// Create defines a segment and builds it in the background, waiting up to
// BuildWait for the build.
func (m *Manager) Create(ctx context.Context, w *ingest.Workspace, id, name string, raw json.RawMessage) (*Segment, error) {
	if id == "" {
		b := make([]byte, 8)
		rand.Read(b)
		id = "seg_" + hex.EncodeToString(b)
	}
	if !segmentID.MatchString(id) {
		return nil, &InvalidError{Path: "/id", Msg: "id must be 1 to 128 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"}
	}
	if name == "" {
		name = id
	}
	n, err := parseCondition(raw)
	if err != nil {
		return nil, err
	}
	sp := m.space(w)
	sp.mu.Lock()
	if _, ok := sp.segs[id]; ok {
		sp.mu.Unlock()
		return nil, fmt.Errorf("segment %q: %w", id, ErrExists)
	}
	if err := condition.CheckCycles(id, n, sp.lookup); err != nil {
		sp.mu.Unlock()
		var ce *condition.Error
		if errors.As(err, &ce) {
			return nil, &InvalidError{Path: ce.Path, Msg: ce.Msg}
		}
		return nil, err
	}
	now := m.opts.Now().UTC()
	s := &seg{Segment: Segment{ID: id, Name: name, Condition: compact(raw), Status: StatusBuilding, Criteria: []Criterion{},
		CreatedAt: now, UpdatedAt: now, Version: 1}, node: n, members: roaring.New()}
	sp.segs[id] = s
	sp.defs++
	sp.publish(map[*seg]bool{s: true})
	rec := s.Segment
	sp.mu.Unlock()
	if err := m.saveRecord(ctx, w, rec); err != nil {
		sp.mu.Lock()
		delete(sp.segs, id)
		sp.publish(nil)
		sp.mu.Unlock()
		return nil, err
	}
	return m.buildAndWait(ctx, w, id, 1)
}

// Update replaces a segment's name and condition and rebuilds it.
func (m *Manager) Update(ctx context.Context, w *ingest.Workspace, id, name string, raw json.RawMessage) (*Segment, error) {
	n, err := parseCondition(raw)
	if err != nil {
		return nil, err
	}
	sp := m.space(w)
	sp.mu.Lock()
	s, ok := sp.segs[id]
	if !ok {
		sp.mu.Unlock()
		return nil, fmt.Errorf("segment %q: %w", id, ErrNotFound)
	}
	if err := condition.CheckCycles(id, n, sp.lookup); err != nil {
		sp.mu.Unlock()
		var ce *condition.Error
		if errors.As(err, &ce) {
			return nil, &InvalidError{Path: ce.Path, Msg: ce.Msg}
		}
		return nil, err
	}
	if name != "" {
		s.Name = name
	}
	s.Condition, s.node = compact(raw), n
	sp.defs++
	s.Status, s.Progress = StatusBuilding, 0
	s.Version++
	s.UpdatedAt = m.opts.Now().UTC()
	rec, version := s.Segment, s.Version
	sp.mu.Unlock()
	if err := m.saveRecord(ctx, w, rec); err != nil {
		return nil, err
	}
	return m.buildAndWait(ctx, w, id, version)
}

// Delete removes a segment; it is a conflict while other segments refer
// to it. Every member exits (reason "definition"), so replaying the
// segment's changes still gives its members: none.
func (m *Manager) Delete(ctx context.Context, w *ingest.Workspace, id string) error {
	sp := m.space(w)
	var verr error
	err := m.in.Run(ctx, w, func(b *pebble.Batch) error {
		lv, err := sp.liveState(b)
		if err != nil {
			return err
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		s, ok := sp.segs[id]
		if !ok {
			verr = fmt.Errorf("segment %q: %w", id, ErrNotFound)
			return nil
		}
		var users []string
		for oid, o := range sp.segs {
			if oid != id && slices.Contains(o.node.SegmentRefs(), id) {
				users = append(users, oid)
			}
		}
		if len(users) > 0 {
			slices.Sort(users)
			verr = fmt.Errorf("segment %q is used by segment(s) %v: %w", id, users, ErrConflict)
			return nil
		}
		e := &emitter{m: m, sp: sp, lv: lv, b: b, now: m.opts.Now().UTC()}
		for _, n := range s.members.ToArray() {
			user, _ := sp.ix.ID(n)
			if err := e.emit(s, n, user, false, ReasonDefinition); err != nil {
				return err
			}
		}
		if err := m.resetTimers(e, s, s.node, nil); err != nil {
			return err
		}
		delete(sp.segs, id)
		sp.defs++
		delete(e.dirty, s)
		e.republish = true
		if err := b.Delete(store.SegmentKey(w.Num, id), nil); err != nil {
			return err
		}
		if err := b.Delete(store.MembersKey(w.Num, id), nil); err != nil {
			return err
		}
		if err := e.finish(); err != nil {
			return err
		}
		// The size series goes with the segment (after finish wrote its
		// last point), so a new segment of the same id starts afresh.
		lo, hi := store.HistoryRange(w.Num, id)
		return b.DeleteRange(lo, hi, nil)
	})
	if err != nil {
		return err
	}
	return verr
}

// Get returns a segment.
func (m *Manager) Get(w *ingest.Workspace, id string) (*Segment, error) {
	sp := m.space(w)
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	s, ok := sp.segs[id]
	if !ok {
		return nil, fmt.Errorf("segment %q: %w", id, ErrNotFound)
	}
	out := s.view()
	return &out, nil
}

// view copies the API view of s; the caller holds the space's lock.
func (s *seg) view() Segment {
	out := s.Segment
	out.Criteria = slices.Clone(s.Criteria)
	if out.Status == StatusReady {
		out.Size = s.members.GetCardinality()
	}
	out.SnapshotSeq = 0
	return out
}

// List returns every segment, by id.
func (m *Manager) List(w *ingest.Workspace) []Segment {
	sp := m.space(w)
	sp.mu.RLock()
	defer sp.mu.RUnlock()
	out := make([]Segment, 0, len(sp.segs))
	for _, id := range slices.Sorted(maps.Keys(sp.segs)) {
		out = append(out, sp.segs[id].view())
	}
	return out
}

// Members pages through a segment's members by profile number: cursor is
// the last number returned ("" to start). Every member appears exactly
// once across pages.
func (m *Manager) Members(ctx context.Context, w *ingest.Workspace, id string, after uint32, first bool, limit int) ([]string, uint32, bool, error) {
	bm := m.space(w).members(id)
	if bm == nil {
		return nil, 0, false, fmt.Errorf("segment %q: %w", id, ErrNotFound)
	}
	it := bm.Iterator()
	if !first {
		it.AdvanceIfNeeded(after + 1)
		if after == ^uint32(0) {
			it = roaring.New().Iterator()
		}
	}
	nums := make([]uint32, 0, limit)
	for it.HasNext() && len(nums) < limit {
		nums = append(nums, it.Next())
	}
	more := it.HasNext()
	ids, err := m.canonicalIDs(w.Num, nums)
	if err != nil {
		return nil, 0, false, err
	}
	var last uint32
	if len(nums) > 0 {
		last = nums[len(nums)-1]
	}
	return ids, last, more, nil
}

// canonicalIDs names profile numbers by their canonical ids.
func (m *Manager) canonicalIDs(ws uint32, nums []uint32) ([]string, error) {
	out := make([]string, 0, len(nums))
	for _, n := range nums {
		p, ok, err := store.ReadProfile(m.st.DB(), ws, n)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p.ID)
		}
	}
	return out, nil
}

// QueryResult is a preview.
type QueryResult struct {
	Size     uint64      `json:"size"`
	Criteria []Criterion `json:"criteria"`
	Members  []string    `json:"members,omitempty"`
}

// Query evaluates a condition without saving anything.
func (m *Manager) Query(ctx context.Context, w *ingest.Workspace, raw json.RawMessage, members bool, limit int) (*QueryResult, error) {
	n, err := parseCondition(raw)
	if err != nil {
		return nil, err
	}
	sp := m.space(w)
	sp.mu.RLock()
	err = condition.CheckCycles("", n, sp.lookup)
	sp.mu.RUnlock()
	if err != nil {
		var ce *condition.Error
		if errors.As(err, &ce) {
			return nil, &InvalidError{Path: ce.Path, Msg: ce.Msg}
		}
		return nil, err
	}
	start := time.Now()
	res, err := EvaluateContext(ctx, sp.ix, n, m.opts.Now(), sp.refs, true)
	if err != nil {
		return nil, err
	}
	m.m.query.Observe(time.Since(start).Seconds())
	out := &QueryResult{Size: res.Members.GetCardinality(), Criteria: res.Criteria}
	if members {
		it := res.Members.Iterator()
		nums := make([]uint32, 0, limit)
		for it.HasNext() && len(nums) < limit {
			nums = append(nums, it.Next())
		}
		if out.Members, err = m.canonicalIDs(w.Num, nums); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// refs resolves segment references to published memberships, without a
// lock: evaluations call it while they hold the index's read lock, and
// the applier may hold space.mu while it waits for the index. The bitmap
// returned is shared and must not be modified.
func (sp *space) refs(id string) (*roaring.Bitmap, error) {
	bm := sp.members(id)
	if bm == nil {
		return nil, fmt.Errorf("unknown segment %q", id)
	}
	return bm, nil
}

// UserSegments lists the segments a profile is a member of.
func (m *Manager) UserSegments(w *ingest.Workspace, num uint32) []string {
	out := []string{}
	if v := m.space(w).view.Load(); v != nil {
		for id, bm := range *v {
			if bm.Contains(num) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

func (m *Manager) saveRecord(ctx context.Context, w *ingest.Workspace, rec Segment) error {
	return m.in.Run(ctx, w, func(b *pebble.Batch) error { return putRecord(b, w.Num, rec) })
}

func putRecord(b *pebble.Batch, ws uint32, rec Segment) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode segment %q: %w", rec.ID, err)
	}
	return b.Set(store.SegmentKey(ws, rec.ID), v, nil)
}

// compact strips insignificant white space, keeping key order (error
// paths point into the condition as the user wrote it).
func compact(raw json.RawMessage) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	return buf.Bytes()
}

// tune applies the options' query settings to a workspace's index.
func (m *Manager) tune(ix *index.Index) {
	if m.opts.ScanYieldBlocks > 0 {
		ix.SetScanYield(m.opts.ScanYieldBlocks)
	}
	ix.SetPartials(m.opts.PartialBytes, 0)
}

// registerPartials exports the indexes' kept partial aggregates of parts
// (index.PartialStats), summed over the workspaces.
func (m *Manager) registerPartials(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	sum := func(pick func(bytes int, hits, made uint64) float64) func() float64 {
		return func() float64 {
			m.mu.RLock()
			defer m.mu.RUnlock()
			var v float64
			for _, sp := range m.spaces {
				v += pick(sp.ix.PartialStats())
			}
			return v
		}
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "cohort_index_partial_bytes",
			Help: "Bytes of the partial aggregates of parts the indexes keep (index.partial_cache_bytes)."},
			sum(func(b int, _, _ uint64) float64 { return float64(b) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cohort_index_partial_hits_total",
			Help: "Event scans of a part answered from its kept partial aggregate."},
			sum(func(_ int, h, _ uint64) float64 { return float64(h) })),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "cohort_index_partials_made_total",
			Help: "Partial aggregates of parts made and kept by event scans."},
			sum(func(_ int, _, n uint64) float64 { return float64(n) })),
	)
}
