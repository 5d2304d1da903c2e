package ingest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/store"
)

var syncWrite = pebble.Sync

// ErrClosed is returned for submissions after Close.
var ErrClosed = errors.New("ingest: closed")

// ErrOverloaded is returned for a submission of messages that waited
// longer than Options.MaxWait for the applier to take it: nothing of it was
// stored, and the client should retry later.
var ErrOverloaded = errors.New("ingest: overloaded")

// Options configure an Ingester.
type Options struct {
	Limits     config.Limits
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time      // nil: time.Now
	// MaxGroup bounds how many messages one commit holds; 0 means 20,000.
	MaxGroup int
	// MaxWait bounds how long a submission of messages waits for the
	// applier to take it before it is refused with ErrOverloaded (and
	// nothing of it is stored); 0 means 5 s. Internal jobs (Run, user
	// deletions) always wait.
	MaxWait time.Duration
	// OnRecord, when set, is called by the applier with what a commit
	// group changed in one workspace, before the group's batch b commits:
	// what it writes to b commits atomically with the messages (an index
	// journal). It should be cheap: the applier waits for it.
	OnRecord func(w *Workspace, c *Changes, b *pebble.Batch) error
	// OnApply, when set, is called by the applier with the same changes
	// while the group's batch commits (so the store's memtable insert and
	// the listener's work run on two cores). What it writes to b commits
	// right after the group's batch, before any client hears back, and
	// what it updates in memory is current by then. A crash between the
	// two commits keeps the messages and loses b: the listener makes that
	// good at its next start from what OnRecord wrote. b reads the
	// committed store; the group's batch may not be visible yet, so the
	// listener must not read back what the group wrote (the changes carry
	// it). In a group with a Run job, the changes made before the job are
	// handed to both listeners in the group's batch, before fn runs. An
	// error fails the group (and stops ingestion, as a store failure
	// would).
	OnApply func(w *Workspace, c *Changes, b *pebble.Batch) error
	// OnCommitted is called by the applier right after group gen (1, 2,
	// …) is committed (visible, not yet durable); OnSynced by the syncer
	// once every group up to gen is durable. Together they let a listener
	// publish only what can no longer be lost.
	OnCommitted func(gen uint64)
	OnSynced    func(gen uint64)
	// State, when set, is the workspaces' state LoadState read (the
	// server reads it while the indexes open); nil: New reads it.
	State *State
}

// Ingester is the ingestion path. It is safe for concurrent use.
type Ingester struct {
	st   *store.Store
	opts Options
	log  *slog.Logger
	m    *metrics

	wsMu   sync.RWMutex
	byNum  map[uint32]*Workspace
	byName map[string]*Workspace

	gen     uint64 // last group committed (applier goroutine)
	closeMu sync.RWMutex
	closed  bool
	jobs    chan *job
	syncs   chan []*job
	wg      sync.WaitGroup

	failMu sync.Mutex
	failed error // a commit or sync failed: no more writes are taken
}

// Rejected is one message refused by the ingestion path.
type Rejected struct {
	Index     int    `json:"index"`
	MessageID string `json:"messageId"`
	Error     string `json:"error"`
}

// Result is what a submission did.
type Result struct {
	Accepted   int
	Duplicates int
	Rejected   []Rejected
}

type jobKind int

const (
	jobQueued int32 = iota
	jobTaken
	jobAbandoned
)

const (
	jobMessages jobKind = iota
	jobRefusal
	jobDeleteUser
	jobRun
	jobExpireBots
)

type job struct {
	kind    jobKind
	ws      *Workspace
	source  string
	items   []message.Item
	refusal store.Rejection
	userID  string
	run     func(b *pebble.Batch) error
	writes  []Write // committed in the same batch as the job's effects

	// state: jobQueued until the applier takes it (jobTaken) or the
	// submitter gives up waiting for that (jobAbandoned): exactly one of
	// the two wins, so an abandoned job is never applied.
	state  atomic.Int32
	queued time.Time

	gen   uint64 // the commit group it went in
	res   Result
	found bool
	err   error
	done  chan struct{}
}

// New opens the ingestion path over st and starts its goroutines.
func New(st *store.Store, opts Options) (*Ingester, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.MaxGroup == 0 {
		opts.MaxGroup = 20000
	}
	if opts.MaxWait == 0 {
		opts.MaxWait = 5 * time.Second
	}
	g := &Ingester{
		st: st, opts: opts, log: opts.Logger, m: newMetrics(opts.Registerer),
		byNum: map[uint32]*Workspace{}, byName: map[string]*Workspace{},
		jobs:  make(chan *job, 256),
		syncs: make(chan []*job, 64),
	}
	state := opts.State
	if state == nil {
		var err error
		if state, err = LoadState(context.Background(), st, opts.Logger); err != nil {
			return nil, err
		}
	}
	for _, w := range state.workspaces {
		g.byNum[w.Num], g.byName[w.Name] = w, w
	}
	g.wg.Add(2)
	go g.applyLoop()
	go g.syncLoop()
	return g, nil
}

// State is every workspace's ingest state as the store holds it: ids,
// merges, event names, schema, counters and bot flags.
type State struct{ workspaces []*Workspace }

// LoadState reads the ingest state of every workspace. It only reads the
// store, so it may run while other state is loaded from it (the server
// runs it beside the indexes' open).
func LoadState(ctx context.Context, st *store.Store, log *slog.Logger) (*State, error) {
	recs, err := st.Workspaces()
	if err != nil {
		return nil, fmt.Errorf("list workspaces: %w", err)
	}
	s := &State{}
	for _, rec := range recs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		w, err := loadWorkspace(st, rec)
		if err != nil {
			return nil, err
		}
		s.workspaces = append(s.workspaces, w)
		log.Info("ingest state loaded", "workspace", w.Name, "ids", w.ids.Len(), "id_map_bytes", w.ids.Bytes(), "took", time.Since(start).Round(time.Millisecond))
	}
	return s, nil
}

// Close stops taking submissions, finishes every one already taken, and
// waits for the last sync.
func (g *Ingester) Close() error {
	g.closeMu.Lock()
	if !g.closed {
		g.closed = true
		close(g.jobs)
	}
	g.closeMu.Unlock()
	g.wg.Wait()
	return g.failure()
}

func (g *Ingester) failure() error {
	g.failMu.Lock()
	defer g.failMu.Unlock()
	return g.failed
}

func (g *Ingester) fail(err error) {
	g.failMu.Lock()
	defer g.failMu.Unlock()
	if g.failed == nil {
		g.failed = err
		g.log.Error("ingest stopped: the store failed", "err", err)
	}
}

func (g *Ingester) submit(ctx context.Context, j *job) error {
	if err := g.failure(); err != nil {
		return fmt.Errorf("ingest unavailable: %w", err)
	}
	encodeProperties(j.items)
	j.done = make(chan struct{})
	j.queued = time.Now()
	// Only client messages are refused under overload; internal jobs wait.
	var overdue <-chan time.Time
	if j.kind == jobMessages {
		t := time.NewTimer(g.opts.MaxWait)
		defer t.Stop()
		overdue = t.C
	}
	g.closeMu.RLock()
	if g.closed {
		g.closeMu.RUnlock()
		return ErrClosed
	}
	g.m.queue.Inc()
	select {
	case g.jobs <- j:
		g.closeMu.RUnlock()
	case <-ctx.Done():
		g.closeMu.RUnlock()
		g.m.queue.Dec()
		return ctx.Err()
	case <-overdue:
		g.closeMu.RUnlock()
		g.m.queue.Dec()
		g.m.overloaded.Inc()
		return ErrOverloaded
	}
	select {
	case <-j.done:
		return j.err
	case <-ctx.Done():
		// The job may still commit; a retry is deduplicated by messageId.
		return ctx.Err()
	case <-overdue:
		if j.state.CompareAndSwap(jobQueued, jobAbandoned) {
			g.m.overloaded.Inc()
			return ErrOverloaded // the applier will skip it
		}
	}
	select { // the applier took it in time: it is being applied
	case <-j.done:
		return j.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// encodeProperties encodes the events' properties for the store in the
// submitting goroutine, one per request, so the single applier does not
// (it was one of its larger costs per event). An item whose properties do
// not encode is left for the applier, which reports the error.
func encodeProperties(items []message.Item) {
	for i := range items {
		m := items[i].Msg
		if items[i].Err != nil || m == nil || !m.IsEvent() || len(m.Properties) == 0 || m.PropertiesJSON != nil {
			continue
		}
		if b, err := json.Marshal(m.Properties); err == nil {
			m.PropertiesJSON = b
		}
	}
}

// Submit applies decoded items to a workspace and returns once they are
// durable. Items that arrived rejected (Err set) go to the dead-letter log
// with the rest of the submission.
func (g *Ingester) Submit(ctx context.Context, ws *Workspace, source string, items []message.Item) (Result, error) {
	j := &job{kind: jobMessages, ws: ws, source: source, items: items}
	if err := g.submit(ctx, j); err != nil {
		return Result{}, err
	}
	return j.res, nil
}

// Write is one key/value a submission commits in the same Pebble batch as
// its effects: a source's position, so that after any restart a record's
// effect is present exactly when its position is.
type Write struct{ Key, Value []byte }

// SubmitWith is Submit with writes committed atomically with the items'
// effects (and with nothing else in between).
func (g *Ingester) SubmitWith(ctx context.Context, ws *Workspace, source string, items []message.Item, writes []Write) (Result, error) {
	j := &job{kind: jobMessages, ws: ws, source: source, items: items, writes: writes}
	if err := g.submit(ctx, j); err != nil {
		return Result{}, err
	}
	return j.res, nil
}

// DeleteUserWith is DeleteUser with writes committed atomically with the
// deletion.
func (g *Ingester) DeleteUserWith(ctx context.Context, ws *Workspace, id string, writes []Write) (bool, error) {
	j := &job{kind: jobDeleteUser, ws: ws, userID: id, writes: writes}
	if err := g.submit(ctx, j); err != nil {
		return false, err
	}
	return j.found, nil
}

// Refuse records a whole request that was refused (malformed, too large)
// in the workspace's dead-letter log.
func (g *Ingester) Refuse(ctx context.Context, ws *Workspace, source string, body []byte, reason error) error {
	r := store.Rejection{Source: source, Index: -1, Error: reason.Error()}
	const keep = 64 << 10
	if len(body) > keep {
		body = body[:keep]
	}
	if json.Valid(body) {
		r.Message = json.RawMessage(body)
	} else {
		r.Body = string(body)
	}
	return g.submit(ctx, &job{kind: jobRefusal, ws: ws, source: source, refusal: r})
}

// Run runs fn in the applier, in the total order of everything applied to
// the workspace: what fn writes to b commits with the group it joins, and
// Run returns once that commit is durable. Segment builds and time-driven
// membership changes use it so that their changes are ordered with
// ingestion's. fn must not block for long: ingestion waits for it.
func (g *Ingester) Run(ctx context.Context, ws *Workspace, fn func(b *pebble.Batch) error) error {
	return g.submit(ctx, &job{kind: jobRun, ws: ws, run: fn})
}

// DeleteUser erases the profile an id resolves to, with every id linked to
// it and all its events. It reports false when the id is unknown.
func (g *Ingester) DeleteUser(ctx context.Context, ws *Workspace, id string) (bool, error) {
	j := &job{kind: jobDeleteUser, ws: ws, userID: id}
	if err := g.submit(ctx, j); err != nil {
		return false, err
	}
	return j.found, nil
}

func (g *Ingester) applyLoop() {
	defer g.wg.Done()
	defer close(g.syncs)
	for first := range g.jobs {
		var group []*job
		n := 0
		take := func(j *job) {
			if !j.state.CompareAndSwap(jobQueued, jobTaken) {
				return // its submitter gave up: nothing of it is applied
			}
			if len(group) == 0 {
				g.m.queueAge.Set(time.Since(j.queued).Seconds())
			}
			group = append(group, j)
			n += len(j.items)
		}
		take(first)
		taken := 1
	drain:
		for n < g.opts.MaxGroup {
			select {
			case j, ok := <-g.jobs:
				if !ok {
					break drain
				}
				take(j)
				taken++
			default:
				break drain
			}
		}
		g.m.queue.Sub(float64(taken))
		if len(group) == 0 {
			continue
		}
		if err := g.failure(); err != nil {
			finish(group, fmt.Errorf("ingest unavailable: %w", err))
			continue
		}
		start := time.Now()
		if err := g.applyGroup(group); err != nil {
			g.fail(err)
			finish(group, fmt.Errorf("ingest failed: %w", err))
			continue
		}
		g.m.apply.Observe(time.Since(start).Seconds())
		g.m.groupSize.Observe(float64(n))
		g.gen++
		for _, j := range group {
			j.gen = g.gen
		}
		if g.opts.OnCommitted != nil {
			g.opts.OnCommitted(g.gen)
		}
		g.syncs <- group
	}
}

func (g *Ingester) syncLoop() {
	defer g.wg.Done()
	for group := range g.syncs {
		// Take every group already committed: one sync covers them all.
	more:
		for {
			select {
			case next, ok := <-g.syncs:
				if !ok {
					break more
				}
				group = append(group, next...)
			default:
				break more
			}
		}
		start := time.Now()
		err := g.st.Sync()
		g.m.sync.Observe(time.Since(start).Seconds())
		if err != nil {
			g.fail(err)
			err = fmt.Errorf("ingest failed: %w", err)
		} else if g.opts.OnSynced != nil {
			g.opts.OnSynced(group[len(group)-1].gen)
		}
		finish(group, err)
	}
}

func finish(group []*job, err error) {
	for _, j := range group {
		if err != nil {
			j.err = err
		}
		close(j.done)
	}
}

// applyGroup applies a group of jobs in one batch and commits it without
// waiting for the sync. The batch commits on a goroutine of its own while
// the OnApply listener applies the group's changes and writes what
// follows from them to a second batch, committed right after the first.
func (g *Ingester) applyGroup(group []*job) error {
	b := g.st.DB().NewIndexedBatch()
	defer b.Close()
	touched := map[*Workspace]*tx{}
	var order []*tx
	for _, j := range group {
		t := touched[j.ws]
		if t == nil {
			t = newTx(g, b, j.ws)
			touched[j.ws] = t
			order = append(order, t)
		}
		if err := t.run(j); err != nil {
			return err
		}
	}
	for _, t := range order {
		w := t.w
		if err := t.record(); err != nil {
			return err
		}
		if err := w.Schema.Flush(func(kind byte, name string, val []byte) error {
			return b.Set(store.SchemaKey(w.Num, kind, name), val, nil)
		}); err != nil {
			return err
		}
		if err := b.Set(store.CountersKey(w.Num), store.EncodeCounters(w.counters), nil); err != nil {
			return err
		}
	}
	if err := g.commitApplying(b, order); err != nil {
		return err
	}
	for _, t := range order {
		g.m.accepted.Add(float64(t.accepted))
		g.m.duplicates.Add(float64(t.duplicates))
		g.m.rejected.Add(float64(t.rejected))
	}
	return nil
}

// commitApplying commits b while the OnApply listener takes the changes
// of txs, then commits what the listener wrote.
func (g *Ingester) commitApplying(b *pebble.Batch, txs []*tx) error {
	pending := g.opts.OnApply != nil && slices.ContainsFunc(txs, func(t *tx) bool { return !t.changes.empty() })
	if !pending {
		if err := b.Commit(pebble.NoSync); err != nil {
			return fmt.Errorf("commit: %w", err)
		}
		return nil
	}
	committed := make(chan error, 1)
	go func() { committed <- b.Commit(pebble.NoSync) }()
	after := g.st.DB().NewIndexedBatch()
	defer after.Close()
	var applyErr error
	for _, t := range txs {
		if applyErr = t.applied(after); applyErr != nil {
			break
		}
	}
	if err := <-committed; err != nil { // b is not touched again before this
		return fmt.Errorf("commit: %w", err)
	}
	if applyErr != nil {
		return applyErr
	}
	if after.Empty() {
		return nil
	}
	if err := after.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit the applied changes: %w", err)
	}
	return nil
}
