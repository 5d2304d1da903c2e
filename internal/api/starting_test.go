package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGate: while starting, /healthz is 503 with the progress (never going
// back) and every other route 503 with Retry-After; after Ready everything
// reaches the real handler.
func TestGate(t *testing.T) {
	g := NewGate(nil)
	get := func(method, path string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		g.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader("{}")))
		return rec
	}
	health := func() (int, map[string]any) {
		rec := get("GET", "/healthz")
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("/healthz: %v in %q", err, rec.Body)
		}
		return rec.Code, body
	}
	if code, body := health(); code != 503 || body["status"] != "starting" || body["progress"] != 0.0 {
		t.Errorf("at start: %d %v", code, body)
	}
	g.SetProgress(0.4)
	g.SetProgress(0.25) // late, smaller: ignored
	if code, body := health(); code != 503 || body["progress"] != 0.4 {
		t.Errorf("at 0.4: %d %v", code, body)
	}
	for _, r := range []struct{ method, path string }{{"POST", "/v1/batch"}, {"GET", "/api/segments"}, {"GET", "/metrics"}, {"POST", "/healthz"}} {
		rec := get(r.method, r.path)
		if rec.Code != 503 || rec.Header().Get("Retry-After") != startingRetryAfter || !strings.Contains(rec.Body.String(), "starting (40% loaded)") ||
			rec.Header().Get(RequestIDHeader) == "" {
			t.Errorf("%s %s while starting: %d %v %s", r.method, r.path, rec.Code, rec.Header(), rec.Body)
		}
	}
	g.Ready(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	if rec := get("GET", "/healthz"); rec.Code != http.StatusTeapot {
		t.Errorf("after Ready, /healthz went to %d", rec.Code)
	}
	if rec := get("POST", "/v1/batch"); rec.Code != http.StatusTeapot {
		t.Errorf("after Ready, /v1/batch went to %d", rec.Code)
	}
	if g.Progress() != 1 {
		t.Errorf("progress after Ready: %g", g.Progress())
	}
}
