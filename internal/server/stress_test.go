package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/config"
	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/oracle"
	"github.com/cohortdb/cohort/internal/sink"
	"github.com/cohortdb/cohort/internal/store"
)

// TestStressConcurrent runs everything a production server does at once,
// under -race, for a bounded number of requests per client: batch ingest
// with bots crossing the threshold, identity merges and deletions; queries
// with segment references and criteria; segment creates, edits and
// deletes with dependants; a webhook sink; and the clock, retention and
// change-log compaction moving under them (injected clock). A watchdog
// fails the test with every goroutine's stack if a request stays in
// flight, or none completes, for 10 s. At the end every segment's members
// equal a brute-force evaluation (the oracle over the stored profiles and
// events), replaying the change stream yields them, and the sink received
// every change in order.
func TestStressConcurrent(t *testing.T) {
	clk := &fakeClock{t: time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)}
	var hookMu sync.Mutex
	var delivered []sinkChange
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var d sink.Delivery
		if err := json.NewDecoder(r.Body).Decode(&d); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		hookMu.Lock()
		for _, c := range d.Changes {
			delivered = append(delivered, sinkChange{c.Seq, c.Segment, c.User, c.Change})
		}
		hookMu.Unlock()
	}))
	defer hook.Close()
	l := startLive(t, func(c *config.Config) {
		c.Retention = config.Duration(3 * 24 * time.Hour)
		c.ChangeLogHorizon = config.Duration(24 * time.Hour)
		c.Limits.BotEventsPerMinute = 60 // over the run a user sends ~40 events: only the bots cross it
	}, Options{Now: clk.Now, BuildWait: 50 * time.Millisecond, Sink: sink.Options{Base: time.Millisecond, Cap: 10 * time.Millisecond},
		// Every event scan lets the applier in after each block, heads are
		// sealed into parts every 9 events and checkpointed every 60:
		// queries and builds read runs that the applier seals, checkpoints
		// and (retention) drops under them.
		ScanYieldBlocks: 1, SealEvents: 9, CheckpointEvents: 60, ParallelFrom: 1, RunsFrom: 1})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, id := range slices.Sorted(maps.Keys(modelSegments)) {
		if id != "ever_a_no_b" {
			l.must(ctx, "POST", "/api/segments", map[string]any{"id": id, "condition": rawJSON(modelSegments[id])}, nil)
		}
	}
	l.must(ctx, "POST", "/api/segments", map[string]any{"id": "ever_a_no_b", "condition": rawJSON(modelSegments["ever_a_no_b"])}, nil)
	l.must(ctx, "POST", "/api/sinks", map[string]any{"id": "hook", "type": "webhook", "url": hook.URL}, nil)

	wd := newWatchdog(10*time.Second, cancel)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	worker := func(seed uint64, n int, step func(r *rand.Rand, i int) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := wd.slot()
			r := rand.New(rand.NewPCG(seed, 7))
			for i := range n {
				s.begin()
				err := step(r, i)
				s.end()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	users := func(r *rand.Rand) string { return fmt.Sprint("u", r.IntN(60)) }
	// allow(codes...)(l.do(...)) is the request's error unless its status
	// is one of codes (expected refusals under concurrent edits).
	allow := func(codes ...int) func(int, error) error {
		return func(code int, err error) error {
			if err != nil && !slices.Contains(codes, code) {
				return err
			}
			return nil
		}
	}
	for w := range 3 { // ingest: events (late and in order), traits, merges
		worker(uint64(w), 250, func(r *rand.Rand, i int) error {
			now := clk.Now()
			var batch []map[string]any
			for k := range 1 + r.IntN(8) {
				id := fmt.Sprintf("w%d-%d-%d", w, i, k)
				ts := now.Add(-time.Duration(r.IntN(5*24*60)) * time.Minute)
				switch r.IntN(6) {
				case 0:
					batch = append(batch, map[string]any{"type": "identify", "userId": users(r), "messageId": id,
						"traits": map[string]any{"signup": ts.Format(time.RFC3339), "plan": []string{"free", "pro"}[r.IntN(2)]}})
				case 1: // an anonymous visit, then the same visitor identified
					anon := fmt.Sprint("anon-", id)
					batch = append(batch, map[string]any{"type": "track", "anonymousId": anon, "event": "A", "messageId": id + "a"},
						map[string]any{"type": "identify", "anonymousId": anon, "userId": users(r), "messageId": id + "b"})
				case 2: // an alias chain: a visitor's profile merges into a user's
					prev := fmt.Sprintf("anon-w%d-%d-%da", w, max(i-1-r.IntN(3), 0), r.IntN(8))
					batch = append(batch, map[string]any{"type": "alias", "previousId": prev, "userId": users(r), "messageId": id})
				default:
					batch = append(batch, map[string]any{"type": "track", "userId": users(r), "event": []string{"A", "B"}[r.IntN(2)],
						"messageId": id, "timestamp": ts.Format(time.RFC3339),
						"properties": map[string]any{"v": r.IntN(5), "color": []string{"red", "blue"}[r.IntN(2)]}})
				}
			}
			return allow()(l.do(ctx, "POST", "/v1/batch", map[string]any{"batch": batch}, nil))
		})
	}
	worker(10, 60, func(r *rand.Rand, i int) error { // bots: bursts over the threshold
		var batch []map[string]any
		for k := range 70 { // over the threshold in one request, whatever the clock does
			batch = append(batch, map[string]any{"type": "track", "userId": fmt.Sprint("bot", i%4), "event": "B",
				"messageId": fmt.Sprintf("bot-%d-%d", i, k), "properties": map[string]any{"v": 1, "color": "red"}})
		}
		return allow()(l.do(ctx, "POST", "/v1/batch", map[string]any{"batch": batch}, nil))
	})
	worker(11, 12, func(r *rand.Rand, i int) error { // deletions
		return allow(404)(l.do(ctx, "DELETE", "/api/users/"+users(r), nil, nil))
	})
	for q := range 2 { // queries with segment references and criteria
		worker(uint64(20+q), 300, func(r *rand.Rand, i int) error {
			conds := []string{
				`{"and":[{"event":"A","within":{"last":"1d"}},{"segment":"ever_a"}]}`,
				`{"or":[{"segment":"never_b"},{"trait":"plan","op":"eq","value":"pro"}]}`,
				`{"and":[{"not":{"segment":"ever_a_no_b"}},{"event":"B","count":{"op":"gte","value":2}}]}`,
			}
			return allow()(l.do(ctx, "POST", "/api/query", map[string]any{"condition": rawJSON(conds[r.IntN(len(conds))])}, nil))
		})
	}
	worker(30, 100, func(r *rand.Rand, i int) error { // segments with dependants
		base, dep := fmt.Sprint("dyn", i%3), fmt.Sprint("dep", i%3)
		switch i % 4 {
		case 0:
			return allow(409)(l.do(ctx, "POST", "/api/segments", map[string]any{"id": base,
				"condition": rawJSON(`{"event":"A","count":{"op":"gte","value":` + fmt.Sprint(1+r.IntN(3)) + `}}`)}, nil))
		case 1:
			return allow(409, 400)(l.do(ctx, "POST", "/api/segments", map[string]any{"id": dep,
				"condition": rawJSON(`{"and":[{"segment":"` + base + `"},{"not":{"trait":"$bot","op":"eq","value":true}}]}`)}, nil))
		case 2:
			if err := allow(404)(l.do(ctx, "PUT", "/api/segments/"+base, map[string]any{"name": base,
				"condition": rawJSON(`{"event":"B","within":{"last":"` + fmt.Sprint(1+r.IntN(48)) + `h"}}`)}, nil)); err != nil {
				return err
			}
			return allow(409, 404)(l.do(ctx, "DELETE", "/api/segments/"+base, nil, nil)) // a dependant refers to it
		default:
			if err := allow(404)(l.do(ctx, "DELETE", "/api/segments/"+dep, nil, nil)); err != nil {
				return err
			}
			return allow(404)(l.do(ctx, "DELETE", "/api/segments/"+base, nil, nil))
		}
	})
	worker(40, 150, func(r *rand.Rand, i int) error { // time: window edges, timers, retention, compaction
		clk.Advance(time.Duration(1+r.IntN(120)) * time.Minute)
		now := clk.Now()
		if err := l.srv.Seg.Tick(ctx, now); err != nil {
			return err
		}
		if i%8 == 0 {
			return l.srv.Retain(ctx, now)
		}
		return nil
	})
	wg.Wait()
	wd.Stop(t)
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	// Quiesce: deferred bot re-evaluations and due timers fire, the last
	// sweep runs, builds finish.
	clk.Advance(11 * time.Second)
	now := clk.Now()
	if err := l.srv.Seg.Tick(ctx, now); err != nil {
		t.Fatal(err)
	}
	if err := l.srv.Retain(ctx, now); err != nil {
		t.Fatal(err)
	}
	l.srv.Seg.WaitBuilds()
	want := oracleMembers(t, l, now)
	replay := replayChanges(t, l)
	// The run covered what it claims to: members, bots, compaction.
	ws, _ := l.srv.In.WorkspaceByName(DefaultWorkspace)
	compacted, _ := l.srv.Seg.Compacted(ws.Num)
	sizes := map[string]int{}
	for id, m := range want {
		sizes[id] = len(m)
	}
	t.Logf("segment sizes %v; change log compacted through %d", sizes, compacted)
	if compacted == 0 || len(want["ever_a"]) < 10 || len(want["not_bot"]) < 10 {
		t.Errorf("the run did not cover compaction or membership (compacted %d, sizes %v)", compacted, sizes)
	}
	var bots struct{ Size int }
	l.must(ctx, "POST", "/api/query", map[string]any{"condition": rawJSON(`{"trait":"$bot","op":"eq","value":true}`)}, &bots)
	if bots.Size == 0 {
		t.Error("no profile was flagged as a bot")
	}
	for id, w := range want {
		got := members(t, l, id)
		if !maps.Equal(got, w) {
			t.Errorf("segment %s: stored %v, oracle %v", id, keys(got), keys(w))
		}
		if r := replay[id]; !maps.Equal(r, got) && len(r)+len(got) > 0 {
			t.Errorf("segment %s: replay %v, stored %v", id, keys(r), keys(got))
		}
	}
	// The sink gets every durable change, in order, at least once.
	durable, _ := l.srv.Seg.Durable(1)
	deadline := time.Now().Add(20 * time.Second)
	for {
		hookMu.Lock()
		var last uint64
		if len(delivered) > 0 {
			last = delivered[len(delivered)-1].seq
		}
		hookMu.Unlock()
		if last >= durable {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink got changes through seq %d of %d", last, durable)
		}
		time.Sleep(10 * time.Millisecond) // polling a deadline, not waiting for luck
	}
	hookMu.Lock()
	defer hookMu.Unlock()
	var prev uint64
	for _, c := range delivered {
		if c.seq < prev {
			t.Fatalf("the sink got seq %d after %d", c.seq, prev)
		}
		prev = c.seq
	}
}

type sinkChange struct {
	seq                   uint64
	segment, user, change string
}

// oracleMembers evaluates every segment with the oracle over the stored
// profiles and their events (of every profile number merged into them,
// within the retention horizon), segments in dependency order.
func oracleMembers(t *testing.T, l *live, now time.Time) map[string]map[string]bool {
	t.Helper()
	ctx := context.Background()
	ws, _ := l.srv.In.WorkspaceByName(DefaultWorkspace)
	db := l.srv.St.DB()
	horizon := time.Unix(int64(store.Day(now.Add(-time.Duration(l.srv.cfg.Retention))))*86400, 0)
	type prof struct {
		id string
		in oracle.Input
	}
	var profs []*prof
	err := store.ScanProfiles(ctx, db, ws.Num, func(num uint32, p *store.ProfileRecord) error {
		pr := &prof{id: p.ID, in: oracle.Input{Traits: p.Traits}}
		for _, n := range l.srv.In.ProfileNums(ws, num) {
			err := store.ProfileEvents(ctx, db, ws.Num, n, func(ev store.StoredEvent) error {
				if !ev.Timestamp.Before(horizon) {
					pr.in.Events = append(pr.in.Events, model.Event{Name: ev.Name, Timestamp: ev.Timestamp, Properties: ev.Properties})
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		profs = append(profs, pr)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Segments []struct {
			ID        string
			Condition rawJSON
		}
	}
	l.must(ctx, "GET", "/api/segments", nil, &list)
	nodes := map[string]*condition.Node{}
	for _, s := range list.Segments {
		n, err := condition.Parse([]byte(s.Condition))
		if err != nil {
			t.Fatal(err)
		}
		nodes[s.ID] = n
	}
	out := map[string]map[string]bool{}
	var eval func(id string) map[string]bool
	eval = func(id string) map[string]bool {
		if m, ok := out[id]; ok {
			return m
		}
		for _, ref := range nodes[id].SegmentRefs() {
			eval(ref)
		}
		m := map[string]bool{}
		for _, p := range profs {
			in := p.in
			in.InSegment = func(ref string) bool { return out[ref][p.id] }
			if oracle.Match(nodes[id], in, now) {
				m[p.id] = true
			}
		}
		out[id] = m
		return m
	}
	for id := range nodes {
		eval(id)
	}
	return out
}
