package server

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/config"
)

// TestOverload503ThenNothingLost: when the applier falls behind past
// limits.max_ingest_wait, /v1 answers 503 with Retry-After and stores
// nothing of the request; the client's retry (same messageIds) is stored
// exactly once.
func TestOverload503ThenNothingLost(t *testing.T) {
	l := startLive(t, func(c *config.Config) { c.Limits.MaxIngestWait = config.Duration(100 * time.Millisecond) }, Options{})
	ctx := context.Background()
	ws, _ := l.srv.In.WorkspaceByName(DefaultWorkspace)
	release, held := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // a stuck applier
		defer wg.Done()
		if err := l.srv.In.Run(ctx, ws, func(*pebble.Batch) error { close(held); <-release; return nil }); err != nil {
			t.Error(err)
		}
	}()
	<-held
	batch := func(i int) map[string]any {
		return map[string]any{"batch": []map[string]any{{"type": "track", "userId": fmt.Sprint("u", i), "event": "E", "messageId": fmt.Sprint("m", i)}}}
	}
	const n = 20
	codes := make([]int, n)
	retry := make([]string, n)
	var reqs sync.WaitGroup
	for i := range n {
		reqs.Add(1)
		go func() {
			defer reqs.Done()
			req, _ := http.NewRequest("POST", l.url+"/v1/batch", jsonBody(t, batch(i)))
			req.SetBasicAuth(testWriteKey, "")
			res, err := l.hc.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			res.Body.Close()
			codes[i], retry[i] = res.StatusCode, res.Header.Get("Retry-After")
		}()
	}
	reqs.Wait()
	close(release)
	wg.Wait()
	for i := range n {
		if codes[i] != http.StatusServiceUnavailable || retry[i] == "" {
			t.Fatalf("request %d behind a stuck applier: %d, Retry-After %q; want 503 with Retry-After", i, codes[i], retry[i])
		}
	}
	var q struct{ Size int }
	l.must(ctx, "POST", "/api/query", map[string]any{"condition": rawJSON(`{"all":true}`)}, &q)
	if q.Size != 0 {
		t.Fatalf("%d profiles stored from refused requests", q.Size)
	}
	for i := range n { // the SDKs' retries
		l.must(ctx, "POST", "/v1/batch", batch(i), nil)
		l.must(ctx, "POST", "/v1/batch", batch(i), nil) // a duplicate retry
	}
	l.must(ctx, "POST", "/api/query", map[string]any{"condition": rawJSON(`{"event":"E","count":{"op":"eq","value":1}}`)}, &q)
	if q.Size != n {
		t.Fatalf("%d profiles with exactly one event after the retries, want %d", q.Size, n)
	}
}
