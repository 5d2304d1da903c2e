package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The query loop of `cohort-bench ingest --query-loop`: while the load is
// offered, one client runs a slow query (POST /api/query) again and again,
// to show whether a long read moves ingest latency. The condition is an
// "or" of event leaves over the generated events (each scans one event
// name's columns and counts a property's distinct values per profile), and
// the number of leaves is adjusted after every query so that each takes
// about the target time as the data grows.

// slowCondition is an "or" of n event leaves, each counting the distinct
// values of a high-cardinality property per profile (the dearest kind of
// leaf on these events: tens of ms per leaf at a million events), each
// distinct (pairs and thresholds differ), so none is answered from another.
func slowCondition(n int) json.RawMessage {
	pairs := [][2]string{
		{"Product Viewed", "product_id"}, {"Application Opened", "path"}, {"Product Viewed", "price"},
		{"Application Opened", "duration_ms"}, {"Product Added", "product_id"}, {"Product List Viewed", "price"},
		{"Cart Viewed", "product_id"}, {"Feature Used", "seats"},
	}
	leaves := make([]any, n)
	for i := range leaves {
		p := pairs[i%len(pairs)]
		leaves[i] = map[string]any{
			"event":     p[0],
			"aggregate": map[string]any{"fn": "distinct", "property": p[1], "op": "gte", "value": 2 + i/len(pairs)},
		}
	}
	b, _ := json.Marshal(map[string]any{"condition": map[string]any{"or": leaves}})
	return b
}

// queryLoop runs the slow query over the API.
type queryLoop struct {
	client *http.Client
	url    string // .../api/query
	apiKey string
	target time.Duration
	leaves int // of the next query

	mu      sync.Mutex
	times   []time.Duration // of the queries that completed
	sizes   []int           // leaves of each
	lastErr error
	errors  int
}

// maxLeaves bounds the condition (the language allows 10,000 leaves, the
// API 1 MiB of body).
const maxLeaves = 2000

// once runs one query with the current number of leaves, records its
// duration, and sets the number of leaves of the next one so that it
// takes about the target time.
func (q *queryLoop) once(ctx context.Context) (time.Duration, error) {
	n := q.leaves
	start := time.Now()
	err := q.post(ctx, slowCondition(n))
	d := time.Since(start)
	if err != nil {
		if ctx.Err() == nil {
			q.mu.Lock()
			q.errors++
			q.lastErr = err
			q.mu.Unlock()
		}
		return d, err
	}
	q.mu.Lock()
	q.times = append(q.times, d)
	q.sizes = append(q.sizes, n)
	q.mu.Unlock()
	// Scale by the ratio, at most 2× either way per step.
	f := min(2, max(0.5, float64(q.target)/float64(max(d, time.Millisecond))))
	q.leaves = min(maxLeaves, max(1, int(float64(n)*f+0.5)))
	return d, nil
}

// calibrate runs queries (with no load offered) until one takes between
// 0.7 and 1.4 times the target, or tries runs out.
func (q *queryLoop) calibrate(ctx context.Context, tries int, log io.Writer) error {
	for range tries {
		n := q.leaves
		d, err := q.once(ctx)
		if err != nil {
			return fmt.Errorf("query loop: %w", err)
		}
		fmt.Fprintf(log, "bench:   %d leaves: %s\n", n, d.Round(time.Millisecond))
		if d >= q.target*7/10 && d <= q.target*14/10 {
			break
		}
	}
	q.mu.Lock()
	q.times, q.sizes = nil, nil
	q.mu.Unlock()
	return nil
}

// run queries until ctx is done.
func (q *queryLoop) run(ctx context.Context) {
	for ctx.Err() == nil {
		if _, err := q.once(ctx); err != nil && ctx.Err() == nil {
			sleepUntil(ctx, time.Now().Add(100*time.Millisecond)) // do not spin on a failing server
		}
	}
}

func (q *queryLoop) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, q.url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+q.apiKey)
	resp, err := q.client.Do(req)
	if err != nil {
		return fmt.Errorf("POST /api/query: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("POST /api/query: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST /api/query: %s %s", resp.Status, truncate(string(data), 300))
	}
	return nil
}

// queryStats summarises the queries of a window.
type queryStats struct {
	n                int
	p50, min, max    time.Duration
	minLeaf, maxLeaf int
	errors           int
	lastErr          error
}

func (q *queryLoop) stats() *queryStats {
	q.mu.Lock()
	defer q.mu.Unlock()
	s := &queryStats{n: len(q.times), errors: q.errors, lastErr: q.lastErr}
	if s.n > 0 {
		sorted := slices.Sorted(slices.Values(q.times))
		s.p50, s.min, s.max = percentile(sorted, 50), sorted[0], sorted[len(sorted)-1]
		s.minLeaf, s.maxLeaf = slices.Min(q.sizes), slices.Max(q.sizes)
	}
	return s
}
