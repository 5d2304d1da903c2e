package api

import (
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sync/atomic"
)

// startingRetryAfter is the Retry-After, in seconds, of answers given
// while the server loads.
const startingRetryAfter = "5"

// Gate is the HTTP handler from the first moment of a start: while the
// server loads, GET /healthz answers 503 {"status": "starting",
// "progress": 0..1} and every other request 503 with Retry-After; once
// Open hands it the real handler (Ready), it passes everything through.
// Its methods are safe for concurrent use.
type Gate struct {
	log      *slog.Logger
	progress atomic.Uint64 // math.Float64bits of the fraction loaded
	next     atomic.Pointer[http.Handler]
	starting http.Handler
}

// NewGate returns a gate that is starting, at progress 0.
func NewGate(log *slog.Logger) *Gate {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	g := &Gate{log: log}
	s := &Server{log: log} // for the request-id layer only
	g.starting = s.withRequestID(http.HandlerFunc(g.serveStarting))
	return g
}

// SetProgress records the fraction loaded (clamped to 0..1; it never goes
// back).
func (g *Gate) SetProgress(f float64) {
	f = min(max(f, 0), 1)
	for {
		old := g.progress.Load()
		if f <= math.Float64frombits(old) || g.progress.CompareAndSwap(old, math.Float64bits(f)) {
			return
		}
	}
}

// Progress is the fraction loaded so far.
func (g *Gate) Progress() float64 { return math.Float64frombits(g.progress.Load()) }

// Ready hands every later request to h.
func (g *Gate) Ready(h http.Handler) {
	g.SetProgress(1)
	g.next.Store(&h)
}

// ServeHTTP implements http.Handler.
func (g *Gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := g.next.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	g.starting.ServeHTTP(w, r)
}

func (g *Gate) serveStarting(w http.ResponseWriter, r *http.Request) {
	p := g.Progress()
	if r.URL.Path == "/healthz" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
		writeJSON(w, http.StatusServiceUnavailable, startingBody(p))
		return
	}
	w.Header().Set("Retry-After", startingRetryAfter)
	writeError(w, http.StatusServiceUnavailable, fmt.Sprintf("the server is starting (%.0f%% loaded); retry in a few seconds", 100*p))
}

// startingBody is /healthz's answer while the server is not ready.
func startingBody(progress float64) map[string]any {
	return map[string]any{"status": "starting", "progress": math.Round(progress*1000) / 1000}
}
