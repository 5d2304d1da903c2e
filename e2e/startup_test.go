//go:build unix

package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Size of the data set the start-up tests load: enough that loading takes
// a visible while (about a second here), so /healthz can be seen starting.
const (
	startupUsers  = 20000
	startupEvents = 200000
)

// startupData is the data directory the start-up tests share (they only
// read it, one server at a time); it lives next to the test binary, which
// TestMain removes.
var startupData struct {
	once sync.Once
	dir  string
	err  error
}

// importStartupData returns a data directory holding startupEvents track
// events of startupUsers users over 20 days, imported once with `cohort
// import --data`.
func importStartupData(t *testing.T) string {
	t.Helper()
	startupData.once.Do(func() {
		startupData.dir, startupData.err = writeStartupData(filepath.Join(filepath.Dir(cohortBin), "startup"))
	})
	if startupData.err != nil {
		t.Fatal(startupData.err)
	}
	return startupData.dir
}

func writeStartupData(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	file := filepath.Join(dir, "events.ndjson")
	f, err := os.Create(file)
	if err != nil {
		return "", err
	}
	w := bufio.NewWriter(f)
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	names := []string{"Page Viewed", "Added To Cart", "Order Completed", "Search"}
	for i := range startupEvents {
		fmt.Fprintf(w, `{"type":"track","userId":"u%d","event":%q,"messageId":"m%d","timestamp":%q,"properties":{"price":%d,"n":%d}}`+"\n",
			i%startupUsers, names[(i/startupUsers)%len(names)], i, day0.Add(time.Duration(i%20)*24*time.Hour+time.Duration(i%86400)*time.Second).Format(time.RFC3339), i%997, i)
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	f.Close()
	data := filepath.Join(dir, "data")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, cohortBin, "import", "--create", "--data", data, file).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cohort import: %v\n%s", err, out)
	}
	return data, os.Remove(file)
}

// health is an answer of GET /healthz.
type health struct {
	Code     int
	Status   string   `json:"status"`
	Progress *float64 `json:"progress"`
}

// getHealth asks /healthz once; ok is false when nothing answered.
func (s *server) getHealth() (h health, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.base+"/healthz", nil)
	res, err := s.client.Do(req)
	if err != nil {
		return h, false
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &h); err != nil {
		return h, false
	}
	h.Code = res.StatusCode
	return h, true
}

// waitStarting polls /healthz (the port opens before loading) until it
// answers 503 "starting", and returns that answer.
func (s *server) waitStarting(t *testing.T) health {
	t.Helper()
	deadline := time.Now().Add(startTimeout)
	for time.Now().Before(deadline) {
		if h, ok := s.getHealth(); ok {
			if h.Code != http.StatusServiceUnavailable || h.Status != "starting" || h.Progress == nil {
				t.Fatalf("%s: first /healthz answer %+v, want 503 starting with a progress", s.name, h)
			}
			return h
		}
		select {
		case <-s.done:
			t.Fatalf("%s exited while starting: %v", s.name, s.waitErr)
		case <-time.After(2 * time.Millisecond):
		}
	}
	t.Fatalf("%s: the port did not open within %s", s.name, startTimeout)
	return health{}
}

// TestStartupHealthz: the port answers while the store loads; /healthz is
// 503 "starting" with a progress that never goes back and stays within
// 0..1, other routes are 503 with Retry-After, then /healthz is 200 "ok"
// and the data is all there.
func TestStartupHealthz(t *testing.T) {
	data := importStartupData(t)
	srv, err := launchServer(t, data)
	if err != nil {
		t.Fatal(err)
	}
	h := srv.waitStarting(t)
	status, body := srv.get(t, "/api/users/u1")
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "starting") {
		t.Errorf("GET /api/users/u1 while starting: %d %s", status, body)
	}
	res, err := srv.client.Post(srv.base+"/v1/track", "application/json", strings.NewReader(`{"userId":"x","event":"E"}`))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("POST /v1/track while starting: %d, Retry-After %q", res.StatusCode, res.Header.Get("Retry-After"))
	}
	last, answers, moved := *h.Progress, 1, false
	deadline := time.Now().Add(startTimeout)
	for {
		h, ok := srv.getHealth()
		if !ok {
			t.Fatalf("%s stopped answering /healthz while starting", srv.name)
		}
		if h.Code == http.StatusOK {
			if h.Status != "ok" {
				t.Errorf("ready /healthz: %+v", h)
			}
			break
		}
		answers++
		p := *h.Progress
		if h.Code != http.StatusServiceUnavailable || h.Status != "starting" || p < last || p > 1 {
			t.Fatalf("/healthz answer %d: %+v after progress %g", answers, h, last)
		}
		moved = moved || p > last
		last = p
		if time.Now().After(deadline) {
			t.Fatalf("not ready within %s (progress %g)", startTimeout, last)
		}
		time.Sleep(5 * time.Millisecond) // polling pace, not a wait for an outcome
	}
	t.Logf("%d answers of 503 starting; last progress %g", answers, last)
	if !moved {
		t.Errorf("the progress never moved over %d answers", answers)
	}
	srv.expectAllDid(t, "Order Completed", "after start-up")
	srv.stop(t)
}

// TestSIGTERMWhileLoading: SIGTERM while the indexes load (the progress
// has left 0) stops the load and exits 0, and the data directory opens
// cleanly afterwards with all its data.
func TestSIGTERMWhileLoading(t *testing.T) {
	data := importStartupData(t)
	// Opening the index files takes milliseconds; the long load is the
	// rebuild from the stored events (an old data directory, or damaged
	// index files), so each attempt starts without the index directory.
	// That takes most of a second here; should it finish between the
	// look at /healthz and the signal anyway, the server stops as a
	// serving one would, and the test tries again.
	const attempts = 3
	stopped := false
	for attempt := 1; attempt <= attempts && !stopped; attempt++ {
		if err := os.RemoveAll(filepath.Join(data, "index")); err != nil {
			t.Fatal(err)
		}
		srv, err := launchServer(t, data)
		if err != nil {
			t.Fatal(err)
		}
		srv.waitStarting(t)
		var p float64
		for {
			h, ok := srv.getHealth()
			if !ok || h.Code != http.StatusServiceUnavailable {
				break
			}
			if p = *h.Progress; p > 0 {
				break
			}
			time.Sleep(2 * time.Millisecond) // polling pace
		}
		sent := time.Now()
		srv.signal(t, syscall.SIGTERM)
		srv.expectCleanExit(t)
		logs := srv.logs.String()
		stopped = strings.Contains(logs, "stopped while loading") && !strings.Contains(logs, "msg=serving")
		t.Logf("attempt %d: SIGTERM at progress %g; exit 0 %s later; stopped while loading: %v",
			attempt, p, time.Since(sent).Round(time.Millisecond), stopped)
	}
	if !stopped {
		t.Fatalf("in %d attempts, the server never got SIGTERM while loading", attempts)
	}

	srv := startServer(t, data)
	srv.expectAllDid(t, "Search", "after the reopen")
	srv.stop(t)
}

// postJSON sends POST path with the api key and body, expects 200 and
// decodes the answer into v.
func (s *server) postJSON(t *testing.T, path, body string, v any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	res, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("POST %s: %d %s", path, res.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("POST %s: %v in %s", path, err, b)
	}
}

// expectAllDid checks that every user of the start-up data did event.
func (s *server) expectAllDid(t *testing.T, event, when string) {
	t.Helper()
	var q struct {
		Size int `json:"size"`
	}
	s.postJSON(t, "/api/query", `{"condition":{"event":"`+event+`"}}`, &q)
	if q.Size != startupUsers {
		t.Errorf("%s, %d users did %s, want %d", when, q.Size, event, startupUsers)
	}
}
