package server

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/config"
)

// TestNoHangBotsWithSegmentRefs is issue 9's reproduction of a lock-order
// inversion: profiles crossing the bot threshold (the applier flagging
// them while it holds the segment lock) while queries with a segment
// reference evaluate (holding the index's read lock). Before the fix,
// every /v1 and /api request hung within seconds.
func TestNoHangBotsWithSegmentRefs(t *testing.T) {
	l := startLive(t, func(c *config.Config) { c.Limits.BotEventsPerMinute = 3 }, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l.must(ctx, "POST", "/api/segments", map[string]any{"id": "A", "condition": map[string]any{"event": "Ping"}}, nil)
	l.must(ctx, "POST", "/api/segments", map[string]any{"id": "B", "condition": map[string]any{"segment": "A"}}, nil)

	wd := newWatchdog(10*time.Second, cancel)
	const users = 300
	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	wg.Add(1)
	go func() { // one client: 5 events for each new user
		defer wg.Done()
		defer close(done)
		s := wd.slot()
		for u := range users {
			batch := make([]map[string]any, 5)
			for i := range batch {
				batch[i] = map[string]any{"type": "track", "userId": fmt.Sprintf("u%d", u), "event": "Ping",
					"messageId": fmt.Sprintf("m%d-%d", u, i)}
			}
			s.begin()
			_, err := l.do(ctx, "POST", "/v1/batch", map[string]any{"batch": batch}, nil)
			s.end()
			if err != nil {
				errs <- err
				return
			}
		}
	}()
	query := map[string]any{"condition": map[string]any{"and": []any{
		map[string]any{"event": "Ping"}, map[string]any{"segment": "A"}}}}
	for range 2 { // two clients looping queries until the ingest is done
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := wd.slot()
			for {
				select {
				case <-done:
					return
				default:
				}
				s.begin()
				_, err := l.do(ctx, "POST", "/api/query", query, nil)
				s.end()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	wd.Stop(t)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every user was flagged and is a member of both segments.
	var seg struct{ Size int }
	for _, id := range []string{"A", "B"} {
		l.must(ctx, "GET", "/api/segments/"+id, nil, &seg)
		if seg.Size != users {
			t.Errorf("segment %s has %d members, want %d", id, seg.Size, users)
		}
	}
	var q struct{ Size int }
	l.must(ctx, "POST", "/api/query", map[string]any{"condition": map[string]any{"trait": "$bot", "op": "eq", "value": true}}, &q)
	if q.Size != users {
		t.Errorf("%d profiles flagged as bots, want %d", q.Size, users)
	}
}
