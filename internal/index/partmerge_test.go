package index

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/RoaringBitmap/roaring/v2"
	"github.com/cockroachdb/pebble/v2"

	"github.com/cohortdb/cohort/internal/ingest"
	"github.com/cohortdb/cohort/internal/store"
)

// TestPlanPartMerge: which consecutive parts a checkpoint merges, by
// their sizes (oldest first) and whether they are written yet ("m": in
// memory, sealed by this checkpoint).
func TestPlanPartMerge(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		want  string // the run merged, as "i-j", or "" for none
	}{
		{[]string{"1", "1", "1"}, ""},                          // too few
		{[]string{"1", "1", "1", "1"}, "0-3"},                  // the fan-in
		{[]string{"1", "1", "1", "1", "m"}, "0-3"},             // the new one waits
		{[]string{"1", "1", "m", "1", "1"}, ""},                // a part in memory splits the run
		{[]string{"8", "1", "1", "1", "1"}, "1-4"},             // the big one stays: 8 > 4
		{[]string{"4", "1", "1", "1", "1"}, "0-4"},             // 4 ≤ 4: taken along, sizes double
		{[]string{"16", "4", "1", "1", "1"}, ""},               // 4 > 1+1+1: three parts are too few
		{[]string{"4", "4", "4", "4"}, "0-3"},                  // equal sizes merge
		{[]string{"64", "4", "4", "4", "4", "1"}, "1-4"},       // the equal ones; the newest waits for its peers
		{[]string{"1", "1", "1", "1", "100", "1", "1"}, "0-3"}, // the newest run is too short; the big part is not rewritten for small older ones
		{[]string{"1", "1", "1", "1", "100", "1", "1", "1", "1"}, "5-8"},
	} {
		var parts []*part
		for _, s := range tc.parts {
			p := &part{}
			if s != "m" {
				p.file = &partFile{name: "f"}
				n := 0
				fmt.Sscan(s, &n)
				p.prof = make([]uint32, n)
			} else {
				p.prof = make([]uint32, 1)
			}
			parts = append(parts, p)
		}
		got := ""
		if run := planPartMerge(parts); run != nil {
			i := slices.Index(parts, run[0])
			got = fmt.Sprintf("%d-%d", i, i+len(run)-1)
		}
		if got != tc.want {
			t.Errorf("%v: merged %q, want %q", tc.parts, got, tc.want)
		}
	}
}

// TestMergePartsKeepsEvents: a part merged from parts sealed at random
// points (events arriving late, across the parts) holds their events in
// the same order, with the same property ids, and each profile's chain
// lists that profile's events newest first (ties: the later arrival
// first), as one column that had taken them all would.
func TestMergePartsKeepsEvents(t *testing.T) {
	for seed := range uint64(5) {
		r := rand.New(rand.NewPCG(seed, 11))
		x := New()
		x.sealEvents = 1 + r.IntN(40)
		now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
		for i := range 600 {
			ts := now.Add(time.Duration(i) * time.Minute)
			if r.IntN(4) == 0 {
				ts = now.Add(-time.Duration(r.IntN(5000)) * time.Minute) // late
			}
			if r.IntN(10) == 0 && i > 0 {
				ts = now.Add(time.Duration(i-1) * time.Minute) // a tie
			}
			props := map[string]any{"n": float64(r.IntN(300))}
			if i > 300 {
				props["late_col"] = fmt.Sprint("v", r.IntN(3))
			}
			x.Apply(&ingest.Changes{
				Profiles: []ingest.ProfileChange{{Num: uint32(i % 17), NewID: fmt.Sprint("u", i%17), New: map[string]any{}}},
				Events:   []ingest.EventAdded{{Num: uint32(r.IntN(17)), Seq: uint64(i + 1), Name: "e", Timestamp: ts, Properties: props}},
			})
		}
		c := x.events["e"]
		x.sealHead(c)
		if len(c.parts) < 4 {
			t.Fatalf("seed %d: %d parts", seed, len(c.parts))
		}
		m := mergeParts(c.parts)
		type ev struct {
			num uint32
			ts  int64
			ids []uint32
			pos int
		}
		var want []ev
		for _, p := range c.parts {
			for i, num := range p.prof {
				e := ev{num: num, ts: p.ts[i], pos: len(want)}
				for k := range c.order {
					e.ids = append(e.ids, p.idAt(k, int32(i)))
				}
				want = append(want, e)
			}
		}
		if m.len() != len(want) {
			t.Fatalf("seed %d: merged %d events, want %d", seed, m.len(), len(want))
		}
		for i, e := range want {
			if m.prof[i] != e.num || m.ts[i] != e.ts {
				t.Fatalf("seed %d: event %d is %d@%d, want %d@%d", seed, i, m.prof[i], m.ts[i], e.num, e.ts)
			}
			for k, id := range e.ids {
				if got := m.idAt(k, int32(i)); got != id {
					t.Fatalf("seed %d: event %d column %d has id %d, want %d", seed, i, k, got, id)
				}
			}
		}
		for b, blk := range m.blocks {
			lo, hi := blk.min, blk.max
			for i := b * blockSize; i < min((b+1)*blockSize, m.len()); i++ {
				if m.ts[i] < lo || m.ts[i] > hi {
					t.Fatalf("seed %d: event %d outside its block's bounds", seed, i)
				}
			}
		}
		for num := range uint32(17) {
			var chain []int
			if h, ok := m.firstPos(num); ok {
				for i := h; i >= 0; i = m.next[i] {
					chain = append(chain, int(i))
				}
			}
			var mine []int
			for _, e := range want {
				if e.num == num {
					mine = append(mine, e.pos)
				}
			}
			slices.SortFunc(mine, func(a, b int) int {
				return cmp.Or(cmp.Compare(want[b].ts, want[a].ts), cmp.Compare(b, a))
			})
			if !slices.Equal(chain, mine) {
				t.Fatalf("seed %d: profile %d's chain is %v, want %v", seed, num, chain, mine)
			}
		}
	}
}

// TestMergeSourceDroppedByRetention: retention drops one of a merge's
// parts while the checkpoint's goroutine reads them. The part stays
// mapped until the merge has read it; the merged part is not swapped in
// (it holds the dropped events); the parts the live index still holds
// keep their files, which the next checkpoint names; and the index
// reopened from either checkpoint equals the live one.
func TestMergeSourceDroppedByRetention(t *testing.T) {
	db := memDB(t)
	const ws = 5
	ctx := context.Background()
	x, opts, logged := openLogged(t, db, ws, 4)
	defer func() { x.Close() }()
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	seq := uint64(0)
	commit := func(age time.Duration) { // four events: one part
		c := &ingest.Changes{}
		for i := range 4 {
			seq++
			num := uint32(i)
			c.Profiles = append(c.Profiles, ingest.ProfileChange{Num: num, NewID: fmt.Sprint("u", num), New: map[string]any{"k": 1.0}})
			c.Events = append(c.Events, ingest.EventAdded{Num: num, Seq: seq, Name: "e", Timestamp: now.Add(-age + time.Duration(seq)*time.Second),
				Properties: map[string]any{"p": float64(seq % 3)}})
		}
		b := db.NewBatch()
		applyStored(t, b, x, ws, c)
		b.Set(store.CountersKey(ws), store.EncodeCounters(store.Counters{EventSeq: seq}), nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
	}
	sync := func() error { return nil }
	for i := range 4 { // four parts, the second wholly old
		age := time.Hour
		if i == 1 {
			age = 100 * 24 * time.Hour
		}
		commit(age)
	}
	if err := x.Checkpoint(db, sync); err != nil {
		t.Fatal(err)
	}
	commit(time.Hour)
	parts := slices.Clone(x.events["e"].parts)
	release := make(chan struct{})
	x.crashAt = func(stage string) bool {
		if stage == "merge sources" {
			<-release // the merge has not read its parts yet
		}
		return false
	}
	if err := x.StartCheckpoint(db, sync); err != nil {
		t.Fatal(err)
	}
	if m := x.pending.merges; len(m) != 1 || len(m[0].from) != 4 {
		t.Fatalf("planned merges %v, want one of the four written parts", m)
	}
	cut := now.Add(-50 * 24 * time.Hour)
	x.Retain(cut)
	b := db.NewBatch()
	if err := x.JournalRetain(b, cut); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	unmapped := parts[1].file.mm == nil
	close(release)
	x.waitCheckpoint()
	if unmapped {
		t.Fatal("the dropped part was unmapped while the merge had yet to read it")
	}
	x.crashAt = nil
	if _, err := x.FinishCheckpoint(db); err != nil {
		t.Fatal(err)
	}
	if x.partMerges != 0 {
		t.Fatal("the merged part, which holds the dropped events, was swapped in")
	}
	if n := x.scans.Load(); n != 0 {
		t.Fatalf("%d scans counted after the merge: dropped parts would stay mapped for ever", n)
	}
	commit(time.Hour) // the next commit unmaps what retention dropped
	if parts[1].file.mm != nil {
		t.Fatal("the dropped part is still mapped after the merge read it")
	}
	for _, p := range []*part{parts[0], parts[2], parts[3]} {
		if !slices.Contains(x.events["e"].parts, p) {
			t.Fatalf("the live index lost part %s", p.file.name)
		}
		if _, err := os.Stat(filepath.Join(opts.Dir, p.file.name)); err != nil {
			t.Fatalf("the file of a part the live index holds, which the next checkpoint names: %v", err)
		}
	}
	for round := range 2 { // the checkpoint just installed, then the next
		logged.Reset()
		y, err := Open(ctx, db, ws, opts)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(logged.String(), "unusable") {
			t.Fatalf("round %d: the checkpoint was unusable:\n%s", round, logged.String())
		}
		if a, b := x.dump(), y.dump(); a != b {
			t.Fatalf("round %d: the reopened index differs:\n%s", round, firstDiff(a, b))
		}
		y.Close()
		commit(time.Hour)
		if err := x.Checkpoint(db, sync); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSealedPartHeads: a part sealed and not written keeps its heads in
// a map (no sort on the applier); its profiles, its chains' heads and
// the sorted heads it is written with are those of the same part made
// with sorted heads.
func TestSealedPartHeads(t *testing.T) {
	x := New()
	x.sealEvents = 50
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	r := rand.New(rand.NewPCG(8, 8))
	var want *roaring.Bitmap
	for i := range 120 {
		num := uint32(r.IntN(40))
		x.Apply(&ingest.Changes{
			Profiles: []ingest.ProfileChange{{Num: num, NewID: fmt.Sprint("u", num), New: map[string]any{}}},
			Events:   []ingest.EventAdded{{Num: num, Seq: uint64(i + 1), Name: "e", Timestamp: now.Add(time.Duration(r.IntN(1000)) * time.Minute)}},
		})
	}
	c := x.events["e"]
	if len(c.parts) != 2 || c.parts[0].heads == nil {
		t.Fatalf("%d parts, the first with heads in a map: %v", len(c.parts), c.parts[0].heads != nil)
	}
	c.prof, c.ts, c.next, c.blocks, c.byProf = nil, nil, nil, nil, map[uint32]int32{} // only the parts
	want = roaring.New()
	for _, p := range c.parts {
		want.AddMany(p.prof)
	}
	if got := x.EventProfiles("e"); !got.Equals(want) {
		t.Fatalf("EventProfiles %v, want %v", got.ToArray(), want.ToArray())
	}
	for _, p := range c.parts {
		sorted := newPart(p.run, p.heads)
		hp, pos := p.sortedHeads()
		if !slices.Equal(hp, sorted.hprof) || !slices.Equal(pos, sorted.hpos) {
			t.Fatal("sorted heads differ from newPart's")
		}
		for num := range uint32(41) {
			a, aok := p.firstPos(num)
			b, bok := sorted.firstPos(num)
			if a != b || aok != bok {
				t.Fatalf("profile %d: head %d %v, want %d %v", num, a, aok, b, bok)
			}
			if p.holdsAny(roaring.BitmapOf(num)) != bok {
				t.Fatalf("profile %d: holdsAny says %v", num, !bok)
			}
		}
	}
}
