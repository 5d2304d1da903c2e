// Package server owns a running Cohort's lifecycle: it opens the store,
// starts the subsystems in dependency order (store, ingest, HTTP), creates
// the default workspace and its keys on first start, runs the retention
// sweep, and stops everything in reverse order.
package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/cohortdb/cohort/internal/api"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/sink"
	"github.com/cohortdb/cohort/internal/source"
	"github.com/cohortdb/cohort/internal/store"
)

// DefaultWorkspace is the workspace that exists from the first start.
const DefaultWorkspace = "default"

// Options are what a Server needs besides its configuration.
type Options struct {
	Logger *slog.Logger
	// Out receives the keys generated on first start (printed once).
	Out io.Writer
	Now func() time.Time
	// BuildWait is how long segment creation waits for its build before
	// answering "building" (0: 2 s).
	BuildWait time.Duration
	// Sink overrides the delivery options of sinks (tests record backoff
	// delays through it); its Logger and Registerer are the server's.
	Sink sink.Options
	// Progress, when set, hears how far OpenContext is, from 0 to 1
	// (see segment.Options.Progress).
	Progress func(fraction float64)
	// CheckpointEvents, SealEvents and ScanYieldBlocks tune the indexes
	// (see segment.Options); 0 keeps the defaults. Tests set them small.
	CheckpointEvents, SealEvents, ScanYieldBlocks int
	// ParallelFrom: see segment.Options (tests set 1, so that even small
	// steps decide their profiles on several goroutines).
	ParallelFrom int
	// RunsFrom: see segment.Options (tests set 1, so that every long
	// enough walk keeps its running state).
	RunsFrom int
}

// Server is a running Cohort.
type Server struct {
	cfg   config.Config
	log   *slog.Logger
	St    *store.Store
	In    *ingest.Ingester
	Seg   *segment.Manager
	Sinks *sink.Manager
	Srcs  *source.Manager
	API   *api.Server
	reg   *prometheus.Registry
	http  *http.Server
	ln    net.Listener

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens the store and starts ingestion. It does not listen yet.
func Open(cfg config.Config, o Options) (*Server, error) {
	return OpenContext(context.Background(), cfg, o)
}

// OpenContext is Open that stops loading, closes what it opened and
// returns ctx's error when ctx is done before the server is loaded.
func OpenContext(ctx context.Context, cfg config.Config, o Options) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{cfg: cfg, log: o.Logger, reg: prometheus.NewRegistry(), stop: make(chan struct{})}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if err := os.MkdirAll(cfg.Data, 0o755); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s.log.Info("opening store", "dir", cfg.Data)
	st, err := store.Open(cfg.Data, store.Options{Logger: s.log})
	if err != nil {
		return nil, err
	}
	s.St = st
	// The ingest state (the id maps above all: seconds at 10M profiles)
	// loads beside the indexes: both only read the store.
	type loaded struct {
		state *ingest.State
		err   error
	}
	stateCh := make(chan loaded, 1)
	go func() {
		state, err := ingest.LoadState(ctx, st, s.log)
		stateCh <- loaded{state, err}
	}()
	s.log.Info("loading indexes and segments")
	mgr, err := segment.Open(ctx, st, segment.Options{
		Logger: s.log, Registerer: s.reg, Now: o.Now, BuildWait: o.BuildWait,
		Progress: o.Progress, IndexDir: filepath.Join(cfg.Data, "index"),
		CheckpointEvents: cmp.Or(o.CheckpointEvents, cfg.Index.CheckpointEvents), CheckpointEvery: time.Duration(cfg.Index.CheckpointInterval),
		SealEvents: o.SealEvents, ScanYieldBlocks: o.ScanYieldBlocks, ParallelFrom: o.ParallelFrom,
		RunsFrom: o.RunsFrom, PartialBytes: cfg.Index.PartialCacheBytes,
	})
	if err == nil {
		err = ctx.Err()
	}
	ls := <-stateCh // before the store may be closed
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("load segments: %w", err)
	}
	s.Seg = mgr
	if ls.err != nil {
		st.Close()
		return nil, fmt.Errorf("load ingest state: %w", ls.err)
	}
	io := ingest.Options{Limits: cfg.Limits, Logger: s.log, Registerer: s.reg, Now: o.Now, State: ls.state,
		MaxWait: time.Duration(cfg.Limits.MaxIngestWait)}
	mgr.Listen(&io)
	in, err := ingest.New(st, io)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("start ingestion: %w", err)
	}
	s.In = in
	// Opening the indexes (decoding checkpoints, replaying journals, or a
	// rebuild) and loading the id maps leave garbage several times the
	// index's size: return it to the system now rather than over the next
	// minutes.
	runtime.GC()
	debug.FreeOSMemory()
	if err := s.bootstrap(ctx, o.Out); err != nil {
		s.Close()
		return nil, err
	}
	if err := mgr.Attach(in); err != nil {
		s.Close()
		return nil, err
	}
	so := o.Sink
	so.Logger, so.Registerer = s.log, s.reg
	if so.Now == nil {
		so.Now = o.Now
	}
	if s.Sinks, err = sink.Open(st, mgr, in, so); err != nil {
		s.Close()
		return nil, fmt.Errorf("start sinks: %w", err)
	}
	if s.Srcs, err = source.Open(cfg.Sources, st, in, source.Options{Logger: s.log, Registerer: s.reg, Now: o.Now, Limits: cfg.Limits}); err != nil {
		s.Close()
		return nil, fmt.Errorf("start sources: %w", err)
	}
	s.API = api.New(st, in, mgr, s.Sinks, api.Options{Limits: cfg.Limits, Logger: s.log, Gatherer: s.reg, Register: s.reg, Now: o.Now, Sources: s.Srcs})
	s.wg.Add(2)
	go s.retentionLoop(o.Now)
	go s.timerLoop(o.Now)
	return s, nil
}

// bootstrap creates the default workspace and keys on first start, and
// registers keys given in the configuration or environment.
func (s *Server) bootstrap(ctx context.Context, out io.Writer) error {
	ws, ok := s.In.WorkspaceByName(DefaultWorkspace)
	if !ok {
		keys := ingest.Keys{WriteKey: s.cfg.WriteKey, APIKey: s.cfg.APIKey}
		var err error
		ws, keys, err = s.In.CreateWorkspace(ctx, DefaultWorkspace, keys)
		if err != nil {
			return fmt.Errorf("create default workspace: %w", err)
		}
		if s.cfg.WriteKey == "" {
			fmt.Fprintf(out, "cohort: generated write key of workspace %q: %s\n", DefaultWorkspace, keys.WriteKey)
		}
		if s.cfg.APIKey == "" {
			fmt.Fprintf(out, "cohort: generated api key of workspace %q:   %s\n", DefaultWorkspace, keys.APIKey)
		}
	} else {
		// A configured key the store does not hold yet is added beside the
		// keys stored before, which stay valid until revoked: say so.
		for _, k := range []struct {
			key, from string
			role      store.Role
		}{{s.cfg.WriteKey, "COHORT_WRITE_KEY or write_key", store.RoleWrite}, {s.cfg.APIKey, "COHORT_API_KEY or api_key", store.RoleAPI}} {
			if k.key == "" {
				continue
			}
			added, err := s.In.AddKey(k.key, k.role, ws.Num, k.from)
			if err != nil {
				return err
			}
			if added {
				s.log.Warn("a configured key was added to workspace "+strconv.Quote(DefaultWorkspace)+"; its keys stored before still work: list them with GET /api/workspaces/default/keys and revoke the old one (docs/keys.md)",
					"key_id", store.KeyID(k.key), "from", k.from)
			}
		}
	}
	generated, err := s.St.AdminKeyGenerated()
	if err != nil {
		return err
	}
	if s.cfg.AdminKey != "" {
		_, err := s.In.AddKey(s.cfg.AdminKey, store.RoleAdmin, 0, "COHORT_ADMIN_KEY or admin_key")
		return err
	}
	if generated {
		return nil
	}
	// Generate an admin key once, the first time none is configured.
	key := ingest.NewKey("adm_")
	if _, err := s.In.AddKey(key, store.RoleAdmin, 0, "first start"); err != nil {
		return err
	}
	fmt.Fprintf(out, "cohort: generated admin key: %s\n", key)
	return s.St.SetAdminKeyGenerated()
}

// Listen binds the HTTP address.
func (s *Server) Listen() error {
	ln, err := net.Listen("tcp", s.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", s.cfg.HTTP, err)
	}
	s.ln = ln
	return nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers HTTP until ctx is done, then drains in-flight requests.
func (s *Server) Serve(ctx context.Context) error {
	s.http = newHTTPServer(s.API)
	errc := make(chan error, 1)
	go func() { errc <- s.http.Serve(s.ln) }()
	s.API.MarkReady()
	s.log.Info("serving", "addr", s.Addr())
	return s.serveUntil(ctx, errc)
}

// Close stops the subsystems in reverse order.
func (s *Server) Close() error {
	close(s.stop)
	s.wg.Wait()
	var errs []error
	if s.Srcs != nil {
		s.log.Info("stopping sources")
		s.Srcs.Close()
	}
	if s.Sinks != nil {
		s.log.Info("stopping sinks")
		s.Sinks.Close()
	}
	if s.Seg != nil && s.In != nil {
		s.log.Info("stopping segment builds")
		s.Seg.Close()
	}
	if s.In != nil {
		s.log.Info("stopping ingestion")
		errs = append(errs, s.In.Close())
	}
	if s.Seg != nil {
		s.Seg.CloseIndexes()
	}
	s.log.Info("closing store")
	errs = append(errs, s.St.Close())
	return errors.Join(errs...)
}

// Handler is the HTTP handler, for tests that serve it themselves.
func (s *Server) Handler() http.Handler { return s.API }

func (s *Server) retentionLoop(now func() time.Time) {
	defer s.wg.Done()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	// Close stops a sweep in progress (it resumes at the next start).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	for {
		if err := s.Retain(ctx, now()); err != nil && ctx.Err() == nil {
			s.log.Error("retention sweep failed", "err", err)
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// timerLoop fires due membership timers (relative windows, within_last)
// a few times a second, so a profile leaves within a second of its due
// time with no new event.
func (s *Server) timerLoop(now func() time.Time) {
	defer s.wg.Done()
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.stop
		cancel()
	}()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Seg.Tick(ctx, now()); err != nil && ctx.Err() == nil {
				s.log.Error("membership timers", "err", err)
			}
		}
	}
}

// Retain applies the retention period to every workspace: memberships
// that depended on events past it change (reason "time") and the index
// frees them, then the store deletes those whole days by range deletion,
// and the remembered messageIds received before then expire. Bot flags
// quiet for a day are lifted, and the change log is compacted.
func (s *Server) Retain(ctx context.Context, now time.Time) error {
	cutoff := store.Day(now.Add(-time.Duration(s.cfg.Retention)))
	from := time.Unix(int64(cutoff)*86400, 0).UTC()
	wss, err := s.St.Workspaces()
	if err != nil {
		return err
	}
	for _, w := range wss {
		ws, ok := s.In.Workspace(w.Num)
		if !ok {
			continue
		}
		// Memberships and the index first: a crash before the store's
		// deletion leaves events the next sweep drops again.
		if err := s.Seg.Retain(ctx, ws, from); err != nil {
			return fmt.Errorf("retention of workspace %q: %w", w.Name, err)
		}
		if err := s.St.DeleteEventsBefore(w.Num, cutoff); err != nil {
			return err
		}
		n, err := s.St.DeleteMsgIDsBefore(ctx, w.Num, cutoff)
		if err != nil {
			return err
		}
		if err := s.In.ExpireBots(ctx, ws); err != nil {
			return fmt.Errorf("bot flags of workspace %q: %w", w.Name, err)
		}
		if h := time.Duration(s.cfg.ChangeLogHorizon); h > 0 {
			bound := ^uint64(0)
			if s.Sinks != nil {
				bound = s.Sinks.MinCursor(w.Num)
			}
			if _, err := s.Seg.CompactChanges(ctx, ws, now.Add(-h), bound); err != nil {
				return fmt.Errorf("change log of workspace %q: %w", w.Name, err)
			}
		}
		s.log.Debug("retention sweep", "workspace", w.Name, "before_day", cutoff, "message_ids", n)
	}
	return nil
}
