package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cohortdb/cohort/internal/api"
	"github.com/cohortdb/cohort/internal/config"
)

// drainTimeout bounds how long stopping waits for in-flight requests.
const drainTimeout = 30 * time.Second

// Run is `cohort serve`: it listens at once and answers through an
// api.Gate (503 "starting" with the progress on /healthz, 503 with
// Retry-After elsewhere) while it opens the store and loads the indexes;
// then it serves until ctx is done, drains in-flight requests and closes
// everything. ctx done while loading stops the load, closes the store and
// returns nil: a stop asked for is not a failure.
func Run(ctx context.Context, cfg config.Config, o Options) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger
	ln, err := net.Listen("tcp", cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.HTTP, err)
	}
	gate := api.NewGate(log)
	hs := newHTTPServer(gate)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("listening while loading", "addr", ln.Addr().String())
	if prev := o.Progress; prev != nil {
		o.Progress = func(f float64) { gate.SetProgress(f); prev(f) }
	} else {
		o.Progress = gate.SetProgress
	}
	s, err := OpenContext(ctx, cfg, o)
	if err != nil {
		drainErr := drain(log, hs, errc)
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			log.Info("stopped while loading", "progress", gate.Progress())
			return drainErr
		}
		return err
	}
	s.ln, s.http = ln, hs
	s.API.MarkReady()
	gate.Ready(s.API)
	log.Info("serving", "addr", s.Addr())
	serveErr := s.serveUntil(ctx, errc)
	return errors.Join(serveErr, s.Close())
}

func newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
}

// serveUntil waits for ctx (or the HTTP server's failure), then drains.
func (s *Server) serveUntil(ctx context.Context, errc chan error) error {
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	return drain(s.log, s.http, errc)
}

// drain stops hs taking requests and waits (at most drainTimeout) for the
// ones in flight; errc is where hs.Serve returns.
func drain(log *slog.Logger, hs *http.Server, errc chan error) error {
	log.Info("draining HTTP requests")
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	defer cancel()
	if err := hs.Shutdown(ctx); err != nil {
		return fmt.Errorf("drain http: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
