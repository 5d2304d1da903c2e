package index

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/store"
)

// TestPresenceByDayEqualsWalk: leaves answered from the parts' presence
// by day and by value (in memory and read from their files, across
// seals, retention cuts, merges and deletions, late events) give the
// profiles that walking each profile's events gives, for windows that
// start and end on midnight, a nanosecond either side of it, or
// anywhere, with and without a where-predicate.
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
	checked, fromDays, fromValues := 0, 0, 0
	for step := range 400 {
		b := db.NewBatch()
		if g.r.IntN(40) == 0 {
			retain = retain.Add(time.Duration(g.r.IntN(3*24)) * time.Hour)
			x.Retain(retain)
			x.JournalRetain(b, retain)
		} else {
			c := g.commit()
			if step >= 150 && step < 250 { // a property only some parts have
				for i := range c.Events {
					if g.r.IntN(2) == 0 {
						c.Events[i].Properties["campaign"] = []string{"spring", "summer"}[g.r.IntN(2)]
					}
				}
			}
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
			want := presenceByWalk(x, n, lo, hi, now)
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
			if usesDays(x, n, lo, hi) {
				fromDays++
				if len(n.Where) > 0 {
					fromValues++
				}
			}
		}
	}
	if fromDays < checked/4 || fromValues < checked/10 {
		t.Fatalf("only %d of %d leaves read a whole day from a part, %d of a value: the test must cover more", fromDays, checked, fromValues)
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
	// Half the leaves have one where-predicate: on a property of three
	// values (presence by value), of a hundred (too many: events are
	// read), of unique values, or that no event has.
	if g.r.IntN(2) == 0 {
		where := []string{
			`{"property":"category","op":"eq","value":"b"}`, `{"property":"category","op":"neq","value":"a"}`,
			`{"property":"category","op":"in","value":["a","c"]}`, `{"property":"category","op":"not_exists"}`,
			`{"property":"cart.items","op":"gte","value":2}`, `{"property":"cart.items","op":"not_exists"}`,
			`{"property":"price","op":"lt","value":30}`, `{"property":"order","op":"exists"}`,
			`{"property":"nope","op":"not_exists"}`, `{"property":"nope","op":"eq","value":1}`,
			`{"property":"campaign","op":"eq","value":"spring"}`, `{"property":"campaign","op":"not_exists"}`,
		}[g.r.IntN(12)]
		p, err := condition.Parse([]byte(`{"event":"view","where":[` + where + `]}`))
		if err != nil {
			panic(err)
		}
		n.Where = p.Where
	}
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
func presenceByWalk(x *Index, n *condition.Node, lo, hi int64, now time.Time) *roaring.Bitmap {
	has := roaring.New()
	for _, root := range x.all.ToArray() {
		x.EachEventSince(root, n.Name, time.Unix(0, lo), func(e Event) {
			if t := e.Time().UnixNano(); t < lo || t > hi {
				return
			}
			for _, w := range n.Where {
				v, ok := e.Prop(w.Property)
				if !w.Match(v, ok, now) {
					return
				}
			}
			has.Add(root)
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

// usesDays reports whether some part's whole day lies inside [lo, hi],
// with presence by value for n's where-predicate if it has one.
func usesDays(x *Index, n *condition.Node, lo, hi int64) bool {
	c := x.events[n.Name]
	if c == nil {
		return false
	}
	k := -1
	if len(n.Where) > 0 {
		pc := c.props[n.Where[0].Property]
		if pc == nil {
			return false
		}
		k = pc.k
	}
	for _, p := range c.parts {
		if p.days == nil || k >= 0 && !slices.Contains(p.days.cols, k) {
			continue
		}
		for _, key := range p.days.keys {
			if d := keyDay(key); dayStart(d) >= lo && dayEnd(d) <= hi {
				return true
			}
		}
	}
	return false
}

// TestMakeDaysDense: days with many profiles, whose bitmaps are made
// through the bit set (dense containers), hold exactly their profiles,
// each day its own, in memory and read back from the part's file.
func TestMakeDaysDense(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 3))
	day0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano()
	want := map[int64]*roaring.Bitmap{}
	var prof []uint32
	var ts []int64
	for d := range int64(3) {
		want[dayOf(day0)+d] = roaring.New()
		for range 60_000 { // about 45% of 0..99,999 each day: dense
			n := uint32(r.IntN(100_000))
			prof = append(prof, n)
			ts = append(ts, day0+d*dayNs+int64(r.IntN(int(dayNs))))
			want[dayOf(day0)+d].Add(n)
		}
	}
	check := func(what string, pd *partDays) {
		t.Helper()
		for d, bm := range want {
			var got []*roaring.Bitmap
			got = pd.gather(0, 0, d, d+1, got)
			if len(got) != 1 || !got[0].Equals(bm) {
				n := uint64(0)
				if len(got) == 1 {
					n = got[0].GetCardinality()
				}
				t.Fatalf("%s: day %d holds %d profiles, want %d", what, d, n, bm.GetCardinality())
			}
		}
	}
	c := &eventCol{byProf: map[uint32]int32{}}
	for i, n := range prof {
		c.appendEvent(n, ts[i])
	}
	p := newPart(run{prof: c.prof, ts: c.ts, next: c.next, blocks: c.blocks}, c.byProf)
	p.days = makeDays(&p.run)
	check("in memory", p.days)
	dir := t.TempDir()
	if err := writePart(dir, "p.col", p); err != nil {
		t.Fatal(err)
	}
	mp, err := openPart(dir, "p.col")
	if err != nil {
		t.Fatal(err)
	}
	defer mp.file.close()
	check("from the file", mp.days)
}
