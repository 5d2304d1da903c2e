package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/config"
)

// seedData fills a data directory with 24,000 events of 3,000 users over
// 12 days through the HTTP API, and closes the server.
func seedData(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.WriteKey, cfg.APIKey = "wk_progress_test", "ak_progress_test"
	srv, err := Open(cfg, Options{})
	if err != nil {
		t.Fatal(err)
	}
	srv.API.MarkReady()
	hs := httptest.NewServer(srv.Handler())
	day0 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for b := range 24 {
		var body strings.Builder
		body.WriteString(`{"batch":[`)
		for i := range 1000 {
			n := b*1000 + i
			if i > 0 {
				body.WriteString(",")
			}
			fmt.Fprintf(&body, `{"type":"track","userId":"u%d","event":"E%d","messageId":"m%d","timestamp":%q}`,
				n%3000, n%5, n, day0.Add(time.Duration(n%12)*24*time.Hour).Format(time.RFC3339))
		}
		body.WriteString("]}")
		req, _ := http.NewRequest("POST", hs.URL+"/v1/batch", strings.NewReader(body.String()))
		req.SetBasicAuth(cfg.WriteKey, "")
		res, err := hs.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("batch %d: %d", b, res.StatusCode)
		}
	}
	hs.Close()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestOpenProgress: loading reports a progress that starts at 0, never
// goes back, moves through many steps and ends at exactly 1.
func TestOpenProgress(t *testing.T) {
	cfg := seedData(t)
	var seen []float64
	srv, err := OpenContext(context.Background(), cfg, Options{Progress: func(f float64) { seen = append(seen, f) }})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if len(seen) == 0 || seen[0] != 0 || seen[len(seen)-1] != 1 {
		t.Fatalf("progress %v: want from 0 to 1", seen)
	}
	t.Logf("progress: %v", seen)
	between := 0
	for i, f := range seen {
		if f < 0 || f > 1 || (i > 0 && f < seen[i-1]) {
			t.Fatalf("progress %v goes back or leaves 0..1 at %d", seen, i)
		}
		if f > 0 && f < 1 {
			between++
		}
	}
	if between < 4 {
		t.Errorf("only %d steps between 0 and 1: %v", between, seen)
	}
}

// TestOpenCancelledWhileLoading: a context cancelled while the index
// loads stops OpenContext with its error, closes the store (it can be
// opened again at once) and loses nothing.
func TestOpenCancelledWhileLoading(t *testing.T) {
	cfg := seedData(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var at float64
	_, err := OpenContext(ctx, cfg, Options{Progress: func(f float64) {
		if f > 0 && at == 0 {
			at = f
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled at %g: %v, want context.Canceled", at, err)
	}
	srv, err := Open(cfg, Options{})
	if err != nil {
		t.Fatalf("reopen after a cancelled load: %v", err)
	}
	defer srv.Close()
	ws, _ := srv.In.WorkspaceByName(DefaultWorkspace)
	if n := srv.Seg.Index(ws).Size(); n != 3000 {
		t.Errorf("after the reopen the index has %d profiles, want 3000", n)
	}
}

// TestUpgradeBuildsIndexFiles: a data directory without index files (as
// written before indexes were persisted) opens by rebuilding the index
// from the stored events, with progress, writes the index files, and the
// next start opens them instead, with the same answers.
func TestUpgradeBuildsIndexFiles(t *testing.T) {
	cfg := seedData(t)
	if err := os.RemoveAll(filepath.Join(cfg.Data, "index")); err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	var seen []float64
	log := slog.New(slog.NewTextHandler(&logs, nil))
	srv, err := OpenContext(context.Background(), cfg, Options{Logger: log, Progress: func(f float64) { seen = append(seen, f) }})
	if err != nil {
		t.Fatal(err)
	}
	ws, _ := srv.In.WorkspaceByName(DefaultWorkspace)
	size := srv.Seg.Index(ws).Size()
	srv.Close()
	if size != 3000 {
		t.Fatalf("the rebuilt index has %d profiles, want 3000", size)
	}
	if !strings.Contains(logs.String(), "building the index from the stored events") || !strings.Contains(logs.String(), "index checkpoint written") {
		t.Fatalf("the log does not tell of the rebuild and its checkpoint:\n%s", logs.String())
	}
	if between := len(seen) - 2; between < 4 {
		t.Errorf("the rebuild reported only %v", seen)
	}
	if parts, _ := filepath.Glob(filepath.Join(cfg.Data, "index", "*", "p-*.col")); len(parts) == 0 {
		t.Fatal("no index part files after the upgrade")
	}
	logs.Reset()
	srv, err = OpenContext(context.Background(), cfg, Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if !strings.Contains(logs.String(), "index opened from its checkpoint") {
		t.Fatalf("the second start did not open the index files:\n%s", logs.String())
	}
	if n := srv.Seg.Index(ws).Size(); n != size {
		t.Fatalf("reopened: %d profiles, want %d", n, size)
	}
}
