package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cohortdb/cohort/internal/buildinfo"
)

// loadRun drives the HTTP load of one `cohort-bench ingest` run.
//
// Requests are numbered k = 0, 1, 2, ... With a rate, request k is due at
// t0 + k·interval (an open-loop schedule that does not wait for the server)
// and its latency is measured from that due time, not from when a client
// goroutine got round to sending it: when the server falls behind and every
// client is busy, the wait shows up in the latencies instead of being hidden
// (no coordinated omission). Without a rate, each client sends its next
// request as soon as it has the previous answer (closed loop) and latency
// is measured from the send.
type loadRun struct {
	client   *http.Client
	url      string // .../v1/batch
	writeKey string
	w        *workload
	interval time.Duration // 0: as fast as possible
	t0, end  time.Time     // no request is due at or after end

	next atomic.Uint64  // next request number
	seq  *atomic.Uint64 // next message sequence number (messageIds), shared by a run's phases
}

// sample is one request that got a valid answer.
type sample struct {
	due, sent, done time.Time
	accepted        int
	bytes           int
}

// failure is one request that did not.
type failure struct {
	class  string // "HTTP 413", "200 success:false", "transport", ...
	detail string
	due    time.Time
}

// clientResult is what one client goroutine saw.
type clientResult struct {
	samples  []sample
	failures []failure
}

// run starts n client goroutines and returns their results once all have
// stopped: after the last request due before r.end has been answered, or
// when ctx is done.
func (r *loadRun) run(ctx context.Context, n int) []clientResult {
	res := make([]clientResult, n)
	var wg sync.WaitGroup
	for i := range res {
		wg.Go(func() { r.client1(ctx, &res[i]) })
	}
	wg.Wait()
	return res
}

func (r *loadRun) client1(ctx context.Context, out *clientResult) {
	buf := make([]byte, 0, r.w.maxBody)
	for ctx.Err() == nil {
		k := r.next.Add(1) - 1
		var due time.Time
		if r.interval > 0 {
			due = r.t0.Add(time.Duration(k) * r.interval)
			if !due.Before(r.end) {
				return
			}
			if err := sleepUntil(ctx, due); err != nil {
				return
			}
		} else if due = time.Now(); !due.Before(r.end) {
			return
		}
		n := uint64(r.w.batch)
		buf = r.w.fill(buf, k, r.seq.Add(n)-n)
		sent := time.Now()
		accepted, f, reuse := r.post(ctx, buf)
		done := time.Now()
		if f != nil {
			f.due = due
			out.failures = append(out.failures, *f)
		} else {
			out.samples = append(out.samples, sample{due: due, sent: sent, done: done, accepted: accepted, bytes: len(buf)})
		}
		if !reuse {
			buf = make([]byte, 0, r.w.maxBody)
		}
	}
}

// batchResponse is the answer of POST /v1/batch.
type batchResponse struct {
	Success  *bool             `json:"success"`
	Rejected []json.RawMessage `json:"rejected"`
	Error    string            `json:"error"`
}

// post sends one body and checks the answer. reuse reports whether the
// HTTP client is done with body, so that the caller may overwrite it.
func (r *loadRun) post(ctx context.Context, body []byte) (accepted int, f *failure, reuse bool) {
	rb := &signalBody{b: body, closed: make(chan struct{})}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.url, rb)
	if err != nil {
		return 0, &failure{class: "request", detail: err.Error()}, false
	}
	req.ContentLength = int64(len(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "cohort-bench/"+buildinfo.Version)
	req.SetBasicAuth(r.writeKey, "")
	resp, err := r.client.Do(req)
	// The transport closes the request body once it no longer reads it,
	// possibly after Do returns (a server may answer before reading all of
	// it); only then may the buffer be overwritten.
	defer func() {
		select {
		case <-rb.closed:
		case <-ctx.Done():
			reuse = false
		}
	}()
	if err != nil {
		class := "transport"
		if ctx.Err() != nil {
			class = "interrupted"
		}
		return 0, &failure{class: class, detail: err.Error()}, true
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		return 0, &failure{class: fmt.Sprintf("HTTP %d (body unreadable)", resp.StatusCode), detail: err.Error()}, true
	}
	var br batchResponse
	jsonErr := json.Unmarshal(data, &br)
	switch {
	case resp.StatusCode != http.StatusOK:
		detail := br.Error
		if jsonErr != nil || detail == "" {
			detail = truncate(string(data), 300)
		}
		return 0, &failure{class: fmt.Sprintf("HTTP %d", resp.StatusCode), detail: detail}, true
	case jsonErr != nil || br.Success == nil:
		return 0, &failure{class: "200 without {\"success\": ...}", detail: truncate(string(data), 300)}, true
	case !*br.Success:
		return 0, &failure{class: "200 success:false", detail: fmt.Sprintf("%d rejected: %s", len(br.Rejected), truncate(string(data), 300))}, true
	}
	return r.w.batch, nil, true
}

// signalBody is a request body that says when the transport closed it.
type signalBody struct {
	b      []byte
	off    int
	once   sync.Once
	closed chan struct{}
}

func (s *signalBody) Read(p []byte) (int, error) {
	if s.off >= len(s.b) {
		return 0, io.EOF
	}
	n := copy(p, s.b[s.off:])
	s.off += n
	return n, nil
}

func (s *signalBody) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

// sleepUntil waits for t or ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err()
	}
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
