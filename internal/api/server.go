package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/console"
	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/sink"
	"github.com/cohortdb/cohort/internal/source"
	"github.com/cohortdb/cohort/internal/store"
)

// Options configure a Server.
type Options struct {
	Limits   config.Limits
	Logger   *slog.Logger
	Gatherer prometheus.Gatherer   // what /metrics shows; nil: nothing
	Register prometheus.Registerer // where HTTP metrics go; nil: nowhere
	Now      func() time.Time
	Sources  *source.Manager // nil: no sources configured
}

// Server is the HTTP handler of a running Cohort.
type Server struct {
	st   *store.Store
	in   *ingest.Ingester
	seg  *segment.Manager
	snk  *sink.Manager
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	// handler is mux behind the request-id layer.
	handler http.Handler

	ready    chan struct{}
	limitMu  sync.Mutex
	limiters map[uint32]*rate.Limiter

	reqDur *prometheus.HistogramVec
}

// New builds the handler.
func New(st *store.Store, in *ingest.Ingester, seg *segment.Manager, snk *sink.Manager, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{st: st, in: in, seg: seg, snk: snk, opts: opts, log: opts.Logger, mux: http.NewServeMux(),
		ready: make(chan struct{}), limiters: map[uint32]*rate.Limiter{}}
	s.reqDur = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cohort_http_request_seconds",
		Help:    "HTTP request latency by route and status code.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"route", "code"})
	if opts.Register != nil {
		opts.Register.MustRegister(s.reqDur)
	}
	s.routes()
	s.handler = s.withRequestID(s.mux)
	return s
}

// MarkReady makes /healthz answer 200.
func (s *Server) MarkReady() { close(s.ready) }

func (s *Server) routes() {
	for _, r := range []string{"batch", "identify", "track", "alias", "page", "screen", "group"} {
		s.handle("POST /v1/"+r, s.ingestRoute(r))
	}
	s.handle("GET /healthz", s.healthz)
	s.handle("GET /openapi.yaml", s.serveOpenAPI)
	if s.opts.Gatherer != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{}))
	}
	s.handle("GET /api/users/{id}", s.api(s.getUser))
	s.handle("DELETE /api/users/{id}", s.api(s.deleteUser))
	s.handle("GET /api/users/{id}/events", s.api(s.getUserEvents))
	s.handle("GET /api/schema", s.api(s.getSchema))
	s.handle("GET /api/schema/values", s.api(s.getSchemaValues))
	s.handle("GET /api/rejections", s.api(s.getRejections))
	s.handle("POST /api/workspaces", s.admin(s.createWorkspace))
	s.handle("GET /api/workspaces", s.admin(s.listWorkspaces))
	s.handle("GET /api/workspaces/{id}/keys", s.admin(s.listKeys))
	s.handle("POST /api/workspaces/{id}/keys", s.admin(s.issueKey))
	s.handle("DELETE /api/workspaces/{id}/keys/{key_id}", s.admin(s.revokeKey))
	s.handle("POST /api/segments", s.api(s.createSegment))
	s.handle("GET /api/segments", s.api(s.listSegments))
	s.handle("GET /api/segments/{id}", s.api(s.getSegment))
	s.handle("PUT /api/segments/{id}", s.api(s.putSegment))
	s.handle("DELETE /api/segments/{id}", s.api(s.deleteSegment))
	s.handle("GET /api/segments/{id}/members", s.api(s.segmentMembers))
	s.handle("GET /api/segments/{id}/history", s.api(s.segmentHistory))
	s.handle("GET /api/users/{id}/explain", s.api(s.explainUser))
	s.handle("POST /api/query", s.api(s.query))
	s.handle("GET /api/changes", s.api(s.changes))
	s.handle("POST /api/sinks", s.api(s.createSink))
	s.handle("GET /api/sinks", s.api(s.listSinks))
	s.handle("GET /api/sinks/{id}", s.api(s.getSink))
	s.handle("DELETE /api/sinks/{id}", s.api(s.deleteSink))
	ui := console.New()
	s.handle("GET /{$}", ui.Index)
	s.handle("GET /console/{file}", ui.Asset)
	s.pprofRoutes()
	s.handle("GET /api/sources", s.api(s.listSources))
	s.handle("POST /api/sources/{name}/pause", s.api(s.sourceAction((*source.Manager).Pause)))
	s.handle("POST /api/sources/{name}/resume", s.api(s.sourceAction((*source.Manager).Resume)))
	s.handle("POST /api/sources/{name}/bootstrap", s.api(s.bootstrapSource))
	s.mux.HandleFunc("/", s.noRoute)
}

// handle registers a route, timing it under its pattern.
func (s *Server) handle(pattern string, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		s.reqDur.WithLabelValues(pattern, strconv.Itoa(sw.code)).Observe(time.Since(start).Seconds())
	})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	select {
	case <-s.ready:
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	default:
		// Loaded, not yet serving (Serve marks it ready).
		writeJSON(w, http.StatusServiceUnavailable, startingBody(1))
	}
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) { w.code = code; w.ResponseWriter.WriteHeader(code) }
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// apiError is an error with its HTTP status and, for a bad condition, the
// JSON pointer of the offending part.
type apiError struct {
	Status int
	Msg    string
	Path   *string
}

func (e *apiError) Error() string { return e.Msg }

func errorf(status int, format string, args ...any) *apiError {
	return &apiError{Status: status, Msg: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

// writeErr maps an error to its status and JSON body. A fault of the
// server's own (5xx but a shutdown) is logged with the request id and the
// real error; the client gets only a sentence naming that id.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		body := map[string]any{"error": ae.Msg}
		if ae.Path != nil {
			body["path"] = *ae.Path
		}
		if ae.Status >= 500 {
			id := w.Header().Get(RequestIDHeader)
			body["request_id"] = id
			s.log.Warn("request refused", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", ae.Status, "err", ae.Msg)
		}
		writeJSON(w, ae.Status, body)
		return
	}
	if errors.Is(err, ingest.ErrClosed) {
		writeError(w, http.StatusServiceUnavailable, "the server is shutting down")
		return
	}
	if errors.Is(err, ingest.ErrOverloaded) {
		// Nothing of the request was stored: SDKs retry on 503.
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "ingestion is behind; nothing of this request was stored, retry after 1 s")
		return
	}
	id := w.Header().Get(RequestIDHeader)
	if r.Context().Err() != nil && errors.Is(err, r.Context().Err()) {
		// The client went away or gave up: nothing is broken.
		s.log.Debug("request cancelled", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "the request was cancelled before it finished")
		return
	}
	s.log.Error("request failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	writeJSON(w, http.StatusInternalServerError, internalErrorBody(id))
}

// limiter returns a workspace's event-rate limiter, or nil when unlimited.
func (s *Server) limiter(ws uint32) *rate.Limiter {
	l := s.opts.Limits
	if l.EventsPerSecond <= 0 {
		return nil
	}
	s.limitMu.Lock()
	defer s.limitMu.Unlock()
	lim := s.limiters[ws]
	if lim == nil {
		burst := l.Burst
		if burst <= 0 {
			burst = max(int(l.EventsPerSecond), 1000)
		}
		lim = rate.NewLimiter(rate.Limit(l.EventsPerSecond), burst)
		s.limiters[ws] = lim
	}
	return lim
}

// noRoute answers what no route matched: 405 with Allow when the path
// exists under other methods, else 404.
func (s *Server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("no route %s %s", r.Method, r.URL.Path))
}
