package index

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/cohortdb/cohort/internal/ingest"
)

// TestChainNewestFirst: a profile's events come back newest first however
// they arrived (late ones inserted at their place), across Retain's
// rebuild, and EachEventSince stops at the window's start.
func TestChainNewestFirst(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	x := New()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	want := map[uint32][]int64{}
	var c ingest.Changes
	for range 5000 {
		n := uint32(r.IntN(20))
		ts := t0.Add(time.Duration(r.IntN(100*24)) * time.Hour) // arrival order is random
		if r.IntN(3) > 0 {
			ts = t0.Add(time.Duration(100*24+len(c.Events)) * time.Hour) // mostly in order
		}
		c.Events = append(c.Events, ingest.EventAdded{Num: n, Name: "E", Timestamp: ts})
		want[n] = append(want[n], ts.UnixNano())
	}
	for n := range uint32(20) {
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: n, NewID: "p", New: map[string]any{}})
	}
	x.Apply(&c)
	check := func(stage string, from time.Time) {
		for n, all := range want {
			var exp []int64
			for _, ts := range all {
				if ts >= max(from.UnixNano(), x.retainFrom) {
					exp = append(exp, ts)
				}
			}
			slices.Sort(exp)
			slices.Reverse(exp)
			var got []int64
			x.EachEventSince(n, "E", from, func(e Event) { got = append(got, e.Time().UnixNano()) })
			if !slices.Equal(got, exp) {
				t.Fatalf("%s: profile %d since %s: %d events, want %d newest first", stage, n, from, len(got), len(exp))
			}
		}
	}
	check("all", time.Time{})
	check("since day 50", t0.Add(50*24*time.Hour))
	x.Retain(t0.Add(30 * 24 * time.Hour))
	check("after retention", time.Time{})
	check("after retention, since day 90", t0.Add(90*24*time.Hour))
}

// TestEachEventNewestAcrossRuns: EachEventNewest yields a root's events
// (its own and its merged numbers', in the head and in sealed parts)
// newest first, exactly those EachEventSince yields, and stops when asked.
func TestEachEventNewestAcrossRuns(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	x := New()
	x.sealEvents = 40 // many parts
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var profiles ingest.Changes
	for n := range uint32(12) {
		profiles.Profiles = append(profiles.Profiles, ingest.ProfileChange{Num: n, NewID: "p", New: map[string]any{}})
	}
	x.Apply(&profiles)
	merged := map[uint32]bool{}
	for step := range 60 {
		var c ingest.Changes
		for range 1 + r.IntN(30) {
			n := uint32(r.IntN(12))
			ts := t0.Add(time.Duration(r.IntN(60*24)) * time.Hour) // late and early
			c.Events = append(c.Events, ingest.EventAdded{Num: n, Name: "E", Timestamp: ts})
		}
		if step%10 == 9 {
			src, dst := uint32(r.IntN(12)), uint32(r.IntN(12))
			if src != dst && !merged[src] && !merged[dst] {
				c.Merges = append(c.Merges, ingest.Merge{Src: src, Dst: dst})
				merged[src] = true
			}
		}
		x.Apply(&c)
		for root := range uint32(12) {
			if merged[root] {
				continue
			}
			from := t0.Add(time.Duration(r.IntN(60*24)) * time.Hour)
			if r.IntN(3) == 0 {
				from = time.Time{}
			}
			var want []int64
			x.EachEventSince(root, "E", from, func(e Event) { want = append(want, e.Time().UnixNano()) })
			slices.Sort(want)
			slices.Reverse(want)
			var got []int64
			x.EachEventNewest(root, "E", from, func(e Event) bool { got = append(got, e.Time().UnixNano()); return true })
			if !slices.Equal(got, want) {
				t.Fatalf("step %d root %d from %s: got %v, want %v", step, root, from, got, want)
			}
			if k := len(want) / 2; k > 0 {
				got = got[:0]
				x.EachEventNewest(root, "E", from, func(e Event) bool { got = append(got, e.Time().UnixNano()); return len(got) < k })
				if !slices.Equal(got, want[:k]) {
					t.Fatalf("step %d root %d: stopped after %d, got %v, want %v", step, root, k, got, want[:k])
				}
			}
		}
	}
	if len(x.events["E"].parts) < 5 {
		t.Fatalf("only %d parts: the test meant to cross many", len(x.events["E"].parts))
	}
}
