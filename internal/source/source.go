package source

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/store"
)

// Errors the API maps to status codes.
var (
	ErrNotFound    = errors.New("no such source")
	ErrUnsupported = errors.New("not supported by this source")
	ErrBusy        = errors.New("busy")
)

// The states of a source, as GET /api/sources shows them.
const (
	StateRunning = "running"
	StatePaused  = "paused"
	StateBackoff = "backoff"
	StateFailed  = "failed"
)

// permanent marks an error retrying cannot fix (a source configured for a
// workspace that does not exist): the source fails instead of backing off.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// Options configure a Manager.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer // nil: metrics are not registered
	Now        func() time.Time
	Limits     config.Limits
	// BackoffBase and BackoffCap bound the Fibonacci backoff (defaults
	// 500 ms and 30 s).
	BackoffBase, BackoffCap time.Duration
}

// Status is one source as GET /api/sources shows it.
type Status struct {
	Name       string      `json:"name"`
	Kind       string      `json:"kind"`
	Format     string      `json:"format,omitempty"`
	Workspace  string      `json:"-"`
	State      string      `json:"state"`
	Position   any         `json:"position"`
	LagRecords int64       `json:"lag_records"`
	LagSeconds float64     `json:"lag_seconds"`
	Records    int64       `json:"records"`
	LastError  string      `json:"last_error,omitempty"`
	Bootstrap  *BootStatus `json:"bootstrap,omitempty"`
}

// BootStatus is a bootstrap's progress.
type BootStatus struct {
	Table string `json:"table"`
	Done  int64  `json:"done"`
	Total int64  `json:"total"`
	State string `json:"state"` // running, done, failed
	Error string `json:"error,omitempty"`
}

// runner is one kind of source: run consumes until ctx is done (nil) or
// it fails (the error; the Manager backs off and calls it again).
type runner interface {
	run(ctx context.Context) error
	position() any
}

// bootstrapper is a runner with a bootstrap lane.
type bootstrapper interface {
	bootstrap(ctx context.Context, table, where string) error
}

// Manager runs the configured sources.
type Manager struct {
	in   *ingest.Ingester
	st   *store.Store
	opts Options
	log  *slog.Logger
	m    *metrics
	srcs []*src
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// src is one running source: its configuration, its runner and its state.
type src struct {
	mgr *Manager
	cfg config.Source
	ws  *ingest.Workspace
	r   runner
	lim *rate.Limiter // nil: no cap
	log *slog.Logger

	mu        sync.Mutex
	state     string
	paused    bool
	cancelRun context.CancelFunc
	resume    chan struct{} // closed by Resume while paused
	lastErr   string
	lagRecs   int64
	lagSince  time.Time // timestamp of the oldest unapplied record; zero when caught up
	records   int64
	boot      *BootStatus
	progress  bool // the current run applied something (resets the backoff)
}

// Open starts every configured source.
func Open(cfgs []config.Source, st *store.Store, in *ingest.Ingester, o Options) (*Manager, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.BackoffBase == 0 {
		o.BackoffBase = 500 * time.Millisecond
	}
	if o.BackoffCap == 0 {
		o.BackoffCap = 30 * time.Second
	}
	m := &Manager{in: in, st: st, opts: o, log: o.Logger, m: newMetrics(o.Registerer)}
	m.ctx, m.stop = context.WithCancel(context.Background())
	for _, c := range cfgs {
		if c.Workspace == "" {
			c.Workspace = "default"
		}
		s := &src{mgr: m, cfg: c, state: StateRunning, log: m.log.With("source", c.Name)}
		if c.RatePerSecond > 0 {
			s.lim = rate.NewLimiter(rate.Limit(c.RatePerSecond), max(1, int(c.RatePerSecond)))
		}
		var err error
		switch c.Kind {
		case "kafka":
			s.r, err = newKafka(s)
		case "mysql":
			s.r, err = newMySQL(s)
		default:
			err = fmt.Errorf("kind %q is not kafka or mysql", c.Kind)
		}
		if err != nil {
			m.Close()
			return nil, fmt.Errorf("source %q: %w", c.Name, err)
		}
		m.srcs = append(m.srcs, s)
	}
	for _, s := range m.srcs {
		m.m.registerLag(o.Registerer, s)
		m.m.setState(s.cfg.Name, s.state)
		m.wg.Add(1)
		go s.loop(m.ctx)
	}
	return m, nil
}

// Close stops every source and waits for them.
func (m *Manager) Close() {
	m.stop()
	m.wg.Wait()
}

// List returns the status of the sources feeding workspace ws.
func (m *Manager) List(ws string) []Status {
	out := []Status{}
	for _, s := range m.srcs {
		if s.cfg.Workspace == ws {
			out = append(out, s.status())
		}
	}
	return out
}

func (m *Manager) find(ws, name string) (*src, error) {
	for _, s := range m.srcs {
		if s.cfg.Name == name && s.cfg.Workspace == ws {
			return s, nil
		}
	}
	return nil, fmt.Errorf("source %q: %w", name, ErrNotFound)
}

// Pause stops a source after the record it is applying; its position is
// kept. Pausing a paused source does nothing.
func (m *Manager) Pause(ws, name string) error {
	s, err := m.find(ws, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		s.paused = true
		s.resume = make(chan struct{})
		s.state = StatePaused
		m.m.setState(name, s.state)
		if s.cancelRun != nil {
			s.cancelRun()
		}
		s.log.Info("source paused")
	}
	return nil
}

// Resume restarts a paused source where it stopped.
func (m *Manager) Resume(ws, name string) error {
	s, err := m.find(ws, name)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		s.paused = false
		close(s.resume)
		s.state = StateRunning
		m.m.setState(name, s.state)
		s.log.Info("source resumed")
	}
	return nil
}

// Bootstrap starts backfilling table (rows matching where, when given)
// through the source's bootstrap lane; it returns once the bootstrap has
// started.
func (m *Manager) Bootstrap(ws, name, table, where string) error {
	s, err := m.find(ws, name)
	if err != nil {
		return err
	}
	b, ok := s.r.(bootstrapper)
	if !ok {
		return fmt.Errorf("source %q is a %s source: bootstrap: %w (only mysql sources have a bootstrap lane)", name, s.cfg.Kind, ErrUnsupported)
	}
	s.mu.Lock()
	if s.boot != nil && s.boot.State == "running" {
		s.mu.Unlock()
		return fmt.Errorf("source %q is bootstrapping %s: %w", name, s.boot.Table, ErrBusy)
	}
	s.boot = &BootStatus{Table: table, State: "running"}
	s.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := b.bootstrap(m.ctx, table, where)
		s.mu.Lock()
		defer s.mu.Unlock()
		if err != nil {
			s.boot.State, s.boot.Error = "failed", err.Error()
			s.log.Error("bootstrap failed", "table", table, "err", err)
			return
		}
		s.boot.State = "done"
		s.log.Info("bootstrap done", "table", table, "rows", s.boot.Done)
	}()
	return nil
}

func (s *src) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{Name: s.cfg.Name, Kind: s.cfg.Kind, Format: s.cfg.Format, Workspace: s.cfg.Workspace,
		State: s.state, Position: s.r.position(), LagRecords: s.lagRecs, Records: s.records, LastError: s.lastErr}
	if !s.lagSince.IsZero() {
		st.LagSeconds = max(0, s.mgr.opts.Now().Sub(s.lagSince).Seconds())
	}
	if s.boot != nil {
		b := *s.boot
		st.Bootstrap = &b
	}
	return st
}

// loop runs the source until the Manager closes: paused, it waits for
// Resume; failing, it backs off (Fibonacci) and runs again.
func (s *src) loop(ctx context.Context) {
	defer s.mgr.wg.Done()
	failures := 0
	for ctx.Err() == nil {
		s.mu.Lock()
		if s.paused {
			resume := s.resume
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-resume:
			}
			continue
		}
		if s.ws == nil {
			ws, ok := s.mgr.in.WorkspaceByName(s.cfg.Workspace)
			if !ok {
				s.state, s.lastErr = StateFailed, fmt.Sprintf("workspace %q does not exist", s.cfg.Workspace)
				s.mu.Unlock()
				s.log.Error("source failed", "err", s.lastErr)
				return
			}
			s.ws = ws
		}
		runCtx, cancel := context.WithCancel(ctx)
		s.cancelRun = cancel
		s.progress = false
		s.mu.Unlock()

		err := s.r.run(runCtx)
		cancel()

		s.mu.Lock()
		s.cancelRun = nil
		if s.progress {
			failures = 0
		}
		if ctx.Err() != nil || s.paused {
			s.mu.Unlock()
			continue
		}
		if err == nil {
			err = errors.New("stopped without an error")
		}
		s.lastErr = err.Error()
		s.mgr.m.errors.WithLabelValues(s.cfg.Name).Inc()
		var p permanent
		if errors.As(err, &p) {
			s.state = StateFailed
			s.mgr.m.setState(s.cfg.Name, s.state)
			s.mu.Unlock()
			s.log.Error("source failed", "err", err)
			return
		}
		s.state = StateBackoff
		s.mgr.m.setState(s.cfg.Name, s.state)
		delay := fibonacci(failures, s.mgr.opts.BackoffBase, s.mgr.opts.BackoffCap)
		failures++
		s.mu.Unlock()
		s.log.Warn("source error; backing off", "err", err, "retry_in", delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.mu.Lock()
		if !s.paused {
			s.state = StateRunning
		}
		s.mu.Unlock()
	}
}

// wait blocks until the rate cap lets n more records through.
func (s *src) wait(ctx context.Context, n int) error {
	if s.lim == nil {
		return nil
	}
	for n > 0 {
		k := min(n, s.lim.Burst())
		if err := s.lim.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// applied records that n records were applied, with lag records still
// behind whose oldest was written at oldest (zero: caught up).
func (s *src) applied(n int, lag int64, oldest time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records += int64(n)
	s.lagRecs, s.lagSince = lag, oldest
	s.progress = true
	if s.state == StateBackoff {
		s.state = StateRunning
	}
	s.lastErr = ""
	s.mgr.m.records.WithLabelValues(s.cfg.Name).Add(float64(n))
	s.mgr.m.setState(s.cfg.Name, s.state)
}

// submit hands items to the ingestion path with the writes that record the
// source's new position.
func (s *src) submit(ctx context.Context, items []message.Item, writes []ingest.Write) (ingest.Result, error) {
	res, err := s.mgr.in.SubmitWith(ctx, s.ws, s.cfg.Kind+":"+s.cfg.Name, items, writes)
	if err != nil {
		return res, fmt.Errorf("ingest: %w", err)
	}
	return res, nil
}
