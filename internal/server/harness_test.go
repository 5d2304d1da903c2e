package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/config"
)

const (
	testWriteKey = "wk_stress_test_key"
	testAPIKey   = "api_stress_test_key"
)

// live is a real server listening on loopback, for tests that drive it
// over HTTP the way clients do.
type live struct {
	t    testing.TB
	srv  *Server
	url  string
	hc   *http.Client
	cfg  config.Config
	opts Options
	stop func() // stops serving and closes the server
}

// startLive opens, listens and serves a server with a fresh data directory.
func startLive(t testing.TB, mod func(*config.Config), o Options) *live {
	t.Helper()
	cfg := config.Default()
	cfg.HTTP = "127.0.0.1:0"
	cfg.Data = t.TempDir()
	cfg.WriteKey, cfg.APIKey = testWriteKey, testAPIKey
	if mod != nil {
		mod(&cfg)
	}
	l := &live{t: t, cfg: cfg, opts: o}
	l.start()
	t.Cleanup(func() { l.stop() })
	return l
}

// start opens the server on l's data directory and serves it.
func (l *live) start() {
	t := l.t
	t.Helper()
	srv, err := Open(l.cfg, l.opts)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ctx) }()
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	l.srv, l.url, l.hc = srv, "http://"+srv.Addr(), &http.Client{Transport: tr}
	stopped := false
	l.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-errc; err != nil {
			t.Error(err)
		}
		tr.CloseIdleConnections()
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	}
	if err := waitReady(ctx, l.hc, l.url+"/healthz"); err != nil {
		t.Fatal(err)
	}
}

// restart closes the server cleanly and opens it again on the same data.
func (l *live) restart() {
	l.stop()
	l.start()
}

// do sends one request with the right key for its route and decodes a JSON
// answer into out (when not nil). It fails on a transport error only.
func (l *live) do(ctx context.Context, method, path string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, l.url+path, rd)
	if err != nil {
		return 0, err
	}
	if strings.HasPrefix(path, "/v1/") {
		req.SetBasicAuth(testWriteKey, "")
	} else {
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
	}
	req.Header.Set("Accept", "application/json")
	res, err := l.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if out != nil && len(raw) > 0 && res.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return res.StatusCode, fmt.Errorf("%s %s: %w in %.300q", method, path, err, raw)
		}
	}
	if res.StatusCode >= 300 {
		return res.StatusCode, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, raw)
	}
	return res.StatusCode, nil
}

// must is do that fails the test on any error or non-2xx answer.
// (do itself reports a non-2xx answer as an error with its body.)
func (l *live) must(ctx context.Context, method, path string, body any, out any) {
	l.t.Helper()
	code, err := l.do(ctx, method, path, body, out)
	if err != nil {
		l.t.Fatalf("%s %s: %v", method, path, err)
	}
	if code >= 300 {
		l.t.Fatalf("%s %s: status %d", method, path, code)
	}
}

// watchdog fails a test, with every goroutine's stack, when a request
// it watches has been in flight for longer than its bound, or no request
// has completed for that long. Each worker takes a slot and marks it busy
// around every request.
type watchdog struct {
	stall    time.Duration
	progress atomic.Int64
	mu       sync.Mutex
	slots    []*atomic.Int64 // start of the request in flight (Unix ns), 0 when idle
	stop     chan struct{}
	done     chan struct{}
	dump     string
	why      string
}

func newWatchdog(stall time.Duration, cancel context.CancelFunc) *watchdog {
	w := &watchdog{stall: stall, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tk := time.NewTicker(stall / 20)
		defer tk.Stop()
		last, since := w.progress.Load(), time.Now()
		for {
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
			now := time.Now()
			if p := w.progress.Load(); p != last {
				last, since = p, now
			}
			why := ""
			if now.Sub(since) >= stall {
				why = fmt.Sprintf("no request completed for %s", stall)
			}
			w.mu.Lock()
			for i, s := range w.slots {
				if st := s.Load(); st != 0 && now.Sub(time.Unix(0, st)) >= stall {
					why = fmt.Sprintf("worker %d's request has been in flight for %s", i, now.Sub(time.Unix(0, st)).Round(time.Second))
				}
			}
			w.mu.Unlock()
			if why != "" {
				var buf bytes.Buffer
				pprof.Lookup("goroutine").WriteTo(&buf, 2)
				w.mu.Lock()
				w.why, w.dump = why, buf.String()
				w.mu.Unlock()
				cancel() // unblock the workers so the test can report
				return
			}
		}
	}()
	return w
}

// slot is one worker's in-flight marker.
func (w *watchdog) slot() *slot {
	s := new(atomic.Int64)
	w.mu.Lock()
	w.slots = append(w.slots, s)
	w.mu.Unlock()
	return &slot{w: w, at: s}
}

type slot struct {
	w  *watchdog
	at *atomic.Int64
}

func (s *slot) begin() { s.at.Store(time.Now().UnixNano()) }
func (s *slot) end() {
	s.at.Store(0)
	s.w.progress.Add(1)
}

// Stop ends the watch and fails t if it saw a stall.
func (w *watchdog) Stop(t *testing.T) {
	t.Helper()
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.why != "" {
		t.Fatalf("watchdog: %s: a request or the applier is stuck\n%s", w.why, w.dump)
	}
}

func jsonBody(t testing.TB, v any) io.Reader {
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(raw)
}
