package index_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/index"
	"github.com/cohortdb/cohort/internal/ingest"
)

// BenchmarkDateTrait measures date-time tests on a signup timestamp with
// one-second resolution over two years, about one distinct value per
// profile at 1M profiles: the high-cardinality case the seed DMP and
// e-commerce data have.
//
//	go test -run XXX -bench DateTrait -benchtime 20x ./internal/index/
func BenchmarkDateTrait(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	const profiles = 1_000_000
	x := index.New()
	r := rand.New(rand.NewPCG(1, 2))
	c := &ingest.Changes{}
	for n := range uint32(profiles) {
		signup := now.Add(-time.Duration(r.IntN(2*365*86400)) * time.Second).Format(time.RFC3339)
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: fmt.Sprint("u", n), New: map[string]any{"signup": signup}})
		if len(c.Profiles) == 10_000 {
			x.Apply(c)
			c = &ingest.Changes{}
		}
	}
	x.Apply(c)
	for _, cond := range []struct{ name, src string }{
		{"within_last_90d", `{"trait":"signup","op":"within_last","value":"90d"}`},
		{"not_within_last_90d", `{"trait":"signup","op":"not_within_last","value":"90d"}`},
		{"gt_date", `{"trait":"signup","op":"gt","value":"2026-01-01T00:00:00Z"}`},
	} {
		n, err := condition.Parse([]byte(cond.src))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(cond.name, func(b *testing.B) {
			x.RLock()
			defer x.RUnlock()
			x.Trait(n, now) // sorted values and buckets built once, as the first query after a change does
			b.ResetTimer()
			for b.Loop() {
				x.Trait(n, now)
			}
		})
	}
}

// BenchmarkTopValues measures GET /api/schema/values' work at 1M
// profiles: the top 10 of a trait with 100,000 distinct values (from the
// value bitmaps) and of an event property over 2M events with 50,000
// distinct values (from the counts kept as events arrive).
//
//	go test -run XXX -bench TopValues -benchtime 20x ./internal/index/
func BenchmarkTopValues(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	const profiles = 1_000_000
	x := index.New()
	r := rand.New(rand.NewPCG(3, 4))
	c := &ingest.Changes{}
	for n := range uint32(profiles) {
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: fmt.Sprint("u", n), New: map[string]any{"zip": fmt.Sprint(r.IntN(100_000))}})
		for range 2 {
			c.Events = append(c.Events, ingest.EventAdded{Num: n, Name: "View", Timestamp: now, Properties: map[string]any{"sku": float64(r.IntN(50_000))}})
		}
		if len(c.Profiles) == 10_000 {
			x.Apply(c)
			c = &ingest.Changes{}
		}
	}
	x.Apply(c)
	b.Run("trait", func(b *testing.B) {
		for b.Loop() {
			x.TopTraitValues("zip", 10)
		}
	})
	b.Run("event_property", func(b *testing.B) {
		for b.Loop() {
			x.TopEventValues("View", "sku", 10)
		}
	})
}

// BenchmarkProfileWindow measures what re-evaluating one profile for a
// "last 7 days" event leaf reads, for a profile with 10 or 10,000 events
// over a year (about 2 of them in the window either way): with the
// profile's events chained newest first, the walk stops at the window's
// start, so the cost follows the window, not the history. "all" walks the
// whole history, as a leaf with no window must.
//
//	go test -run XXX -bench ProfileWindow ./internal/index/
func BenchmarkProfileWindow(b *testing.B) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	for _, history := range []int{10, 10_000} {
		for _, sealed := range []bool{false, true} {
			x := index.New()
			kind := ""
			if sealed {
				// The history in parts of 1,000 events, as checkpoints
				// leave it; the window's events in the head.
				x.Persist(1, index.LoadOptions{SealEvents: 1000})
				kind = "/sealed"
			}
			x.Apply(&ingest.Changes{Profiles: []ingest.ProfileChange{{Num: 0, NewID: "u", New: map[string]any{}}}})
			c := &ingest.Changes{}
			for i := range history {
				// Spread over a year, the last two inside the window; they
				// arrive in time order.
				ts := now.Add(-365 * 24 * time.Hour).Add(time.Duration(i) * (357 * 24 * time.Hour / time.Duration(history)))
				if i >= history-2 {
					ts = now.Add(-time.Duration(history-i) * 24 * time.Hour)
				}
				c.Events = append(c.Events, ingest.EventAdded{Num: 0, Name: "E", Timestamp: ts, Properties: map[string]any{"v": float64(i)}})
				if len(c.Events) == 1000 || i == history-1 {
					x.Apply(c)
					c = &ingest.Changes{}
				}
			}
			since := now.Add(-7 * 24 * time.Hour)
			b.Run(fmt.Sprintf("history=%d%s/last_7d", history, kind), func(b *testing.B) {
				for b.Loop() {
					n := 0
					x.EachEventSince(0, "E", since, func(index.Event) { n++ })
					if n != 2 {
						b.Fatalf("%d events in the window", n)
					}
				}
			})
			b.Run(fmt.Sprintf("history=%d%s/all", history, kind), func(b *testing.B) {
				for b.Loop() {
					n := 0
					x.EachEvent(0, "E", func(index.Event) { n++ })
					if n != history {
						b.Fatalf("%d events, want %d", n, history)
					}
				}
			})
			// A leaf asking for at least 3 events over all history
			// (segment.profileEval): newest first, stopping at the third.
			b.Run(fmt.Sprintf("history=%d%s/all_at_least_3", history, kind), func(b *testing.B) {
				for b.Loop() {
					n := 0
					x.EachEventNewest(0, "E", time.Time{}, func(index.Event) bool { n++; return n < 3 })
					if n != 3 {
						b.Fatalf("%d events", n)
					}
				}
			})
		}
	}
}
