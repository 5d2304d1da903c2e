package gen

import (
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/model"
)

// TestInOrder checks the two arrival orders: in order, no event is more
// than two hours (the lateness, then one in eight truncated to the hour)
// older than one that arrived before it, and
// every timestamp is inside the period; in random order, some are days
// out of order.
func TestInOrder(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, inOrder := range []bool{true, false} {
		g := New(Config{Seed: 5, Profiles: 100, Events: 20000, Now: now, Days: 30, InOrder: inOrder})
		var latest time.Time
		var worst time.Duration
		n := 0
		for m := g.Next(); m != nil; m = g.Next() {
			if m.Type != model.Track {
				continue
			}
			n++
			if m.Timestamp.Before(now.Add(-30*24*time.Hour)) || m.Timestamp.After(now) {
				t.Fatalf("inOrder=%v: timestamp %s outside the period", inOrder, m.Timestamp)
			}
			if d := latest.Sub(m.Timestamp); d > worst {
				worst = d
			}
			if m.Timestamp.After(latest) {
				latest = m.Timestamp
			}
		}
		if n < 19000 {
			t.Fatalf("inOrder=%v: %d track events", inOrder, n)
		}
		if inOrder && worst > 2*time.Hour {
			t.Errorf("in order, an event arrived %s after a later one", worst)
		}
		if !inOrder && worst < 24*time.Hour {
			t.Errorf("in random order, the worst disorder is only %s", worst)
		}
	}
}
