package server

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/config"
)

// fakeClock is the server's injected clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// modelSegments read events near the retention horizon and window edges,
// traits that age, and other segments.
var modelSegments = map[string]string{
	"ever_a":      `{"event":"A"}`,
	"a_2d":        `{"event":"A","within":{"last":"2d"}}`,
	"a_twice":     `{"event":"A","count":{"op":"gte","value":2}}`,
	"never_b":     `{"not":{"event":"B"}}`,
	"b_sum":       `{"event":"B","aggregate":{"fn":"sum","property":"v","op":"gt","value":5}}`,
	"b_12h_red":   `{"event":"B","where":[{"property":"color","op":"eq","value":"red"}],"within":{"last":"12h"}}`,
	"new_signup":  `{"trait":"signup","op":"within_last","value":"1d"}`,
	"ever_a_no_b": `{"and":[{"segment":"ever_a"},{"segment":"never_b"}]}`,
	"not_bot":     `{"not":{"trait":"$bot","op":"eq","value":true}}`,
}

// TestModelRetentionAndWindows drives the real server with an injected
// clock through random steps — events arriving late and in order, traits
// with dates, merges, deletions, time passing across window edges and the
// retention horizon, retention sweeps with change-log compaction, clean
// restarts that open the persisted index from its checkpoint and journal — and
// checks after every step that each segment's stored members equal a full
// recompute at that instant and that replaying the change stream from
// seq 0 yields them.
func TestModelRetentionAndWindows(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { runModel(t, seed, 70) })
	}
}

func runModel(t *testing.T, seed uint64, steps int) {
	clk := &fakeClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	l := startLive(t, func(c *config.Config) {
		c.Retention = config.Duration(3 * 24 * time.Hour)
		c.ChangeLogHorizon = config.Duration(24 * time.Hour)
		c.Limits.BotEventsPerMinute = 6
	}, Options{Now: clk.Now, BuildWait: time.Minute, CheckpointEvents: 12, SealEvents: 5, ScanYieldBlocks: 1, ParallelFrom: 1, RunsFrom: 1})
	ctx := context.Background()
	ids := slices.Sorted(maps.Keys(modelSegments))
	ids = append(slices.DeleteFunc(ids, func(id string) bool { return id == "ever_a_no_b" }), "ever_a_no_b") // refers to others
	for _, id := range ids {
		l.must(ctx, "POST", "/api/segments", map[string]any{"id": id, "condition": rawJSON(modelSegments[id])}, nil)
	}
	r := rand.New(rand.NewPCG(seed, 99))
	users := []string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"}
	msg := 0
	for step := range steps {
		now := clk.Now()
		var desc string
		switch op := r.IntN(20); {
		case op < 8: // events, some late (up to 4 days: past the retention)
			var batch []map[string]any
			for range 1 + r.IntN(4) {
				ts := now.Add(-time.Duration(r.IntN(4*24*60)) * time.Minute)
				if r.IntN(2) == 0 {
					ts = now
				}
				name := []string{"A", "B"}[r.IntN(2)]
				msg++
				batch = append(batch, map[string]any{"type": "track", "userId": users[r.IntN(len(users))], "event": name,
					"messageId": fmt.Sprint("m", msg), "timestamp": ts.Format(time.RFC3339),
					"properties": map[string]any{"v": r.IntN(5), "color": []string{"red", "blue"}[r.IntN(2)]}})
			}
			l.must(ctx, "POST", "/v1/batch", map[string]any{"batch": batch}, nil)
			desc = fmt.Sprintf("%d events", len(batch))
		case op < 10: // a signup date, recent or not
			signup := now.Add(-time.Duration(r.IntN(48)) * time.Hour)
			msg++
			l.must(ctx, "POST", "/v1/identify", map[string]any{"userId": users[r.IntN(len(users))], "messageId": fmt.Sprint("m", msg),
				"traits": map[string]any{"signup": signup.Format(time.RFC3339)}}, nil)
			desc = "signup"
		case op < 11: // an anonymous visitor who identifies later
			anon := fmt.Sprint("anon", step)
			msg++
			l.must(ctx, "POST", "/v1/track", map[string]any{"anonymousId": anon, "event": "A", "messageId": fmt.Sprint("m", msg)}, nil)
			msg++
			l.must(ctx, "POST", "/v1/alias", map[string]any{"previousId": anon, "userId": users[r.IntN(len(users))], "messageId": fmt.Sprint("m", msg)}, nil)
			desc = "anonymous then alias"
		case op < 12: // a burst that crosses the bot threshold
			var batch []map[string]any
			u := users[r.IntN(len(users))]
			for range 8 {
				msg++
				batch = append(batch, map[string]any{"type": "track", "userId": u, "event": "B", "messageId": fmt.Sprint("m", msg),
					"properties": map[string]any{"v": 1, "color": "red"}})
			}
			l.must(ctx, "POST", "/v1/batch", map[string]any{"batch": batch}, nil)
			desc = "bot burst " + u
		case op < 13 && r.IntN(3) == 0: // a restart: the index opens from its checkpoint and journal
			l.restart()
			desc = "restart"
		case op < 13:
			u := users[r.IntN(len(users))]
			if code, err := l.do(ctx, "DELETE", "/api/users/"+u, nil, nil); code != 204 && code != 404 { // 404: deleted before
				t.Fatalf("delete %s: %d %v", u, code, err)
			}
			desc = "delete " + u
		default: // time passes across edges; the sweep runs as it would hourly
			d := time.Duration(1+r.IntN(20)) * time.Hour
			if r.IntN(3) == 0 {
				d = time.Duration(1+r.IntN(90)) * time.Minute
			}
			clk.Advance(d)
			desc = "advance " + d.String()
		}
		// Flagged bots are re-evaluated at most every 10 s, their deferred
		// work done by timers: let that much time pass before comparing.
		clk.Advance(11 * time.Second)
		now = clk.Now()
		if err := l.srv.Seg.Tick(ctx, now); err != nil {
			t.Fatal(err)
		}
		if err := l.srv.Retain(ctx, now); err != nil {
			t.Fatal(err)
		}
		l.srv.Seg.WaitBuilds()
		checkMembership(t, l, fmt.Sprintf("seed %d step %d (%s)", seed, step, desc))
	}
	ws, _ := l.srv.In.WorkspaceByName(DefaultWorkspace)
	if c, err := l.srv.Seg.Compacted(ws.Num); err != nil || c == 0 {
		t.Errorf("the change log was never compacted (mark %d, %v): the run did not cover compaction", c, err)
	}
	var page struct{ Compacted bool }
	l.must(ctx, "GET", "/api/changes?since=0&limit=1", nil, &page)
	if !page.Compacted {
		t.Error(`a page from seq 0 of a compacted log does not say "compacted": true`)
	}
}

// checkMembership compares every segment's stored members with a full
// recompute (POST /api/query) and with the replay of the change stream.
func checkMembership(t *testing.T, l *live, at string) {
	t.Helper()
	ctx := context.Background()
	var list struct {
		Segments []struct {
			ID        string
			Condition rawJSON
		}
	}
	l.must(ctx, "GET", "/api/segments", nil, &list)
	replay := replayChanges(t, l)
	for _, s := range list.Segments {
		stored := members(t, l, s.ID)
		var q struct{ Members []string }
		l.must(ctx, "POST", "/api/query", map[string]any{"condition": s.Condition, "members": true, "limit": 100000}, &q)
		want := setOf(q.Members)
		if !maps.Equal(stored, want) {
			t.Fatalf("%s: segment %s %s: stored %v, recompute %v", at, s.ID, s.Condition, keys(stored), keys(want))
		}
		if got := replay[s.ID]; !maps.Equal(got, stored) && !(len(got) == 0 && len(stored) == 0) {
			t.Fatalf("%s: segment %s: replaying its changes gives %v, stored %v", at, s.ID, keys(got), keys(stored))
		}
	}
}

func members(t *testing.T, l *live, id string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	cursor := ""
	for {
		var page struct {
			Members    []string
			NextCursor *string `json:"next_cursor"`
		}
		l.must(context.Background(), "GET", "/api/segments/"+id+"/members?limit=1000&cursor="+url.QueryEscape(cursor), nil, &page)
		for _, m := range page.Members {
			if out[m] {
				t.Fatalf("segment %s lists %s twice", id, m)
			}
			out[m] = true
		}
		if page.NextCursor == nil {
			return out
		}
		cursor = *page.NextCursor
	}
}

// replayChanges reads the whole change stream and applies it per segment.
// Below the compaction mark an exit may have no enter before it (only the
// latest change of each (segment, user) is kept); above it, the stream
// must be exact.
func replayChanges(t *testing.T, l *live) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	var since, last uint64
	for {
		var page struct {
			Changes []struct {
				Seq                   uint64
				Segment, User, Change string
			}
			Next      uint64
			Compacted bool
		}
		l.must(context.Background(), "GET", fmt.Sprintf("/api/changes?since=%d&limit=10000", since), nil, &page)
		for _, c := range page.Changes {
			if c.Seq <= last {
				t.Fatalf("change seq %d after %d", c.Seq, last)
			}
			last = c.Seq
			if out[c.Segment] == nil {
				out[c.Segment] = map[string]bool{}
			}
			in := out[c.Segment][c.User]
			switch {
			case c.Change == "enter" && in:
				t.Fatalf("seq %d: %s enters %s twice", c.Seq, c.User, c.Segment)
			case c.Change == "exit" && !in && !page.Compacted:
				t.Fatalf("seq %d: %s exits %s without having entered", c.Seq, c.User, c.Segment)
			}
			if c.Change == "enter" {
				out[c.Segment][c.User] = true
			} else {
				delete(out[c.Segment], c.User)
			}
		}
		if page.Next == since {
			return out
		}
		since = page.Next
	}
}

func setOf(xs []string) map[string]bool {
	out := map[string]bool{}
	for _, x := range xs {
		out[x] = true
	}
	return out
}

func keys(m map[string]bool) []string { return slices.Sorted(maps.Keys(m)) }

// rawJSON is JSON kept as it is, in requests and answers.
type rawJSON string

func (r rawJSON) MarshalJSON() ([]byte, error) { return []byte(r), nil }
func (r *rawJSON) UnmarshalJSON(b []byte) error {
	*r = rawJSON(b)
	return nil
}
