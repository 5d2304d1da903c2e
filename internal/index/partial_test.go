package index

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"

	"github.com/cohortdb/cohort/internal/condition"
	"github.com/cohortdb/cohort/internal/ingest"
)

// TestPartialLeaf checks what names a part's kept share: leaves that
// count the same thing share it, leaves that count anything else do not,
// and leaves whose share is not kept have none.
func TestPartialLeaf(t *testing.T) {
	key := func(src string, mode accMode) string {
		n, err := condition.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return partialLeaf(n, mode)
	}
	base := key(`{"event":"E","where":[{"property":"c","op":"eq","value":"x"}],"aggregate":{"fn":"sum","property":"v","op":"gt","value":1}}`, accCells)
	if base == "" {
		t.Fatal("a plain sum has no key")
	}
	// The count, the aggregate's comparison and the window are applied
	// after the share: they do not change it.
	if k := key(`{"event":"E","where":[{"property":"c","op":"eq","value":"x"}],"aggregate":{"fn":"sum","property":"v","op":"lt","value":9},"count":{"op":"gte","value":2},"within":{"last":"7d"}}`, accCells); k != base {
		t.Errorf("same share, key %q, want %q", k, base)
	}
	for _, c := range []struct {
		src  string
		mode accMode
	}{
		{`{"event":"E","where":[{"property":"c","op":"eq","value":"x"}],"aggregate":{"fn":"sum","property":"v","op":"gt","value":1}}`, accCount}, // the column did not exist then
		{`{"event":"E","where":[{"property":"c","op":"eq","value":"y"}],"aggregate":{"fn":"sum","property":"v","op":"gt","value":1}}`, accCells},
		{`{"event":"E","where":[{"property":"c","op":"eq","value":"x","ignore_case":true}],"aggregate":{"fn":"sum","property":"v","op":"gt","value":1}}`, accCells},
		{`{"event":"E","where":[{"property":"d","op":"eq","value":"x"}],"aggregate":{"fn":"sum","property":"v","op":"gt","value":1}}`, accCells},
		{`{"event":"E","where":[{"property":"c","op":"eq","value":"x"}],"aggregate":{"fn":"min","property":"v","op":"gt","value":1}}`, accCells},
		{`{"event":"E","where":[{"property":"c","op":"eq","value":"x"}],"aggregate":{"fn":"sum","property":"w","op":"gt","value":1}}`, accCells},
		{`{"event":"E","where":[{"property":"c","op":"eq","value":"x"}]}`, accCount},
	} {
		if k := key(c.src, c.mode); k == base || k == "" {
			t.Errorf("%s (mode %d): key %q", c.src, c.mode, k)
		}
	}
	for _, c := range []struct {
		src  string
		mode accMode
	}{
		{`{"event":"E","where":[{"property":"at","op":"within_last","value":"1d"}]}`, accCount},
		{`{"event":"E","where":[{"property":"at","op":"not_within_last","value":"1d"}]}`, accCount},
		{`{"event":"E","aggregate":{"fn":"distinct","property":"v","op":"gt","value":1}}`, accPairs},
	} {
		if k := key(c.src, c.mode); k != "" {
			t.Errorf("%s: kept as %q", c.src, k)
		}
	}
}

// TestPartialsConcurrent evaluates leaves from several goroutines on an
// index whose parts all keep partials, in a budget that holds only some:
// every answer must be the one without partials (run with -race).
func TestPartialsConcurrent(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	x := New()
	x.sealEvents = 300
	r := rand.New(rand.NewPCG(3, 4))
	var c ingest.Changes
	for p := range 500 {
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: uint32(p), NewID: fmt.Sprint(p), New: map[string]any{}})
	}
	for i := range 6000 {
		c.Events = append(c.Events, ingest.EventAdded{Num: uint32(r.IntN(500)), Seq: uint64(i), Name: "E",
			Timestamp:  now.Add(-time.Duration(r.Int64N(int64(10 * 24 * time.Hour)))),
			Properties: map[string]any{"c": []string{"a", "b", "c"}[r.IntN(3)], "v": float64(r.IntN(100))}})
	}
	x.Apply(&c)
	var leaves []*condition.Node
	for _, src := range []string{
		`{"event":"E","count":{"op":"gte","value":13}}`,
		`{"event":"E","where":[{"property":"c","op":"eq","value":"a"}],"count":{"op":"gte","value":4}}`,
		`{"event":"E","aggregate":{"fn":"avg","property":"v","op":"gt","value":50},"within":{"last":"5d"}}`,
		`{"event":"E","aggregate":{"fn":"max","property":"v","op":"lt","value":90}}`,
		`{"event":"E","aggregate":{"fn":"distinct","property":"c","op":"gte","value":3},"within":{"last":"3d"}}`,
	} {
		n, err := condition.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, n)
	}
	x.SetPartials(0, 1)
	want := make([]*roaring.Bitmap, len(leaves))
	x.RLock()
	for i, n := range leaves {
		want[i] = x.Event(n, now)
	}
	x.RUnlock()
	x.SetPartials(40<<10, 1)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for k := range 60 {
				i := (g + k) % len(leaves)
				x.RLock()
				got := x.EventYielding(context.Background(), leaves[i], now)
				x.RUnlock()
				if !got.Equals(want[i]) {
					t.Errorf("leaf %d: %d members, %d without partials", i, got.GetCardinality(), want[i].GetCardinality())
					return
				}
			}
		})
	}
	wg.Wait()
	if bytes, hits, made := x.PartialStats(); hits == 0 || made == 0 || bytes > 40<<10 {
		t.Errorf("%d partials made, %d used, %d bytes kept", made, hits, bytes)
	}
}

// TestPartialsEqualScan compares every kind of leaf, over windows that
// cut through parts at every place, with partials kept and without: the
// events arrive in time order, so chunks of two blocks fall wholly
// inside, across and outside each window. Each leaf is asked twice (the
// second answer from the partials the first made).
func TestPartialsEqualScan(t *testing.T) {
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	x := New()
	x.sealEvents = 5000 // parts of five blocks, and a head
	r := rand.New(rand.NewPCG(5, 6))
	var c ingest.Changes
	for p := range 2000 {
		c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: uint32(p), NewID: fmt.Sprint(p), New: map[string]any{}})
	}
	const events = 43000
	first := now.Add(-20 * 24 * time.Hour)
	for i := range events {
		v := any(float64(r.IntN(100)))
		if i%97 == 0 {
			v = "n/a" // not a number: no value for the numeric aggregates
		}
		c.Events = append(c.Events, ingest.EventAdded{Num: uint32(r.IntN(2000)), Seq: uint64(i), Name: "E",
			Timestamp:  first.Add(time.Duration(i) * (20 * 24 * time.Hour / events)).Add(-time.Duration(r.Int64N(int64(time.Hour)))),
			Properties: map[string]any{"c": []string{"a", "b", "c"}[r.IntN(3)], "v": v}})
	}
	x.Apply(&c)
	var leaves []string
	for _, leaf := range []string{
		`"count":{"op":"gte","value":4}`,
		`"count":{"op":"lt","value":2}`,
		`"where":[{"property":"c","op":"eq","value":"a"}],"count":{"op":"gte","value":2}`,
		`"aggregate":{"fn":"sum","property":"v","op":"gt","value":300}`,
		`"aggregate":{"fn":"avg","property":"v","op":"lt","value":40}`,
		`"aggregate":{"fn":"min","property":"v","op":"lt","value":10}`,
		`"aggregate":{"fn":"max","property":"v","op":"gte","value":95}`,
		`"aggregate":{"fn":"distinct","property":"c","op":"gte","value":3}`,
	} {
		for _, within := range []string{``, `,"within":{"last":"1d"}`, `,"within":{"last":"3d"}`, `,"within":{"last":"9d"}`,
			`,"within":{"last":"19d"}`, `,"within":{"from":"2026-05-14T05:00:00Z","to":"2026-05-20T13:00:00Z"}`} {
			leaves = append(leaves, `{"event":"E",`+leaf+within+`}`)
		}
	}
	answer := func(src string, at time.Time) *roaring.Bitmap {
		n, err := condition.Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		x.RLock()
		defer x.RUnlock()
		return x.Event(n, at)
	}
	ats := []time.Time{now, now.Add(-37 * time.Hour), now.Add(-5*24*time.Hour - 13*time.Minute)}
	x.SetPartials(0, 2)
	want := map[string]*roaring.Bitmap{}
	for _, at := range ats {
		for _, src := range leaves {
			want[at.String()+src] = answer(src, at)
		}
	}
	// Every window and instant reuses the partials the others made.
	x.SetPartials(64<<20, 2)
	for k := range 2 {
		for _, at := range ats {
			for _, src := range leaves {
				w := want[at.String()+src]
				if got := answer(src, at); !got.Equals(w) {
					t.Fatalf("%s at %s (pass %d): %d members, %d without partials", src, at, k, got.GetCardinality(), w.GetCardinality())
				}
			}
		}
	}
	if _, hits, made := x.PartialStats(); hits < 100 || made < 50 {
		t.Errorf("%d partials made, %d used: the test must cover them", made, hits)
	}
}
