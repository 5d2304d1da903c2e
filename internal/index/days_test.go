package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/store"
)

// TestPresenceByDayEqualsWalk: leaves answered from the parts' presence
// by day (in memory and read from their files, across seals, retention
// cuts, merges and deletions, late events) give the profiles that walking
// each profile's events gives, for windows that start and end on
// midnight, a nanosecond either side of it, or anywhere.
func TestPresenceByDayEqualsWalk(t *testing.T) {
	for seed := range uint64(3) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { testPresence(t, seed) })
	}
}

func testPresence(t *testing.T, seed uint64) {
	db := memDB(t)
	const ws = 2
	ctx := context.Background()
	x, err := Open(ctx, db, ws, LoadOptions{Dir: t.TempDir(), SealEvents: 13})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { x.Close() }()
	g := &changeGen{r: rand.New(rand.NewPCG(seed, 9)), traits: map[uint32]map[string]any{}, now: time.Date(2026, 5, 1, 7, 0, 0, 0, time.UTC)}
	retain := g.now.Add(-40 * 24 * time.Hour)
	checked, fromDays := 0, 0
	for step := range 400 {
		b := db.NewBatch()
		if g.r.IntN(40) == 0 {
			retain = retain.Add(time.Duration(g.r.IntN(3*24)) * time.Hour)
			x.Retain(retain)
			x.JournalRetain(b, retain)
		} else {
			c := g.commit()
			if g.r.IntN(3) == 0 { // whole days of late events
				for i := range c.Events {
					c.Events[i].Timestamp = c.Events[i].Timestamp.Add(-time.Duration(g.r.IntN(20)) * 24 * time.Hour)
				}
			}
			applyStored(t, b, x, ws, c)
		}
		b.Set(store.CountersKey(ws), store.EncodeCounters(store.Counters{EventSeq: g.seq}), nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if step%50 == 49 { // parts to files, read back as a start reads them
			if err := x.Checkpoint(db, func() error { return nil }); err != nil {
				t.Fatal(err)
			}
			y, err := Open(ctx, db, ws, LoadOptions{Dir: x.dir, SealEvents: 13})
			if err != nil {
				t.Fatal(err)
			}
			x.Close()
			x = y
		}
		if step%10 != 9 {
			continue
		}
		for range 20 {
			n, now := randomPresenceLeaf(g)
			lo, hi := x.window(n, now)
			want := presenceByWalk(x, n, lo, hi)
			yield := g.r.IntN(2) == 0
			x.mu.RLock()
			var got *roaring.Bitmap
			if yield {
				got = x.EventYielding(ctx, n, now)
			} else {
				got = x.Event(n, now)
			}
			x.mu.RUnlock()
			if !got.Equals(want) {
				js, _ := json.Marshal(n)
				t.Fatalf("step %d: %s at %s: presence by day gives %d profiles, the walk %d\ngot  %v\nwant %v",
					step, js, now.Format(time.RFC3339Nano), got.GetCardinality(), want.GetCardinality(), got.ToArray(), want.ToArray())
			}
			checked++
			if usesDays(x, n.Name, lo, hi) {
				fromDays++
			}
		}
	}
	if fromDays < checked/4 {
		t.Fatalf("only %d of %d leaves read a whole day from a part: the test must cover more", fromDays, checked)
	}
}

// randomPresenceLeaf is an event leaf that depends only on presence, with
// a window whose ends are on midnight, next to it or anywhere.
func randomPresenceLeaf(g *changeGen) (*condition.Node, time.Time) {
	n := &condition.Node{Kind: condition.Event, Name: []string{"view", "buy", "cart"}[g.r.IntN(3)]}
	counts := []*condition.Cmp{nil, {Op: condition.OpGte, Lo: 1}, {Op: condition.OpEq, Lo: 0}, {Op: condition.OpLt, Lo: 1},
		{Op: condition.OpGt, Lo: 0}, {Op: condition.OpNeq, Lo: 0}, {Op: condition.OpLte, Lo: 0}, {Op: condition.OpBetween, Lo: 1, Hi: math.MaxInt64},
		{Op: condition.OpGte, Lo: 0}, {Op: condition.OpLt, Lo: 0}}
	n.Count = counts[g.r.IntN(len(counts))]
	midnight := func(t time.Time) time.Time {
		m := t.Truncate(24 * time.Hour)
		return m.Add([]time.Duration{0, 0, time.Nanosecond, -time.Nanosecond, time.Duration(g.r.Int64N(int64(24 * time.Hour)))}[g.r.IntN(5)])
	}
	now := g.now
	if g.r.IntN(2) == 0 {
		now = midnight(g.now)
	}
	switch g.r.IntN(3) {
	case 0:
		n.Window = condition.Window{Kind: condition.WindowLast, Last: []time.Duration{time.Hour, 24 * time.Hour, 3 * 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour,
			time.Duration(g.r.Int64N(int64(20 * 24 * time.Hour)))}[g.r.IntN(6)]}
	case 1:
		from := midnight(g.now.Add(-time.Duration(g.r.IntN(25*24)) * time.Hour))
		n.Window = condition.Window{Kind: condition.WindowRange, From: from, To: midnight(from.Add(time.Duration(g.r.IntN(10*24)) * time.Hour))}
	}
	return n, now
}

// presenceByWalk is the live roots with an event named n.Name in [lo, hi],
// by walking each one's events.
func presenceByWalk(x *Index, n *condition.Node, lo, hi int64) *roaring.Bitmap {
	has := roaring.New()
	for _, root := range x.all.ToArray() {
		x.EachEventSince(root, n.Name, time.Unix(0, lo), func(e Event) {
			if t := e.Time().UnixNano(); t >= lo && t <= hi {
				has.Add(root)
			}
		})
	}
	cnt, _ := n.EffectiveCount()
	out := roaring.New()
	for _, root := range x.all.ToArray() {
		c := int64(0)
		if has.Contains(root) {
			c = 1
		}
		if cnt.Match(c) {
			out.Add(root)
		}
	}
	return out
}

// usesDays reports whether some part's whole day lies inside [lo, hi].
func usesDays(x *Index, name string, lo, hi int64) bool {
	c := x.events[name]
	if c == nil {
		return false
	}
	for _, p := range c.parts {
		if p.days == nil {
			continue
		}
		for _, d := range p.days.days {
			if dayStart(int64(d)) >= lo && dayEnd(int64(d)) <= hi {
				return true
			}
		}
	}
	return false
}

// TestDayBounds: days of negative times, and the first and last days an
// int64 holds, whose bounds saturate.
func TestDayBounds(t *testing.T) {
	for _, c := range []struct {
		t          int64
		day        int64
		start, end int64
	}{
		{0, 0, 0, dayNs - 1},
		{dayNs - 1, 0, 0, dayNs - 1},
		{dayNs, 1, dayNs, 2*dayNs - 1},
		{-1, -1, -dayNs, -1},
		{-dayNs, -1, -dayNs, -1},
		{-dayNs - 1, -2, -2 * dayNs, -dayNs - 1},
		{math.MaxInt64, maxDay, maxDay * dayNs, math.MaxInt64},
		{math.MinInt64, minDay, math.MinInt64, (minDay+1)*dayNs - 1},
	} {
		d := dayOf(c.t)
		if d != c.day || dayStart(d) != c.start || dayEnd(d) != c.end {
			t.Errorf("time %d: day %d [%d, %d], want %d [%d, %d]", c.t, d, dayStart(d), dayEnd(d), c.day, c.start, c.end)
		}
	}
}
