package segment_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cohortdb/cohort/internal/model"
)

// TestPropertyTimeTimers: an event leaf whose where-predicate is a
// within_last on a date-time property changes as time passes with no new
// event — the property's instant enters the window, then leaves it — and
// the live path's timers follow it, with a window on the leaf, with a
// count over all history, and with several events of which the newest
// do not qualify yet.
func TestPropertyTimeTimers(t *testing.T) {
	clk := &clock{t: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)}
	w := openLive(t, vfs.NewMem(), clk)
	defer w.close()
	conds := map[string]string{
		"any":      `{"event":"Trial","where":[{"property":"expires_at","op":"within_last","value":"1d"}]}`,
		"twice":    `{"event":"Trial","where":[{"property":"expires_at","op":"within_last","value":"1d"}],"count":{"op":"gte","value":2}}`,
		"in_week":  `{"event":"Trial","where":[{"property":"expires_at","op":"within_last","value":"1d"}],"within":{"last":"7d"}}`,
		"not_soon": `{"not":{"event":"Trial","where":[{"property":"expires_at","op":"within_last","value":"1d"}]}}`,
	}
	for id, c := range conds {
		if _, err := w.m.Create(context.Background(), w.ws, id, id, json.RawMessage(c)); err != nil {
			t.Fatal(err)
		}
	}
	w.m.WaitBuilds()
	at := func(d time.Duration) string { return clk.Now().Add(d).Format(time.RFC3339) }
	msg := 0
	trial := func(user string, ts time.Duration, expires string) *model.Message {
		msg++
		return &model.Message{Type: model.Track, UserID: user, Event: "Trial", MessageID: fmt.Sprintf("m%d", msg),
			Timestamp: clk.Now().Add(ts), Properties: map[string]any{"expires_at": expires}}
	}
	// u1: one event whose instant comes in 2 h. u2: an old event whose
	// instant came an hour ago, and newer ones whose instants come in 3
	// and 5 h. u3: events whose instants never qualify.
	w.send(t, trial("u1", -time.Hour, at(2*time.Hour)),
		trial("u2", -48*time.Hour, at(-time.Hour)), trial("u2", -2*time.Hour, at(3*time.Hour)), trial("u2", -time.Hour, at(5*time.Hour)),
		trial("u3", -time.Hour, "not a time"), trial("u3", -time.Hour, at(-72*time.Hour)))
	check := func(step string) {
		t.Helper()
		got, want := w.replay(t), w.batch(t, clk.Now())
		if id, ok := sameMembers(got, want); !ok {
			extra, missing := diffSets(got[id], want[id])
			t.Fatalf("%s: segment %s: replay has extra %v, misses %v", step, id, extra, missing)
		}
	}
	check("at the start")
	for _, d := range []time.Duration{time.Hour, 90 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 20 * time.Hour, 3 * time.Hour, 24 * time.Hour} {
		clk.Advance(d)
		if err := w.m.Tick(context.Background(), clk.Now()); err != nil {
			t.Fatal(err)
		}
		check(fmt.Sprintf("after %s more", d))
	}
}
