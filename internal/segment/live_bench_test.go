package segment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/model"
	"github.com/cohortdb/cohort/internal/segment"
	"github.com/cohortdb/cohort/internal/store"
)

// historySegments are live segments of the kinds whose re-evaluation
// could follow a profile's history: a lifetime sum, a count below a
// bound and a distinct count over all history, an average over a fixed
// range with a filter, and a count in the last 7 days.
var historySegments = map[string]string{
	"ltv":       `{"event":"Order Completed","aggregate":{"fn":"sum","property":"revenue","op":"gt","value":1000}}`,
	"few":       `{"event":"Order Completed","count":{"op":"lt","value":5}}`,
	"cats":      `{"event":"Order Completed","aggregate":{"fn":"distinct","property":"category","op":"gte","value":3}}`,
	"avg_books": `{"event":"Order Completed","where":[{"property":"category","op":"eq","value":"books"}],"aggregate":{"fn":"avg","property":"revenue","op":"gt","value":40}, "within":{"from":"2025-01-01T00:00:00Z","to":"2027-01-01T00:00:00Z"}}`,
	"week_3":    `{"event":"Order Completed","count":{"op":"gte","value":3},"within":{"last":"7d"}}`,
}

// historyWorld is a live world with historySegments and profiles users
// u0, u1, … each with history orders, spread over the year before, in
// time order; send makes the next order of a user, at the clock's time.
func historyWorld(b *testing.B, profiles, history int, runsFrom int) (w *liveWorld, send func(user int)) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w = openLiveOpts(b, vfs.NewMem(), clk, segment.Options{IndexDir: b.TempDir(), SealEvents: 1000, RunsFrom: runsFrom})
	for id, src := range historySegments {
		if _, err := w.m.Create(context.Background(), w.ws, id, id, json.RawMessage(src)); err != nil {
			b.Fatal(err)
		}
	}
	cats := []string{"books", "music", "games", "garden"}
	msg, orders := 0, make([]int, profiles) // a user's orders go round the categories
	order := func(user int, ts time.Time) *model.Message {
		msg++
		orders[user]++
		k := orders[user]
		return &model.Message{Type: model.Track, Event: "Order Completed", UserID: fmt.Sprint("u", user), MessageID: fmt.Sprint("m", msg),
			Timestamp: ts, Properties: map[string]any{"revenue": float64(10 + k%90), "category": cats[k%len(cats)]}}
	}
	var batch []*model.Message
	start, step := clk.Now().Add(-365*24*time.Hour), 364*24*time.Hour/time.Duration(history)
	for i := range history {
		for u := range profiles {
			batch = append(batch, order(u, start.Add(time.Duration(i)*step)))
			if len(batch) == 1000 {
				w.send(b, batch...)
				batch = batch[:0]
			}
		}
	}
	w.send(b, batch...)
	w.m.WaitBuilds()
	return w, func(user int) {
		clk.Advance(time.Second)
		w.send(b, order(user, clk.Now()))
	}
}

// runsMode is a benchmark's RunsFrom: "walk" keeps no running state
// (every re-evaluation walks the profile's history), "states" is the
// default (the tests' worlds keep every state).
func runsMode(mode string) int {
	if mode == "walk" {
		return math.MaxInt
	}
	return 256 // the default
}

// BenchmarkReevaluateHistory is the re-evaluation the live path makes
// when a profile with 10 or 10,000 orders gets one more: the five
// segments above decided for it, the history staying as it is.
//
//	go test -run XXX -bench ReevaluateHistory -count 5 ./internal/segment/
func BenchmarkReevaluateHistory(b *testing.B) {
	for _, history := range []int{10, 10_000} {
		for _, mode := range []string{"walk", "states"} {
			b.Run(fmt.Sprintf("history=%d/%s", history, mode), func(b *testing.B) {
				w, _ := historyWorld(b, 1, history, runsMode(mode))
				defer w.close()
				num := w.num(b, "u0")
				want := w.m.ReevaluateEvent(w.ws, num, "Order Completed")
				for b.Loop() {
					if got := w.m.ReevaluateEvent(w.ws, num, "Order Completed"); got != want {
						b.Fatalf("%d segments matched, then %d", want, got)
					}
				}
			})
		}
	}
}

// BenchmarkLiveHistory is one order through the whole live path (ingest,
// index, running states, re-evaluation, changes) for profiles with 10 or
// 10,000 orders, taken in turn from 1,000 profiles of 10 orders or 20 of
// 10,000. Every order adds to a history, so run it a fixed number of
// times: at 2,000, a profile of 10 ends with 12, one of 10,000 with
// 10,100.
//
//	go test -run XXX -bench LiveHistory -benchtime 2000x -count 5 ./internal/segment/
func BenchmarkLiveHistory(b *testing.B) {
	for _, history := range []int{10, 10_000} {
		for _, mode := range []string{"walk", "states"} {
			b.Run(fmt.Sprintf("history=%d/%s", history, mode), func(b *testing.B) {
				profiles := 1000
				if history > 1000 {
					profiles = 20
				}
				w, send := historyWorld(b, profiles, history, runsMode(mode))
				defer w.close()
				i := 0
				for b.Loop() {
					send(i % profiles)
					i++
				}
				b.StopTimer()
				if history < 1000 {
					return
				}
				// Thousands of orders of 10-99 in four categories.
				for id, want := range map[string]bool{"ltv": true, "few": false, "cats": true} {
					ex, err := w.m.Explain(context.Background(), w.ws, "u0", id)
					if err != nil {
						b.Fatal(err)
					}
					if ex.Member != want || ex.Matches != want {
						b.Fatalf("%s: member %v, matches %v; want %v", id, ex.Member, ex.Matches, want)
					}
				}
			})
		}
	}
}

// num is the root profile number of user id.
func (w *liveWorld) num(t testing.TB, id string) uint32 {
	t.Helper()
	n, ok, err := store.ResolveID(w.st.DB(), w.ws.Num, id)
	if err != nil || !ok {
		t.Fatalf("user %s: %v %v", id, ok, err)
	}
	return n
}
