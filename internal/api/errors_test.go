package api_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/server"
	"github.com/cohortdb/cohort/internal/store"
)

// lockedBuffer is a log destination the test reads while the server runs.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestInternalErrorHidesDetail corrupts a stored profile so that reading
// it fails inside the server: the client must get a sentence naming the
// request id (and the same id in X-Request-Id), never the store's error
// text; the log must have both the id and the real error.
func TestInternalErrorHidesDetail(t *testing.T) {
	var logs lockedBuffer
	c, srv := startServer(t, nil, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if r := c.ingest("identify", `{"userId":"u1","traits":{"plan":"pro"}}`); r.Code != 200 {
		t.Fatalf("identify: %d %s", r.Code, r.Raw)
	}
	ws, _ := srv.In.WorkspaceByName(server.DefaultWorkspace)
	num, ok, err := store.ResolveID(srv.St.DB(), ws.Num, "u1")
	if err != nil || !ok {
		t.Fatalf("resolve u1: %v %v", ok, err)
	}
	if err := srv.St.DB().Set(store.ProfileKey(ws.Num, num), []byte{0xff, 0x01, 0x02}, pebble.Sync); err != nil {
		t.Fatal(err)
	}

	r := c.user("u1")
	if r.Code != 500 {
		t.Fatalf("corrupt profile: %d %s", r.Code, r.Raw)
	}
	id := r.Header.Get("X-Request-Id")
	if len(id) != 26 || r.Body["request_id"] != id {
		t.Fatalf("request id %q in header, %v in body", id, r.Body["request_id"])
	}
	msg, _ := r.Body["error"].(string)
	if !strings.Contains(msg, "request id "+id) || strings.Contains(strings.ToLower(msg), "corrupt") || strings.Contains(msg, "profile") {
		t.Errorf("the client was told %q", msg)
	}
	var logged string
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "request_id="+id) {
			logged = line
		}
	}
	if !strings.Contains(logged, "request failed") || !strings.Contains(logged, "corrupt") || !strings.Contains(logged, "/api/users/u1") {
		t.Errorf("log line for %s: %q\nall logs:\n%s", id, logged, logs.String())
	}

	// A sane incoming id is kept, echoed and logged; an insane one replaced.
	r = c.do("GET", "/api/users/u1", map[string]string{"Authorization": "Bearer " + apiKey, "X-Request-Id": "lb-7f3a:42"}, nil)
	if r.Code != 500 || r.Header.Get("X-Request-Id") != "lb-7f3a:42" || r.Body["request_id"] != "lb-7f3a:42" {
		t.Errorf("incoming id: %d %v %s", r.Code, r.Header.Get("X-Request-Id"), r.Raw)
	}
	if !strings.Contains(logs.String(), "request_id=lb-7f3a:42") {
		t.Errorf("incoming id not logged")
	}
	for _, bad := range []string{"has space", strings.Repeat("x", 129), "quote\"d", "semi;colon"} {
		r = c.do("GET", "/healthz", map[string]string{"X-Request-Id": bad}, nil)
		if got := r.Header.Get("X-Request-Id"); got == bad || len(got) != 26 {
			t.Errorf("incoming id %q answered with %q", bad, got)
		}
	}
	// Every answer has an id, success or not.
	if r := c.do("GET", "/nowhere", nil, nil); r.Code != 404 || r.Header.Get("X-Request-Id") == "" {
		t.Errorf("404 without id: %d %v", r.Code, r.Header)
	}
}

// TestRequestContextStopsWork: a request whose context is done gets no
// page of GET /api/changes (its log scan follows the request's context)
// and is not logged as a server fault.
func TestRequestContextStopsWork(t *testing.T) {
	var logs lockedBuffer
	c, srv := startServer(t, nil, server.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if r := c.do("POST", "/api/segments", bearer(apiKey), []byte(`{"id":"pro","condition":{"trait":"plan","op":"eq","value":"pro"}}`)); r.Code != 201 {
		t.Fatalf("segment: %d %s", r.Code, r.Raw)
	}
	if r := c.ingest("identify", `{"userId":"u1","traits":{"plan":"pro"}}`); r.Code != 200 {
		t.Fatalf("identify: %d %s", r.Code, r.Raw)
	}
	get := func(ctx context.Context) *httptest.ResponseRecorder {
		req := httptest.NewRequestWithContext(ctx, "GET", "/api/changes?since=0", nil)
		req.Header.Set("Authorization", "Bearer "+apiKey)
		req.Header.Set("Accept", "application/json")
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		return rec
	}
	if rec := get(context.Background()); rec.Code != 200 || !strings.Contains(rec.Body.String(), `"user":"u1"`) {
		t.Fatalf("live request: %d %s", rec.Code, rec.Body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	rec := get(ctx)
	if rec.Code != 503 || strings.Contains(rec.Body.String(), "u1") {
		t.Errorf("cancelled request: %d %s", rec.Code, rec.Body)
	}
	if strings.Contains(logs.String(), "request failed") {
		t.Errorf("a cancelled request was logged as a fault:\n%s", logs.String())
	}
}
