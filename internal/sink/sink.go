// Package sink owns the delivery of membership changes to the places
// users configure per workspace: webhooks and Kafka topics, through the
// same runner. Each sink has a durable cursor, the last change
// seq it acknowledged; a runner reads the next page of durable changes
// from the store, delivers it, and advances the cursor only on success,
// so delivery is in order and at least once, every change carrying its
// seq for receivers to drop duplicates. Memory does not grow with a
// stalled receiver: the store is the buffer.
//
// Failed deliveries are retried with delays that grow in Fibonacci steps
// up to a cap; each success steps the delay back down, so a receiver that
// recovers is not flooded.
package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/store"
)

// Errors the API maps to status codes.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
	ErrInvalid  = errors.New("invalid")
)

// Config is a sink as users configure it.
type Config struct {
	ID       string    `json:"id"`
	Type     string    `json:"type"`               // "webhook" or "kafka"
	URL      string    `json:"url,omitempty"`      // webhook: where to POST
	Segments []string  `json:"segments,omitempty"` // only these segments' changes; all when empty
	Secret   string    `json:"secret,omitempty"`   // signs bodies: X-Cohort-Signature: sha256=HMAC
	Batch    int       `json:"batch,omitempty"`    // changes per delivery (default 500)
	Brokers  []string  `json:"brokers,omitempty"`  // kafka: seed brokers, host:port
	Topic    string    `json:"topic,omitempty"`    // kafka: records keyed by user id
	Created  time.Time `json:"created_at"`
}

// Status is a sink with its delivery state.
type Status struct {
	Config
	Cursor    uint64 `json:"cursor"`   // last seq delivered
	Lag       uint64 `json:"lag"`      // durable changes not yet delivered
	Failures  int    `json:"failures"` // consecutive failed deliveries
	LastError string `json:"last_error,omitempty"`
}

// Options configure a Manager.
type Options struct {
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	Client     *http.Client // nil: a client with a 10 s timeout
	// Kafka are extra options for every Kafka sink's client, applied
	// after the defaults (tests shorten timeouts and retries).
	Kafka []kgo.Opt
	// Base and Cap bound the Fibonacci delays: Base × fib(step), at most
	// Cap. Defaults 250 ms and 30 s.
	Base, Cap time.Duration
	// Sleep waits between deliveries; tests replace it to record delays.
	Sleep func(ctx context.Context, d time.Duration) error
	Now   func() time.Time
}

// Manager runs every workspace's sinks.
type Manager struct {
	st   *store.Store
	seg  *segment.Manager
	in   *ingest.Ingester
	opts Options
	log  *slog.Logger
	lag  *prometheus.GaugeVec
	lagS *prometheus.GaugeVec
	sent *prometheus.CounterVec

	createMu sync.Mutex
	mu       sync.Mutex
	runners  map[runnerKey]*runner
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
}

type runnerKey struct {
	ws uint32
	id string
}

type runner struct {
	m      *Manager
	ws     *ingest.Workspace
	cfg    Config
	out    deliverer
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	cursor   uint64
	failures int
	lastErr  string
}

// Open starts the sinks of every workspace.
func Open(st *store.Store, seg *segment.Manager, in *ingest.Ingester, opts Options) (*Manager, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Base == 0 {
		opts.Base = 250 * time.Millisecond
	}
	if opts.Cap == 0 {
		opts.Cap = 30 * time.Second
	}
	if opts.Sleep == nil {
		opts.Sleep = sleep
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	m := &Manager{st: st, seg: seg, in: in, opts: opts, log: opts.Logger, runners: map[runnerKey]*runner{}}
	m.lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cohort_sink_lag_changes", Help: "Durable changes a sink has not yet acknowledged."}, []string{"workspace", "sink"})
	m.lagS = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "cohort_sink_lag_seconds", Help: "Age of the oldest change a sink has not yet acknowledged."}, []string{"workspace", "sink"})
	m.sent = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cohort_sink_deliveries_total", Help: "Delivery attempts by outcome."}, []string{"workspace", "sink", "outcome"})
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(m.lag, m.lagS, m.sent)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	wss, err := st.Workspaces()
	if err != nil {
		return nil, err
	}
	for _, w := range wss {
		ws, ok := in.Workspace(w.Num)
		if !ok {
			continue
		}
		lo, hi := store.SinkRange(w.Num)
		it, err := st.DB().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return nil, err
		}
		for it.First(); it.Valid(); it.Next() {
			var c Config
			if err := json.Unmarshal(it.Value(), &c); err != nil {
				it.Close()
				return nil, fmt.Errorf("sink record %q: %v: %w", it.Key(), err, store.ErrCorruption)
			}
			if err := m.start(ws, c); err != nil {
				it.Close()
				return nil, err
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Close stops every runner.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

var sinkID = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,63}$`)

// Create validates and starts a sink; its cursor starts at the current
// durable seq unless from is given (0 delivers the whole history).
func (m *Manager) Create(ctx context.Context, ws *ingest.Workspace, c Config, from *uint64) (*Status, error) {
	if !sinkID.MatchString(c.ID) {
		return nil, invalid("/id", "id must be 1 to 64 letters, digits, '_', '.' or '-'")
	}
	if c.Type == "" {
		c.Type = "webhook"
	}
	switch c.Type {
	case "webhook":
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, invalid("/url", "url %q must be an http(s) URL", c.URL)
		}
		if len(c.Brokers) > 0 || c.Topic != "" {
			return nil, fmt.Errorf("brokers and topic are for kafka sinks: %w", ErrInvalid)
		}
	case "kafka":
		if err := validateKafka(c); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("/type", "type %q is not supported (webhook, kafka)", c.Type)
	}
	if c.Batch < 0 || c.Batch > 10000 {
		return nil, invalid("/batch", "batch %d must be from 1 to 10000", c.Batch)
	}
	if err := m.checkSegments(ws, c.Segments); err != nil {
		return nil, err
	}
	m.createMu.Lock() // one create at a time: the check and the save agree
	defer m.createMu.Unlock()
	m.mu.Lock()
	_, exists := m.runners[runnerKey{ws.Num, c.ID}]
	m.mu.Unlock()
	if exists {
		return nil, fmt.Errorf("sink %q: %w", c.ID, ErrExists)
	}
	c.Created = m.opts.Now().UTC()
	cursor, _ := m.seg.Durable(ws.Num)
	if from != nil {
		cursor = min(*from, cursor)
	}
	v, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	err = m.in.Run(ctx, ws, func(b *pebble.Batch) error {
		if err := b.Set(store.SinkKey(ws.Num, c.ID), v, nil); err != nil {
			return err
		}
		return b.Set(store.SinkCursorKey(ws.Num, c.ID), binary.BigEndian.AppendUint64(nil, cursor), nil)
	})
	if err != nil {
		return nil, fmt.Errorf("save sink: %w", err)
	}
	if err := m.start(ws, c); err != nil {
		return nil, err
	}
	return m.Get(ws, c.ID)
}

// Delete stops and removes a sink.
func (m *Manager) Delete(ctx context.Context, ws *ingest.Workspace, id string) error {
	m.mu.Lock()
	r, ok := m.runners[runnerKey{ws.Num, id}]
	delete(m.runners, runnerKey{ws.Num, id})
	m.mu.Unlock()
	if !ok {
		return fmt.Errorf("sink %q: %w", id, ErrNotFound)
	}
	r.cancel()
	<-r.done
	m.lag.DeleteLabelValues(ws.Name, id)
	m.lagS.DeleteLabelValues(ws.Name, id)
	return m.in.Run(ctx, ws, func(b *pebble.Batch) error {
		if err := b.Delete(store.SinkKey(ws.Num, id), nil); err != nil {
			return err
		}
		return b.Delete(store.SinkCursorKey(ws.Num, id), nil)
	})
}

// Get returns a sink's status.
func (m *Manager) Get(ws *ingest.Workspace, id string) (*Status, error) {
	m.mu.Lock()
	r, ok := m.runners[runnerKey{ws.Num, id}]
	m.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("sink %q: %w", id, ErrNotFound)
	}
	return r.status(), nil
}

// List returns every sink of a workspace.
func (m *Manager) List(ws *ingest.Workspace) []Status {
	m.mu.Lock()
	var rs []*runner
	for k, r := range m.runners {
		if k.ws == ws.Num {
			rs = append(rs, r)
		}
	}
	m.mu.Unlock()
	out := []Status{}
	for _, r := range rs {
		out = append(out, *r.status())
	}
	slices.SortFunc(out, func(a, b Status) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

// MinCursor is the lowest delivery cursor of a workspace's sinks (the
// change log must not be compacted past it), or the largest seq when the
// workspace has no sink.
func (m *Manager) MinCursor(ws uint32) uint64 {
	m.mu.Lock()
	rs := make([]*runner, 0, len(m.runners))
	for k, r := range m.runners {
		if k.ws == ws {
			rs = append(rs, r)
		}
	}
	m.mu.Unlock()
	low := ^uint64(0)
	for _, r := range rs {
		r.mu.Lock()
		low = min(low, r.cursor)
		r.mu.Unlock()
	}
	return low
}

func (r *runner) status() *Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	durable, _ := r.m.seg.Durable(r.ws.Num)
	s := &Status{Config: r.cfg, Cursor: r.cursor, Failures: r.failures, LastError: r.lastErr}
	s.Secret = ""
	if durable > r.cursor {
		s.Lag = durable - r.cursor
	}
	return s
}

func (m *Manager) start(ws *ingest.Workspace, c Config) error {
	v, ok, err := store.Get(m.st.DB(), store.SinkCursorKey(ws.Num, c.ID))
	if err != nil {
		return err
	}
	var cursor uint64
	if ok && len(v) == 8 {
		cursor = binary.BigEndian.Uint64(v)
	}
	ctx, cancel := context.WithCancel(m.ctx)
	r := &runner{m: m, ws: ws, cfg: c, cursor: cursor, cancel: cancel, done: make(chan struct{})}
	if c.Type == "kafka" {
		r.out = newKafka(c, m.opts.Kafka, m.log.With("workspace", ws.Name, "sink", c.ID))
	} else {
		r.out = &webhook{cfg: c, ws: ws.Name, client: m.opts.Client}
	}
	m.mu.Lock()
	m.runners[runnerKey{ws.Num, c.ID}] = r
	m.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(r.done)
		r.run(ctx)
	}()
	return nil
}

// fib returns the k-th Fibonacci number (fib(1) = fib(2) = 1).
func fib(k int) int64 {
	a, b := int64(0), int64(1)
	for range k {
		a, b = b, a+b
	}
	return a
}

// Delay is the wait before a delivery at backoff step k.
func Delay(base, cap time.Duration, k int) time.Duration {
	if k <= 0 {
		return 0
	}
	if k > 60 {
		return cap
	}
	return min(time.Duration(fib(k))*base, cap)
}

func (r *runner) run(ctx context.Context) {
	m := r.m
	// Stopping the sink also ends a delivery stuck on its destination
	// (a Kafka client closed fails its in-flight records).
	defer context.AfterFunc(ctx, r.out.close)()
	defer r.out.close()
	batch := r.cfg.Batch
	if batch == 0 {
		batch = 500
	}
	var keep func(string) bool
	if len(r.cfg.Segments) > 0 {
		set := map[string]bool{}
		for _, s := range r.cfg.Segments {
			set[s] = true
		}
		keep = func(id string) bool { return set[id] }
	}
	step := 0 // backoff step: grows on failure, shrinks on success
	for ctx.Err() == nil {
		durable, more := m.seg.Durable(r.ws.Num)
		r.mu.Lock()
		cursor := r.cursor
		r.mu.Unlock()
		r.observeLag(cursor, durable)
		if cursor >= durable {
			select {
			case <-ctx.Done():
				return
			case <-more:
			case <-time.After(5 * time.Second): // refresh the lag gauges
			}
			continue
		}
		if err := m.opts.Sleep(ctx, Delay(m.opts.Base, m.opts.Cap, step)); err != nil {
			return
		}
		page, next, err := segment.ReadChanges(m.st.DB(), r.ws.Num, cursor, durable, keep, batch)
		if err != nil {
			m.log.Error("sink: read changes", "sink", r.cfg.ID, "err", err)
			step = min(step+1, 60)
			continue
		}
		if len(page) > 0 {
			err = r.out.deliver(ctx, page)
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			step = min(step+1, 60)
			r.mu.Lock()
			r.failures++
			r.lastErr = err.Error()
			r.mu.Unlock()
			m.sent.WithLabelValues(r.ws.Name, r.cfg.ID, "failed").Inc()
			m.log.Warn("sink delivery failed", "workspace", r.ws.Name, "sink", r.cfg.ID, "err", err, "retry_in", Delay(m.opts.Base, m.opts.Cap, step))
			continue
		}
		if len(page) > 0 {
			m.sent.WithLabelValues(r.ws.Name, r.cfg.ID, "ok").Inc()
		}
		step = max(step-1, 0)
		if err := r.saveCursor(ctx, next); err != nil {
			if ctx.Err() != nil {
				return
			}
			m.log.Error("sink: save cursor", "sink", r.cfg.ID, "err", err)
		}
	}
}

func (r *runner) observeLag(cursor, durable uint64) {
	m := r.m
	lag := float64(0)
	if durable > cursor {
		lag = float64(durable - cursor)
	}
	m.lag.WithLabelValues(r.ws.Name, r.cfg.ID).Set(lag)
	secs := 0.0
	if durable > cursor {
		if page, _, err := segment.ReadChanges(m.st.DB(), r.ws.Num, cursor, durable, nil, 1); err == nil && len(page) > 0 {
			secs = m.opts.Now().Sub(page[0].At).Seconds()
		}
	}
	m.lagS.WithLabelValues(r.ws.Name, r.cfg.ID).Set(secs)
}

func (r *runner) saveCursor(ctx context.Context, next uint64) error {
	r.mu.Lock()
	r.cursor = next
	r.failures, r.lastErr = 0, ""
	r.mu.Unlock()
	// The cursor is written without waiting for the disk: after a crash a
	// sink may redeliver some changes (at least once), never skip one.
	return r.m.st.DB().Set(store.SinkCursorKey(r.ws.Num, r.cfg.ID), binary.BigEndian.AppendUint64(nil, next), pebble.NoSync)
}

// Delivery is the body POSTed to a webhook.
type Delivery struct {
	Workspace string           `json:"workspace"`
	Sink      string           `json:"sink"`
	Changes   []segment.Change `json:"changes"`
}

// A deliverer sends pages of changes to one sink's destination: deliver
// returns nil only when the destination acknowledged every change of the
// page; close releases its resources when the sink stops (it may be
// called more than once, also while a delivery is running).
type deliverer interface {
	deliver(ctx context.Context, page []segment.Change) error
	close()
}

// webhook POSTs each page as one Delivery.
type webhook struct {
	cfg    Config
	ws     string // workspace name
	client *http.Client
}

func (w *webhook) close() {}

func (w *webhook) deliver(ctx context.Context, page []segment.Change) error {
	body, err := json.Marshal(Delivery{Workspace: w.ws, Sink: w.cfg.ID, Changes: page})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cohort-sink")
	req.Header.Set("X-Cohort-First-Seq", fmt.Sprint(page[0].Seq))
	req.Header.Set("X-Cohort-Last-Seq", fmt.Sprint(page[len(page)-1].Seq))
	if w.cfg.Secret != "" {
		mac := hmac.New(sha256.New, []byte(w.cfg.Secret))
		mac.Write(body)
		req.Header.Set("X-Cohort-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	res, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST %s: %w", w.cfg.URL, err)
	}
	defer res.Body.Close()
	io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return fmt.Errorf("POST %s: %s", w.cfg.URL, res.Status)
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
