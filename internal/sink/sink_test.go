package sink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/message"
	"github.com/cohortdb/cohort/internal/server"
	"github.com/cohortdb/cohort/internal/sink"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"))
}

func TestDelay(t *testing.T) {
	var got []time.Duration
	for k := range 10 {
		got = append(got, sink.Delay(time.Second, 10*time.Second, k))
	}
	want := []time.Duration{0, 1, 1, 2, 3, 5, 8, 10, 10, 10}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delays %v, want %v", got, want)
	}
}

// receiver is a webhook endpoint whose behaviour the test scripts: it
// fails, then hangs past the client's timeout, then recovers.
type receiver struct {
	mu      sync.Mutex
	plan    []string // per request: "fail", "hang", then "ok" forever
	calls   int
	batches [][]uint64
	got     map[uint64]bool
	want    uint64
	done    chan struct{}
	release chan struct{}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	step := "ok"
	if rc.calls < len(rc.plan) {
		step = rc.plan[rc.calls]
	}
	rc.calls++
	rc.mu.Unlock()
	switch step {
	case "fail":
		http.Error(w, "down", http.StatusInternalServerError)
		return
	case "hang":
		io.Copy(io.Discard, r.Body) // so the server notices the sender hang up
		select {
		case <-r.Context().Done(): // the sender gave up
		case <-rc.release: // the test is over
		}
		return
	}
	var d sink.Delivery
	if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var seqs []uint64
	for _, c := range d.Changes {
		seqs = append(seqs, c.Seq)
		rc.got[c.Seq] = true
	}
	rc.batches = append(rc.batches, seqs)
	if r.Header.Get("X-Cohort-First-Seq") != fmt.Sprint(seqs[0]) {
		http.Error(w, "bad header", 400)
		return
	}
	if uint64(len(rc.got)) >= rc.want && rc.done != nil {
		close(rc.done)
		rc.done = nil
	}
}

func TestWebhookBackoffAndRecovery(t *testing.T) {
	const users = 30
	rc := &receiver{plan: []string{"fail", "fail", "fail", "fail", "hang", "hang"}, got: map[uint64]bool{}, want: users, done: make(chan struct{}), release: make(chan struct{})}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	defer close(rc.release)

	var smu sync.Mutex
	var slept []time.Duration
	cfg := config.Default()
	cfg.Data = t.TempDir()
	cfg.WriteKey, cfg.APIKey, cfg.AdminKey = "write-key-1", "api-key-123", "admin-key-1"
	srv, err := server.Open(cfg, server.Options{Sink: sink.Options{
		Base:   time.Second,
		Cap:    5 * time.Second,
		Client: &http.Client{Timeout: 200 * time.Millisecond},
		Sleep: func(ctx context.Context, d time.Duration) error {
			if d > 0 {
				smu.Lock()
				slept = append(slept, d)
				smu.Unlock()
			}
			return ctx.Err()
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	ws, _ := srv.In.WorkspaceByName("default")
	if _, err := srv.Seg.Create(ctx, ws, "everyone", "everyone", json.RawMessage(`{"all":true}`)); err != nil {
		t.Fatal(err)
	}
	from := uint64(0)
	if _, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "hook", URL: hook.URL, Batch: 4}, &from); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Sinks.Create(ctx, ws, sink.Config{ID: "hook", URL: hook.URL}, nil); err == nil {
		t.Error("a second sink with the same id was created")
	}
	for i := range users {
		body := fmt.Sprintf(`{"batch":[{"type":"identify","userId":"u%02d","traits":{"i":%d}}]}`, i, i)
		req, err := message.Decode("batch", []byte(body), time.Now(), message.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := srv.In.Submit(ctx, ws, "test", req.Items); err != nil {
			t.Fatal(err)
		}
	}
	rc.mu.Lock()
	done := rc.done
	rc.mu.Unlock()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("not every change arrived: %d of %d", len(rc.got), users)
	}
	srv.Sinks.Close()

	rc.mu.Lock()
	defer rc.mu.Unlock()
	// In order: every delivery's seqs ascend, deliveries never go back
	// past what was acknowledged, and every seq 1..N arrived.
	var last uint64
	for _, b := range rc.batches {
		if !slices.IsSorted(b) || b[0] <= last {
			t.Fatalf("deliveries out of order: %v", rc.batches)
		}
		last = b[len(b)-1]
	}
	for s := uint64(1); s <= users; s++ {
		if !rc.got[s] {
			t.Fatalf("seq %d never delivered", s)
		}
	}
	// The backoff: six failures grow the delay in Fibonacci steps to the
	// cap (1 1 2 3 5 5 s), then each success steps it back down.
	smu.Lock()
	defer smu.Unlock()
	var secs []string
	for _, d := range slept {
		secs = append(secs, fmt.Sprint(d.Seconds()))
	}
	got := strings.Join(secs, " ")
	if !strings.HasPrefix(got, "1 1 2 3 5 5 5 3 2 1 1") {
		t.Errorf("delays %q, want growth 1 1 2 3 5 5 (capped), then 5 3 2 1 1 as deliveries succeed", got)
	}
	if rc.calls != 6+len(rc.batches) {
		t.Errorf("%d requests for %d deliveries after 6 failures", rc.calls, len(rc.batches))
	}
}
